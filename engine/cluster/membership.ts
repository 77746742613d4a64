/**
 * Cluster membership and shard ownership in Redis.
 *
 * - Every node holds a **lease**: `<prefix>node:<id>` = its incarnation and address, with a TTL
 *   (`leaseMs`), renewed every `heartbeatMs`. A node whose key expired is dead to the others.
 * - **Placement**: each shard's owner is the rendezvous-hash winner among the live nodes.
 * - **Claims with fencing epochs**: `<prefix>shard:<n>` = {owner, epoch}. A node claims a shard it
 *   wins only when the current holder released it or no longer holds a lease; every claim increments
 *   the shard's epoch. The epoch travels with every envelope and write for that shard, and a write
 *   with an older epoch is refused, so a node that was paused past its lease cannot act as owner
 *   after resuming.
 * - **Local lease check**: a node serves a shard only while its own lease is valid by its local
 *   monotonic clock, counted from *before* the renewal request (minus `safetyMs`): it stops serving
 *   before Redis lets the lease expire, hence before anyone else can claim its shards.
 *
 * Redis restarts lose the keys: nodes notice the missing lease at the next heartbeat, register
 * again (new incarnation) and reclaim by placement with epochs that keep growing (the epoch floor is
 * kept per node and re-applied), while connected sessions keep being served by their current owners
 * within the lease.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { ownerOf } from './placement.ts';

export interface MembershipOptions {
  redisUrl: string;
  nodeId: string;
  /** host:port other nodes dial for the cluster transport. */
  address: string;
  shards: number;
  /** Key prefix (one cluster per prefix). Default `sb:`. */
  prefix?: string;
  /** Lease length, ms (default 3000). */
  leaseMs?: number;
  /** Renewal period, ms (default 1000). */
  heartbeatMs?: number;
  /** The local lease ends this long before Redis's, ms (default 300). */
  safetyMs?: number;
  /** Monotonic clock, ms (default performance.now). */
  now?: () => number;
  log?: (msg: string) => void;
}

export interface NodeInfo {
  id: string;
  address: string;
  incarnation: string;
  /**
   * The node's process (its first incarnation): kept when the node registers again after a lost
   * lease or a Redis restart (its sockets are still open), new when the process restarted.
   */
  boot: string;
}

export interface ShardClaim {
  shard: number;
  epoch: number;
}

export type OwnershipChange =
  | { kind: 'acquired'; shard: number; epoch: number }
  | { kind: 'lost'; shard: number; reason: 'lease' | 'placement' | 'taken' };

// Claim: KEYS[1] shard hash; ARGV: prefix, my owner string (id/incarnation), my node key.
// Returns {status, epoch, owner}: 1 = already mine, 2 = claimed now, 0 = held by a live node, -1 = my lease is gone.
const CLAIM = `
if redis.call('EXISTS', ARGV[3]) == 0 then return {-1, 0, ''} end
local owner = redis.call('HGET', KEYS[1], 'owner')
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
local floor = tonumber(ARGV[4])
if owner == ARGV[2] then return {1, epoch, owner} end
if owner then
  local sep = string.find(owner, '/', 1, true)
  local oid = string.sub(owner, 1, sep - 1)
  local inc = string.sub(owner, sep + 1)
  local cur = redis.call('HGET', ARGV[1] .. 'node:' .. oid, 'incarnation')
  if cur == inc then return {0, epoch, owner} end
end
if floor > epoch then epoch = floor end
epoch = epoch + 1
redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'epoch', epoch)
return {2, epoch, ARGV[2]}
`;

// Release: only the holder releases; the epoch stays (the next claim increments it).
const RELEASE = `
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('HDEL', KEYS[1], 'owner') return 1 end
return 0
`;

// Renew: only this incarnation's lease is extended (a restarted node has another).
const RENEW = `
if redis.call('HGET', KEYS[1], 'incarnation') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

// Check that a shard is still held by this owner at this epoch (fenced writes).
const FENCE = `
local owner = redis.call('HGET', KEYS[1], 'owner')
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if owner == ARGV[1] and epoch == ARGV[2] then return 1 end
return 0
`;

/** Shards handed off at once (their actors persist in parallel; one Redis call each). */
const RELEASE_CONCURRENCY = 32;

export class Membership {
  readonly nodeId: string;
  incarnation = '';
  /** This process's first incarnation (see {@link NodeInfo.boot}). */
  private boot = '';
  private readonly redis: Redis;
  private readonly prefix: string;
  readonly leaseMs: number;
  private readonly heartbeatMs: number;
  private readonly safetyMs: number;
  private readonly now: () => number;
  private readonly log: (msg: string) => void;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Local end of the lease (monotonic ms); nothing is served past it. */
  private leaseUntil = 0;
  private readonly owned = new Map<number, number>();
  /** Highest epoch seen per shard: claims after a Redis restart start above it. */
  private readonly epochFloor = new Map<number, number>();
  private live: NodeInfo[] = [];
  private stopped = false;
  private draining = false;
  /** Shards being handed off now (actors persisting, then the claim released in Redis) → epoch. */
  private readonly releasing = new Map<number, number>();
  private readonly listeners = new Set<(c: OwnershipChange) => void | Promise<void>>();
  private readonly memberListeners = new Set<(nodes: NodeInfo[]) => void>();
  private readonly leaseListeners = new Set<() => void>();

  constructor(private readonly o: MembershipOptions) {
    this.nodeId = o.nodeId;
    this.prefix = o.prefix ?? 'sb:';
    this.leaseMs = o.leaseMs ?? 3000;
    this.heartbeatMs = o.heartbeatMs ?? 1000;
    this.safetyMs = o.safetyMs ?? 300;
    this.now = o.now ?? (() => performance.now());
    this.log = o.log ?? (() => {});
    if (this.heartbeatMs * 2 >= this.leaseMs)
      throw new Error('heartbeatMs must be less than half of leaseMs');
    this.redis = new Redis(o.redisUrl, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      // A command never hangs a heartbeat: it fails, and the lease check decides.
      commandTimeout: Math.max(200, Math.floor(this.leaseMs / 3)),
      retryStrategy: (n) => Math.min(100 * n, 1000),
    });
    this.redis.on('error', () => {});
  }

  private k(s: string): string {
    return this.prefix + s;
  }

  /** Registers (new incarnation), then keeps the lease and the claims current until stop(). */
  async start(): Promise<void> {
    await this.redis.connect();
    await this.register();
    await this.tick();
  }

  /** Ownership changes. For a shard handed to another node, the claim is released in Redis only
   * after every listener's promise settled (its actors persisted and stopped). */
  onOwnership(f: (c: OwnershipChange) => void | Promise<void>): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** Called after every renewal of this node's lease (its end moved on). */
  onLease(f: () => void): () => void {
    this.leaseListeners.add(f);
    return () => this.leaseListeners.delete(f);
  }

  onMembers(f: (nodes: NodeInfo[]) => void): () => void {
    this.memberListeners.add(f);
    return () => this.memberListeners.delete(f);
  }

  /** True while this node's lease is valid by its own clock. */
  leaseValid(): boolean {
    return !this.stopped && this.now() < this.leaseUntil;
  }

  /** Epoch under which this node serves the shard now, or undefined (not owner, or lease lapsed). */
  epochOf(shard: number): number | undefined {
    if (!this.leaseValid()) {
      if (this.owned.size > 0) this.loseAll('lease');
      return undefined;
    }
    return this.owned.get(shard);
  }

  /**
   * Epoch under which this node holds the shard: owned, or being handed off (its actors persist
   * before the claim is released). Undefined when not held or when the lease lapsed locally.
   */
  heldEpoch(shard: number): number | undefined {
    const e = this.epochOf(shard);
    if (e !== undefined || !this.leaseValid()) return e;
    return this.releasing.get(shard);
  }

  /** Milliseconds left of this node's lease by its own clock (0 when it lapsed or stopped). */
  leaseRemainingMs(): number {
    return this.stopped ? 0 : Math.max(0, this.leaseUntil - this.now());
  }

  ownedShards(): ShardClaim[] {
    return [...this.owned].map(([shard, epoch]) => ({ shard, epoch })).sort((a, b) => a.shard - b.shard);
  }

  members(): NodeInfo[] {
    return [...this.live];
  }

  /**
   * The placement owner of a shard among the live nodes (a draining node owns nothing). Asked for
   * every envelope that leaves this node: computed once per membership view, then looked up.
   */
  placementOwner(shard: number): string | undefined {
    if (!this.placement) {
      const ids = this.live.map((n) => n.id).filter((id) => !this.draining || id !== this.nodeId);
      this.placement = Array.from({ length: this.o.shards }, (_, s) => ownerOf(s, ids));
    }
    return this.placement[shard];
  }
  /** Owner per shard for the current view; dropped whenever the view or `draining` changes. */
  private placement: Array<string | undefined> | undefined;

  /** True once drain() started. */
  leaving(): boolean {
    return this.draining;
  }

  /** Fenced check for a write: this node still holds the shard at this epoch in Redis. */
  async stillOwner(shard: number, epoch: number): Promise<boolean> {
    if (!this.leaseValid()) return false;
    const r = await this.redis.eval(FENCE, 1, this.k(`shard:${shard}`), this.owner(), String(epoch));
    return r === 1;
  }

  /** Graceful leave: stop claiming, release every shard (after `beforeRelease`), drop the lease. */
  async drain(beforeRelease?: (shard: number) => Promise<void>): Promise<void> {
    this.draining = true;
    this.placement = undefined;
    await this.redis.srem(this.k('members'), this.nodeId).catch(() => 0);
    await this.redis.hset(this.k(`node:${this.nodeId}`), 'draining', '1').catch(() => 0);
    await this.releaseAll(
      this.ownedShards().map((c) => c.shard),
      beforeRelease,
    );
    await this.stop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.redis.del(this.k(`node:${this.nodeId}`)).catch(() => 0);
    this.redis.disconnect();
  }

  /** For tests: ends the heartbeat without touching Redis (the lease then runs out by itself). */
  freeze(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.redis.disconnect();
  }

  private owner(): string {
    return `${this.nodeId}/${this.incarnation}`;
  }

  private async register(): Promise<void> {
    this.incarnation = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
    this.boot ||= this.incarnation;
    const t0 = this.now();
    const key = this.k(`node:${this.nodeId}`);
    await this.redis
      .multi()
      .del(key)
      .hset(key, 'incarnation', this.incarnation, 'address', this.o.address, 'boot', this.boot)
      .pexpire(key, this.leaseMs)
      .sadd(this.k('members'), this.nodeId)
      .exec();
    this.leaseUntil = t0 + this.leaseMs - this.safetyMs;
    this.log(`registered ${this.nodeId} incarnation ${this.incarnation}`);
  }

  private async renew(): Promise<boolean> {
    const t0 = this.now();
    const ok = await this.redis.eval(
      RENEW,
      1,
      this.k(`node:${this.nodeId}`),
      this.incarnation,
      String(this.leaseMs),
    );
    if (ok === 1) this.leaseUntil = t0 + this.leaseMs - this.safetyMs;
    return ok === 1;
  }

  private async readMembers(): Promise<NodeInfo[]> {
    const ids = (await this.redis.smembers(this.k('members'))).sort();
    const out: NodeInfo[] = [];
    const gone: string[] = [];
    const rows = await Promise.all(ids.map((id) => this.redis.hgetall(this.k(`node:${id}`))));
    ids.forEach((id, i) => {
      const r = rows[i]!;
      if (r['incarnation'] && r['draining'] !== '1')
        out.push({
          id,
          address: r['address'] ?? '',
          incarnation: r['incarnation'],
          boot: r['boot'] ?? r['incarnation'],
        });
      else if (!r['incarnation']) gone.push(id);
    });
    if (gone.length) await this.redis.srem(this.k('members'), ...gone);
    return out;
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      // A lease that lapsed locally (paused process, slow Redis) voids every claim first.
      if (!this.leaseValid() && this.owned.size > 0) this.loseAll('lease');
      if (!(await this.renew())) {
        if (this.owned.size > 0) this.loseAll('lease');
        await this.register();
      }
      for (const f of this.leaseListeners) f();
      const nodes = await this.readMembers();
      if (
        nodes.map((n) => n.id + n.incarnation).join() !== this.live.map((n) => n.id + n.incarnation).join()
      ) {
        this.live = nodes;
        this.placement = undefined;
        for (const f of this.memberListeners) f(nodes);
      }
      // Claims are one round trip; hand-offs run beside the heartbeat (a slow hand-off must not
      // delay the next renewal: a lapsed lease would drop every shard this node holds).
      if (!this.draining) await this.reconcile();
    } catch (err) {
      this.log(`membership: ${err instanceof Error ? err.message : String(err)}`);
      if (!this.leaseValid() && this.owned.size > 0) this.loseAll('lease');
    } finally {
      if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.heartbeatMs);
    }
  }

  /** Claims the shards placement gives this node (one pipelined round trip); releases the others. */
  private async reconcile(): Promise<void> {
    if (!this.live.some((n) => n.id === this.nodeId)) return;
    const mine = this.owner();
    const nodeKey = this.k(`node:${this.nodeId}`);
    const wanted: number[] = [];
    const leaving: number[] = [];
    for (let s = 0; s < this.o.shards; s++) {
      // A shard still being handed off is claimed again only once its release is through.
      if (this.placementOwner(s) === this.nodeId) {
        if (!this.releasing.has(s)) wanted.push(s);
      } else if (this.owned.has(s)) leaving.push(s);
    }
    if (leaving.length > 0)
      void this.releaseAll(leaving).catch((err: unknown) =>
        this.log(`membership: hand-off failed: ${err instanceof Error ? err.message : String(err)}`),
      );
    if (wanted.length === 0) return;
    const p = this.redis.pipeline();
    for (const s of wanted)
      p.eval(CLAIM, 1, this.k(`shard:${s}`), this.prefix, mine, nodeKey, String(this.epochFloor.get(s) ?? 0));
    const results = (await p.exec()) ?? [];
    const acquired: ShardClaim[] = [];
    for (let i = 0; i < wanted.length; i++) {
      const s = wanted[i]!;
      const [err, r] = results[i] ?? [new Error('no reply'), undefined];
      if (err) continue;
      const [status, epoch] = r as [number, number, string];
      if (status === -1) {
        this.loseAll('lease');
        return;
      }
      if (status === 1 || status === 2) {
        this.epochFloor.set(s, epoch);
        const held = this.owned.get(s);
        if (held !== epoch) {
          // Held under another epoch (its claim vanished from Redis and was made again): the
          // actors running under the old epoch stop first, then the shard serves under the new one.
          if (held !== undefined) {
            this.owned.delete(s);
            for (const f of this.listeners) f({ kind: 'lost', shard: s, reason: 'taken' });
          }
          this.owned.set(s, epoch);
          acquired.push({ shard: s, epoch });
        }
      } else if (this.owned.has(s)) {
        this.owned.delete(s);
        for (const f of this.listeners) f({ kind: 'lost', shard: s, reason: 'taken' });
      }
    }
    if (!this.leaseValid()) return;
    for (const a of acquired) for (const f of this.listeners) f({ kind: 'acquired', ...a });
  }

  /** Hands shards off, {@link RELEASE_CONCURRENCY} at a time (each: listeners, then the claim). */
  private async releaseAll(shards: number[], before?: (shard: number) => Promise<void>): Promise<void> {
    const todo = shards.filter((s) => this.owned.has(s) && !this.releasing.has(s));
    for (const s of todo) this.releasing.set(s, this.owned.get(s)!);
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < todo.length) {
        const shard = todo[next++]!;
        try {
          if (before) await before(shard);
          await this.release(shard, 'placement');
        } finally {
          this.releasing.delete(shard);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(RELEASE_CONCURRENCY, todo.length) }, lane));
  }

  private async release(shard: number, reason: 'placement'): Promise<void> {
    this.owned.delete(shard);
    await Promise.allSettled([...this.listeners].map((f) => f({ kind: 'lost', shard, reason })));
    await this.redis.eval(RELEASE, 1, this.k(`shard:${shard}`), this.owner()).catch(() => 0);
  }

  private loseAll(reason: 'lease'): void {
    const lost = [...this.owned.keys()];
    this.owned.clear();
    for (const s of lost) for (const f of this.listeners) f({ kind: 'lost', shard: s, reason });
  }
}
