/**
 * Storage seams. Each interface has an embedded implementation (LMDB, the default) and a
 * distributed one (Cassandra); both pass the same contract suite (engine/store/contract.ts).
 * Every call carries the tenant: no method can reach across tenants.
 */

/** Opaque JSON-serialisable value. */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json | undefined };

/** Key/value state of actors (one blob per actor id), scoped by tenant. */
export interface StateStore {
  get<T = unknown>(tenant: string, kind: string, key: string): Promise<T | undefined>;
  /** Durable when the promise resolves. */
  put(tenant: string, kind: string, key: string, value: unknown): Promise<void>;
  delete(tenant: string, kind: string, key: string): Promise<void>;
  /** Keys of one kind in one tenant, ordered, optionally from a prefix, at most `limit`. */
  list(
    tenant: string,
    kind: string,
    opts?: { prefix?: string; limit?: number },
  ): Promise<Array<{ key: string; value: unknown }>>;
  close(): Promise<void>;
}

export interface Reminder {
  tenant: string;
  /** Target actor. */
  kind: string;
  key: string;
  name: string;
  /** ms epoch */
  dueAt: number;
  msg: unknown;
}

/** Durable reminders, found by due time so a restarted node fires what is due. */
export interface ReminderStore {
  /** Insert or replace the reminder (tenant, kind, key, name). */
  upsert(r: Reminder): Promise<void>;
  remove(tenant: string, kind: string, key: string, name: string): Promise<void>;
  /** Reminders with dueAt <= `before`, oldest first, at most `limit`. */
  due(before: number, limit: number): Promise<Reminder[]>;
  close(): Promise<void>;
}

/** One stored event of a stream (a chat session). `seq` starts at 1 and has no gaps. */
export interface StoredEvent {
  tenant: string;
  stream: string;
  seq: number;
  /** ms epoch, server clock */
  at: number;
  /** Idempotency key of the writer; unique per stream when present. */
  clientMsgId?: string;
  body: Json;
  /** Set by recall: the content is no longer served to visitors; auditors still see it. */
  recalled?: { at: number; by: string };
  /**
   * Write directive (not read back): keep the event this many seconds, then the store may drop it
   * (retention). Undefined = keep until deleted.
   */
  ttlSec?: number;
}

export interface AppendResult {
  event: StoredEvent;
  /** True when an event with the same clientMsgId existed; `event` is that earlier event. */
  duplicate: boolean;
}

export interface ReadOptions {
  /** Events with seq > afterSeq (forward) ... */
  afterSeq?: number;
  /** ... or seq < beforeSeq (backward, newest first). */
  beforeSeq?: number;
  /** Default 100, max 1000. */
  limit?: number;
  /** Default 'forward'. 'backward' returns newest first. */
  direction?: 'forward' | 'backward';
  /**
   * Visible window: events with `at` before this (ms epoch) are not returned, even if still stored.
   * Paging continues past them.
   */
  notBefore?: number;
}

/** Append-only event log per (tenant, stream): the message history of a session. */
export interface MessageStore {
  /**
   * Appends `event` at `event.seq`. Idempotent on (tenant, stream, clientMsgId): a second append
   * with a known clientMsgId returns the first event with `duplicate: true` and writes nothing.
   * Rejects with SB_ERR_SEQ_CONFLICT if `seq` is taken by a different event. Resolves only once
   * the event is durable.
   */
  append(event: StoredEvent): Promise<AppendResult>;
  /**
   * Optional: `append` when the event's place in its stream is final at once — the row is new
   * (its clientMsgId unknown, its seq free) and only a failure of the store itself can still refuse
   * it. The promise then settles as `append`'s would, and the next append of the stream may be
   * issued before it does (it cannot overtake this one). Undefined, with nothing written, when the
   * store cannot tell synchronously: use `append`.
   */
  appendOrdered?(event: StoredEvent): Promise<AppendResult> | undefined;
  /** Appends several events of one stream atomically (same rules as append, per event). */
  appendBatch(events: StoredEvent[]): Promise<AppendResult[]>;
  read(tenant: string, stream: string, opts?: ReadOptions): Promise<StoredEvent[]>;
  /** Highest seq of the stream, 0 when empty. */
  lastSeq(tenant: string, stream: string): Promise<number>;
  findByClientMsgId(tenant: string, stream: string, clientMsgId: string): Promise<StoredEvent | undefined>;
  /** Marks an event recalled (content kept for auditors). */
  markRecalled(tenant: string, stream: string, seq: number, by: string, at: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Ordered secondary indexes: entries sorted by `sortKey` inside a partition of a tenant (for
 * example closed sessions of one day). Partitions keep each query on one bounded range.
 */
export interface IndexStore {
  /** Inserts or replaces an entry. Durable when the promise resolves. */
  put(tenant: string, partition: string, sortKey: string, value: unknown): Promise<void>;
  delete(tenant: string, partition: string, sortKey: string): Promise<void>;
  /**
   * Entries of one partition in sortKey order (`reverse`: descending), strictly after the cursor
   * `after` in that order, at most `limit` (default 100, max 1000).
   */
  range(
    tenant: string,
    partition: string,
    opts?: { after?: string; reverse?: boolean; limit?: number },
  ): Promise<Array<{ sortKey: string; value: unknown }>>;
  close(): Promise<void>;
}
