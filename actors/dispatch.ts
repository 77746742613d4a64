/**
 * Dispatcher: one per tenant. Holds the waiting queue and every agent's availability and makes
 * all assignment decisions of the tenant in one place, one at a time — so a session can never
 * go to two agents and an agent never goes above its cap, whatever events race.
 *
 * Fairness: among connected agents that are `online` and below their cap, the one with the fewest
 * active sessions wins; ties go to the one idle longest (oldest last assignment).
 * Routing seam: full routing rules will give every skill group its own queue here.
 */
import type { Actor, ActorContext, ActorId } from '../engine/types.ts';
import { SbError } from '../protos/errors.ts';
import type { AgentStatus } from '../protos/ws-v1.ts';
import { splitKey, tkey } from './ids.ts';
import { KINDS, type DispatchMsg, type DispatchSnapshot, type SessionMsg } from './messages.ts';

interface AgentSlot {
  name: string;
  status: AgentStatus;
  max: number;
  active: string[];
  lastAssignedAt: number;
}

interface DispatchState {
  queue: Array<{ sessionId: string; at: number }>;
  agents: Record<string, AgentSlot>;
}

/**
 * Only the queue is persisted. Agent availability is rebuilt from the agents themselves: each agent
 * actor announces status and open sessions when its sockets connect, which after a restart is the
 * only moment an agent becomes assignable again anyway.
 */
interface PersistedState {
  queue: Array<{ sessionId: string; at: number }>;
}

export class DispatchActor implements Actor {
  private st: DispatchState = { queue: [], agents: {} };
  /** Agents with at least one live socket; not persisted: after a restart agents announce themselves again. */
  private readonly connected = new Set<string>();
  /** Position last told to each waiting session. */
  private published = new Map<string, number>();
  private readonly tenantId: string;

  constructor(id: ActorId) {
    this.tenantId = splitKey(id.key).tenantId;
  }

  async onActivate(ctx: ActorContext): Promise<void> {
    const saved = await ctx.loadState<PersistedState>();
    if (saved) this.st.queue = saved.queue;
  }

  async onMessage(raw: unknown, ctx: ActorContext): Promise<unknown> {
    const msg = raw as DispatchMsg;
    switch (msg.t) {
      case 'enqueue':
        if (!this.st.queue.some((q) => q.sessionId === msg.sessionId) && !this.isActive(msg.sessionId)) {
          this.st.queue.push({ sessionId: msg.sessionId, at: msg.at });
        }
        break;
      case 'dequeue':
        this.st.queue = this.st.queue.filter((q) => q.sessionId !== msg.sessionId);
        break;
      case 'agentState': {
        const prev = this.st.agents[msg.agentId];
        this.st.agents[msg.agentId] = {
          name: msg.name,
          status: msg.status,
          max: msg.maxConcurrent,
          // The agent's own list is authoritative for sessions it knows; keep ones assigned since.
          active: [...new Set([...msg.activeSessions, ...(prev?.active ?? [])])],
          lastAssignedAt: prev?.lastAssignedAt ?? 0,
        };
        if (msg.connected) this.connected.add(msg.agentId);
        else this.connected.delete(msg.agentId);
        break;
      }
      case 'released': {
        const a = this.st.agents[msg.agentId];
        if (a) a.active = a.active.filter((s) => s !== msg.sessionId);
        break;
      }
      case 'refreshPosition':
        this.published.delete(msg.sessionId);
        this.publishPositions(ctx);
        return undefined;
      case 'snapshot':
        return this.snapshot();
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `dispatch: unknown message ${(msg as { t?: unknown }).t}`);
    }
    const before = this.st.queue.length;
    const head = this.st.queue[0]?.sessionId;
    this.assignWhilePossible(ctx);
    if (
      msg.t === 'enqueue' ||
      msg.t === 'dequeue' ||
      this.st.queue.length !== before ||
      this.st.queue[0]?.sessionId !== head
    ) {
      await ctx.saveState<PersistedState>({ queue: this.st.queue });
      this.publishPositions(ctx);
    }
    return undefined;
  }

  private isActive(sessionId: string): boolean {
    for (const a of Object.values(this.st.agents)) if (a.active.includes(sessionId)) return true;
    return false;
  }

  private pickAgent(): string | undefined {
    let best: string | undefined;
    let bestSlot: AgentSlot | undefined;
    for (const [id, a] of Object.entries(this.st.agents)) {
      if (a.status !== 'online' || !this.connected.has(id) || a.active.length >= a.max) continue;
      if (
        !bestSlot ||
        a.active.length < bestSlot.active.length ||
        (a.active.length === bestSlot.active.length && a.lastAssignedAt < bestSlot.lastAssignedAt)
      ) {
        best = id;
        bestSlot = a;
      }
    }
    return best;
  }

  private assignWhilePossible(ctx: ActorContext): void {
    while (this.st.queue.length > 0) {
      const agentId = this.pickAgent();
      if (agentId === undefined) return;
      const next = this.st.queue.shift()!;
      const slot = this.st.agents[agentId]!;
      slot.active.push(next.sessionId);
      slot.lastAssignedAt = ctx.clock.now();
      const m: SessionMsg = { t: 'assign', agentId, agentName: slot.name };
      ctx.tell({ kind: KINDS.session, key: tkey(this.tenantId, next.sessionId) }, m);
    }
  }

  /** Tells each waiting session its position, only where it changed since last told. */
  private publishPositions(ctx: ActorContext): void {
    const now = new Map<string, number>();
    this.st.queue.forEach((q, i) => {
      const position = i + 1;
      now.set(q.sessionId, position);
      if (this.published.get(q.sessionId) === position) return;
      const m: SessionMsg = { t: 'queuePosition', position };
      ctx.tell({ kind: KINDS.session, key: tkey(this.tenantId, q.sessionId) }, m);
    });
    this.published = now;
  }

  private snapshot(): DispatchSnapshot {
    return {
      queue: this.st.queue.map((q) => q.sessionId),
      agents: Object.entries(this.st.agents).map(([agentId, a]) => ({
        agentId,
        status: a.status,
        connected: this.connected.has(agentId),
        active: a.active.length,
        max: a.max,
      })),
    };
  }
}
