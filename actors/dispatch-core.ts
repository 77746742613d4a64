/**
 * The assignment decisions of one tenant, as plain data and pure functions (no actors, no I/O),
 * so that their properties — never two agents for one session, never above a cap, fairness — are
 * tested directly under randomized event sequences. The DispatchActor wraps one instance.
 *
 * Queues: one per skill group, ordered by priority (transfers first) then arrival time.
 * Eligibility: an agent serves the groups it is a member of; agents in no group serve the default
 * group `ungrouped` (F4 "default rule to ungrouped agents"). Only `online` agents with a live socket
 * and free capacity receive new sessions.
 * Fairness: among eligible agents the one with the fewest active sessions wins, then the one idle
 * longest (oldest last assignment), then the agent id (deterministic).
 * When capacity frees up, the agent takes the most urgent head among all the queues it serves.
 */
import type { AgentStatus } from '../protos/ws-v1.ts';

export const UNGROUPED = 'ungrouped';

export interface QueueItem {
  sessionId: string;
  groupId: string;
  /** Arrival time in the queue (ms epoch). */
  at: number;
  /** 0 = new arrival; higher is served first (transfers use 1). */
  priority: number;
}

export interface AgentInfo {
  agentId: string;
  name: string;
  status: AgentStatus;
  connected: boolean;
  /** Effective cap (member cap bounded by the tenant's limit). */
  max: number;
  groups: string[];
}

interface AgentSlot extends AgentInfo {
  active: Set<string>;
  /** Assigned here but not yet confirmed by the agent's own list (messages may cross). */
  pending: Set<string>;
  lastAssignedAt: number;
}

export interface Assignment {
  sessionId: string;
  agentId: string;
  agentName: string;
  groupId: string;
  queuedAt: number;
}

function before(a: QueueItem, b: QueueItem): boolean {
  return a.priority > b.priority || (a.priority === b.priority && a.at < b.at);
}

export class DispatchCore {
  private readonly queues = new Map<string, QueueItem[]>();
  private readonly queued = new Map<string, QueueItem>();
  private readonly agents = new Map<string, AgentSlot>();
  /** Session → agent holding it (assigned or reserved). */
  private readonly holder = new Map<string, string>();

  /** Adds a session to its group's queue; false when it is already queued or held by an agent. */
  enqueue(item: QueueItem): boolean {
    if (this.queued.has(item.sessionId) || this.holder.has(item.sessionId)) return false;
    let q = this.queues.get(item.groupId);
    if (!q) this.queues.set(item.groupId, (q = []));
    // Binary search for the insertion point: arrivals mostly append.
    let lo = 0;
    let hi = q.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(item, q[mid]!)) hi = mid;
      else lo = mid + 1;
    }
    q.splice(lo, 0, item);
    this.queued.set(item.sessionId, item);
    return true;
  }

  dequeue(sessionId: string): QueueItem | undefined {
    const item = this.queued.get(sessionId);
    if (!item) return undefined;
    this.queued.delete(sessionId);
    const q = this.queues.get(item.groupId)!;
    const i = q.indexOf(item);
    if (i >= 0) q.splice(i, 1);
    if (q.length === 0) this.queues.delete(item.groupId);
    return item;
  }

  isQueued(sessionId: string): boolean {
    return this.queued.has(sessionId);
  }

  holderOf(sessionId: string): string | undefined {
    return this.holder.get(sessionId);
  }

  /**
   * Updates what is known of an agent. `activeSessions`, when given, is the agent's own list and
   * is authoritative, except for sessions assigned here that the agent has not confirmed yet.
   */
  upsertAgent(info: AgentInfo, activeSessions?: readonly string[]): void {
    let slot = this.agents.get(info.agentId);
    if (!slot) {
      slot = { ...info, groups: [...info.groups], active: new Set(), pending: new Set(), lastAssignedAt: 0 };
      this.agents.set(info.agentId, slot);
    } else {
      Object.assign(slot, info, { groups: [...info.groups] });
    }
    if (!activeSessions) return;
    const listed = new Set(activeSessions);
    for (const s of slot.active) {
      if (listed.has(s)) slot.pending.delete(s);
      else if (!slot.pending.has(s)) {
        slot.active.delete(s);
        if (this.holder.get(s) === info.agentId) this.holder.delete(s);
      }
    }
    for (const s of listed) {
      const other = this.holder.get(s);
      if (other !== undefined && other !== info.agentId) continue;
      this.dequeue(s);
      slot.active.add(s);
      this.holder.set(s, info.agentId);
    }
  }

  agent(agentId: string): Readonly<AgentInfo> | undefined {
    return this.agents.get(agentId);
  }

  /** A session ended or left the agent: frees the capacity. */
  release(agentId: string, sessionId: string): boolean {
    const slot = this.agents.get(agentId);
    if (this.holder.get(sessionId) === agentId) this.holder.delete(sessionId);
    slot?.pending.delete(sessionId);
    return slot ? slot.active.delete(sessionId) : false;
  }

  private canTake(a: AgentSlot): boolean {
    return a.status === 'online' && a.connected && a.active.size < a.max;
  }

  private serves(a: AgentSlot, groupId: string): boolean {
    return a.groups.length === 0 ? groupId === UNGROUPED : a.groups.includes(groupId);
  }

  /**
   * Direct assignment to one agent (transfer accepted, proactive chat): checks status and cap.
   * `requireOnline: false` lets an agent who is busy/away but connected take a chat it chose itself.
   * `releaseFrom`: the agent currently holding the session (a transfer); it is released only when
   * the reservation succeeds.
   */
  reserve(
    agentId: string,
    sessionId: string,
    now: number,
    requireOnline = true,
    releaseFrom?: string,
  ): boolean {
    const a = this.agents.get(agentId);
    if (!a || !a.connected || a.active.size >= a.max) return false;
    if (requireOnline && a.status !== 'online') return false;
    const other = this.holder.get(sessionId);
    if (other !== undefined && other !== agentId) {
      if (other !== releaseFrom) return false;
      this.release(other, sessionId);
    }
    this.dequeue(sessionId);
    if (!a.active.has(sessionId)) a.pending.add(sessionId);
    a.active.add(sessionId);
    a.lastAssignedAt = now;
    this.holder.set(sessionId, agentId);
    return true;
  }

  private better(a: AgentSlot, b: AgentSlot | undefined): boolean {
    if (!b) return true;
    if (a.active.size !== b.active.size) return a.active.size < b.active.size;
    if (a.lastAssignedAt !== b.lastAssignedAt) return a.lastAssignedAt < b.lastAssignedAt;
    return a.agentId < b.agentId;
  }

  /** Assigns as many queued sessions as capacity allows, most urgent first. */
  assignAll(now: number): Assignment[] {
    const out: Assignment[] = [];
    if (this.queued.size === 0) return out;
    for (;;) {
      // The most urgent head whose group has an available agent.
      let bestItem: QueueItem | undefined;
      let bestAgent: AgentSlot | undefined;
      for (const [groupId, q] of this.queues) {
        const head = q[0]!;
        if (bestItem && !before(head, bestItem)) continue;
        let pick: AgentSlot | undefined;
        for (const a of this.agents.values()) {
          if (this.canTake(a) && this.serves(a, groupId) && this.better(a, pick)) pick = a;
        }
        if (pick) {
          bestItem = head;
          bestAgent = pick;
        }
      }
      if (!bestItem || !bestAgent) return out;
      this.dequeue(bestItem.sessionId);
      bestAgent.active.add(bestItem.sessionId);
      bestAgent.pending.add(bestItem.sessionId);
      bestAgent.lastAssignedAt = now;
      this.holder.set(bestItem.sessionId, bestAgent.agentId);
      out.push({
        sessionId: bestItem.sessionId,
        agentId: bestAgent.agentId,
        agentName: bestAgent.name,
        groupId: bestItem.groupId,
        queuedAt: bestItem.at,
      });
    }
  }

  /** 1-based position of every queued session within its group's queue. */
  positions(): Map<string, number> {
    const out = new Map<string, number>();
    for (const q of this.queues.values()) q.forEach((item, i) => out.set(item.sessionId, i + 1));
    return out;
  }

  queueItems(): QueueItem[] {
    return [...this.queues.values()].flat();
  }

  snapshot(): {
    queues: Record<string, string[]>;
    waiting: Record<string, Array<{ sessionId: string; since: number }>>;
    agents: Array<AgentInfo & { active: number; activeSessions: string[] }>;
  } {
    const queues: Record<string, string[]> = {};
    const waiting: Record<string, Array<{ sessionId: string; since: number }>> = {};
    for (const [g, q] of this.queues) {
      queues[g] = q.map((i) => i.sessionId);
      waiting[g] = q.map((i) => ({ sessionId: i.sessionId, since: i.at }));
    }
    return {
      queues,
      waiting,
      agents: [...this.agents.values()].map((a) => ({
        agentId: a.agentId,
        name: a.name,
        status: a.status,
        connected: a.connected,
        max: a.max,
        groups: [...a.groups],
        active: a.active.size,
        activeSessions: [...a.active],
      })),
    };
  }
}
