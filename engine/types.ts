/**
 * Public types of the actor runtime. The engine knows nothing of customer service: an actor is
 * addressed by `kind` + `key`, and any product (a service desk, a game server) defines its kinds.
 */
import type { StateStore, ReminderStore } from './store/types.ts';

/*
 * Messages between actors (and to endpoints) must be plain JSON data: they cross threads as JSON
 * text. `undefined` fields disappear; Dates, Maps and class instances do not survive.
 */

/** Address of a virtual actor. `key` is opaque to the engine (products put the tenant first). */
export interface ActorId {
  readonly kind: string;
  readonly key: string;
}

/**
 * Address of a pinned endpoint: a handler living on one particular thread (e.g. a gateway
 * connection). `thread` is the runtime thread index (0 = host thread, 1..N = workers).
 */
export interface EndpointId {
  readonly thread: number;
  readonly name: string;
  /** Cluster mode: the node the endpoint lives on (absent: this node). */
  readonly node?: string;
}

export type Address = ActorId | EndpointId;

export interface AskOptions {
  /** Milliseconds before the promise rejects with SB_ERR_TIMEOUT. Default {@link DEFAULTS.askTimeoutMs}. */
  timeoutMs?: number;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** What an actor's handlers can do. Valid only during the actor's activation. */
export interface ActorContext {
  readonly self: ActorId;
  /** Index of the thread running this actor. */
  readonly thread: number;
  readonly clock: Clock;
  /** Fire and forget. Ordering is preserved per (sender, receiver) pair. */
  tell(to: Address, msg: unknown): void;
  /** Request/response; rejects with an SbError (SB_ERR_TIMEOUT, SB_ERR_MAILBOX_FULL, or the handler's). */
  ask<R = unknown>(to: ActorId, msg: unknown, opts?: AskOptions): Promise<R>;
  /** In-memory timer delivering `msg` to this actor after `delayMs`; same name replaces. Lost on deactivation. */
  setTimer(name: string, delayMs: number, msg: unknown): void;
  /** Repeating in-memory timer. */
  setInterval(name: string, everyMs: number, msg: unknown): void;
  cancelTimer(name: string): void;
  /** Durable reminder: stored, fires `msg` at `dueAt` (ms epoch) even after a restart (activating the actor). */
  setReminder(name: string, dueAt: number, msg: unknown): Promise<void>;
  cancelReminder(name: string): Promise<void>;
  /** State of this actor in the StateStore (undefined if never saved). */
  loadState<S>(): Promise<S | undefined>;
  saveState<S>(state: S): Promise<void>;
  /** The thread's store handles, for products that keep more than one state blob. */
  readonly stores: Stores;
  /** Asks the runtime to deactivate this actor after the current turn. */
  deactivate(): void;
}

/**
 * Returned by `onMessage` to end the turn now and answer the `ask` later, when `answer` settles
 * (its value, or its error as the ask's failure). The next message may start before then; the
 * actor takes on keeping what `answer` does after the turn consistent with the turns that follow
 * (for example: continuations that only send, in order, and turns that wait for them when they must).
 */
export class Later {
  constructor(readonly answer: Promise<unknown>) {}
}

/**
 * Behaviour of one actor kind. One instance per activation; `onMessage` runs one message at a
 * time (non-reentrant): the next message starts only when the returned promise settles.
 * The value returned by `onMessage` answers an `ask` (ignored for `tell`); a {@link Later} ends the
 * turn at once and answers when its promise settles.
 */
export interface Actor {
  onActivate?(ctx: ActorContext): void | Promise<void>;
  onMessage(msg: unknown, ctx: ActorContext): unknown | Promise<unknown>;
  onDeactivate?(ctx: ActorContext): void | Promise<void>;
  /**
   * Cluster mode: every endpoint on `node` is gone (the node crashed, left, or restarted). An actor
   * that keeps endpoints (subscribers, connections) forgets that node's. Runs ahead of the mailbox.
   */
  onEndpointsGone?(node: string, ctx: ActorContext): void | Promise<void>;
  /** Called when a handler throws; the actor stays alive unless this rethrows. */
  onError?(err: unknown, msg: unknown, ctx: ActorContext): void;
}

export interface ActorKind {
  /** Milliseconds without messages before the actor is deactivated. Default {@link DEFAULTS.idleMs}. */
  idleMs?: number;
  /** Mailbox bound; overflow rejects with SB_ERR_MAILBOX_FULL. Default {@link DEFAULTS.mailboxSize}. */
  mailboxSize?: number;
  create(id: ActorId): Actor;
}

/** Handler of a pinned endpoint; runs on the thread that registered it. */
export type EndpointHandler = (msg: unknown) => void;

export interface Stores {
  state: StateStore;
  reminders: ReminderStore;
  /** Product-specific store handles (e.g. a MessageStore), created by the stores factory. */
  extra: Record<string, unknown>;
  /** Closes everything above (connections, environments); called once when the thread drains. */
  close?(): Promise<void>;
}

/**
 * A module loaded on every thread (by URL) that registers the product's actor kinds and opens the
 * thread's stores. Its default export must satisfy this interface.
 */
export interface ProductModule {
  openStores(config: Readonly<Record<string, unknown>>): Promise<Stores>;
  registerKinds(registry: KindRegistry, config: Readonly<Record<string, unknown>>): void;
}

export interface KindRegistry {
  register(kind: string, def: ActorKind): void;
}

export interface RuntimeOptions {
  /** Worker threads running actors; 0 = actors run on the host thread (tests). Default 0. */
  workers?: number;
  /** URL (file:) of the {@link ProductModule}. */
  productModule: URL | string;
  /** Plain JSON config passed to the product module on every thread. */
  config?: Record<string, unknown>;
  /** Fixed number of shards; actor → shard by hash(kind,key) mod shards. Default 1024. */
  shards?: number;
  /** Injected clock (tests); only honoured with workers = 0. */
  clock?: Clock;
  /** Cluster mode (requires workers = 0 for now): where shards live and how to reach other nodes. */
  cluster?: ClusterHooks;
}

/**
 * What the runtime needs from the cluster layer (engine/cluster/node.ts provides it): whether this
 * node serves a shard now, which node does, and a way to ship envelopes there.
 */
export interface ClusterHooks {
  readonly nodeId: string;
  /** `local` when this node serves the shard now, another node's id, or undefined while nobody does. */
  placeOf(shard: number): 'local' | string | undefined;
  /** Ships an envelope (JSON-serialisable) to another node; throws when it cannot be queued. */
  sendRemote(node: string, envelope: unknown): void;
  /** True while this node leaves the cluster: it forwards everything and holds nothing. */
  leaving?(): boolean;
  /**
   * The epoch under which this node holds the shard now (serving it, or handing it off while its
   * actors persist), or undefined: not held, or this node's lease lapsed by its own clock. Actors
   * reach the stores only while this equals the epoch they were activated under (fencing).
   */
  heldEpoch?(shard: number): number | undefined;
  /** End of this node's lease by its own clock, as `performance.timeOrigin + performance.now()`. */
  leaseDeadline?(): number;
}

/**
 * Why a tell was dropped: `hops` ownership did not settle within the forwarding limit; `held` the
 * queue of a shard without owner (or of a node without link) was full or waited too long; `link`
 * no link to the target thread; `endpoint` no such endpoint (its socket is gone); `mailbox` the
 * actor's mailbox was full; `kind` no such actor kind.
 */
export type DropReason = 'hops' | 'held' | 'link' | 'endpoint' | 'mailbox' | 'kind';

export interface MetricsSnapshot {
  activations: number;
  activeActors: number;
  deactivations: number;
  messagesProcessed: number;
  envelopesSent: number;
  envelopesPerSecond: number;
  batchesSent: number;
  mailboxDepthMax: number;
  turnTimeMsP99: number;
  handlerErrors: number;
  /**
   * Tells (one-way messages) dropped, by reason: ownership that did not settle (`hops`), a full or
   * expired hold queue (`held`), no link to a thread (`link`), a gone endpoint (`endpoint`), a full
   * mailbox (`mailbox`), an unknown actor kind (`kind`).
   */
  droppedTells: Record<DropReason, number>;
  /** Store calls refused because the node no longer held the actor's shard (cluster fencing). */
  fencedRefusals: number;
  remindersFired: number;
  perThread: Array<{
    thread: number;
    activeActors: number;
    messagesProcessed: number;
    mailboxDepthMax: number;
  }>;
}

/** The host side of the runtime: lives on the main thread, owns the workers. */
export interface Runtime {
  readonly threads: number;
  tell(to: Address, msg: unknown): void;
  ask<R = unknown>(to: ActorId, msg: unknown, opts?: AskOptions): Promise<R>;
  /** Pins a handler on the host thread; returns its address (thread 0). Names are unique per thread. */
  registerEndpoint(name: string, handler: EndpointHandler): EndpointId;
  unregisterEndpoint(name: string): void;
  metrics(): Promise<MetricsSnapshot>;
  /** Prometheus text exposition of {@link metrics}. */
  metricsText(): Promise<string>;
  /** Stops accepting work, finishes turns in progress, deactivates actors, closes stores and workers. */
  drain(): Promise<void>;
  /** The host thread's stores (opened by the product module like every worker's). */
  readonly stores: Stores;
  /** Cluster mode: the node side of the cluster hooks. */
  readonly cluster?: {
    /** An envelope that arrived from another node. */
    receive(envelope: unknown, fromNode: string): void;
    /** Stops serving a shard: its actors persist and stop; later envelopes go to its new owner. */
    releaseShard(shard: number): Promise<void>;
    /** Every endpoint on `node` is gone: actors forget them (see {@link Actor.onEndpointsGone}). */
    endpointsGone(node: string): void;
    /**
     * Ownership or membership changed: deliver what waits for shards that now have an owner (within
     * the tick; changes in one tick are handled together).
     */
    ownershipChanged(): void;
    /** The node's lease was renewed: workers get its new end (they fence store calls by it). */
    leaseRenewed(): void;
  };
}

export const DEFAULTS = {
  askTimeoutMs: 5000,
  idleMs: 5 * 60_000,
  mailboxSize: 10_000,
  shards: 1024,
  /** Cross-thread batch flush: at most this many envelopes per postMessage. */
  maxBatch: 512,
  /** Reminder poll horizon: reminders due within this window are loaded into timers. */
  reminderHorizonMs: 60_000,
} as const;
