/**
 * One runtime thread: the actors of the shards it owns, its pinned endpoints, and the batched
 * links to the other threads. The host thread and every worker run one ThreadNode each.
 */
import { SbError, toSbError } from '../protos/errors.ts';
import { shardOf, tenantOfKey } from './hash.ts';
import { fencedStores } from './store/fenced.ts';
import type {
  Actor,
  ActorContext,
  ActorId,
  ActorKind,
  Address,
  AskOptions,
  Clock,
  DropReason,
  EndpointHandler,
  EndpointId,
  ClusterHooks,
  KindRegistry,
  MetricsSnapshot,
  Stores,
} from './types.ts';
import { DEFAULTS, Later } from './types.ts';

/** Envelope kinds on the wire between threads. */
export const ENV = { TELL: 0, ASK: 1, REPLY: 2, FAIL: 3, REMINDER: 4 } as const;

export type Envelope =
  /**
   * `hops`/`via`: how often and from which node it was last forwarded between nodes. `b`: sent
   * back to the host by a worker whose shard view said "not here" (see {@link ThreadNode.enqueue}).
   */
  | { k: 0; to: Address; msg: unknown; hops?: number; via?: string; b?: 1 }
  /** `fromNode`: set when the ask crosses nodes (the answer goes back there, to thread `from`). */
  | {
      k: 1;
      to: ActorId;
      msg: unknown;
      from: number;
      id: number;
      fromNode?: string;
      hops?: number;
      via?: string;
      b?: 1;
    }
  /** `thread`: the asking thread, for answers that cross nodes. */
  | { k: 2; id: number; value: unknown; thread?: number }
  | { k: 3; id: number; err: { code: string; message: string }; thread?: number }
  | {
      k: 4;
      to: ActorId;
      name: string;
      dueAt: number;
      msg: unknown;
      hops?: number;
      via?: string;
      b?: 1;
    };

/** The asker of an ask that came from another node (its answer goes back over the cluster). */
const REMOTE = -1;
/** Envelopes bounce between nodes at most this often while ownership settles. */
const MAX_HOPS = 4;
/** Envelopes held per shard while nobody serves it (handoff in progress). */
const MAX_HELD = 10_000;
/**
 * How long envelopes for a socket on another node wait while this node has no link to it: a node
 * that drops out of the member list for a moment (a Redis restart, a late lease renewal) keeps its
 * sockets, and what the sessions tell them (live events, `unsubscribed`) must still reach them.
 * A node gone for longer has lost its sockets with it.
 */
export const ENDPOINT_HOLD_MS = 15_000;

/** Control messages between the host and workers (not envelopes). */
export type Control =
  /** Envelopes as one JSON text: cheaper to clone across threads than an array of objects. */
  | { c: 'batch'; data: string }
  | { c: 'metrics'; id: number }
  | { c: 'metricsReply'; id: number; m: ThreadMetrics }
  | { c: 'drain' }
  | { c: 'drained' }
  | { c: 'ready' }
  | { c: 'failed'; error: string }
  | { c: 'reminderSet'; r: ReminderRef; dueAt: number; msg: unknown }
  | { c: 'reminderCancel'; r: ReminderRef }
  | { c: 'reminderDone'; r: ReminderRef; dueAt: number }
  /** Cluster mode, host → worker: the shards this node serves now (1 = here), sent on every change. */
  | { c: 'placement'; view: PlacementView }
  /** Cluster mode, host → worker: stop serving a shard (its actors persist and go); answered by `released`. */
  | { c: 'release'; shard: number; id: number }
  | { c: 'released'; id: number }
  /** Cluster mode, host → worker: the endpoints of a node are gone (see `endpointsGone`). */
  | { c: 'endpointsGone'; node: string };

export interface ReminderRef {
  kind: string;
  key: string;
  name: string;
}

export interface ThreadMetrics {
  thread: number;
  activations: number;
  activeActors: number;
  deactivations: number;
  messagesProcessed: number;
  envelopesSent: number;
  batchesSent: number;
  mailboxDepthMax: number;
  handlerErrors: number;
  /** Tells dropped, by reason. */
  dropped: Record<DropReason, number>;
  /** Store calls refused because this node no longer held the actor's shard (fencing). */
  fencedRefusals: number;
  remindersFired: number;
  /** Recent turn durations, ms (ring buffer), for percentiles. */
  turnSamples: number[];
}

export const DROP_REASONS: readonly DropReason[] = ['hops', 'held', 'link', 'endpoint', 'mailbox', 'kind'];

interface Item {
  msg: unknown;
  /** Ask id and origin thread, when the sender waits for an answer. */
  ask?: { id: number; from: number };
  reminder?: { name: string; dueAt: number };
  /** System items: `deactivate`, or `endpointsGone` (msg = the node whose endpoints are gone). */
  sys?: 'deactivate' | 'endpointsGone';
}

/**
 * Cluster mode: the host's view of this node's shards, sent to its workers. `local[s]` = 1 when
 * the shard is served here; `epochs[s]` = the epoch it is held under (served or being handed off),
 * 0 when not held; `leaseUntil` = end of the node's lease (`performance.timeOrigin + now()`).
 */
export interface PlacementView {
  local: Uint8Array;
  epochs: Float64Array;
  leaseUntil: number;
}

interface Activation {
  id: ActorId;
  def: ActorKind;
  actor: Actor;
  ctx: ActorContext;
  mailbox: Item[];
  sys: Item[];
  busy: boolean;
  activated: boolean;
  deactivating: boolean;
  lastActive: number;
  timers: Map<string, { handle: unknown; interval: boolean }>;
  /** Reminder names set or cancelled during the current turn (their store entry must stay). */
  touchedReminders: Set<string>;
  /** Resolves when an ongoing deactivation finished. */
  closing?: Promise<void>;
  /** Cluster mode: the shard and the epoch this activation runs under (its store access is fenced). */
  shard?: number;
  epoch?: number | undefined;
}

export interface Link {
  post(c: Control): void;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: unknown): void;
  deadline: number;
  to: ActorId;
  timeoutMs: number;
  /** Cluster host with workers: the ask came from another node and this entry relays its answer. */
  origin?: { node: string; id: number; thread: number };
}

/** Resolution of ask deadlines: one sweep timer instead of a timer per ask on the hot path. */
const ASK_SWEEP_MS = 20;

const TURN_SAMPLES = 2048;

export interface ThreadNodeOptions {
  thread: number;
  workers: number;
  shards: number;
  clock: Clock;
  stores: Stores;
  /** Links to other threads by index (host = 0). */
  links: Map<number, Link>;
  /** Where reminder schedule changes go (the host's scheduler). */
  reminderControl: (c: Control) => void;
  /** Cluster mode, host thread: the node's cluster hooks (the transport lives on this thread). */
  cluster?: ClusterHooks | undefined;
  /**
   * Cluster mode, worker thread: this node's id. The worker routes by the shard view the host
   * sends it (`placement`): shards served here go straight to their thread, the rest to the host.
   */
  clusterNodeId?: string | undefined;
}

export class ThreadNode implements KindRegistry {
  readonly thread: number;
  readonly stores: Stores;
  readonly clock: Clock;
  private readonly workers: number;
  private readonly shards: number;
  private readonly links: Map<number, Link>;
  private readonly kinds = new Map<string, ActorKind>();
  private readonly actors = new Map<string, Activation>();
  private readonly endpoints = new Map<string, EndpointHandler>();
  private readonly outbox = new Map<number, Envelope[]>();
  private flushScheduled = false;
  private readonly pending = new Map<number, Pending>();
  private nextAskId = 1;
  private sweepHandle: unknown;
  private closed = false;
  private readonly reminderControl: (c: Control) => void;
  private readonly cluster: ClusterHooks | undefined;
  /** Cluster mode on a worker: this node's id, and the host's latest view of the shards served here. */
  private readonly clusterNodeId: string | undefined;
  private localShards: Uint8Array | undefined;
  /** Cluster mode on a worker: epochs of the shards held here and the lease's end (see PlacementView). */
  private heldEpochs: Float64Array | undefined;
  private leaseUntil = 0;
  /** Asks from other nodes waiting for their answer here: proxy id → origin. */
  private readonly remoteAsks = new Map<number, { node: string; id: number; thread: number }>();
  private nextRemoteAsk = 1;
  /** Envelopes for shards nobody serves right now, delivered when one does. */
  private readonly held = new Map<number, Envelope[]>();
  /** Envelopes for endpoints on a node this node has no link to right now, in order, per node. */
  private readonly heldForNode = new Map<string, { since: number; envs: Envelope[] }>();
  private heldTimer: unknown;
  readonly m: ThreadMetrics;
  private turnIdx = 0;

  constructor(o: ThreadNodeOptions) {
    this.thread = o.thread;
    this.workers = o.workers;
    this.shards = o.shards;
    this.clock = o.clock;
    this.stores = o.stores;
    this.links = o.links;
    this.reminderControl = o.reminderControl;
    this.cluster = o.cluster;
    this.clusterNodeId = o.cluster?.nodeId ?? o.clusterNodeId;
    if (o.clusterNodeId !== undefined) this.localShards = new Uint8Array(this.shards);
    this.m = emptyMetrics(o.thread);
    this.scheduleSweep();
  }

  register(kind: string, def: ActorKind): void {
    if (this.kinds.has(kind)) throw new Error(`actor kind registered twice: ${kind}`);
    this.kinds.set(kind, def);
  }

  // ------------------------------------------------------------------ addressing

  /** Thread that runs the actor: 0 without workers, else 1 + shard mod workers. */
  threadOf(to: Address): number {
    if ('thread' in to) return to.thread;
    return this.threadOfShard(shardOf(to.kind, to.key, this.shards));
  }

  /** Thread that runs a shard's actors. */
  threadOfShard(shard: number): number {
    return this.workers === 0 ? 0 : 1 + (shard % this.workers);
  }

  registerEndpoint(name: string, handler: EndpointHandler): EndpointId {
    if (this.endpoints.has(name)) throw new Error(`endpoint registered twice: ${name}`);
    this.endpoints.set(name, handler);
    return this.clusterNodeId !== undefined
      ? { thread: this.thread, name, node: this.clusterNodeId }
      : { thread: this.thread, name };
  }

  unregisterEndpoint(name: string): void {
    this.endpoints.delete(name);
  }

  // ------------------------------------------------------------------ sending

  tell(to: Address, msg: unknown): void {
    if (this.closed) throw new SbError('SB_ERR_SHUTTING_DOWN');
    this.route({ k: ENV.TELL, to, msg });
  }

  ask<R>(to: ActorId, msg: unknown, opts?: AskOptions): Promise<R> {
    if (this.closed) return Promise.reject(new SbError('SB_ERR_SHUTTING_DOWN'));
    const id = this.nextAskId++;
    const timeoutMs = opts?.timeoutMs ?? DEFAULTS.askTimeoutMs;
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, {
        resolve: resolve as (v: unknown) => void,
        reject,
        deadline: this.clock.now() + timeoutMs,
        to,
        timeoutMs,
      });
      if (this.askSweep === undefined) this.scheduleAskSweep();
      this.route({ k: ENV.ASK, to, msg, from: this.thread, id });
    });
  }

  private askSweep: unknown;
  private scheduleAskSweep(): void {
    this.askSweep = this.clock.setTimeout(() => {
      this.askSweep = undefined;
      const now = this.clock.now();
      for (const [id, p] of this.pending) {
        if (p.deadline <= now) {
          this.pending.delete(id);
          p.reject(
            new SbError('SB_ERR_TIMEOUT', `ask ${p.to.kind}/${p.to.key} timed out after ${p.timeoutMs} ms`),
          );
        }
      }
      if (this.pending.size > 0 && !this.closed) this.scheduleAskSweep();
    }, ASK_SWEEP_MS);
  }

  private reply(from: number, id: number, value: unknown): void {
    if (from === REMOTE) return this.answerRemote(id, { k: ENV.REPLY, id, value });
    this.routeTo(from, { k: ENV.REPLY, id, value });
  }

  private fail(from: number, id: number, err: unknown): void {
    const e = toSbError(err);
    const env: Envelope = { k: ENV.FAIL, id, err: { code: e.code, message: e.message } };
    if (from === REMOTE) return this.answerRemote(id, env);
    this.routeTo(from, env);
  }

  private route(env: Envelope & { to: Address }): void {
    if (this.localShards) {
      // A worker: what this node serves goes straight to its thread; the host deals with the rest
      // (ships it to the owner, or holds it while nobody serves the shard).
      const to = env.to;
      if ('thread' in to) {
        if (to.node !== undefined && to.node !== this.clusterNodeId) return this.routeTo(0, env);
      } else if (this.localShards[shardOf(to.kind, to.key, this.shards)] !== 1) return this.routeTo(0, env);
      return this.routeTo(this.threadOf(env.to), env);
    }
    const c = this.cluster;
    if (c) {
      const to = env.to;
      if ('thread' in to) {
        if (to.node !== undefined && to.node !== c.nodeId) return this.ship(to.node, env, undefined);
      } else {
        const shard = shardOf(to.kind, to.key, this.shards);
        const place = c.placeOf(shard);
        if (place === undefined) return this.hold(shard, env);
        if (place === 'local' && 'b' in env && env.b) {
          // A worker's view lagged the host's: deliver once the placement update has reached it.
          delete env.b;
          return this.hold(shard, env);
        }
        // Never straight back to the node that just sent it here: our views differ for a moment
        // (a handoff in progress); wait until they agree. A leaving node forwards everything.
        if (place !== 'local' && 'via' in env && env.via === place && !c.leaving?.())
          return this.hold(shard, env);
        if (place !== 'local') return this.ship(place, env, shard);
      }
    }
    this.routeTo(this.threadOf(env.to), env);
  }

  // ------------------------------------------------------------------ cluster

  /** Sends an envelope to the node that serves its target (asks carry this node for the answer). */
  private ship(node: string, env: Envelope & { to: Address }, shard: number | undefined): void {
    const hops = ('hops' in env ? (env.hops ?? 0) : 0) + 1;
    if (hops > MAX_HOPS) {
      if (env.k === ENV.ASK)
        this.fail(env.from, env.id, new SbError('SB_ERR_NODE_UNAVAILABLE', 'ownership did not settle'));
      else this.drop('hops');
      return;
    }
    if (shard === undefined && env.k !== ENV.ASK && this.heldForNode.has(node)) {
      // Earlier envelopes for that node still wait: this one goes behind them (order per node).
      return this.holdForNode(node, env);
    }
    let out: Envelope;
    const relay =
      env.k === ENV.ASK && env.from === this.thread ? this.pending.get(env.id)?.origin : undefined;
    if (env.k === ENV.ASK && relay) {
      // An ask from another node passes on: the answer goes straight to the original asker.
      this.pending.delete(env.id);
      out = { ...env, from: relay.thread, id: relay.id, fromNode: relay.node, hops };
    } else if (env.k === ENV.ASK && env.from === REMOTE) {
      // An ask from another node passes on: the answer goes straight to the original asker.
      const origin = this.remoteAsks.get(env.id);
      if (!origin) return;
      this.remoteAsks.delete(env.id);
      out = { ...env, from: origin.thread, id: origin.id, fromNode: origin.node, hops };
    } else if (env.k === ENV.ASK) {
      out = { ...env, fromNode: this.cluster!.nodeId, hops };
    } else {
      out = { ...env, hops } as Envelope;
    }
    try {
      this.cluster!.sendRemote(node, out);
      this.m.envelopesSent++;
    } catch {
      // No link yet (membership just changed) or the link's queue is full: hold and retry.
      if (shard !== undefined) this.hold(shard, env);
      else if (env.k === ENV.ASK)
        this.fail(env.from, env.id, new SbError('SB_ERR_NODE_UNAVAILABLE', `node ${node}`));
      else this.holdForNode(node, env);
    }
  }

  private answerRemote(proxyId: number, env: Envelope & { k: 2 | 3 }): void {
    const origin = this.remoteAsks.get(proxyId);
    if (!origin) return;
    this.remoteAsks.delete(proxyId);
    this.answerAsker(origin, env);
  }

  /** Sends an answer to the asker of an ask that came from another node. */
  private answerAsker(
    origin: { node: string; id: number; thread: number },
    answer: Envelope & { k: 2 | 3 },
  ): void {
    // An ask that went round (here → another node → back here) is answered locally.
    if (origin.node === this.cluster!.nodeId)
      return this.routeTo(origin.thread, { ...answer, id: origin.id });
    try {
      this.cluster!.sendRemote(origin.node, { ...answer, id: origin.id, thread: origin.thread });
    } catch {
      // The asker's node is gone; its ask times out there.
    }
  }

  private drop(reason: DropReason, n = 1): void {
    this.m.dropped[reason] += n;
  }

  private hold(shard: number, env: Envelope): void {
    let q = this.held.get(shard);
    if (!q) this.held.set(shard, (q = []));
    if (q.length >= MAX_HELD) {
      if (env.k === ENV.ASK)
        this.fail(
          env.from,
          env.id,
          new SbError('SB_ERR_NODE_UNAVAILABLE', `shard ${shard} has no owner now`),
        );
      else this.drop('held');
      return;
    }
    q.push(env);
    this.heldTimer ??= this.clock.setTimeout(() => {
      this.heldTimer = undefined;
      this.retryHeld();
    }, 50);
  }

  /** Holds a tell for an endpoint on a node without a link now (see {@link ENDPOINT_HOLD_MS}). */
  private holdForNode(node: string, env: Envelope): void {
    let h = this.heldForNode.get(node);
    if (!h) this.heldForNode.set(node, (h = { since: this.clock.now(), envs: [] }));
    if (h.envs.length >= MAX_HELD || this.clock.now() - h.since > ENDPOINT_HOLD_MS) {
      this.drop('held');
      return;
    }
    h.envs.push(env);
    this.heldTimer ??= this.clock.setTimeout(() => {
      this.heldTimer = undefined;
      this.retryHeld();
    }, 50);
  }

  /**
   * Delivers what waits for shards that now have an owner, and for nodes that have a link again
   * (called on ownership and membership changes too). Envelopes for a node absent longer than
   * {@link ENDPOINT_HOLD_MS} are dropped.
   */
  retryHeld(): void {
    const held = [...this.held];
    this.held.clear();
    for (const [, envs] of held) for (const e of envs) this.route(e as Envelope & { to: Address });
    if (this.heldForNode.size === 0) return;
    const now = this.clock.now();
    for (const [node, h] of [...this.heldForNode]) {
      this.heldForNode.delete(node);
      if (now - h.since > ENDPOINT_HOLD_MS) {
        this.drop('held', h.envs.length);
        continue;
      }
      for (let i = 0; i < h.envs.length; i++) {
        const e = h.envs[i]!;
        this.route(e as Envelope & { to: Address });
        const again = this.heldForNode.get(node);
        if (again) {
          // Still no link: the rest waits behind this one, and the wait keeps counting from the start.
          again.since = h.since;
          again.envs.push(...h.envs.slice(i + 1));
          break;
        }
      }
    }
  }

  /** An envelope from another node. */
  receiveRemote(env: Envelope, fromNode: string): void {
    if (env.k === ENV.TELL || env.k === ENV.REMINDER) env.via = fromNode;
    switch (env.k) {
      case ENV.REPLY:
      case ENV.FAIL:
        this.routeTo(env.thread ?? 0, env);
        return;
      case ENV.ASK: {
        if (this.workers > 0) {
          // The actor may answer from any thread: the host waits for the answer like for its own
          // asks, then sends it back to the asking node.
          const origin = { node: env.fromNode ?? '', id: env.id, thread: env.from };
          const id = this.nextAskId++;
          const back = (answer: Envelope & { k: 2 | 3 }): void => this.answerAsker(origin, answer);
          this.pending.set(id, {
            resolve: (value) => back({ k: ENV.REPLY, id, value }),
            reject: (err) => {
              const e = toSbError(err);
              back({ k: ENV.FAIL, id, err: { code: e.code, message: e.message } });
            },
            deadline: this.clock.now() + DEFAULTS.askTimeoutMs,
            to: env.to,
            timeoutMs: DEFAULTS.askTimeoutMs,
            origin,
          });
          if (this.askSweep === undefined) this.scheduleAskSweep();
          this.route({
            k: ENV.ASK,
            to: env.to,
            msg: env.msg,
            from: this.thread,
            id,
            hops: env.hops ?? 0,
            via: fromNode,
          });
          return;
        }
        const proxy = this.nextRemoteAsk++;
        this.remoteAsks.set(proxy, { node: env.fromNode ?? '', id: env.id, thread: env.from });
        this.route({
          k: ENV.ASK,
          to: env.to,
          msg: env.msg,
          from: REMOTE,
          id: proxy,
          hops: env.hops ?? 0,
          via: fromNode,
        });
        return;
      }
      default:
        this.route(env);
    }
  }

  /**
   * This node stops serving a shard (handoff): its actors finish their turn, persist and go away;
   * what was in their mailboxes, and what arrives from now on, goes to the shard's new owner.
   */
  async releaseShard(shard: number): Promise<void> {
    const closing: Array<Promise<void>> = [];
    for (const a of this.actors.values()) {
      if (shardOf(a.id.kind, a.id.key, this.shards) !== shard) continue;
      this.requestDeactivation(a);
      closing.push(
        new Promise<void>((resolve) => {
          const wait = (): void => {
            if (a.closing) void a.closing.then(resolve);
            else setTimeout(wait, 5);
          };
          wait();
        }),
      );
    }
    await Promise.all(closing);
  }

  private routeTo(thread: number, env: Envelope): void {
    if (thread === this.thread) {
      this.receive(env);
      return;
    }
    let q = this.outbox.get(thread);
    if (!q) {
      q = [];
      this.outbox.set(thread, q);
    }
    q.push(env);
    this.m.envelopesSent++;
    if (q.length >= DEFAULTS.maxBatch) this.flushTo(thread);
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      // One flush per macrotask: everything produced in this tick travels in one postMessage.
      setImmediate(() => this.flush());
    }
  }

  private flushTo(thread: number): void {
    const q = this.outbox.get(thread);
    if (!q || q.length === 0) return;
    this.outbox.set(thread, []);
    const link = this.links.get(thread);
    if (!link) {
      this.drop('link', q.length);
      return;
    }
    this.m.batchesSent++;
    link.post({ c: 'batch', data: JSON.stringify(q) });
  }

  flush(): void {
    this.flushScheduled = false;
    for (const t of this.outbox.keys()) this.flushTo(t);
  }

  /** Delivers a fired durable reminder to its actor, on whatever thread runs it. */
  sendReminder(to: ActorId, name: string, dueAt: number, msg: unknown): void {
    // Cluster: every node's scheduler sees the shared store; the node serving the shard fires it.
    if (this.cluster && this.cluster.placeOf(shardOf(to.kind, to.key, this.shards)) !== 'local') return;
    this.routeTo(this.threadOf(to), { k: ENV.REMINDER, to, name, dueAt, msg });
  }

  // ------------------------------------------------------------------ receiving

  receiveBatch(data: string): void {
    const envs = JSON.parse(data) as Envelope[];
    for (const e of envs) this.receive(e);
  }

  receive(env: Envelope): void {
    if (this.cluster && this.workers > 0 && env.k !== ENV.REPLY && env.k !== ENV.FAIL) {
      // Cluster host with workers: what a worker hands over is routed (shipped to the owner, or to
      // the worker that serves it); only endpoints of this thread are delivered here.
      const to = env.to;
      if (
        !('thread' in to) ||
        to.thread !== this.thread ||
        (to.node !== undefined && to.node !== this.cluster.nodeId)
      )
        return this.route(env as Envelope & { to: Address });
    }
    switch (env.k) {
      case ENV.REPLY:
      case ENV.FAIL: {
        const p = this.pending.get(env.id);
        if (!p) return;
        this.pending.delete(env.id);
        if (env.k === ENV.REPLY) p.resolve(env.value);
        else p.reject(toSbError(env.err));
        return;
      }
      case ENV.TELL: {
        const to = env.to;
        if ('thread' in to) {
          const h = this.endpoints.get(to.name);
          if (!h) {
            this.drop('endpoint');
            return;
          }
          try {
            h(env.msg);
          } catch (err) {
            this.m.handlerErrors++;
            console.error(`endpoint ${to.name} handler failed`, err);
          }
          return;
        }
        this.enqueue(to, { msg: env.msg });
        return;
      }
      case ENV.ASK:
        this.enqueue(env.to, { msg: env.msg, ask: { id: env.id, from: env.from } });
        return;
      case ENV.REMINDER:
        this.m.remindersFired++;
        this.enqueue(env.to, { msg: env.msg, reminder: { name: env.name, dueAt: env.dueAt } });
        return;
    }
  }

  private enqueue(to: ActorId, item: Item): void {
    if (this.closed) {
      if (item.ask) this.fail(item.ask.from, item.ask.id, new SbError('SB_ERR_SHUTTING_DOWN'));
      return;
    }
    if (
      this.localShards &&
      this.localShards[shardOf(to.kind, to.key, this.shards)] !== 1 &&
      !(this.actors.get(`${to.kind}\u0000${to.key}`)?.deactivating === false)
    ) {
      // Cluster worker: never activate an actor of a shard this node does not serve (the host may
      // have released it a moment ago, or its update may still be on its way): back to the host.
      this.routeTo(0, { ...this.envelopeOf(to, item), b: 1 });
      return;
    }
    let a: Activation;
    try {
      a = this.activation(to);
    } catch (err) {
      if (item.ask) this.fail(item.ask.from, item.ask.id, err);
      else this.drop('kind');
      return;
    }
    if (a.mailbox.length >= (a.def.mailboxSize ?? DEFAULTS.mailboxSize)) {
      if (item.ask)
        this.fail(
          item.ask.from,
          item.ask.id,
          new SbError('SB_ERR_MAILBOX_FULL', `mailbox of ${to.kind}/${to.key} is full`),
        );
      else this.drop('mailbox');
      return;
    }
    a.mailbox.push(item);
    if (a.mailbox.length > this.m.mailboxDepthMax) this.m.mailboxDepthMax = a.mailbox.length;
    if (!a.busy) void this.run(a);
  }

  private activation(to: ActorId): Activation {
    const k = `${to.kind}\u0000${to.key}`;
    const existing = this.actors.get(k);
    if (existing && !existing.deactivating) return existing;
    const def = this.kinds.get(to.kind);
    if (!def) throw new SbError('SB_ERR_NOT_FOUND', `no actor kind "${to.kind}"`);
    const id: ActorId = { kind: to.kind, key: to.key };
    const a: Activation = {
      id,
      def,
      actor: def.create(id),
      ctx: undefined as unknown as ActorContext,
      mailbox: [],
      sys: [],
      busy: false,
      activated: false,
      deactivating: false,
      lastActive: this.clock.now(),
      timers: new Map(),
      touchedReminders: new Set(),
    };
    if (this.clusterNodeId !== undefined) {
      a.shard = shardOf(id.kind, id.key, this.shards);
      a.epoch = this.heldEpoch(a.shard);
    }
    a.ctx = this.contextFor(a);
    if (existing) {
      // The old activation is still finishing its deactivation: the new one waits for it.
      a.busy = true;
      void existing.closing?.then(() => {
        a.busy = false;
        if (!this.closed) void this.run(a);
      });
    }
    this.actors.set(k, a);
    this.m.activations++;
    this.m.activeActors++;
    return a;
  }

  /** Runs turns until the mailbox is empty: one message at a time, system messages first. */
  private run(a: Activation): void {
    if (a.busy) return;
    a.busy = true;
    if (a.activated) this.runTurns(a);
    else void this.activate(a);
  }

  /** An activation's first step: `onActivate`, then its mailbox. */
  private async activate(a: Activation): Promise<void> {
    a.activated = true;
    try {
      await a.actor.onActivate?.(a.ctx);
    } catch (err) {
      // An actor that cannot activate answers everything queued with the error and goes away.
      this.m.handlerErrors++;
      for (const it of a.mailbox.splice(0)) if (it.ask) this.fail(it.ask.from, it.ask.id, err);
      this.remove(a);
      a.busy = false;
      return;
    }
    this.runTurns(a);
  }

  /**
   * Turns until the mailbox is empty (`a.busy` is set meanwhile). A turn that waits ends this
   * loop; its continuation goes on with the next message. Nothing waits on the loop itself, so a
   * handler waiting for a durable write keeps alive only what its own continuation holds.
   */
  private runTurns(a: Activation): void {
    for (;;) {
      const item = a.sys.shift() ?? a.mailbox.shift();
      if (!item) {
        a.busy = false;
        return;
      }
      if (item.sys === 'deactivate') {
        void this.deactivate(a).finally(() => {
          a.busy = false;
        });
        return;
      }
      const over =
        item.sys === 'endpointsGone' ? this.endpointsGoneTurn(a, item.msg as string) : this.turn(a, item);
      if (over) {
        void over.then(
          () => this.runTurns(a),
          (err: unknown) => {
            console.error(`turn of ${a.id.kind}/${a.id.key} did not finish cleanly`, err);
            this.runTurns(a);
          },
        );
        return;
      }
    }
  }

  /** A node's endpoints are gone: actors that keep endpoints forget that node's. */
  private endpointsGoneTurn(a: Activation, node: string): Promise<void> | undefined {
    const failed = (err: unknown): void => {
      this.m.handlerErrors++;
      console.error(`onEndpointsGone of ${a.id.kind}/${a.id.key} failed`, err);
    };
    try {
      const r = a.actor.onEndpointsGone?.(node, a.ctx);
      if (r instanceof Promise) return r.catch(failed);
    } catch (err) {
      failed(err);
    }
    return undefined;
  }

  /**
   * One turn. A handler that answers synchronously finishes its turn here (undefined); one that
   * returns a promise gets one continuation, and the promise returned settles when the turn is over
   * (no suspended async frame per turn while a handler waits, say, for a durable write).
   */
  private turn(a: Activation, item: Item): Promise<void> | undefined {
    const started = performance.now();
    a.touchedReminders.clear();
    let r: unknown;
    try {
      r = a.actor.onMessage(item.msg, a.ctx);
    } catch (err) {
      this.turnFailed(a, item, err);
      return this.turnOver(a, item, started);
    }
    if (r instanceof Promise)
      return r.then(
        (value: unknown) => {
          this.answer(a, item, value);
          return this.turnOver(a, item, started);
        },
        (err: unknown) => {
          this.turnFailed(a, item, err);
          return this.turnOver(a, item, started);
        },
      );
    this.answer(a, item, r);
    return this.turnOver(a, item, started);
  }

  /** The asker of a turn's message gets the handler's value (a {@link Later}'s once it settles). */
  private answer(a: Activation, item: Item, value: unknown): void {
    if (value instanceof Later) {
      value.answer.then(
        (v: unknown) => this.answer(a, item, v),
        (err: unknown) => this.turnFailed(a, item, err),
      );
      return;
    }
    if (!item.ask) return;
    try {
      this.reply(item.ask.from, item.ask.id, value);
    } catch (err) {
      this.turnFailed(a, item, err);
    }
  }

  /** A handler threw (or its promise rejected): the actor's hook hears of it, an asker gets it. */
  private turnFailed(a: Activation, item: Item, err: unknown): void {
    this.m.handlerErrors++;
    try {
      a.actor.onError?.(err, item.msg, a.ctx);
    } catch (hookErr) {
      console.error(`onError of ${a.id.kind}/${a.id.key} threw`, hookErr);
    }
    if (item.ask) this.fail(item.ask.from, item.ask.id, err);
    else if (!(err instanceof SbError)) console.error(`actor ${a.id.kind}/${a.id.key} failed on a tell`, err);
  }

  /** After the handler: a spent reminder leaves the store, and the turn is counted. */
  private turnOver(a: Activation, item: Item, started: number): Promise<void> | undefined {
    if (item.reminder && !a.touchedReminders.has(item.reminder.name)) {
      // At-least-once: the reminder leaves the store only after its turn ran; a crash before that
      // fires it again after the restart.
      // A handler that threw has had its chance (the error went to onError): the reminder is spent.
      const r = item.reminder;
      return this.stores.reminders
        .remove(tenantOfKey(a.id.key), a.id.kind, a.id.key, r.name)
        .catch(() => {})
        .then(() => {
          this.reminderControl({
            c: 'reminderDone',
            r: { kind: a.id.kind, key: a.id.key, name: r.name },
            dueAt: r.dueAt,
          });
          this.turnCounted(a, started);
        });
    }
    this.turnCounted(a, started);
    return undefined;
  }

  private turnCounted(a: Activation, started: number): void {
    this.m.messagesProcessed++;
    a.lastActive = this.clock.now();
    const d = performance.now() - started;
    if (this.m.turnSamples.length < TURN_SAMPLES) this.m.turnSamples.push(d);
    else this.m.turnSamples[this.turnIdx++ % TURN_SAMPLES] = d;
  }

  private async deactivate(a: Activation): Promise<void> {
    a.deactivating = true;
    let done!: () => void;
    a.closing = new Promise<void>((r) => (done = r));
    for (const t of a.timers.values()) this.clock.clearTimeout(t.handle);
    a.timers.clear();
    try {
      await a.actor.onDeactivate?.(a.ctx);
    } catch (err) {
      this.m.handlerErrors++;
      console.error(`onDeactivate of ${a.id.kind}/${a.id.key} failed`, err);
    }
    const leftover = a.mailbox.splice(0);
    this.remove(a);
    done();
    // Messages that arrived while deactivating go to a fresh activation (here, or on the node that
    // serves the shard now).
    for (const it of leftover) {
      if (this.clusterNodeId === undefined) this.enqueue(a.id, it);
      else this.route(this.envelopeOf(a.id, it));
    }
  }

  /** The envelope that brought a mailbox item (to send it on elsewhere). */
  private envelopeOf(to: ActorId, it: Item): Extract<Envelope, { k: 0 | 1 | 4 }> {
    if (it.ask) return { k: ENV.ASK, to, msg: it.msg, from: it.ask.from, id: it.ask.id };
    if (it.reminder)
      return { k: ENV.REMINDER, to, name: it.reminder.name, dueAt: it.reminder.dueAt, msg: it.msg };
    return { k: ENV.TELL, to, msg: it.msg };
  }

  /** Cluster mode on a worker: the host's current view of the shards this node serves. */
  setPlacement(view: PlacementView): void {
    if (!this.localShards) return;
    this.localShards = view.local;
    this.heldEpochs = view.epochs;
    this.leaseUntil = view.leaseUntil;
  }

  /** Cluster mode, host: which shards this node serves and holds now, for the workers. */
  placementSnapshot(): PlacementView {
    const local = new Uint8Array(this.shards);
    const epochs = new Float64Array(this.shards);
    const c = this.cluster;
    if (c)
      for (let s = 0; s < this.shards; s++) {
        if (c.placeOf(s) === 'local') local[s] = 1;
        epochs[s] = c.heldEpoch?.(s) ?? 0;
      }
    return { local, epochs, leaseUntil: c?.leaseDeadline?.() ?? 0 };
  }

  /** Cluster mode: the epoch this node holds a shard under now (undefined: not held, lease lapsed). */
  private heldEpoch(shard: number): number | undefined {
    if (this.cluster) return this.cluster.heldEpoch ? this.cluster.heldEpoch(shard) : 0;
    if (!this.heldEpochs || performance.timeOrigin + performance.now() >= this.leaseUntil) return undefined;
    return this.heldEpochs[shard] || undefined;
  }

  /**
   * Fencing: an activation reaches the stores only while this node still holds its shard under the
   * epoch it was activated with. A turn that resumes after the node lost the shard (a pause past the
   * lease, a takeover) fails with SB_ERR_NODE_UNAVAILABLE instead of writing as a stale owner.
   */
  private fence(a: Activation): void {
    if (a.shard === undefined) return;
    const e = this.heldEpoch(a.shard);
    if (e === undefined || e !== a.epoch) {
      this.m.fencedRefusals++;
      throw new SbError('SB_ERR_NODE_UNAVAILABLE', `this node no longer holds shard ${a.shard}`);
    }
  }

  /**
   * Cluster mode: every endpoint on `node` is gone (it crashed, left, or restarted as a new
   * incarnation: the sockets it served are closed, and its endpoint names may be reused). Tells
   * still held for it are dropped, and every active actor that keeps endpoints is told, ahead of
   * its mailbox, to forget that node's ({@link Actor.onEndpointsGone}).
   */
  endpointsGone(node: string): void {
    const h = this.heldForNode.get(node);
    if (h) {
      this.heldForNode.delete(node);
      this.drop('held', h.envs.length);
    }
    for (const a of this.actors.values()) {
      if (a.deactivating || !a.actor.onEndpointsGone) continue;
      a.sys.push({ msg: node, sys: 'endpointsGone' });
      if (!a.busy) void this.run(a);
    }
  }

  private remove(a: Activation): void {
    const k = `${a.id.kind}\u0000${a.id.key}`;
    if (this.actors.get(k) === a) this.actors.delete(k);
    this.m.activeActors--;
    this.m.deactivations++;
  }

  private requestDeactivation(a: Activation): void {
    if (a.deactivating || a.sys.some((i) => i.sys === 'deactivate')) return;
    a.sys.push({ msg: undefined, sys: 'deactivate' });
    if (!a.busy) void this.run(a);
  }

  private scheduleSweep(): void {
    const every = 1000;
    this.sweepHandle = this.clock.setTimeout(() => {
      if (this.closed) return;
      const now = this.clock.now();
      for (const a of this.actors.values()) {
        if (!a.busy && a.mailbox.length === 0 && now - a.lastActive >= (a.def.idleMs ?? DEFAULTS.idleMs)) {
          this.requestDeactivation(a);
        }
      }
      this.scheduleSweep();
    }, every);
  }

  // ------------------------------------------------------------------ context

  private contextFor(a: Activation): ActorContext {
    // The context outlives this call and is handed to actor code: bind the node once.
    const node = this as ThreadNode;
    const tenant = tenantOfKey(a.id.key);
    const self = a.id;
    // Cluster mode: every store call of this activation is fenced (see fence()).
    const stores = a.shard === undefined ? node.stores : fencedStores(node.stores, () => node.fence(a));
    const setTimer = (name: string, ms: number, msg: unknown, interval: boolean): void => {
      const old = a.timers.get(name);
      if (old) node.clock.clearTimeout(old.handle);
      const fire = (): void => {
        if (a.deactivating) return;
        if (interval) a.timers.set(name, { handle: node.clock.setTimeout(fire, ms), interval });
        else a.timers.delete(name);
        node.enqueue(self, { msg });
      };
      a.timers.set(name, { handle: node.clock.setTimeout(fire, ms), interval });
    };
    return {
      self,
      thread: node.thread,
      clock: node.clock,
      stores,
      tell: (to, msg) => node.tell(to, msg),
      ask: <R>(to: ActorId, msg: unknown, opts?: AskOptions) => node.ask<R>(to, msg, opts),
      setTimer: (name, ms, msg) => setTimer(name, ms, msg, false),
      setInterval: (name, ms, msg) => setTimer(name, Math.max(1, ms), msg, true),
      cancelTimer: (name) => {
        const t = a.timers.get(name);
        if (t) node.clock.clearTimeout(t.handle);
        a.timers.delete(name);
      },
      async setReminder(name, dueAt, msg) {
        a.touchedReminders.add(name);
        await stores.reminders.upsert({ tenant, kind: self.kind, key: self.key, name, dueAt, msg });
        node.reminderControl({ c: 'reminderSet', r: { kind: self.kind, key: self.key, name }, dueAt, msg });
      },
      async cancelReminder(name) {
        a.touchedReminders.add(name);
        await stores.reminders.remove(tenant, self.kind, self.key, name);
        node.reminderControl({ c: 'reminderCancel', r: { kind: self.kind, key: self.key, name } });
      },
      loadState: <S>() => stores.state.get<S>(tenant, self.kind, self.key),
      saveState: <S>(state: S) => stores.state.put(tenant, self.kind, self.key, state),
      deactivate: () => node.requestDeactivation(a),
    };
  }

  // ------------------------------------------------------------------ lifecycle and metrics

  metrics(): ThreadMetrics {
    return { ...this.m, turnSamples: [...this.m.turnSamples] };
  }

  /** Stops accepting messages, lets running turns finish, deactivates every actor. */
  async drain(): Promise<void> {
    // Let batches produced so far reach their threads first.
    this.flush();
    const all = [...this.actors.values()];
    await Promise.all(
      all.map(
        (a) =>
          new Promise<void>((resolve) => {
            const wait = (): void => {
              if (!a.busy) {
                a.busy = true;
                void this.deactivate(a).then(resolve, resolve);
              } else setTimeout(wait, 5);
            };
            wait();
          }),
      ),
    );
    this.closed = true;
    this.clock.clearTimeout(this.sweepHandle);
    this.clock.clearTimeout(this.askSweep);
    for (const [id, p] of this.pending) {
      p.reject(new SbError('SB_ERR_SHUTTING_DOWN'));
      this.pending.delete(id);
    }
    this.flush();
  }
}

/** Zeroed counters of a thread (also stands in for a worker that did not answer a metrics request). */
export function emptyMetrics(thread: number): ThreadMetrics {
  return {
    thread,
    activations: 0,
    activeActors: 0,
    deactivations: 0,
    messagesProcessed: 0,
    envelopesSent: 0,
    batchesSent: 0,
    mailboxDepthMax: 0,
    handlerErrors: 0,
    dropped: { hops: 0, held: 0, link: 0, endpoint: 0, mailbox: 0, kind: 0 },
    fencedRefusals: 0,
    remindersFired: 0,
    turnSamples: [],
  };
}

export function summarize(all: ThreadMetrics[], elapsedSec: number): MetricsSnapshot {
  const sum = (f: (m: ThreadMetrics) => number): number => all.reduce((s, m) => s + f(m), 0);
  const samples = all.flatMap((m) => m.turnSamples).sort((a, b) => a - b);
  const p99 = samples.length ? samples[Math.min(samples.length - 1, Math.floor(samples.length * 0.99))]! : 0;
  const envelopesSent = sum((m) => m.envelopesSent);
  return {
    activations: sum((m) => m.activations),
    activeActors: sum((m) => m.activeActors),
    deactivations: sum((m) => m.deactivations),
    messagesProcessed: sum((m) => m.messagesProcessed),
    envelopesSent,
    envelopesPerSecond: elapsedSec > 0 ? envelopesSent / elapsedSec : 0,
    batchesSent: sum((m) => m.batchesSent),
    mailboxDepthMax: Math.max(0, ...all.map((m) => m.mailboxDepthMax)),
    turnTimeMsP99: p99,
    handlerErrors: sum((m) => m.handlerErrors),
    droppedTells: Object.fromEntries(DROP_REASONS.map((r) => [r, sum((m) => m.dropped[r])])) as Record<
      DropReason,
      number
    >,
    fencedRefusals: sum((m) => m.fencedRefusals),
    remindersFired: sum((m) => m.remindersFired),
    perThread: all.map((m) => ({
      thread: m.thread,
      activeActors: m.activeActors,
      messagesProcessed: m.messagesProcessed,
      mailboxDepthMax: m.mailboxDepthMax,
    })),
  };
}
