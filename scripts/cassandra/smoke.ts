/**
 * Smoke test for the local Cassandra started by scripts/cassandra/start.sh: keyspace, table,
 * insert, select, and a lightweight transaction (Paxos). Exits non-zero on failure.
 *
 * Usage: node --import tsx scripts/cassandra/smoke.ts   (env SB_CASSANDRA_PORT, default 9042)
 */
import cassandra from 'cassandra-driver';

const port = Number(process.env.SB_CASSANDRA_PORT ?? 9042);
const keyspace = 'sb_smoke';

const client = new cassandra.Client({
  contactPoints: [`127.0.0.1:${port}`],
  localDataCenter: 'datacenter1',
});

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`smoke: ${what}`);
}

const t0 = performance.now();
try {
  await client.connect();
  const local = await client.execute('SELECT release_version, data_center FROM system.local');
  const row = local.first();
  console.log(
    `connected: Cassandra ${String(row.get('release_version'))}, dc ${String(row.get('data_center'))}`,
  );

  await client.execute(
    `CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
  );
  await client.execute(
    `CREATE TABLE IF NOT EXISTS ${keyspace}.messages (tenant_id text, session_id text, seq bigint, body text, PRIMARY KEY ((tenant_id, session_id), seq))`,
  );
  await client.execute(`TRUNCATE ${keyspace}.messages`);

  const insert = `INSERT INTO ${keyspace}.messages (tenant_id, session_id, seq, body) VALUES (?, ?, ?, ?)`;
  for (let seq = 1; seq <= 3; seq++) {
    await client.execute(insert, ['t1', 's1', seq, `hello ${seq}`], { prepare: true });
  }
  const rows = await client.execute(
    `SELECT seq, body FROM ${keyspace}.messages WHERE tenant_id = ? AND session_id = ? AND seq > ?`,
    ['t1', 's1', 1],
    { prepare: true },
  );
  check(rows.rowLength === 2, `expected 2 rows, got ${rows.rowLength}`);
  check(rows.first().get('body') === 'hello 2', 'unexpected body');

  const lwt = `INSERT INTO ${keyspace}.messages (tenant_id, session_id, seq, body) VALUES (?, ?, ?, ?) IF NOT EXISTS`;
  const first = await client.execute(lwt, ['t1', 's1', 10, 'lwt'], { prepare: true });
  const second = await client.execute(lwt, ['t1', 's1', 10, 'lwt again'], { prepare: true });
  check(first.wasApplied(), 'first IF NOT EXISTS should apply');
  check(!second.wasApplied(), 'second IF NOT EXISTS should not apply');

  const cas = `UPDATE ${keyspace}.messages SET body = ? WHERE tenant_id = ? AND session_id = ? AND seq = ? IF body = ?`;
  const swapped = await client.execute(cas, ['swapped', 't1', 's1', 10, 'lwt'], { prepare: true });
  const stale = await client.execute(cas, ['stale', 't1', 's1', 10, 'lwt'], { prepare: true });
  check(swapped.wasApplied() && !stale.wasApplied(), 'compare-and-set IF body = ? misbehaved');

  await client.execute(`DROP KEYSPACE ${keyspace}`);
  console.log(`smoke ok in ${Math.round(performance.now() - t0)} ms (insert, select, IF NOT EXISTS, IF)`);
} finally {
  await client.shutdown();
}
