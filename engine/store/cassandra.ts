/**
 * Apache Cassandra implementation of the storage seams (StateStore, ReminderStore, MessageStore).
 *
 * Data model, chosen for the access paths:
 * - `messages`     ((tenant, stream), seq DESC): a session's events; "last 50" is a forward slice,
 *                  paging either way by seq. Optional per-write TTL (retention).
 * - `message_ids`  ((tenant, stream), client_msg_id) → seq: idempotency index, same partition key.
 * - `actor_state`  ((tenant, kind, key)) → value: one blob per actor; `actor_state_index`
 *                  ((tenant, kind), key) backs `list` for kinds that are listed (members, tenants).
 * - `reminders`    ((tenant, kind, key), name) → due_at, msg; `reminders_by_due` ((day), due_at, …)
 *                  finds due reminders by time; `reminder_days` (k, day) lists days that hold any.
 *
 * Sequence guard: the engine gives every stream one writer (its session actor); this store
 * serialises appends per stream inside the process, so a duplicate clientMsgId or a taken seq is
 * detected without lightweight transactions on the hot path. Across processes the cluster layer
 * gives a stream one writer at a time (docs/CLUSTER.md); a writer that (re)activates calls
 * `lastSeq`, which drops this process's cached state of the stream, so a stream written meanwhile
 * by another node is reloaded before the next append here.
 */
import cassandra from 'cassandra-driver';
import { SbError } from '../../protos/errors.ts';
import { KeyedQueue } from './keyed-queue.ts';
import type {
  AppendResult,
  IndexStore,
  Json,
  MessageStore,
  ReadOptions,
  Reminder,
  ReminderStore,
  StateStore,
  StoredEvent,
} from './types.ts';

const { Client, types, policies } = cassandra;
type CqlClient = InstanceType<typeof Client>;

export type Consistency = 'one' | 'localOne' | 'quorum' | 'localQuorum' | 'all' | 'eachQuorum';

export interface CassandraOptions {
  contactPoints: string[];
  /** Default 9042. */
  port?: number;
  localDataCenter: string;
  keyspace: string;
  /** Consistency of reads and writes. Default localQuorum (on one node: the node). */
  consistency?: Consistency;
  /** Replication used when the keyspace is created. Default SimpleStrategy, rf 1. */
  replication?: Record<string, string | number>;
  /** Connection attempts before giving up at start-up. Default 10 (backoff 0.5 s doubling, max 5 s). */
  connectAttempts?: number;
  /** Seconds of TTL for new message writes of a tenant (retention); undefined = keep. */
  ttlSecFor?: (tenant: string) => number | undefined;
}

/** Versioned schema migrations, applied in order, each once; `{ks}` is the keyspace. */
export const MIGRATIONS: ReadonlyArray<{ id: number; name: string; cql: string[] }> = [
  {
    id: 1,
    name: 'messages, state, reminders',
    cql: [
      `CREATE TABLE IF NOT EXISTS {ks}.messages (tenant text, stream text, seq bigint, at timestamp,
         client_msg_id text, body text, recalled_at timestamp, recalled_by text,
         PRIMARY KEY ((tenant, stream), seq)) WITH CLUSTERING ORDER BY (seq DESC)`,
      `CREATE TABLE IF NOT EXISTS {ks}.message_ids (tenant text, stream text, client_msg_id text, seq bigint,
         PRIMARY KEY ((tenant, stream), client_msg_id))`,
      `CREATE TABLE IF NOT EXISTS {ks}.actor_state (tenant text, kind text, key text, value text,
         PRIMARY KEY ((tenant, kind, key)))`,
      `CREATE TABLE IF NOT EXISTS {ks}.actor_state_index (tenant text, kind text, key text,
         PRIMARY KEY ((tenant, kind), key))`,
      `CREATE TABLE IF NOT EXISTS {ks}.reminders (tenant text, kind text, key text, name text, due_at timestamp, msg text,
         PRIMARY KEY ((tenant, kind, key), name))`,
      `CREATE TABLE IF NOT EXISTS {ks}.reminders_by_due (day int, due_at timestamp, tenant text, kind text, key text, name text, msg text,
         PRIMARY KEY ((day), due_at, tenant, kind, key, name))`,
      `CREATE TABLE IF NOT EXISTS {ks}.reminder_days (k int, day int, PRIMARY KEY ((k), day))`,
    ],
  },
  {
    id: 2,
    name: 'secondary indexes (history search)',
    cql: [
      `CREATE TABLE IF NOT EXISTS {ks}.index_entries (tenant text, partition text, sort_key text, value text,
         PRIMARY KEY ((tenant, partition), sort_key))`,
    ],
  },
  {
    id: 3,
    name: 'idempotency keys as a static map of the session partition (one mutation per append)',
    cql: [`ALTER TABLE {ks}.messages ADD client_ids map<text, bigint> static`],
  },
];

const DAY_MS = 86_400_000;

function consistencyOf(c: Consistency): number {
  return types.consistencies[c];
}

function invalid(msg: string): SbError {
  return new SbError('SB_ERR_INVALID_FIELD', msg);
}

function checkScope(tenant: string, stream: string): void {
  if (typeof tenant !== 'string' || tenant === '') throw invalid('tenant must be a non-empty string');
  if (typeof stream !== 'string' || stream === '') throw invalid('stream must be a non-empty string');
}

function unavailable(err: unknown): SbError {
  if (err instanceof SbError) return err;
  return new SbError('SB_ERR_STORE_UNAVAILABLE', `cassandra: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Connects (with retries and backoff), creates the keyspace and applies pending migrations. */
export async function openCassandraClient(opts: CassandraOptions): Promise<CqlClient> {
  const attempts = opts.connectAttempts ?? 10;
  let delay = 500;
  let lastErr: unknown;
  for (let i = 1; i <= attempts; i++) {
    const client = new Client({
      contactPoints: opts.contactPoints,
      localDataCenter: opts.localDataCenter,
      protocolOptions: { port: opts.port ?? 9042 },
      // A node that comes back is used again within seconds (the driver's default backoff grows to
      // 10 minutes, leaving a restarted store unused long after it answers).
      policies: { reconnection: new policies.reconnection.ExponentialReconnectionPolicy(500, 5000, false) },
      queryOptions: { consistency: consistencyOf(opts.consistency ?? 'localQuorum'), prepare: true },
    });
    try {
      await client.connect();
      await migrate(client, opts);
      return client;
    } catch (err) {
      lastErr = err;
      await client.shutdown().catch(() => {});
      if (i < attempts) {
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }
  throw new SbError(
    'SB_ERR_STORE_UNAVAILABLE',
    `Cassandra at ${opts.contactPoints.join(',')}:${opts.port ?? 9042} (data center "${opts.localDataCenter}") ` +
      `did not answer after ${attempts} attempts: ${(lastErr as Error)?.message ?? String(lastErr)}`,
    { cause: lastErr },
  );
}

async function migrate(client: CqlClient, opts: CassandraOptions): Promise<void> {
  const ks = opts.keyspace;
  if (!/^[a-z][a-z0-9_]{0,47}$/.test(ks)) throw invalid(`keyspace name "${ks}" is not valid`);
  const repl = opts.replication ?? { class: 'SimpleStrategy', replication_factor: 1 };
  const replCql = JSON.stringify(repl).replace(/"/g, "'");
  await client.execute(`CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = ${replCql}`, [], {
    prepare: false,
  });
  await client.execute(
    `CREATE TABLE IF NOT EXISTS ${ks}.schema_migrations (id int PRIMARY KEY, name text, applied_at timestamp)`,
    [],
    { prepare: false },
  );
  const applied = new Set(
    (await client.execute(`SELECT id FROM ${ks}.schema_migrations`, [], { prepare: false })).rows.map((r) =>
      Number(r['id']),
    ),
  );
  for (const m of MIGRATIONS) {
    if (applied.has(m.id)) continue;
    for (const stmt of m.cql) await client.execute(stmt.replaceAll('{ks}', ks), [], { prepare: false });
    await client.execute(`INSERT INTO ${ks}.schema_migrations (id, name, applied_at) VALUES (?, ?, ?)`, [
      m.id,
      m.name,
      new Date(),
    ]);
  }
}

interface Row {
  get(name: string): unknown;
}

function rowToEvent(tenant: string, stream: string, r: Row): StoredEvent {
  const e: StoredEvent = {
    tenant,
    stream,
    seq: Number(r.get('seq')),
    at: (r.get('at') as Date).getTime(),
    body: JSON.parse(r.get('body') as string) as Json,
  };
  const cm = r.get('client_msg_id');
  if (typeof cm === 'string') e.clientMsgId = cm;
  const rec = r.get('recalled_at');
  if (rec instanceof Date) e.recalled = { at: rec.getTime(), by: String(r.get('recalled_by') ?? '') };
  return e;
}

/**
 * Sends the appends issued in one tick together: up to {@link WriteCoalescer.MAX_STATEMENTS}
 * single-partition mutations (at most {@link WriteCoalescer.MAX_BYTES} of values) travel as one
 * unlogged batch, one request instead of one each. Every append still waits for its own batch's
 * acknowledgement at the configured consistency. An unlogged batch is not atomic across partitions:
 * when a batch fails, every append in it fails and may or may not have landed, exactly as a
 * single failed write (the caller's retry is deduplicated by its clientMsgId). The limits stay
 * under Cassandra's default warning thresholds (5 KiB per batch, 10 partitions per unlogged batch).
 */
class WriteCoalescer {
  static readonly MAX_STATEMENTS = 10;
  static readonly MAX_BYTES = 5 * 1024;
  private pending: Array<{
    query: string;
    params: unknown[];
    bytes: number;
    resolve: () => void;
    reject: (err: unknown) => void;
  }> = [];
  private scheduled = false;

  constructor(private readonly client: CqlClient) {}

  write(query: string, params: unknown[], bytes: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ query, params, bytes, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const all = this.pending;
    this.pending = [];
    for (let i = 0; i < all.length;) {
      const group = [all[i]!];
      let bytes = all[i]!.bytes;
      for (i++; i < all.length && group.length < WriteCoalescer.MAX_STATEMENTS; i++) {
        if (bytes + all[i]!.bytes > WriteCoalescer.MAX_BYTES) break;
        bytes += all[i]!.bytes;
        group.push(all[i]!);
      }
      const sent =
        group.length === 1
          ? this.client.execute(group[0]!.query, group[0]!.params)
          : this.client.batch(
              group.map((g) => ({ query: g.query, params: g.params })),
              { prepare: true, logged: false },
            );
      sent.then(
        () => {
          for (const g of group) g.resolve();
        },
        (err: unknown) => {
          for (const g of group) g.reject(err);
        },
      );
    }
  }
}

export class CassandraMessageStore implements MessageStore {
  private readonly q = new KeyedQueue();
  private readonly ks: string;
  private readonly writes: WriteCoalescer;
  constructor(
    private readonly client: CqlClient,
    private readonly opts: CassandraOptions,
  ) {
    this.ks = opts.keyspace;
    this.writes = new WriteCoalescer(client);
  }

  /**
   * Per-stream state of streams written through this process: last seq and every clientMsgId →
   * seq. Loaded with one read the first time a stream is appended to here; afterwards appends to
   * the stream are serialised in this process (one writer per stream), so the cache is exact and an
   * append costs one write. Bounded: least recently used streams are dropped and reloaded on demand.
   */
  private readonly streams = new Map<string, { last: number; ids: Map<string, number> }>();
  private static readonly STREAM_CACHE = 5000;

  private async streamState(
    tenant: string,
    stream: string,
  ): Promise<{ last: number; ids: Map<string, number> }> {
    const sk = `${tenant}\u0000${stream}`;
    let st = this.streams.get(sk);
    if (st) {
      this.streams.delete(sk);
    } else {
      const rs = await this.client.execute(
        `SELECT seq, client_ids FROM ${this.ks}.messages WHERE tenant = ? AND stream = ? ORDER BY seq DESC LIMIT 1`,
        [tenant, stream],
      );
      const row = rs.first();
      const ids = new Map<string, number>();
      const m = row?.get('client_ids') as Record<string, { toNumber(): number } | number> | null | undefined;
      if (m) for (const [k, v] of Object.entries(m)) ids.set(k, typeof v === 'number' ? v : v.toNumber());
      st = { last: row ? Number(row.get('seq')) : 0, ids };
    }
    this.streams.set(sk, st);
    if (this.streams.size > CassandraMessageStore.STREAM_CACHE) {
      const oldest = this.streams.keys().next();
      if (!oldest.done) this.streams.delete(oldest.value);
    }
    return st;
  }

  append(event: StoredEvent): Promise<AppendResult> {
    try {
      checkScope(event.tenant, event.stream);
      if (!Number.isSafeInteger(event.seq) || event.seq < 1) throw invalid('seq must be a positive integer');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.q.run(`${event.tenant}\u0000${event.stream}`, () => this.appendNow(event));
  }

  async appendBatch(events: StoredEvent[]): Promise<AppendResult[]> {
    const out: AppendResult[] = [];
    for (const e of events) out.push(await this.append(e));
    return out;
  }

  private async appendNow(event: StoredEvent): Promise<AppendResult> {
    const sk = `${event.tenant}\u0000${event.stream}`;
    try {
      const st = await this.streamState(event.tenant, event.stream);
      if (event.clientMsgId !== undefined) {
        const prior = st.ids.get(event.clientMsgId);
        if (prior !== undefined) {
          const [e] = await this.read(event.tenant, event.stream, { afterSeq: prior - 1, limit: 1 });
          if (e && e.seq === prior) return { event: e, duplicate: true };
        }
      }
      if (event.seq <= st.last) {
        // Below the last seq: taken unless it is a gap (seqs are dense in practice); check it.
        const taken = await this.client.execute(
          `SELECT seq FROM ${this.ks}.messages WHERE tenant = ? AND stream = ? AND seq = ?`,
          [event.tenant, event.stream, types.Long.fromNumber(event.seq)],
        );
        if (taken.rowLength > 0) throw new SbError('SB_ERR_SEQ_CONFLICT', `seq ${event.seq} is taken`);
      }
      const ttl = event.ttlSec ?? this.opts.ttlSecFor?.(event.tenant);
      const using = ttl ? ` USING TTL ${Math.floor(ttl)}` : '';
      const seq = types.Long.fromNumber(event.seq);
      // One mutation of one partition: the event row and, in the partition's static map, its
      // idempotency key. Acknowledged only when the write reached the configured consistency.
      const body = JSON.stringify(event.body);
      const bytes = body.length + event.tenant.length + event.stream.length + 64;
      if (event.clientMsgId !== undefined) {
        await this.writes.write(
          `UPDATE ${this.ks}.messages${using} SET at = ?, client_msg_id = ?, body = ?, client_ids[?] = ? WHERE tenant = ? AND stream = ? AND seq = ?`,
          [
            new Date(event.at),
            event.clientMsgId,
            body,
            event.clientMsgId,
            seq,
            event.tenant,
            event.stream,
            seq,
          ],
          bytes + 2 * event.clientMsgId.length,
        );
        st.ids.set(event.clientMsgId, event.seq);
      } else {
        await this.writes.write(
          `UPDATE ${this.ks}.messages${using} SET at = ?, body = ? WHERE tenant = ? AND stream = ? AND seq = ?`,
          [new Date(event.at), body, event.tenant, event.stream, seq],
          bytes,
        );
      }
      st.last = Math.max(st.last, event.seq);
      return { event, duplicate: false };
    } catch (err) {
      // An unconfirmed write may still land: drop the cached state so the next append reloads it.
      this.streams.delete(sk);
      throw unavailable(err);
    }
  }

  async read(tenant: string, stream: string, opts: ReadOptions = {}): Promise<StoredEvent[]> {
    checkScope(tenant, stream);
    const limit = Math.min(Math.max(1, Math.floor(opts.limit ?? 100)), 1000);
    const backward = opts.direction === 'backward' || opts.beforeSeq !== undefined;
    const cols = `SELECT seq, at, client_msg_id, body, recalled_at, recalled_by FROM ${this.ks}.messages WHERE tenant = ? AND stream = ?`;
    const cql = backward
      ? `${cols} AND seq < ? ORDER BY seq DESC LIMIT ${limit}`
      : `${cols} AND seq > ? ORDER BY seq ASC LIMIT ${limit}`;
    let cursor = backward ? (opts.beforeSeq ?? Number.MAX_SAFE_INTEGER) : (opts.afterSeq ?? 0);
    const out: StoredEvent[] = [];
    try {
      // Events outside the visible window are skipped, and the page is filled from further on.
      for (;;) {
        const rs = await this.client.execute(cql, [tenant, stream, types.Long.fromNumber(cursor)]);
        for (const r of rs.rows) {
          const e = rowToEvent(tenant, stream, r);
          cursor = e.seq;
          if (opts.notBefore !== undefined && e.at < opts.notBefore) continue;
          out.push(e);
          if (out.length === limit) return out;
        }
        if (rs.rowLength < limit) return out;
      }
    } catch (err) {
      throw unavailable(err);
    }
  }

  async lastSeq(tenant: string, stream: string): Promise<number> {
    checkScope(tenant, stream);
    // The stream's writer asks this when it (re)activates — possibly after another node wrote to
    // the stream (cluster handoff): forget what this process cached, the next append reloads it.
    this.q
      .run(`${tenant}\u0000${stream}`, async () => void this.streams.delete(`${tenant}\u0000${stream}`))
      .catch(() => undefined);
    try {
      const rs = await this.client.execute(
        `SELECT seq FROM ${this.ks}.messages WHERE tenant = ? AND stream = ? ORDER BY seq DESC LIMIT 1`,
        [tenant, stream],
      );
      const row = rs.first();
      return row ? Number(row.get('seq')) : 0;
    } catch (err) {
      throw unavailable(err);
    }
  }

  async findByClientMsgId(
    tenant: string,
    stream: string,
    clientMsgId: string,
  ): Promise<StoredEvent | undefined> {
    checkScope(tenant, stream);
    try {
      const rs = await this.client.execute(
        `SELECT client_ids FROM ${this.ks}.messages WHERE tenant = ? AND stream = ? LIMIT 1`,
        [tenant, stream],
      );
      const m = rs.first()?.get('client_ids') as
        Record<string, { toNumber(): number } | number> | null | undefined;
      const v = m?.[clientMsgId];
      if (v === undefined) return undefined;
      const seq = typeof v === 'number' ? v : v.toNumber();
      const [e] = await this.read(tenant, stream, { afterSeq: seq - 1, limit: 1 });
      return e && e.seq === seq ? e : undefined;
    } catch (err) {
      throw unavailable(err);
    }
  }

  async markRecalled(tenant: string, stream: string, seq: number, by: string, at: number): Promise<void> {
    checkScope(tenant, stream);
    try {
      // IF EXISTS: never create a row for a seq that was not written.
      const rs = await this.client.execute(
        `UPDATE ${this.ks}.messages SET recalled_at = ?, recalled_by = ? WHERE tenant = ? AND stream = ? AND seq = ? IF EXISTS`,
        [new Date(at), by, tenant, stream, types.Long.fromNumber(seq)],
      );
      if (!rs.wasApplied()) throw new SbError('SB_ERR_NOT_FOUND', `no event ${seq}`);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async close(): Promise<void> {}
}

export class CassandraStateStore implements StateStore {
  private readonly ks: string;
  constructor(
    private readonly client: CqlClient,
    opts: CassandraOptions,
  ) {
    this.ks = opts.keyspace;
  }

  async get<T = unknown>(tenant: string, kind: string, key: string): Promise<T | undefined> {
    checkScope(tenant, kind);
    try {
      const rs = await this.client.execute(
        `SELECT value FROM ${this.ks}.actor_state WHERE tenant = ? AND kind = ? AND key = ?`,
        [tenant, kind, key],
      );
      const row = rs.first();
      return row ? (JSON.parse(row.get('value') as string) as T) : undefined;
    } catch (err) {
      throw unavailable(err);
    }
  }

  async put(tenant: string, kind: string, key: string, value: unknown): Promise<void> {
    checkScope(tenant, kind);
    try {
      await Promise.all([
        this.client.execute(
          `INSERT INTO ${this.ks}.actor_state (tenant, kind, key, value) VALUES (?, ?, ?, ?)`,
          [tenant, kind, key, JSON.stringify(value)],
        ),
        this.client.execute(`INSERT INTO ${this.ks}.actor_state_index (tenant, kind, key) VALUES (?, ?, ?)`, [
          tenant,
          kind,
          key,
        ]),
      ]);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async delete(tenant: string, kind: string, key: string): Promise<void> {
    checkScope(tenant, kind);
    try {
      await Promise.all([
        this.client.execute(`DELETE FROM ${this.ks}.actor_state WHERE tenant = ? AND kind = ? AND key = ?`, [
          tenant,
          kind,
          key,
        ]),
        this.client.execute(
          `DELETE FROM ${this.ks}.actor_state_index WHERE tenant = ? AND kind = ? AND key = ?`,
          [tenant, kind, key],
        ),
      ]);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async list(
    tenant: string,
    kind: string,
    opts: { prefix?: string; limit?: number } = {},
  ): Promise<Array<{ key: string; value: unknown }>> {
    checkScope(tenant, kind);
    const limit = Math.min(Math.max(1, opts.limit ?? 1000), 10_000);
    const params: unknown[] = [tenant, kind];
    let cql = `SELECT key FROM ${this.ks}.actor_state_index WHERE tenant = ? AND kind = ?`;
    if (opts.prefix) {
      cql += ' AND key >= ? AND key < ?';
      params.push(opts.prefix, opts.prefix + '\uffff');
    }
    cql += ` LIMIT ${limit}`;
    try {
      const keys = (await this.client.execute(cql, params)).rows.map((r) => r.get('key') as string);
      const out: Array<{ key: string; value: unknown }> = [];
      for (const key of keys) {
        const value = await this.get(tenant, kind, key);
        if (value !== undefined) out.push({ key, value });
      }
      return out;
    } catch (err) {
      throw unavailable(err);
    }
  }

  async close(): Promise<void> {}
}

export class CassandraReminderStore implements ReminderStore {
  private readonly ks: string;
  constructor(
    private readonly client: CqlClient,
    opts: CassandraOptions,
  ) {
    this.ks = opts.keyspace;
  }

  async upsert(r: Reminder): Promise<void> {
    checkScope(r.tenant, r.kind);
    try {
      await this.remove(r.tenant, r.kind, r.key, r.name);
      const day = Math.floor(r.dueAt / DAY_MS);
      const msg = JSON.stringify(r.msg);
      await Promise.all([
        this.client.execute(
          `INSERT INTO ${this.ks}.reminders (tenant, kind, key, name, due_at, msg) VALUES (?, ?, ?, ?, ?, ?)`,
          [r.tenant, r.kind, r.key, r.name, new Date(r.dueAt), msg],
        ),
        this.client.execute(
          `INSERT INTO ${this.ks}.reminders_by_due (day, due_at, tenant, kind, key, name, msg) VALUES (?, ?, ?, ?, ?, ?, ?)`,
          [day, new Date(r.dueAt), r.tenant, r.kind, r.key, r.name, msg],
        ),
        this.client.execute(`INSERT INTO ${this.ks}.reminder_days (k, day) VALUES (0, ?)`, [day]),
      ]);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async remove(tenant: string, kind: string, key: string, name: string): Promise<void> {
    checkScope(tenant, kind);
    try {
      const rs = await this.client.execute(
        `SELECT due_at FROM ${this.ks}.reminders WHERE tenant = ? AND kind = ? AND key = ? AND name = ?`,
        [tenant, kind, key, name],
      );
      const row = rs.first();
      if (!row) return;
      const dueAt = row.get('due_at') as Date;
      await Promise.all([
        this.client.execute(
          `DELETE FROM ${this.ks}.reminders WHERE tenant = ? AND kind = ? AND key = ? AND name = ?`,
          [tenant, kind, key, name],
        ),
        this.client.execute(
          `DELETE FROM ${this.ks}.reminders_by_due WHERE day = ? AND due_at = ? AND tenant = ? AND kind = ? AND key = ? AND name = ?`,
          [Math.floor(dueAt.getTime() / DAY_MS), dueAt, tenant, kind, key, name],
        ),
      ]);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async due(before: number, limit: number): Promise<Reminder[]> {
    try {
      const days = (
        await this.client.execute(`SELECT day FROM ${this.ks}.reminder_days WHERE k = 0 AND day <= ?`, [
          Math.floor(before / DAY_MS),
        ])
      ).rows.map((r) => Number(r.get('day')));
      const out: Reminder[] = [];
      for (const day of days) {
        if (out.length >= limit) break;
        const rs = await this.client.execute(
          `SELECT due_at, tenant, kind, key, name, msg FROM ${this.ks}.reminders_by_due WHERE day = ? AND due_at <= ? LIMIT ${limit - out.length}`,
          [day, new Date(before)],
        );
        for (const r of rs.rows) {
          out.push({
            tenant: r.get('tenant') as string,
            kind: r.get('kind') as string,
            key: r.get('key') as string,
            name: r.get('name') as string,
            dueAt: (r.get('due_at') as Date).getTime(),
            msg: JSON.parse(r.get('msg') as string) as unknown,
          });
        }
      }
      return out.sort((a, b) => a.dueAt - b.dueAt);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async close(): Promise<void> {}
}

export class CassandraIndexStore implements IndexStore {
  private readonly ks: string;
  constructor(
    private readonly client: CqlClient,
    opts: CassandraOptions,
  ) {
    this.ks = opts.keyspace;
  }

  async put(tenant: string, partition: string, sortKey: string, value: unknown): Promise<void> {
    checkScope(tenant, partition);
    try {
      await this.client.execute(
        `INSERT INTO ${this.ks}.index_entries (tenant, partition, sort_key, value) VALUES (?, ?, ?, ?)`,
        [tenant, partition, sortKey, JSON.stringify(value)],
      );
    } catch (err) {
      throw unavailable(err);
    }
  }

  async delete(tenant: string, partition: string, sortKey: string): Promise<void> {
    checkScope(tenant, partition);
    try {
      await this.client.execute(
        `DELETE FROM ${this.ks}.index_entries WHERE tenant = ? AND partition = ? AND sort_key = ?`,
        [tenant, partition, sortKey],
      );
    } catch (err) {
      throw unavailable(err);
    }
  }

  async range(
    tenant: string,
    partition: string,
    opts: { after?: string; reverse?: boolean; limit?: number } = {},
  ): Promise<Array<{ sortKey: string; value: unknown }>> {
    checkScope(tenant, partition);
    const limit = Math.min(Math.max(1, Math.floor(opts.limit ?? 100)), 1000);
    const base = `SELECT sort_key, value FROM ${this.ks}.index_entries WHERE tenant = ? AND partition = ?`;
    const params: unknown[] = [tenant, partition];
    let cql = base;
    if (opts.after !== undefined) {
      cql += opts.reverse ? ' AND sort_key < ?' : ' AND sort_key > ?';
      params.push(opts.after);
    }
    cql += opts.reverse ? ` ORDER BY sort_key DESC LIMIT ${limit}` : ` ORDER BY sort_key ASC LIMIT ${limit}`;
    try {
      const rs = await this.client.execute(cql, params);
      return rs.rows.map((r) => ({
        sortKey: r.get('sort_key') as string,
        value: JSON.parse(r.get('value') as string) as unknown,
      }));
    } catch (err) {
      throw unavailable(err);
    }
  }

  async close(): Promise<void> {}
}

export interface CassandraStores {
  client: CqlClient;
  index: CassandraIndexStore;
  state: CassandraStateStore;
  reminders: CassandraReminderStore;
  messages: CassandraMessageStore;
  close(): Promise<void>;
}

export async function openCassandraStores(opts: CassandraOptions): Promise<CassandraStores> {
  const client = await openCassandraClient(opts);
  return {
    client,
    index: new CassandraIndexStore(client, opts),
    state: new CassandraStateStore(client, opts),
    reminders: new CassandraReminderStore(client, opts),
    messages: new CassandraMessageStore(client, opts),
    close: () => client.shutdown(),
  };
}
