/**
 * Embedded stores on LMDB (`lmdb` package): the default when no Cassandra is configured.
 *
 * One LMDB environment, several named databases with ordered compound keys:
 * - `messages`  [tenant, stream, seq] → event, its clientMsgId inside  (range reads both ways by seq)
 * - `state`     [tenant, kind, key] → value
 * - `reminders` [tenant, kind, key, name] → {dueAt, msg};  `remdue` [dueAt, tenant, kind, key, name] → 1
 *
 * Durability: writes go through lmdb-js's batched asynchronous transactions. lmdb-js defaults to
 * `overlappingSync` on Linux, where a write resolves at commit and the fdatasync follows later
 * (safe against a process crash, not a power loss). This store opens the environment without it:
 * each commit flushes to disk before its writes resolve, so an acknowledged message survives a
 * power loss too. Many concurrent appends share one commit and one flush (group commit), which is
 * where the throughput comes from (bench/RESULTS.md has the measured cost).
 * The same path can be opened from every worker thread of a process and from a later process.
 *
 * Idempotency without a second tree: a durable append on a virtual disk is bound by the random pages
 * each commit flushes, and an on-disk `clientMsgId → seq` index dirtied a leaf of a second B-tree
 * per append (two random pages instead of one; bench/RESULTS.md). The clientMsgId is stored in
 * the event's row, and each writer keeps, per stream, a map from a 32-bit hash of each clientMsgId
 * to its seq (numbers only: no strings kept alive for the garbage collector to copy). It is loaded
 * from the stream's rows the first time a stream is written or searched by id in this process,
 * and bounded ({@link LMDB_ID_CACHE_MAX_IDS}; least recently used streams dropped first). A hit
 * is checked against the row it names; two ids of one stream with the same hash mark the hash
 * ambiguous, and a lookup of it scans the stream's rows. A miss first reads the rows written since
 * the map last saw the stream (by another instance; one B-tree seek when none). One writer per
 * stream is the engine's model (a session lives on one thread); a second writer in another thread
 * or process is still caught by the conditional write on the seq, after which the map of that
 * stream is reloaded.
 */
import { open, type Database, type RootDatabase } from 'lmdb';
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

type Key = Array<string | number>;

/**
 * Resolves once the write behind `p` is on disk. The environment is opened without
 * `overlappingSync`, so LMDB flushes each transaction inside its commit and a write's promise
 * resolves only after that: the commit promise is the durability promise.
 */
function durable<T>(p: Promise<T>, _db?: unknown): Promise<T> {
  return p;
}
const MAX_SEQ = Number.MAX_SAFE_INTEGER;

interface StoredRow {
  at: number;
  cm?: string;
  body: Json;
  rec?: { at: number; by: string };
  /** Expiry (ms epoch, wall clock) from the write's ttlSec; expired rows are not served. */
  exp?: number;
}

function expired(r: StoredRow): boolean {
  return r.exp !== undefined && r.exp <= Date.now();
}

function invalid(msg: string): SbError {
  return new SbError('SB_ERR_INVALID_FIELD', msg);
}

function checkName(x: unknown, what: string): void {
  if (typeof x !== 'string' || x === '' || x.length > 256)
    throw invalid(`${what} must be a non-empty string`);
}

function checkSeq(seq: unknown): void {
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1)
    throw invalid('seq must be a positive integer');
}

function toEvent(tenant: string, stream: string, seq: number, r: StoredRow): StoredEvent {
  const e: StoredEvent = { tenant, stream, seq, at: r.at, body: r.body };
  if (r.cm !== undefined) e.clientMsgId = r.cm;
  if (r.rec) e.recalled = r.rec;
  return e;
}

function unavailable(err: unknown): SbError {
  if (err instanceof SbError) return err;
  return new SbError('SB_ERR_STORE_UNAVAILABLE', `lmdb: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
  });
}

/**
 * Most clientMsgIds kept in memory across all streams of one store instance (≈ 30 bytes each, so
 * ≈ 120 MB at the bound); past it the least recently used streams' maps are dropped and reloaded
 * from disk when needed.
 */
export const LMDB_ID_CACHE_MAX_IDS = 4_000_000;

/** In an id map: more than one clientMsgId of the stream has this hash; look it up in the rows. */
const AMBIGUOUS = -1;

interface IdMap {
  /** 32-bit hash of a clientMsgId → its seq, or {@link AMBIGUOUS}. */
  ids: Map<number, number>;
  /** Every row up to this seq is in `ids`. */
  upTo: number;
  used: number;
}

/** FNV-1a over UTF-16 code units, as a signed 32-bit integer (a small integer for V8). */
function idHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}

function addId(ids: Map<number, number>, clientMsgId: string, seq: number): boolean {
  const h = idHash(clientMsgId);
  const had = ids.get(h);
  if (had === undefined) {
    ids.set(h, seq);
    return true;
  }
  if (had !== seq) ids.set(h, AMBIGUOUS);
  return false;
}

export class LmdbMessageStore implements MessageStore {
  constructor(
    private readonly messages: Database<StoredRow, Key>,
    private readonly maxCachedIds = LMDB_ID_CACHE_MAX_IDS,
  ) {}

  private readonly q = new KeyedQueue();
  /** Per tenant and stream, its clientMsgId → seq and when it was last used. */
  private readonly idMaps = new Map<string, Map<string, IdMap>>();
  private cachedIds = 0;
  private cachedStreams = 0;
  private uses = 0;

  /** Number of streams whose ids are in memory, and the ids held (for tests and metrics). */
  idCacheSize(): { streams: number; ids: number } {
    return { streams: this.cachedStreams, ids: this.cachedIds };
  }

  /** The seq of `clientMsgId` in the stream, if written. */
  private seqOf(tenant: string, stream: string, clientMsgId: string): number | undefined {
    const m = this.idsOf(tenant, stream);
    const h = idHash(clientMsgId);
    let v = m.ids.get(h);
    // A miss is checked against rows written since the map last saw the stream (by another thread
    // or process; normally none, so this is one B-tree seek).
    if (v === undefined && this.catchUp(tenant, stream, m) > 0) v = m.ids.get(h);
    if (v === undefined) return undefined;
    if (v !== AMBIGUOUS) return this.messages.get([tenant, stream, v])?.cm === clientMsgId ? v : undefined;
    for (const { key, value } of this.messages.getRange({
      start: [tenant, stream, 1],
      end: [tenant, stream, MAX_SEQ],
    })) {
      const k = key as Key;
      if (k[0] !== tenant || k[1] !== stream) break;
      if (value.cm === clientMsgId) return k[2] as number;
    }
    return undefined;
  }

  /** Adds the ids of rows past `m.upTo`; returns how many rows it read. */
  private catchUp(tenant: string, stream: string, m: IdMap): number {
    let rows = 0;
    let added = 0;
    for (const { key, value } of this.messages.getRange({
      start: [tenant, stream, m.upTo + 1],
      end: [tenant, stream, MAX_SEQ],
    })) {
      const k = key as Key;
      if (k[0] !== tenant || k[1] !== stream) break;
      rows++;
      m.upTo = k[2] as number;
      if (value.cm !== undefined && addId(m.ids, value.cm, m.upTo)) added++;
    }
    this.cachedIds += added;
    if (added > 0 && this.cachedIds > this.maxCachedIds) this.evict(m);
    return rows;
  }

  private idsOf(tenant: string, stream: string): IdMap {
    let streams = this.idMaps.get(tenant);
    const hit = streams?.get(stream);
    if (hit) {
      hit.used = ++this.uses;
      return hit;
    }
    const entry: IdMap = { ids: new Map(), upTo: 0, used: ++this.uses };
    if (!streams) this.idMaps.set(tenant, (streams = new Map()));
    streams.set(stream, entry);
    this.cachedStreams++;
    this.catchUp(tenant, stream, entry);
    return entry;
  }

  private remember(tenant: string, stream: string, clientMsgId: string, seq: number): void {
    const m = this.idMaps.get(tenant)?.get(stream);
    if (!m) return;
    if (seq === m.upTo + 1) m.upTo = seq;
    if (addId(m.ids, clientMsgId, seq) && ++this.cachedIds > this.maxCachedIds) this.evict(m);
  }

  private forget(tenant: string, stream: string): void {
    const streams = this.idMaps.get(tenant);
    const m = streams?.get(stream);
    if (!streams || !m) return;
    this.cachedIds -= m.ids.size;
    this.cachedStreams--;
    streams.delete(stream);
    if (streams.size === 0) this.idMaps.delete(tenant);
  }

  /**
   * Over the bound: drops the least recently used streams' maps (never `keep`) down to 3/4 of it,
   * so the sort behind it runs once per many appends, not on each.
   */
  private evict(keep: IdMap): void {
    const target = Math.floor(this.maxCachedIds * 0.75);
    const all: Array<[string, string, IdMap]> = [];
    for (const [tenant, streams] of this.idMaps)
      for (const [stream, m] of streams) if (m !== keep) all.push([tenant, stream, m]);
    all.sort((a, b) => a[2].used - b[2].used);
    for (const [tenant, stream] of all) {
      if (this.cachedIds <= target) return;
      this.forget(tenant, stream);
    }
  }

  /**
   * The hot path: the idempotency check reads committed data, then one conditional write (the
   * event row only if its key is free, plus its idempotency key) joins lmdb's next batched commit —
   * no JavaScript runs inside the write transaction. Appends to one stream are serialised in this
   * thread; across threads the conditional write still refuses a taken seq.
   */
  append(e: StoredEvent): Promise<AppendResult> {
    try {
      checkName(e.tenant, 'tenant');
      checkName(e.stream, 'stream');
      checkSeq(e.seq);
      if (e.clientMsgId !== undefined) checkName(e.clientMsgId, 'clientMsgId');
      if (typeof e.at !== 'number') throw invalid('at must be a number');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.q.run(`${e.tenant}\u0000${e.stream}`, () => this.appendOne(e));
  }

  private duplicateOf(e: StoredEvent): AppendResult | undefined {
    if (e.clientMsgId === undefined) return undefined;
    const prior = this.seqOf(e.tenant, e.stream, e.clientMsgId);
    if (prior === undefined) return undefined;
    const row = this.messages.get([e.tenant, e.stream, prior]);
    return row ? { event: toEvent(e.tenant, e.stream, prior, row), duplicate: true } : undefined;
  }

  private async appendOne(e: StoredEvent): Promise<AppendResult> {
    const dup = this.duplicateOf(e);
    if (dup) return dup;
    const key: Key = [e.tenant, e.stream, e.seq];
    const row: StoredRow = { at: e.at, body: e.body };
    if (e.clientMsgId !== undefined) row.cm = e.clientMsgId;
    if (e.ttlSec !== undefined) row.exp = Date.now() + e.ttlSec * 1000;
    let written: boolean;
    try {
      written = await durable(
        this.messages.ifNoExists(key, () => {
          this.messages.put(key, row);
        }),
      );
    } catch (err) {
      throw unavailable(err);
    }
    if (!written) {
      // Another thread got there first: the same message (a resend) or a different one. Its ids
      // are not in this map: reload the stream's.
      this.forget(e.tenant, e.stream);
      const again = this.duplicateOf(e);
      if (again) return again;
      throw new SbError('SB_ERR_SEQ_CONFLICT', `seq ${e.seq} of ${e.stream} is taken`);
    }
    if (e.clientMsgId !== undefined) this.remember(e.tenant, e.stream, e.clientMsgId, e.seq);
    return { event: toEvent(e.tenant, e.stream, e.seq, row), duplicate: false };
  }

  async appendBatch(events: StoredEvent[]): Promise<AppendResult[]> {
    for (const e of events) {
      checkName(e.tenant, 'tenant');
      checkName(e.stream, 'stream');
      checkSeq(e.seq);
      if (e.clientMsgId !== undefined) checkName(e.clientMsgId, 'clientMsgId');
      if (typeof e.at !== 'number') throw invalid('at must be a number');
    }
    const first = events[0];
    if (first && events.every((e) => e.tenant === first.tenant && e.stream === first.stream))
      return this.q.run(`${first.tenant}\u0000${first.stream}`, () => this.appendBatchNow(events));
    return this.appendBatchNow(events);
  }

  private async appendBatchNow(events: StoredEvent[]): Promise<AppendResult[]> {
    // The streams' id maps load before the write transaction; inside it they are only read.
    for (const e of events) if (e.clientMsgId !== undefined) this.idsOf(e.tenant, e.stream);
    let conflict: SbError | undefined;
    let results: AppendResult[] = [];
    let written: Array<[Key, StoredRow, string | undefined, number]> = [];
    try {
      // The check and the writes run inside one write transaction: atomic, and batched with others.
      await durable(
        this.messages.transaction(() => {
          results = [];
          conflict = undefined;
          written = [];
          const fresh = new Map<string, StoredEvent>();
          for (const e of events) {
            if (e.clientMsgId !== undefined) {
              const seen = fresh.get(e.clientMsgId);
              const prior = this.seqOf(e.tenant, e.stream, e.clientMsgId);
              if (seen) {
                results.push({ event: seen, duplicate: true });
                continue;
              }
              if (prior !== undefined) {
                const row = this.messages.get([e.tenant, e.stream, prior]);
                if (row) {
                  results.push({ event: toEvent(e.tenant, e.stream, prior, row), duplicate: true });
                  continue;
                }
              }
            }
            const key: Key = [e.tenant, e.stream, e.seq];
            if (
              this.messages.get(key) !== undefined ||
              written.some((w) => w[3] === e.seq && w[0][1] === e.stream && w[0][0] === e.tenant)
            ) {
              conflict = new SbError('SB_ERR_SEQ_CONFLICT', `seq ${e.seq} of ${e.stream} is taken`);
              return;
            }
            const row: StoredRow = { at: e.at, body: e.body };
            if (e.clientMsgId !== undefined) row.cm = e.clientMsgId;
            if (e.ttlSec !== undefined) row.exp = Date.now() + e.ttlSec * 1000;
            written.push([key, row, e.clientMsgId, e.seq]);
            const stored = toEvent(e.tenant, e.stream, e.seq, row);
            if (e.clientMsgId !== undefined) fresh.set(e.clientMsgId, stored);
            results.push({ event: stored, duplicate: false });
          }
          for (const [key, row] of written) this.messages.put(key, row);
        }),
        this.messages,
      );
    } catch (err) {
      throw unavailable(err);
    }
    if (conflict) {
      for (const e of events) this.forget(e.tenant, e.stream);
      throw conflict;
    }
    for (const [key, , clientMsgId, seq] of written)
      if (clientMsgId !== undefined) this.remember(key[0] as string, key[1] as string, clientMsgId, seq);
    return results;
  }

  async read(tenant: string, stream: string, opts: ReadOptions = {}): Promise<StoredEvent[]> {
    checkName(tenant, 'tenant');
    checkName(stream, 'stream');
    const limit = Math.min(Math.max(1, Math.floor(opts.limit ?? 100)), 1000);
    const backward = opts.direction === 'backward' || opts.beforeSeq !== undefined;
    const out: StoredEvent[] = [];
    const range = backward
      ? this.messages.getRange({
          start: [tenant, stream, (opts.beforeSeq ?? MAX_SEQ + 1) - 1],
          end: [tenant, stream, 0],
          reverse: true,
        })
      : this.messages.getRange({
          start: [tenant, stream, (opts.afterSeq ?? 0) + 1],
          end: [tenant, stream, MAX_SEQ],
        });
    // Expired rows and rows outside the visible window are skipped; the page fills from further on.
    for (const { key, value } of range) {
      const k = key as Key;
      if (k[0] !== tenant || k[1] !== stream) break;
      if (expired(value) || (opts.notBefore !== undefined && value.at < opts.notBefore)) continue;
      out.push(toEvent(tenant, stream, k[2] as number, value));
      if (out.length === limit) break;
    }
    return out;
  }

  /** Highest seq ever written, expired or not: sequence numbers never go back. */
  async lastSeq(tenant: string, stream: string): Promise<number> {
    checkName(tenant, 'tenant');
    checkName(stream, 'stream');
    for (const { key } of this.messages.getRange({
      start: [tenant, stream, MAX_SEQ],
      end: [tenant, stream, 0],
      reverse: true,
      limit: 1,
    })) {
      const k = key as Key;
      if (k[0] === tenant && k[1] === stream) return k[2] as number;
    }
    return 0;
  }

  async findByClientMsgId(
    tenant: string,
    stream: string,
    clientMsgId: string,
  ): Promise<StoredEvent | undefined> {
    checkName(tenant, 'tenant');
    checkName(stream, 'stream');
    const seq = this.seqOf(tenant, stream, clientMsgId);
    if (seq === undefined) return undefined;
    const row = this.messages.get([tenant, stream, seq]);
    return row ? toEvent(tenant, stream, seq, row) : undefined;
  }

  async markRecalled(tenant: string, stream: string, seq: number, by: string, at: number): Promise<void> {
    checkName(tenant, 'tenant');
    checkName(stream, 'stream');
    checkSeq(seq);
    let found = false;
    await durable(
      this.messages.transaction(() => {
        const row = this.messages.get([tenant, stream, seq]);
        if (!row) return;
        found = true;
        this.messages.put([tenant, stream, seq], { ...row, rec: { at, by } });
      }),
      this.messages,
    );
    if (!found) throw new SbError('SB_ERR_NOT_FOUND', `no event ${seq} in ${stream}`);
  }

  async close(): Promise<void> {}
}

export class LmdbStateStore implements StateStore {
  constructor(private readonly db: Database<unknown, Key>) {}

  async get<T = unknown>(tenant: string, kind: string, key: string): Promise<T | undefined> {
    checkName(tenant, 'tenant');
    checkName(kind, 'kind');
    return this.db.get([tenant, kind, key]) as T | undefined;
  }

  async put(tenant: string, kind: string, key: string, value: unknown): Promise<void> {
    checkName(tenant, 'tenant');
    checkName(kind, 'kind');
    try {
      await durable(this.db.put([tenant, kind, key], value));
    } catch (err) {
      throw unavailable(err);
    }
  }

  async delete(tenant: string, kind: string, key: string): Promise<void> {
    checkName(tenant, 'tenant');
    checkName(kind, 'kind');
    await durable(this.db.remove([tenant, kind, key]));
  }

  async list(
    tenant: string,
    kind: string,
    opts: { prefix?: string; limit?: number } = {},
  ): Promise<Array<{ key: string; value: unknown }>> {
    checkName(tenant, 'tenant');
    checkName(kind, 'kind');
    const prefix = opts.prefix ?? '';
    const out: Array<{ key: string; value: unknown }> = [];
    for (const { key, value } of this.db.getRange({
      start: [tenant, kind, prefix],
      end: [tenant, kind, prefix + '\uffff'],
      limit: opts.limit ?? 1000,
    })) {
      const k = key as Key;
      if (k[0] !== tenant || k[1] !== kind || typeof k[2] !== 'string' || !k[2].startsWith(prefix)) break;
      out.push({ key: k[2], value });
    }
    return out;
  }

  async close(): Promise<void> {}
}

interface ReminderRow {
  dueAt: number;
  msg: unknown;
}

export class LmdbReminderStore implements ReminderStore {
  constructor(
    private readonly byId: Database<ReminderRow, Key>,
    private readonly byDue: Database<number, Key>,
  ) {}

  async upsert(r: Reminder): Promise<void> {
    checkName(r.tenant, 'tenant');
    checkName(r.kind, 'kind');
    checkName(r.name, 'name');
    if (!Number.isFinite(r.dueAt)) throw invalid('dueAt must be a number');
    await durable(
      this.byId.transaction(() => {
        const id: Key = [r.tenant, r.kind, r.key, r.name];
        const old = this.byId.get(id);
        if (old) this.byDue.remove([old.dueAt, r.tenant, r.kind, r.key, r.name]);
        this.byId.put(id, { dueAt: r.dueAt, msg: r.msg });
        this.byDue.put([r.dueAt, r.tenant, r.kind, r.key, r.name], 1);
      }),
      this.byId,
    );
  }

  async remove(tenant: string, kind: string, key: string, name: string): Promise<void> {
    await durable(
      this.byId.transaction(() => {
        const id: Key = [tenant, kind, key, name];
        const old = this.byId.get(id);
        if (!old) return;
        this.byDue.remove([old.dueAt, tenant, kind, key, name]);
        this.byId.remove(id);
      }),
      this.byId,
    );
  }

  async due(before: number, limit: number): Promise<Reminder[]> {
    const out: Reminder[] = [];
    for (const { key } of this.byDue.getRange({ start: [-MAX_SEQ], end: [before, '\uffff'], limit })) {
      const [dueAt, tenant, kind, k, name] = key as [number, string, string, string, string];
      if (dueAt > before) break;
      const row = this.byId.get([tenant, kind, k, name]);
      if (row) out.push({ tenant, kind, key: k, name, dueAt, msg: row.msg });
    }
    return out;
  }

  async close(): Promise<void> {}
}

export class LmdbIndexStore implements IndexStore {
  constructor(private readonly db: Database<unknown, Key>) {}

  async put(tenant: string, partition: string, sortKey: string, value: unknown): Promise<void> {
    checkName(tenant, 'tenant');
    checkName(partition, 'partition');
    await durable(this.db.put([tenant, partition, sortKey], value));
  }

  async delete(tenant: string, partition: string, sortKey: string): Promise<void> {
    checkName(tenant, 'tenant');
    checkName(partition, 'partition');
    await durable(this.db.remove([tenant, partition, sortKey]));
  }

  async range(
    tenant: string,
    partition: string,
    opts: { after?: string; reverse?: boolean; limit?: number } = {},
  ): Promise<Array<{ sortKey: string; value: unknown }>> {
    checkName(tenant, 'tenant');
    checkName(partition, 'partition');
    const limit = Math.min(Math.max(1, Math.floor(opts.limit ?? 100)), 1000);
    const out: Array<{ sortKey: string; value: unknown }> = [];
    const lo: Key = [tenant, partition, ''];
    const hi: Key = [tenant, partition, '\uffff\uffff'];
    const range = opts.reverse
      ? this.db.getRange({
          start: opts.after !== undefined ? [tenant, partition, opts.after] : hi,
          end: lo,
          reverse: true,
        })
      : this.db.getRange({ start: opts.after !== undefined ? [tenant, partition, opts.after] : lo, end: hi });
    for (const { key, value } of range) {
      const k = key as Key;
      if (k[0] !== tenant || k[1] !== partition) break;
      if (opts.after !== undefined && k[2] === opts.after) continue;
      out.push({ sortKey: k[2] as string, value });
      if (out.length === limit) break;
    }
    return out;
  }

  async close(): Promise<void> {}
}

export interface LmdbStores {
  index: LmdbIndexStore;
  state: LmdbStateStore;
  reminders: LmdbReminderStore;
  messages: LmdbMessageStore;
  close(): Promise<void>;
}

/** Opens (creating if needed) the embedded stores at `path`. */
export function openLmdbStores(opts: {
  path: string;
  /** Bound of the in-memory clientMsgId maps; default {@link LMDB_ID_CACHE_MAX_IDS}. */
  idCacheMaxIds?: number;
}): LmdbStores {
  const root: RootDatabase = open({ path: opts.path, maxDbs: 16, overlappingSync: false });
  const dbOpts = { keyEncoding: 'ordered-binary' as const, encoding: 'msgpack' as const };
  const messages = root.openDB<StoredRow, Key>({ name: 'messages', ...dbOpts });
  // Earlier versions also wrote an on-disk `msgids` index; every row carries its clientMsgId, so
  // it is no longer opened (the in-memory map loads from the rows).
  const state = root.openDB<unknown, Key>({ name: 'state', ...dbOpts });
  const reminders = root.openDB<ReminderRow, Key>({ name: 'reminders', ...dbOpts });
  const remdue = root.openDB<number, Key>({ name: 'remdue', ...dbOpts });
  const index = root.openDB<unknown, Key>({ name: 'index', ...dbOpts });
  let closed = false;
  return {
    index: new LmdbIndexStore(index),
    state: new LmdbStateStore(state),
    reminders: new LmdbReminderStore(reminders, remdue),
    messages: new LmdbMessageStore(messages, opts.idCacheMaxIds),
    async close() {
      if (closed) return;
      closed = true;
      await root.close();
    },
  };
}
