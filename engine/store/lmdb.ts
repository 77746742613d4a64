/**
 * Embedded stores on LMDB (`lmdb` package): the default when no Cassandra is configured.
 *
 * One LMDB environment, several named databases with ordered compound keys:
 * - `messages`  [tenant, stream, seq] → event, its clientMsgId inside  (range reads both ways by seq)
 * - `state`     [tenant, kind, key] → value
 * - `reminders` [tenant, kind, key, name] → {dueAt, msg};  `remdue` [dueAt, tenant, kind, key, name] → 1
 *
 * Durability of state, reminders and indexes: writes go through lmdb-js's batched asynchronous
 * transactions. lmdb-js defaults to `overlappingSync` on Linux, where a write resolves at commit
 * and the fdatasync follows later (safe against a process crash, not a power loss). This store
 * opens the environment without it: each commit flushes to disk before its writes resolve, so an
 * acknowledged write survives a power loss too. Many concurrent writes share one commit and one
 * flush (group commit). The same path can be opened from every worker thread of a process and
 * from a later process.
 *
 * Messages take a different path, because a synced commit writes one random leaf page per stream
 * it touches, and a session's appends come one at a time: the disk's random-write rate bounded
 * appends below the target (bench/RESULTS.md). An append is acknowledged after a sequential,
 * group-committed write-ahead log (engine/store/wal.ts, `<path>/wal/`), and reaches the main
 * tree later, in checkpoints that carry many appends per page:
 * - Each store instance (every thread opens its own) has its own log. An append claims its seq
 *   with a conditional write in `recent` (`<path>/recent/`, a second LMDB environment opened with
 *   `noSync`: shared by every instance through the memory map, serialised by LMDB's writer lock,
 *   never flushed), then writes its row to the log, and resolves after the log's `fdatasync`.
 *   Reads merge `recent` and the main tree, so every instance sees every acknowledged append.
 * - Every {@link LMDB_CHECKPOINT_MS} an instance copies the rows it acknowledged into the main
 *   tree in synced commits, deletes the log segments whose rows are all there, and deletes its rows
 *   from `recent` a grace time later ({@link LMDB_RECENT_GRACE_MS}). `close` checkpoints and
 *   deletes the instance's log.
 * - `recent` is never trusted after a crash: the first instance to open the path when no other is
 *   live deletes it, after the logs of gone instances are replayed into the main tree (see
 *   `openMessageLog`). A row claimed in `recent` but not yet logged when its process died was
 *   never acknowledged; it is gone after recovery.
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
 * the map last saw the stream (by another instance; one point lookup when none). One writer per
 * stream is the engine's model (a session lives on one thread); a second writer in another thread
 * or process is still caught by the conditional write on the seq, after which the map of that
 * stream is reloaded.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { asBinary, open, type Database, type RootDatabase } from 'lmdb';
import { Packr } from 'msgpackr';
import { SbError } from '../../protos/errors.ts';
import { KeyedQueue } from './keyed-queue.ts';
import {
  decodeRows,
  encodeRecord,
  exclusiveMarker,
  listExclusive,
  listSegments,
  newOwner,
  ownerAlive,
  readSegment,
  syncDir,
  WalWriter,
  type RowKey,
  type WalRow,
} from './wal.ts';
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

/** The fields of an event to append; throws SB_ERR_INVALID_FIELD. */
function checkEvent(e: StoredEvent): void {
  checkName(e.tenant, 'tenant');
  checkName(e.stream, 'stream');
  checkSeq(e.seq);
  if (e.clientMsgId !== undefined) checkName(e.clientMsgId, 'clientMsgId');
  if (typeof e.at !== 'number') throw invalid('at must be a number');
}

/** The row an event is stored as (its expiry from the write's ttlSec, on the wall clock). */
function rowOf(e: StoredEvent): StoredRow {
  const row: StoredRow = { at: e.at, body: e.body };
  if (e.clientMsgId !== undefined) row.cm = e.clientMsgId;
  if (e.ttlSec !== undefined) row.exp = Date.now() + e.ttlSec * 1000;
  return row;
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
  /**
   * Exclusive mode: the highest seq of the stream, counting every row written since the map was
   * loaded (no other instance writes); a higher seq is free without asking the main tree.
   */
  top: number;
  /** When a catch-up last read the main tree too (performance.now() ms). */
  mainAt: number;
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

/**
 * Milliseconds between checkpoints: acknowledged rows copied from `recent` into the main tree.
 * Shorter than it could be for disk writes alone: rows waiting for a checkpoint are held in memory,
 * and at 500 ms they lived through two young-generation collections, were promoted and made the
 * collector's pauses the chat's latency tail (p99 25–28 ms against 15–19 ms at 150 ms, at 5,000
 * msgs/s); at 150 ms a checkpoint still carries several appends per page (bench/RESULTS.md).
 */
export const LMDB_CHECKPOINT_MS = 150;
/** How long a row stays in `recent` after its checkpoint; see {@link LmdbMessageStore}. */
export const LMDB_RECENT_GRACE_MS = 2_000;
/** A log segment takes no more records past this size; it is deleted once checkpointed. */
export const LMDB_WAL_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Rows waiting for a checkpoint past which one starts early. */
const MAX_PENDING_ROWS = 200_000;
/** Rows written per event-loop turn by a checkpoint or a clean-up, so reads are not held up long. */
const CHUNK = 2_000;

/** Background work of the message store; tests shorten it or switch it off. */
export interface MessageLogOptions {
  /** Milliseconds between checkpoints; 0 = only at close. Default {@link LMDB_CHECKPOINT_MS}. */
  checkpointMs?: number;
  /** Default {@link LMDB_RECENT_GRACE_MS}. */
  recentGraceMs?: number;
  /** Default {@link LMDB_WAL_SEGMENT_BYTES}. */
  walSegmentBytes?: number;
}

/** What a message store instance writes besides the main tree: its log and the shared `recent`. */
interface MessageLog {
  wal: WalWriter;
  recentRoot: RootDatabase;
  /** Rows not yet known to be in the main tree: value = encoded row + the writer's 32-bit tag. */
  recent: Database<Buffer, Key>;
  /** This instance holds the path alone: `recent` is not written (see `openLmdbStores`). */
  exclusive: boolean;
  /** Its marker file, removed at close. */
  marker: string | undefined;
}

/** An append's claim of its key in `recent`, waiting for the next claim transaction. */
interface Claim {
  key: RowKey;
  value: Uint8Array;
  resolve: (won: boolean) => void;
  reject: (err: unknown) => void;
}

/** One log record, waiting for a checkpoint: the segment it is in and its rows. */
interface Logged {
  segment: number;
  rows: WalRow[];
}

interface Codec {
  encode(v: unknown): Uint8Array;
  decode(b: Uint8Array): unknown;
}

const TAG_BYTES = 4;

/** Encoder of message rows: standard msgpack maps, self-contained (see the store's constructor). */
const ROW_ENCODER = new Packr({ useRecords: false });

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A row as the main tree stores it, already encoded: lmdb writes the bytes as they are. */
function raw(value: Uint8Array): StoredRow {
  return asBinary(value) as unknown as StoredRow;
}

type PutSyncNoOverwrite = (key: Key, value: Buffer, opts: { noOverwrite: true }) => boolean;

/**
 * Inside a write transaction: puts the encoded row at `key` unless the key is taken (LMDB's
 * NOOVERWRITE; a row already there came from the same append, or was recalled since). lmdb-js
 * supports the option; its typings miss it.
 */
function putNew(db: Database<StoredRow, Key>, key: Key, value: Uint8Array): void {
  (db.putSync as unknown as PutSyncNoOverwrite).call(db, key, raw(value) as unknown as Buffer, {
    noOverwrite: true,
  });
}

export class LmdbMessageStore implements MessageStore {
  private readonly codec: Codec;
  private readonly recent: Database<Buffer, Key>;
  /**
   * Exclusive mode: no other instance can read or write the path, so acknowledged rows not yet in
   * the main tree are held here, by tenant, stream and seq, instead of in `recent`.
   */
  private readonly exclusive: boolean;
  private readonly held = new Map<string, Map<string, Map<number, Uint8Array>>>();
  private readonly wal: WalWriter;
  private readonly tag: number;
  private readonly graceMs: number;
  private readonly checkpointMs: number;
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  /** Acknowledged records not yet in the main tree, oldest first. */
  private pending: Logged[] = [];
  private pendingRows = 0;
  /** Records per log segment known to be in the main tree. */
  private readonly migrated = new Map<number, number>();
  /** Keys to delete from `recent` once their grace time has passed, oldest first. */
  private dropQueue: Array<{ at: number; keys: RowKey[] }> = [];
  private checkpointing: Promise<void> | undefined;
  /** Last failure of a background checkpoint (its rows stay pending and in the log). */
  lastCheckpointError: Error | undefined;
  private inflight = 0;
  private drainWaiters: Array<() => void> = [];
  private closing: Promise<void> | undefined;

  constructor(
    private readonly messages: Database<StoredRow, Key>,
    private readonly log: MessageLog,
    private readonly maxCachedIds = LMDB_ID_CACHE_MAX_IDS,
    opts: MessageLogOptions = {},
  ) {
    // Rows are encoded once, and the same bytes go to `recent`, the log and the main tree. They are
    // plain msgpack maps (no record definitions written inline with each value, which cost more
    // to write than they save for one-off values); the main tree's own decoder reads them, and
    // the rows earlier versions wrote with its record extension.
    const decoder = (messages as unknown as { encoder: Codec }).encoder;
    this.codec = { encode: (v) => ROW_ENCODER.encode(v), decode: (b) => decoder.decode(b) };
    this.recent = log.recent;
    this.exclusive = log.exclusive;
    this.wal = log.wal;
    this.tag = log.wal.owner.tag;
    this.graceMs = opts.recentGraceMs ?? LMDB_RECENT_GRACE_MS;
    this.checkpointMs = opts.checkpointMs ?? LMDB_CHECKPOINT_MS;
    if (this.checkpointMs > 0) {
      this.timer = setInterval(() => void this.checkpoint(), this.checkpointMs);
      this.timer.unref();
    }
  }

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

  /** Rows acknowledged by this instance and not yet copied into the main tree (for tests). */
  pendingCheckpoint(): number {
    return this.pendingRows;
  }

  /** Holds a row's bytes and this instance's tag while `recent` copies them in. */
  private scratch = Buffer.allocUnsafe(4096);
  /** Claims waiting for the next claim transaction. */
  private claims: Claim[] = [];

  /**
   * Claims `key` in `recent` for the row's bytes: resolves false if the key is taken. The claims
   * of one event-loop turn share one synchronous write transaction of `recent`, run on the next
   * turn. `recent` is never flushed, so its commit is a memory write; running it here rather than
   * on lmdb's write thread takes a thread hand-off off every append.
   */
  private claim(key: RowKey, value: Uint8Array): Promise<boolean> {
    if (this.claims.length === 0) setImmediate(() => this.claimNow());
    return new Promise((resolve, reject) => this.claims.push({ key, value, resolve, reject }));
  }

  private claimNow(): void {
    const batch = this.claims;
    this.claims = [];
    const putSync = this.recent.putSync as unknown as PutSyncNoOverwrite;
    const won: boolean[] = [];
    try {
      this.log.recentRoot.transactionSync(() => {
        won.length = 0;
        for (const c of batch) {
          const n = c.value.length + TAG_BYTES;
          if (this.scratch.length < n)
            this.scratch = Buffer.allocUnsafe(Math.max(n, 2 * this.scratch.length));
          this.scratch.set(c.value, 0);
          this.scratch.writeUInt32LE(this.tag, c.value.length);
          won.push(putSync.call(this.recent, c.key, this.scratch.subarray(0, n), { noOverwrite: true }));
        }
      });
    } catch (err) {
      for (const c of batch) c.reject(err);
      return;
    }
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(won[i]!);
  }

  /** A row's bytes with this instance's tag, for a write inside a transaction of `recent`. */
  private tagged(value: Uint8Array): Buffer {
    const b = Buffer.allocUnsafe(value.length + TAG_BYTES);
    b.set(value, 0);
    b.writeUInt32LE(this.tag, value.length);
    return b;
  }

  /**
   * Makes the next read of `recent` take a new snapshot. lmdb keeps a read snapshot until a timer
   * of the next turn, and another instance's append (in `recent` only, until a checkpoint) may
   * have been acknowledged since: reads made for callers see it at once. The main tree needs no
   * such step: a row leaves `recent` only a grace time after it is in the main tree.
   */
  private freshRecent(): void {
    if (!this.exclusive) this.recent.resetReadTxn();
  }

  /** Whether this instance opened the path alone (see `openLmdbStores`). */
  isExclusive(): boolean {
    return this.exclusive;
  }

  /** Exclusive mode: the rows of a stream held in memory, by seq. */
  private heldOf(tenant: string, stream: string): Map<number, Uint8Array> | undefined {
    return this.held.get(tenant)?.get(stream);
  }

  /**
   * Exclusive mode: claims `key` for the row's bytes in memory; false when taken. A claimed seq
   * also raises the stream's known top (see {@link IdMap.top}).
   */
  private hold(key: RowKey, value: Uint8Array): boolean {
    let streams = this.held.get(key[0]);
    if (!streams) this.held.set(key[0], (streams = new Map()));
    let m = streams.get(key[1]);
    if (!m) streams.set(key[1], (m = new Map()));
    if (m.has(key[2])) return false;
    m.set(key[2], value);
    const ids = this.idMaps.get(key[0])?.get(key[1]);
    if (ids && key[2] > ids.top) ids.top = key[2];
    return true;
  }

  private unhold(key: RowKey): void {
    const streams = this.held.get(key[0]);
    const m = streams?.get(key[1]);
    if (!streams || !m?.delete(key[2]) || m.size > 0) return;
    streams.delete(key[1]);
    if (streams.size === 0) this.held.delete(key[0]);
  }

  /**
   * The encoded row at `key` among the acknowledged rows not yet known to be in the main tree
   * (held in memory, or in `recent` without its tag).
   */
  private recentValue(key: Key): Uint8Array | undefined {
    if (this.exclusive) return this.heldOf(key[0] as string, key[1] as string)?.get(key[2] as number);
    const b = this.recent.getBinaryFast(key);
    return b === undefined ? undefined : b.subarray(0, b.length - TAG_BYTES);
  }

  private inRecent(key: Key): boolean {
    return this.exclusive ? this.recentValue(key) !== undefined : this.recent.doesExist(key);
  }

  /** The seqs of a stream in [from, to] (`reverse`: [to, from], descending) among those rows. */
  private recentSeqs(
    tenant: string,
    stream: string,
    from: number,
    to: number,
    reverse: boolean,
  ): Iterator<number> {
    if (!this.exclusive) {
      const keys = this.recent.getKeys({ start: [tenant, stream, from], end: [tenant, stream, to], reverse });
      const it = keys[Symbol.iterator]();
      return {
        next: (): IteratorResult<number> => {
          const r = it.next();
          if (r.done) return { done: true, value: undefined };
          const k = r.value;
          if (k[0] !== tenant || k[1] !== stream) {
            it.return?.();
            return { done: true, value: undefined };
          }
          return { done: false, value: k[2] as number };
        },
        return: (): IteratorResult<number> => {
          it.return?.();
          return { done: true, value: undefined };
        },
      };
    }
    const m = this.heldOf(tenant, stream);
    const lo = reverse ? to : from;
    const hi = reverse ? from : to;
    const seqs: number[] = [];
    if (m) for (const seq of m.keys()) if (seq >= lo && seq <= hi) seqs.push(seq);
    seqs.sort(reverse ? (a, b) => b - a : (a, b) => a - b);
    return seqs[Symbol.iterator]();
  }

  /** The row at `key`: the main tree's copy first (a recall is written there), else `recent`'s. */
  private rowAt(key: Key): StoredRow | undefined {
    const row = this.messages.get(key);
    if (row !== undefined) return row;
    const b = this.recentValue(key);
    return b === undefined ? undefined : (this.codec.decode(b) as StoredRow);
  }

  /**
   * The rows of a stream with seq in [from, to] (to ≤ from when `reverse`), from both trees
   * merged in seq order; a row in both is taken from the main tree.
   */
  private *rows(
    tenant: string,
    stream: string,
    from: number,
    to: number,
    reverse: boolean,
    mainToo = true,
  ): Generator<[number, StoredRow]> {
    const range = { start: [tenant, stream, from], end: [tenant, stream, to], reverse };
    const main = (mainToo ? this.messages.getRange(range) : [])[Symbol.iterator]();
    // Only the keys of `recent`: most of its rows are in the main tree too (their grace time), and
    // the value of one that is not is read when it is reached (same snapshot).
    const rec = this.recentSeqs(tenant, stream, from, to, reverse);
    const nextMain = (): { seq: number; value: StoredRow } | undefined => {
      const r = main.next();
      if (r.done) return undefined;
      const k = r.value.key;
      if (k[0] !== tenant || k[1] !== stream) return undefined;
      return { seq: k[2] as number, value: r.value.value };
    };
    const nextRecent = (): number | undefined => {
      const r = rec.next();
      return r.done ? undefined : r.value;
    };
    try {
      let a = nextMain();
      let b = nextRecent();
      while (a !== undefined || b !== undefined) {
        if (a !== undefined && (b === undefined || (reverse ? a.seq >= b : a.seq <= b))) {
          if (b === a.seq) b = nextRecent();
          yield [a.seq, a.value];
          a = nextMain();
        } else if (b !== undefined) {
          const bytes = this.recentValue([tenant, stream, b]);
          if (bytes !== undefined) yield [b, this.codec.decode(bytes) as StoredRow];
          b = nextRecent();
        }
      }
    } finally {
      main.return?.();
      rec.return?.();
    }
  }

  /** The seq of `clientMsgId` in the stream, if written. */
  private seqOf(tenant: string, stream: string, clientMsgId: string): number | undefined {
    const m = this.idsOf(tenant, stream);
    const h = idHash(clientMsgId);
    let v = m.ids.get(h);
    // A miss is checked against rows written since the map last saw the stream (by another thread
    // or process; normally none, so this is one point lookup, see `catchUp`).
    // In exclusive mode every row with an id went through this map since it was loaded: a miss is final.
    if (v === undefined && !this.exclusive && this.catchUp(tenant, stream, m) > 0) v = m.ids.get(h);
    if (v === undefined) return undefined;
    if (v !== AMBIGUOUS) return this.rowAt([tenant, stream, v])?.cm === clientMsgId ? v : undefined;
    for (const [seq, row] of this.rows(tenant, stream, 1, MAX_SEQ, false))
      if (row.cm === clientMsgId) return seq;
    return undefined;
  }

  /**
   * Adds the ids of rows past `m.upTo`; returns how many rows it read.
   *
   * Rows of other instances enter the main tree only through `recent`, and leave `recent` a grace
   * time after they are in the main tree. So a row the map has not seen is still in `recent` as
   * long as the main tree was read less than that time ago: until then a catch-up reads only
   * `recent`. And a stream's seqs are dense, so a row past `m.upTo` means one at `m.upTo + 1`:
   * on the hot path (nothing new) a catch-up is one point lookup in `recent`.
   */
  private catchUp(tenant: string, stream: string, m: IdMap): number {
    let rows = 0;
    let added = 0;
    const now = performance.now();
    const mainToo = !this.mainSeen(m, now);
    if (mainToo) m.mainAt = now;
    else if (!this.inRecent([tenant, stream, m.upTo + 1])) return 0;
    for (const [seq, row] of this.rows(tenant, stream, m.upTo + 1, MAX_SEQ, false, mainToo)) {
      rows++;
      m.upTo = seq;
      if (seq > m.top) m.top = seq;
      if (row.cm !== undefined && addId(m.ids, row.cm, seq)) added++;
    }
    this.cachedIds += added;
    if (added > 0 && this.cachedIds > this.maxCachedIds) this.evict(m);
    return rows;
  }

  /** Whether a row of the stream past `m.upTo` would still be in `recent` (see `catchUp`). */
  private mainSeen(m: IdMap, now = performance.now()): boolean {
    return now - m.mainAt < this.graceMs / 2;
  }

  private idsOf(tenant: string, stream: string): IdMap {
    let streams = this.idMaps.get(tenant);
    const hit = streams?.get(stream);
    if (hit) {
      hit.used = ++this.uses;
      return hit;
    }
    const entry: IdMap = { ids: new Map(), upTo: 0, top: 0, mainAt: -Infinity, used: ++this.uses };
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

  /** Counts an append in flight, so `close` waits for it; refuses when closing or the log failed. */
  private enter(): void {
    if (this.closing) throw new SbError('SB_ERR_STORE_UNAVAILABLE', 'lmdb: message store closed');
    const broken = this.wal.broken();
    if (broken) throw unavailable(broken);
    this.inflight++;
  }

  private leave(): void {
    if (--this.inflight > 0) return;
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }

  /**
   * The hot path: the idempotency and seq checks read the trees (see `catchUp`); one conditional
   * write claims the seq in `recent` (LMDB's writer lock orders it against every other instance);
   * then the row goes to this instance's log, and the append resolves once the log is flushed.
   * Only then does the row count for a checkpoint. Shared mode serialises the appends to one stream in this
   * thread.
   */
  append(e: StoredEvent): Promise<AppendResult> {
    // Exclusive mode: every check and claim before the log write is synchronous (the row is held
    // in memory at once), so appends to one stream cannot interleave and need no queue; two of
    // them may share a log flush. A new row takes the ordered path; the rest (a resend, a seq
    // that may be taken) the general one.
    if (this.exclusive) {
      const placed = this.appendOrdered(e);
      if (placed) return placed;
    }
    try {
      this.admit(e);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.exclusive) return this.appendOne(e);
    return this.q.run(`${e.tenant}\u0000${e.stream}`, () => this.appendOne(e));
  }

  /** Checks an event's fields and counts its append in flight (see `enter`); throws when refused. */
  private admit(e: StoredEvent): void {
    checkEvent(e);
    this.enter();
  }

  /** See {@link MessageStore.appendOrdered}: exclusive mode only, where a new row's claim is synchronous. */
  appendOrdered(e: StoredEvent): Promise<AppendResult> | undefined {
    if (!this.exclusive) return undefined;
    try {
      this.admit(e);
    } catch (err) {
      return Promise.reject(err);
    }
    try {
      const fresh = this.appendHeld(e);
      if (!fresh) this.leave();
      return fresh;
    } catch (err) {
      this.leave();
      return Promise.reject(unavailable(err));
    }
  }

  /**
   * Exclusive mode's hot path: a row that is new (its clientMsgId unknown, its seq above the
   * stream's known top) is held, logged, and settled by one continuation after the flush. Nothing
   * else of the append stays alive while the log is flushed, which keeps what the young
   * generation has to copy small. Undefined when the row is not simply new (a resend, a seq
   * that may be taken, a stream without an id map): `appendOne` answers then.
   */
  private appendHeld(e: StoredEvent): Promise<AppendResult> | undefined {
    if (e.clientMsgId !== undefined && this.seqOf(e.tenant, e.stream, e.clientMsgId) !== undefined)
      return undefined;
    const mine = this.idMaps.get(e.tenant)?.get(e.stream);
    if (mine === undefined || e.seq <= mine.top) return undefined;
    const key: RowKey = [e.tenant, e.stream, e.seq];
    const row = rowOf(e);
    const rows: WalRow[] = [{ key, value: this.codec.encode(row) }];
    // The bytes held are the log record's own copy.
    const record = encodeRecord(rows);
    if (!this.hold(key, rows[0]!.value)) return undefined;
    if (e.clientMsgId !== undefined) this.remember(e.tenant, e.stream, e.clientMsgId, e.seq);
    return this.wal.append(record).then(
      (segment) => {
        this.logged(segment, rows);
        this.leave();
        return { event: toEvent(e.tenant, e.stream, e.seq, row), duplicate: false };
      },
      (err: unknown) => {
        this.leave();
        throw unavailable(err);
      },
    );
  }

  /**
   * The earlier row at `key`, for a duplicate. A row still only in `recent` may not be durable yet
   * (its writer may not have flushed its log, or its log may have failed): the duplicate's answer
   * then comes with a `copy` of the row to log first, so it is acknowledged only once durable
   * here. The copy is the same bytes under the same key; replay and checkpoints keep one.
   */
  private priorAt(key: RowKey): { row: StoredRow; copy?: WalRow } | undefined {
    const row = this.messages.get(key);
    if (row !== undefined) return { row };
    const b = this.recentValue(key);
    if (b === undefined) return undefined;
    const value = Buffer.from(b);
    return { row: this.codec.decode(value) as StoredRow, copy: { key, value } };
  }

  private duplicateOf(e: StoredEvent): { result: AppendResult; copy?: WalRow } | undefined {
    if (e.clientMsgId === undefined) return undefined;
    const prior = this.seqOf(e.tenant, e.stream, e.clientMsgId);
    if (prior === undefined) return undefined;
    const found = this.priorAt([e.tenant, e.stream, prior]);
    if (!found) return undefined;
    return {
      result: { event: toEvent(e.tenant, e.stream, prior, found.row), duplicate: true },
      copy: found.copy,
    };
  }

  /** Answers a duplicate once its row is durable (see `priorAt`). */
  private async settled(dup: { result: AppendResult; copy?: WalRow }): Promise<AppendResult> {
    if (dup.copy) await this.logRecord([dup.copy]);
    return dup.result;
  }

  /** Writes one log record and resolves once it is on disk; its rows then wait for a checkpoint. */
  private async logRecord(rows: WalRow[]): Promise<void> {
    let segment: number;
    try {
      segment = await this.wal.append(encodeRecord(rows));
    } catch (err) {
      throw unavailable(err);
    }
    this.logged(segment, rows);
  }

  /** One append, counted in flight until it settles (see `close`). */
  private async appendOne(e: StoredEvent): Promise<AppendResult> {
    try {
      const dup = this.duplicateOf(e);
      if (dup) return this.settled(dup);
      const key: RowKey = [e.tenant, e.stream, e.seq];
      const row = rowOf(e);
      let written = false;
      let value: Uint8Array | undefined;
      // The main tree is read only when the stream's id map cannot rule the seq out (see `catchUp`);
      // `recent` refuses a taken seq in any case.
      const m = e.clientMsgId === undefined ? undefined : this.idMaps.get(e.tenant)?.get(e.stream);
      // Exclusive mode: no other writer, so a seq above the stream's known top is free (rows leave
      // memory as soon as they are in the main tree: the grace-time argument does not apply).
      const mine = this.exclusive ? this.idMaps.get(e.tenant)?.get(e.stream) : undefined;
      const fresh = this.exclusive
        ? mine !== undefined && e.seq > mine.top
        : m !== undefined && e.seq > m.upTo && this.mainSeen(m);
      let record: Buffer | undefined;
      let rows: WalRow[] | undefined;
      try {
        if (fresh || !this.messages.doesExist(key)) {
          value = this.codec.encode(row);
          if (this.exclusive) {
            // Claimed in memory, synchronously; the bytes held are the log record's own copy.
            rows = [{ key, value }];
            record = encodeRecord(rows);
            written = this.hold(key, rows[0]!.value);
          } else written = await this.claim(key, value);
        }
      } catch (err) {
        throw unavailable(err);
      }
      if (!written || value === undefined) {
        // Another instance got there first: the same message (a resend) or a different one. Its ids
        // are not in this map: reload the stream's, from a snapshot that has its row.
        this.forget(e.tenant, e.stream);
        this.freshRecent();
        const again = this.duplicateOf(e);
        if (again) return this.settled(again);
        throw new SbError('SB_ERR_SEQ_CONFLICT', `seq ${e.seq} of ${e.stream} is taken`);
      }
      if (e.clientMsgId !== undefined) this.remember(e.tenant, e.stream, e.clientMsgId, e.seq);
      // As `logRecord`, inline: one promise fewer on the hot path.
      rows ??= [{ key, value }];
      let segment: number;
      try {
        segment = await this.wal.append(record ?? encodeRecord(rows));
      } catch (err) {
        throw unavailable(err);
      }
      this.logged(segment, rows);
      return { event: toEvent(e.tenant, e.stream, e.seq, row), duplicate: false };
    } finally {
      this.leave();
    }
  }

  /** Rows whose log record is on disk (in `segment`): they wait for a checkpoint. */
  private logged(segment: number, rows: WalRow[]): void {
    this.pending.push({ segment, rows });
    this.pendingRows += rows.length;
    if (this.checkpointMs > 0 && this.pendingRows > MAX_PENDING_ROWS) void this.checkpoint();
  }

  async appendBatch(events: StoredEvent[]): Promise<AppendResult[]> {
    for (const e of events) checkEvent(e);
    this.enter();
    try {
      const first = events[0];
      if (
        !this.exclusive &&
        first &&
        events.every((e) => e.tenant === first.tenant && e.stream === first.stream)
      )
        return await this.q.run(`${first.tenant}\u0000${first.stream}`, () => this.appendBatchNow(events));
      return await this.appendBatchNow(events);
    } finally {
      this.leave();
    }
  }

  private async appendBatchNow(events: StoredEvent[]): Promise<AppendResult[]> {
    // The streams' id maps load before the write transaction; inside it they are only read.
    for (const e of events) if (e.clientMsgId !== undefined) this.idsOf(e.tenant, e.stream);
    let conflict: SbError | undefined;
    let results: AppendResult[] = [];
    let written: WalRow[] = [];
    let copies: WalRow[] = [];
    try {
      // The checks and the claims in `recent` run inside one synchronous write transaction of
      // `recent` (like the claims of single appends; an asynchronous one would run this callback
      // while lmdb's write thread holds the lock): atomic, and ordered against every other
      // instance's claims. The batch is one log record.
      const inTxn = (f: () => void): void => {
        if (this.exclusive) f();
        else this.log.recentRoot.transactionSync(f);
      };
      inTxn(() => {
        results = [];
        conflict = undefined;
        written = [];
        copies = [];
        const fresh = new Map<string, StoredEvent>();
        for (const e of events) {
          if (e.clientMsgId !== undefined) {
            const seen = fresh.get(e.clientMsgId);
            if (seen) {
              results.push({ event: seen, duplicate: true });
              continue;
            }
            const prior = this.seqOf(e.tenant, e.stream, e.clientMsgId);
            if (prior !== undefined) {
              const found = this.priorAt([e.tenant, e.stream, prior]);
              if (found) {
                results.push({ event: toEvent(e.tenant, e.stream, prior, found.row), duplicate: true });
                if (found.copy) copies.push(found.copy);
                continue;
              }
            }
          }
          const key: RowKey = [e.tenant, e.stream, e.seq];
          if (
            this.messages.doesExist(key) ||
            this.inRecent(key) ||
            written.some((w) => w.key[2] === e.seq && w.key[1] === e.stream && w.key[0] === e.tenant)
          ) {
            conflict = new SbError('SB_ERR_SEQ_CONFLICT', `seq ${e.seq} of ${e.stream} is taken`);
            return;
          }
          const row = rowOf(e);
          written.push({ key, value: this.codec.encode(row) });
          const stored = toEvent(e.tenant, e.stream, e.seq, row);
          if (e.clientMsgId !== undefined) fresh.set(e.clientMsgId, stored);
          results.push({ event: stored, duplicate: false });
        }
        for (const w of written)
          if (this.exclusive) this.hold(w.key, w.value);
          else this.recent.putSync(w.key, this.tagged(w.value));
      });
    } catch (err) {
      throw unavailable(err);
    }
    if (conflict) {
      for (const e of events) this.forget(e.tenant, e.stream);
      throw conflict;
    }
    for (const [i, e] of events.entries()) {
      const r = results[i];
      if (e.clientMsgId !== undefined && r && !r.duplicate)
        this.remember(e.tenant, e.stream, e.clientMsgId, e.seq);
    }
    // The batch's new rows and copies of its duplicates' rows still only in `recent`: one record.
    if (written.length + copies.length > 0) await this.logRecord([...written, ...copies]);
    return results;
  }

  async read(tenant: string, stream: string, opts: ReadOptions = {}): Promise<StoredEvent[]> {
    checkName(tenant, 'tenant');
    checkName(stream, 'stream');
    this.freshRecent();
    const limit = Math.min(Math.max(1, Math.floor(opts.limit ?? 100)), 1000);
    const backward = opts.direction === 'backward' || opts.beforeSeq !== undefined;
    const out: StoredEvent[] = [];
    const rows = backward
      ? this.rows(tenant, stream, (opts.beforeSeq ?? MAX_SEQ + 1) - 1, 0, true)
      : this.rows(tenant, stream, (opts.afterSeq ?? 0) + 1, MAX_SEQ, false);
    // Expired rows and rows outside the visible window are skipped; the page fills from further on.
    for (const [seq, row] of rows) {
      if (expired(row) || (opts.notBefore !== undefined && row.at < opts.notBefore)) continue;
      out.push(toEvent(tenant, stream, seq, row));
      if (out.length === limit) break;
    }
    return out;
  }

  /** Highest seq ever written, expired or not: sequence numbers never go back. */
  async lastSeq(tenant: string, stream: string): Promise<number> {
    checkName(tenant, 'tenant');
    checkName(stream, 'stream');
    this.freshRecent();
    let last = 0;
    const range = { start: [tenant, stream, MAX_SEQ], end: [tenant, stream, 0], reverse: true, limit: 1 };
    const dbs = (this.exclusive ? [this.messages] : [this.recent, this.messages]) as Array<
      Database<unknown, Key>
    >;
    for (const db of dbs)
      for (const key of db.getKeys(range)) {
        const k = key as Key;
        if (k[0] === tenant && k[1] === stream) last = Math.max(last, k[2] as number);
      }
    const held = this.exclusive ? this.heldOf(tenant, stream) : undefined;
    if (held) for (const seq of held.keys()) last = Math.max(last, seq);
    return last;
  }

  async findByClientMsgId(
    tenant: string,
    stream: string,
    clientMsgId: string,
  ): Promise<StoredEvent | undefined> {
    checkName(tenant, 'tenant');
    checkName(stream, 'stream');
    this.freshRecent();
    const seq = this.seqOf(tenant, stream, clientMsgId);
    if (seq === undefined) return undefined;
    const row = this.rowAt([tenant, stream, seq]);
    return row ? toEvent(tenant, stream, seq, row) : undefined;
  }

  /** Written to the main tree, synced: a row still only in `recent` is copied there with its mark. */
  async markRecalled(tenant: string, stream: string, seq: number, by: string, at: number): Promise<void> {
    checkName(tenant, 'tenant');
    checkName(stream, 'stream');
    checkSeq(seq);
    this.freshRecent();
    let found = false;
    await durable(
      this.messages.transaction(() => {
        const row = this.rowAt([tenant, stream, seq]);
        if (!row) return;
        found = true;
        this.messages.put([tenant, stream, seq], { ...row, rec: { at, by } });
      }),
      this.messages,
    );
    if (!found) throw new SbError('SB_ERR_NOT_FOUND', `no event ${seq} in ${stream}`);
  }

  /** Copies the acknowledged rows waiting in memory into the main tree now (one at a time). */
  checkpoint(): Promise<void> {
    if (!this.checkpointing)
      this.checkpointing = this.checkpointNow()
        .catch((err: unknown) => {
          this.lastCheckpointError = err as Error;
        })
        .finally(() => {
          this.checkpointing = undefined;
        });
    return this.checkpointing;
  }

  /**
   * One checkpoint: the pending rows go into the main tree in synced commits that carry many rows
   * per stream, so each dirty page holds many appends (the log took the random writes off the
   * acknowledgement path). A row already there is kept as it is (identical, or recalled since).
   * Then log segments whose records are all in the main tree are deleted, and rows whose grace
   * time has passed leave `recent`.
   */
  private async checkpointNow(): Promise<void> {
    const batch = this.pending;
    const rows = this.pendingRows;
    this.pending = [];
    this.pendingRows = 0;
    if (batch.length > 0) {
      const all: WalRow[] = [];
      for (const rec of batch) for (const r of rec.rows) all.push(r);
      try {
        // Chunks of rows, each written inside one of lmdb's asynchronous transactions: the puts
        // run synchronously in its callback (no promise or write instruction per row), and the
        // commit and its flush run on lmdb's write thread. One chunk at a time bounds how long a
        // callback holds this thread after a backlog.
        for (let i = 0; i < all.length; i += CHUNK) {
          const end = Math.min(all.length, i + CHUNK);
          await this.messages.transaction(() => {
            for (let j = i; j < end; j++) putNew(this.messages, all[j]!.key, all[j]!.value);
          });
        }
      } catch (err) {
        // Kept for the next checkpoint; the log still holds them.
        this.pending = batch.concat(this.pending);
        this.pendingRows += rows;
        throw unavailable(err);
      }
      for (const rec of batch) this.migrated.set(rec.segment, (this.migrated.get(rec.segment) ?? 0) + 1);
      if (this.exclusive) {
        // Reads from now on see the commit; then the rows leave memory (nobody else reads the
        // path, so no grace time is needed).
        this.messages.resetReadTxn();
        for (const r of all) this.unhold(r.key);
      } else this.dropQueue.push({ at: performance.now() + this.graceMs, keys: all.map((r) => r.key) });
    }
    for (const s of this.wal.closedSegments())
      if ((this.migrated.get(s) ?? 0) === this.wal.recordsIn(s)) {
        this.wal.retire(s);
        this.migrated.delete(s);
      }
    await this.dropFromRecent(performance.now());
  }

  /**
   * Deletes from `recent` the rows whose grace time ended by `now`. The grace time covers a
   * concurrent append that read the main tree before the row arrived there and claims the seq in
   * `recent` after: the claim still finds the row. Rows still waiting when the instance closes stay
   * in `recent` (identical to the main tree's) until `recent` is next rebuilt.
   */
  private async dropFromRecent(now: number): Promise<void> {
    let n = 0;
    let last: Promise<unknown> | undefined;
    while (this.dropQueue.length > 0 && this.dropQueue[0]!.at <= now) {
      const { keys } = this.dropQueue.shift()!;
      for (const k of keys) {
        last = this.recent.remove(k);
        if (++n % CHUNK === 0) await nextTurn();
      }
    }
    await last;
  }

  private drained(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Waits for the appends in flight, checkpoints everything, closes `recent` and deletes the log.
   * If the log or the last checkpoint failed, the log stays for the next open to replay.
   */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.drained();
    await this.wal.idle();
    let clean = this.wal.broken() === undefined;
    if (clean) {
      while (this.checkpointing) await this.checkpointing;
      this.lastCheckpointError = undefined;
      await this.checkpoint();
      clean = this.lastCheckpointError === undefined;
    }
    // `recent` closes before the log goes: an instance without a log counts as gone, and the next
    // open may then delete `recent`.
    await this.log.recentRoot.close();
    this.wal.close(clean);
    if (this.log.marker) rmSync(this.log.marker, { force: true });
  }
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

/** Replays one log segment of a gone instance into the main tree; returns whether it was intact. */
function replaySegment(file: string, messages: Database<StoredRow, Key>): boolean {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  const { records, stoppedAt } = readSegment(bytes);
  let intact = stoppedAt === undefined || stoppedAt.torn;
  for (const payload of records) {
    let rows: WalRow[];
    try {
      rows = decodeRows(payload);
    } catch {
      intact = false;
      break;
    }
    // An acknowledged row is in the main tree at most once: a row already there came from the
    // same append (a checkpoint before the crash, or an earlier replay).
    for (const r of rows) if (!messages.doesExist(r.key)) messages.putSync(r.key, raw(r.value));
  }
  return intact;
}

/**
 * Opens the message store's log and `recent`, after recovering what gone instances left.
 *
 * Inside one synchronous write transaction of the main environment (LMDB's writer lock: it
 * serialises this step with every other instance's, in any thread or process, and is released if
 * its holder dies), the logs of instances whose process is gone are replayed into the main tree,
 * committed with a flush. If no live instance is left, `recent` cannot be trusted (a crash may
 * have left rows there that were never acknowledged, or damaged it) and is deleted. Then this
 * instance's first log segment is created, which makes it count as live for every later open.
 * After the commit, the rows of gone instances still in `recent` but not in the main tree (claimed,
 * never logged) are removed, and their logs deleted. A log whose records stop at a damaged one
 * (not a torn end) is kept renamed `.damaged` for inspection.
 */
function openMessageLog(
  path: string,
  root: RootDatabase,
  messages: Database<StoredRow, Key>,
  segmentBytes: number,
  wantExclusive: boolean,
): MessageLog {
  const walDir = join(path, 'wal');
  const recentPath = join(path, 'recent');
  // A new log directory's own entry must survive a power loss too, like the files in it.
  if (mkdirSync(walDir, { recursive: true }) !== undefined) syncDir(path);
  const wal = new WalWriter(walDir, newOwner(), segmentBytes);
  let gone: Array<{ file: string; tag: number; intact: boolean }> = [];
  let keepRecent = false;
  let exclusive = false;
  // The main tree's write lock serialises every open of the path (threads and processes alike):
  // what one open sees of the others' logs and markers, and what it leaves, cannot interleave.
  root.transactionSync(() => {
    gone = [];
    for (const x of listExclusive(walDir)) {
      if (ownerAlive(x.owner))
        throw new SbError(
          'SB_ERR_STORE_UNAVAILABLE',
          `lmdb: ${path} is held exclusively by another store instance (process ${x.owner.pid})`,
        );
      rmSync(x.file, { force: true });
    }
    let live = 0;
    for (const s of listSegments(walDir)) {
      if (ownerAlive(s.owner)) live++;
      else gone.push({ file: s.file, tag: s.owner.tag, intact: replaySegment(s.file, messages) });
    }
    keepRecent = live > 0;
    exclusive = wantExclusive && live === 0;
    if (!keepRecent) rmSync(recentPath, { recursive: true, force: true });
    wal.open();
    if (exclusive) writeFileSync(exclusiveMarker(walDir, wal.owner), '');
  });
  const recentRoot = open({
    path: recentPath,
    maxDbs: 2,
    noSync: true,
    overlappingSync: false,
    // Never MDB_WRITEMAP: LMDB's freelist code aborts the process (assertion in
    // mdb_freelist_save) on a commit that empties a database of its last row under WRITEMAP, which
    // `recent` does whenever a quiet store removes its one checkpointed row.
    useWritemap: false,
  });
  const recent = recentRoot.openDB<Buffer, Key>({
    name: 'messages',
    keyEncoding: 'ordered-binary',
    encoding: 'binary',
  });
  if (keepRecent && gone.length > 0) {
    const tags = new Set(gone.map((g) => g.tag));
    recentRoot.transactionSync(() => {
      const orphans: Key[] = [];
      for (const { key, value } of recent.getRange({}))
        if (tags.has(value.readUInt32LE(value.length - TAG_BYTES)) && !messages.doesExist(key))
          orphans.push(key);
      for (const k of orphans) recent.removeSync(k);
    });
  }
  for (const g of gone) {
    try {
      if (g.intact) unlinkSync(g.file);
      else renameSync(g.file, `${g.file}.damaged`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  if (gone.length > 0) syncDir(walDir);
  return {
    wal,
    recentRoot,
    recent,
    exclusive,
    marker: exclusive ? exclusiveMarker(walDir, wal.owner) : undefined,
  };
}

/** Opens (creating if needed) the embedded stores at `path`. */
export function openLmdbStores(
  opts: {
    path: string;
    /** Bound of the in-memory clientMsgId maps; default {@link LMDB_ID_CACHE_MAX_IDS}. */
    idCacheMaxIds?: number;
    /**
     * Open the path for this instance alone (a process that runs every actor on one thread).
     * Nobody else can read the rows it acknowledged until they reach the main tree, so it does not
     * publish them in `recent`: they wait for their checkpoint in memory, and an append claims its
     * seq there, which saves two LMDB writes per append. Other opens of the path fail with
     * SB_ERR_STORE_UNAVAILABLE while it is open. When another instance is open already, the store
     * opens shared instead (see `isExclusive()`).
     */
    exclusive?: boolean;
  } & MessageLogOptions,
): LmdbStores {
  const root: RootDatabase = open({ path: opts.path, maxDbs: 16, overlappingSync: false });
  const dbOpts = { keyEncoding: 'ordered-binary' as const, encoding: 'msgpack' as const };
  // Rows are plain msgpack maps (see the store's constructor): decoded as objects, not `Map`s.
  const messages = root.openDB<StoredRow, Key>({
    name: 'messages',
    ...dbOpts,
    ...({ mapsAsObjects: true } as object),
  });
  // Earlier versions also wrote an on-disk `msgids` index; every row carries its clientMsgId, so
  // it is no longer opened (the in-memory map loads from the rows).
  const state = root.openDB<unknown, Key>({ name: 'state', ...dbOpts });
  const reminders = root.openDB<ReminderRow, Key>({ name: 'reminders', ...dbOpts });
  const remdue = root.openDB<number, Key>({ name: 'remdue', ...dbOpts });
  const index = root.openDB<unknown, Key>({ name: 'index', ...dbOpts });
  let log: MessageLog;
  try {
    log = openMessageLog(
      opts.path,
      root,
      messages,
      opts.walSegmentBytes ?? LMDB_WAL_SEGMENT_BYTES,
      opts.exclusive === true,
    );
  } catch (err) {
    void root.close();
    throw err;
  }
  const messageStore = new LmdbMessageStore(messages, log, opts.idCacheMaxIds, opts);
  let closed = false;
  return {
    index: new LmdbIndexStore(index),
    state: new LmdbStateStore(state),
    reminders: new LmdbReminderStore(reminders, remdue),
    messages: messageStore,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await messageStore.close();
      } finally {
        await root.close();
      }
    },
  };
}
