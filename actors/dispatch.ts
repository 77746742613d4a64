/**
 * Dispatcher: one per tenant. Holds the skill-group queues and every agent's availability and
 * makes all assignment decisions of the tenant in one place, one turn at a time — so a session can
 * never go to two agents and an agent never goes above its cap, whatever events race. The decisions
 * themselves live in {@link DispatchCore} (pure, property-tested).
 *
 * Triggers (F2, F3): a session arrives (`enqueue`), an agent frees capacity (`released`), an agent
 * comes online or changes cap/groups (`agentState`).
 *
 * Durability: each queued session has its own entry in the StateStore (kind `queued`), written
 * before the turn ends and removed when it leaves the queue; a restarted dispatcher reloads them.
 * Agent availability is not persisted: agents announce themselves when their sockets connect and
 * whenever their state changes. A dispatcher that activates (first use, after idle collection, or
 * on another node after its shard moved) asks every member of the tenant to announce itself again,
 * so agents connected all along stay assignable.
 *
 * Queue positions are pushed to waiting sessions when they change, coalesced over
 * {@link POSITION_FLUSH_MS} so a burst of assignments costs one update per waiting visitor.
 */
import type { Actor, ActorContext, ActorId } from '../engine/types.ts';
import { SbError } from '../protos/errors.ts';
import { Directory } from './directory.ts';
import { DispatchCore, type QueueItem } from './dispatch-core.ts';
import { splitKey, tkey } from './ids.ts';
import {
  KINDS,
  type AgentMsg,
  type DispatchMsg,
  type DispatchSnapshot,
  type SessionMsg,
} from './messages.ts';

export const POSITION_FLUSH_MS = 20;
const QUEUED_KIND = 'queued';

export class DispatchActor implements Actor {
  private readonly core = new DispatchCore();
  /** Position last told to each waiting session. */
  private published = new Map<string, number>();
  private flushPending = false;
  /** Time of the first queue change not yet published (the `changedAt` visitors receive). */
  private dirtySince = 0;
  /** Queued sessions with an entry in the store. */
  private readonly persisted = new Set<string>();
  private readonly tenantId: string;

  constructor(id: ActorId) {
    this.tenantId = splitKey(id.key).tenantId;
  }

  async onActivate(ctx: ActorContext): Promise<void> {
    const rows = await ctx.stores.state.list(this.tenantId, QUEUED_KIND, { limit: 1_000_000 });
    for (const r of rows) {
      this.core.enqueue(r.value as QueueItem);
      this.persisted.add(r.key);
    }
    if (rows.length > 0) this.schedulePublish(ctx);
    for (const m of await new Directory(ctx.stores.state).listMembers(this.tenantId))
      ctx.tell({ kind: KINDS.agent, key: tkey(this.tenantId, m.memberId) }, {
        t: 'announce',
      } satisfies AgentMsg);
  }

  async onMessage(raw: unknown, ctx: ActorContext): Promise<unknown> {
    const msg = raw as DispatchMsg;
    const now = ctx.clock.now();
    switch (msg.t) {
      case 'enqueue': {
        const item: QueueItem = {
          sessionId: msg.sessionId,
          groupId: msg.groupId,
          at: msg.at,
          priority: msg.priority ?? 0,
        };
        // A session that an agent already holds (a transfer back to the queue) is released first.
        if (msg.releaseFrom !== undefined) this.core.release(msg.releaseFrom, msg.sessionId);
        if (!this.core.enqueue(item)) {
          // Already waiting (a session re-activated): tell it its position again.
          this.published.delete(msg.sessionId);
          this.schedulePublish(ctx);
          return undefined;
        }
        // Assign first: a session served at once never touches the store here.
        await this.assign(ctx, now);
        if (this.core.isQueued(item.sessionId)) {
          this.persisted.add(item.sessionId);
          await ctx.stores.state.put(this.tenantId, QUEUED_KIND, item.sessionId, item);
        }
        this.schedulePublish(ctx);
        return undefined;
      }
      case 'dequeue':
        if (this.core.dequeue(msg.sessionId) && this.persisted.delete(msg.sessionId))
          await ctx.stores.state.delete(this.tenantId, QUEUED_KIND, msg.sessionId);
        break;
      case 'agentState':
        this.core.upsertAgent(
          {
            agentId: msg.agentId,
            name: msg.name,
            status: msg.status,
            connected: msg.connected,
            max: msg.maxConcurrent,
            groups: msg.groups ?? [],
          },
          msg.activeSessions,
        );
        break;
      case 'released':
        this.core.release(msg.agentId, msg.sessionId);
        break;
      case 'reserve': {
        const wasQueued = this.core.isQueued(msg.sessionId);
        const ok = this.core.reserve(
          msg.agentId,
          msg.sessionId,
          now,
          msg.requireOnline ?? true,
          msg.releaseFrom,
        );
        if (ok && wasQueued) {
          if (this.persisted.delete(msg.sessionId))
            await ctx.stores.state.delete(this.tenantId, QUEUED_KIND, msg.sessionId);
          this.schedulePublish(ctx);
        }
        if (!ok) return false;
        // Capacity freed by the release may serve the queue.
        if (msg.releaseFrom !== undefined) await this.assign(ctx, now);
        return true;
      }
      case 'refreshPosition':
        this.published.delete(msg.sessionId);
        this.schedulePublish(ctx);
        return undefined;
      case 'flushPositions':
        this.flushPending = false;
        this.publishPositions(ctx);
        return undefined;
      case 'snapshot':
        return this.snapshot();
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `dispatch: unknown message ${(msg as { t?: unknown }).t}`);
    }
    await this.assign(ctx, now);
    if (msg.t === 'dequeue') this.schedulePublish(ctx);
    return undefined;
  }

  private async assign(ctx: ActorContext, now: number): Promise<void> {
    const done = this.core.assignAll(now);
    if (done.length === 0) return;
    for (const a of done) {
      const m: SessionMsg = { t: 'assign', agentId: a.agentId, agentName: a.agentName, groupId: a.groupId };
      ctx.tell({ kind: KINDS.session, key: tkey(this.tenantId, a.sessionId) }, m);
    }
    // Only entries that were persisted (they waited beyond the turn that enqueued them).
    const waited = done.filter((a) => this.persisted.delete(a.sessionId));
    await Promise.all(waited.map((a) => ctx.stores.state.delete(this.tenantId, QUEUED_KIND, a.sessionId)));
    this.schedulePublish(ctx);
  }

  private schedulePublish(ctx: ActorContext): void {
    if (this.flushPending) return;
    this.flushPending = true;
    this.dirtySince = ctx.clock.now();
    ctx.setTimer('positions', POSITION_FLUSH_MS, { t: 'flushPositions' } satisfies DispatchMsg);
  }

  /** Tells each waiting session its position, only where it changed since last told. */
  private publishPositions(ctx: ActorContext): void {
    const now = this.core.positions();
    const changedAt = this.dirtySince;
    for (const [sessionId, position] of now) {
      if (this.published.get(sessionId) === position) continue;
      const m: SessionMsg = { t: 'queuePosition', position, changedAt };
      ctx.tell({ kind: KINDS.session, key: tkey(this.tenantId, sessionId) }, m);
    }
    this.published = now;
  }

  private snapshot(): DispatchSnapshot {
    const s = this.core.snapshot();
    return {
      queues: s.queues,
      waiting: s.waiting,
      queue: Object.values(s.queues).flat(),
      agents: s.agents,
    };
  }
}
