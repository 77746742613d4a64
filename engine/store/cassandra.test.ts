/**
 * The store contract against a real Apache Cassandra node, started by the project's own script.
 * In CI (CI=true) this never skips: a machine without Java fails the run.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { ensureCassandra, cassandraTestsCanRun, stopCassandra } from '../../scripts/services.ts';
import { openCassandraStores, type CassandraOptions, type CassandraStores } from './cassandra.ts';
import {
  describeIndexStoreContract,
  describeMessageStoreContract,
  describeReminderStoreContract,
  describeStateStoreContract,
  type Harness,
} from './contract.ts';

const PORT = 19042;
const haveJava = cassandraTestsCanRun('the Cassandra store contract');

const opts: CassandraOptions = {
  contactPoints: ['127.0.0.1'],
  port: PORT,
  localDataCenter: 'datacenter1',
  keyspace: 'sb_contract',
  connectAttempts: 3,
};
let stores: CassandraStores | undefined;

function harness<S>(pick: (s: CassandraStores) => S, tables: string[]): () => Promise<Harness<S>> {
  return async () => {
    const s = stores!;
    for (const t of tables) await s.client.execute(`TRUNCATE ${opts.keyspace}.${t}`);
    return { store: pick(s), reopen: async () => pick(s), cleanup: async () => {} };
  };
}

describe.runIf(haveJava)('cassandra stores', () => {
  beforeAll(async () => {
    await ensureCassandra({ port: PORT, storagePort: 17000, wipe: true });
    stores = await openCassandraStores(opts);
  }, 240_000);
  afterAll(async () => {
    await stores?.close();
    await stopCassandra({ port: PORT, wipe: true });
  }, 60_000);

  describeMessageStoreContract(
    'cassandra',
    harness((s) => s.messages, ['messages', 'message_ids']),
  );
  describeIndexStoreContract(
    'cassandra',
    harness((s) => s.index, ['index_entries']),
  );
  describeStateStoreContract(
    'cassandra',
    harness((s) => s.state, ['actor_state', 'actor_state_index']),
  );
  describeReminderStoreContract(
    'cassandra',
    harness((s) => s.reminders, ['reminders', 'reminders_by_due', 'reminder_days']),
  );
});
