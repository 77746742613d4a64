import { describe, expect, it } from 'vitest';
import { AGENT_STATUSES, type AgentStatus } from '../protos/ws-v1.ts';
import { DispatchCore, UNGROUPED, type AgentInfo } from './dispatch-core.ts';

/** Small seeded PRNG (mulberry32) so a failing run can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const GROUPS = ['sales', 'support', 'vip', UNGROUPED];

function serves(a: AgentInfo, g: string): boolean {
  return a.groups.length === 0 ? g === UNGROUPED : a.groups.includes(g);
}

describe('DispatchCore', () => {
  it('serves the oldest session of a group first, transfers ahead of arrivals', () => {
    const d = new DispatchCore();
    d.enqueue({ sessionId: 's1', groupId: 'g', at: 10, priority: 0 });
    d.enqueue({ sessionId: 's2', groupId: 'g', at: 5, priority: 0 });
    d.enqueue({ sessionId: 's3', groupId: 'g', at: 20, priority: 1 });
    expect([...d.positions()]).toEqual([
      ['s3', 1],
      ['s2', 2],
      ['s1', 3],
    ]);
    d.upsertAgent({ agentId: 'a', name: 'A', status: 'online', connected: true, max: 2, groups: ['g'] }, []);
    expect(d.assignAll(100).map((x) => x.sessionId)).toEqual(['s3', 's2']);
    expect(d.positions().get('s1')).toBe(1);
  });

  it('picks the agent with the fewest active sessions, then the one idle longest', () => {
    const d = new DispatchCore();
    for (const id of ['a', 'b', 'c'])
      d.upsertAgent({ agentId: id, name: id, status: 'online', connected: true, max: 5, groups: [] }, []);
    for (let i = 0; i < 6; i++) d.enqueue({ sessionId: `s${i}`, groupId: UNGROUPED, at: i, priority: 0 });
    const got = d.assignAll(1000).map((x) => x.agentId);
    // Round robin: equal loads, ties broken by oldest last assignment.
    expect(got).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
  });

  it('never assigns to agents that are not online, not connected, at cap, or outside the group', () => {
    const d = new DispatchCore();
    const statuses: AgentStatus[] = ['busy', 'away', 'invisible', 'offline'];
    statuses.forEach((status, i) =>
      d.upsertAgent({ agentId: `x${i}`, name: 'x', status, connected: true, max: 5, groups: ['g'] }, []),
    );
    d.upsertAgent(
      { agentId: 'gone', name: 'x', status: 'online', connected: false, max: 5, groups: ['g'] },
      [],
    );
    d.upsertAgent(
      { agentId: 'full', name: 'x', status: 'online', connected: true, max: 0, groups: ['g'] },
      [],
    );
    d.upsertAgent(
      { agentId: 'other', name: 'x', status: 'online', connected: true, max: 5, groups: ['h'] },
      [],
    );
    d.enqueue({ sessionId: 's', groupId: 'g', at: 1, priority: 0 });
    expect(d.assignAll(2)).toEqual([]);
    d.upsertAgent({ agentId: 'x0', name: 'x', status: 'online', connected: true, max: 5, groups: ['g'] });
    expect(d.assignAll(3).map((a) => a.agentId)).toEqual(['x0']);
  });

  it('transfer reservation releases the old agent only when the new one can take it', () => {
    const d = new DispatchCore();
    d.upsertAgent({ agentId: 'a', name: 'a', status: 'online', connected: true, max: 1, groups: [] }, []);
    d.upsertAgent({ agentId: 'b', name: 'b', status: 'busy', connected: true, max: 1, groups: [] }, [
      'other',
    ]);
    d.enqueue({ sessionId: 's', groupId: UNGROUPED, at: 1, priority: 0 });
    expect(d.assignAll(1)).toHaveLength(1);
    expect(d.reserve('b', 's', 2, false, 'a')).toBe(false); // b is at its cap
    expect(d.holderOf('s')).toBe('a');
    d.release('b', 'other');
    expect(d.reserve('b', 's', 3, false, 'a')).toBe(true);
    expect(d.holderOf('s')).toBe('b');
    expect(d.snapshot().agents.find((x) => x.agentId === 'a')!.active).toBe(0);
  });

  // Property test: random arrivals, closures, status/cap/group changes, transfers and reconnects.
  for (const seed of [1, 7, 42, 1234, 99991, 31337]) {
    it(`keeps its invariants under random concurrent events (seed ${seed})`, () => {
      const rnd = prng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
      const d = new DispatchCore();
      const agents = new Map<string, AgentInfo>();
      const everAssigned = new Map<string, string>();
      const closed = new Set<string>();
      const stale = new Map<string, string[]>();
      let now = 0;
      let nextSession = 0;
      const active = (): Map<string, string[]> =>
        new Map(d.snapshot().agents.map((a) => [a.agentId, a.activeSessions]));

      const checkAssignments = (
        before: Map<string, string[]>,
        done: ReturnType<DispatchCore['assignAll']>,
      ): void => {
        const load = new Map([...before].map(([k, v]) => [k, v.length]));
        for (const a of done) {
          const info = agents.get(a.agentId)!;
          // Eligible and below cap at the moment of the assignment.
          expect(info.status).toBe('online');
          expect(info.connected).toBe(true);
          expect(serves(info, a.groupId)).toBe(true);
          expect(load.get(a.agentId)!).toBeLessThan(info.max);
          // Fair: no eligible agent had fewer active sessions.
          for (const [id, other] of agents) {
            if (
              other.status === 'online' &&
              other.connected &&
              serves(other, a.groupId) &&
              load.get(id)! < other.max
            )
              expect(load.get(id)!).toBeGreaterThanOrEqual(load.get(a.agentId)!);
          }
          load.set(a.agentId, load.get(a.agentId)! + 1);
          // Exactly once: a session is never assigned while another agent holds it.
          expect(closed.has(a.sessionId)).toBe(false);
          everAssigned.set(a.sessionId, a.agentId);
        }
      };

      const checkState = (): void => {
        const snap = d.snapshot();
        const holders = new Map<string, string>();
        for (const a of snap.agents) {
          for (const s of a.activeSessions) {
            expect(holders.has(s), `session ${s} held twice`).toBe(false);
            holders.set(s, a.agentId);
          }
        }
        const queued = new Set(Object.values(snap.queues).flat());
        for (const s of queued) expect(holders.has(s), `session ${s} queued and held`).toBe(false);
        // Work-conserving: no queued group has an available eligible agent after assignAll.
        for (const [g, q] of Object.entries(snap.queues)) {
          if (q.length === 0) continue;
          for (const a of snap.agents) {
            const avail = a.status === 'online' && a.connected && a.active < a.max;
            expect(avail && serves(a, g), `agent ${a.agentId} idle while ${g} waits`).toBe(false);
          }
        }
      };

      for (let step = 0; step < 1500; step++) {
        now += Math.floor(rnd() * 50);
        const r = rnd();
        const before = active();
        if (r < 0.3) {
          const sid = `s${nextSession++}`;
          d.enqueue({ sessionId: sid, groupId: pick(GROUPS), at: now, priority: rnd() < 0.1 ? 1 : 0 });
        } else if (r < 0.55) {
          // Close a held session (the session actor releases it).
          const held = [...before].flatMap(([a, ss]) => ss.map((s) => [a, s] as const));
          if (held.length > 0) {
            const [a, s] = pick(held);
            d.release(a, s);
            closed.add(s);
          }
        } else if (r < 0.6) {
          const queued = d.queueItems();
          if (queued.length > 0) {
            const s = pick(queued).sessionId;
            d.dequeue(s);
            closed.add(s);
          }
        } else if (r < 0.85) {
          const id = `a${Math.floor(rnd() * 12)}`;
          const prev = agents.get(id);
          const info: AgentInfo = {
            agentId: id,
            name: id,
            status: rnd() < 0.6 ? 'online' : pick(AGENT_STATUSES),
            connected: rnd() < 0.85,
            max: Math.floor(rnd() * 4),
            groups: rnd() < 0.3 ? [] : [pick(GROUPS), pick(GROUPS)].filter((g) => g !== UNGROUPED),
          };
          agents.set(id, info);
          // Sometimes the agent's own list comes with the update, current or from a while ago.
          const own = rnd() < 0.5 ? (rnd() < 0.5 ? stale.get(id) : before.get(id)) : undefined;
          stale.set(id, before.get(id) ?? []);
          d.upsertAgent(info, prev ? own : []);
        } else {
          // Transfer a held session to another agent.
          const held = [...before].flatMap(([a, ss]) => ss.map((s) => [a, s] as const));
          const target = pick([...agents.keys()].length ? [...agents.keys()] : ['none']);
          if (held.length > 0 && agents.has(target)) {
            const [from, s] = pick(held);
            const t = agents.get(target)!;
            const load = (before.get(target) ?? []).length;
            const ok = d.reserve(target, s, now, false, from);
            if (ok) {
              expect(load).toBeLessThan(t.max);
              expect(t.connected).toBe(true);
              expect(d.holderOf(s)).toBe(target);
            } else {
              expect(d.holderOf(s)).toBe(from === target ? target : from);
            }
          }
        }
        const snapBefore = active();
        checkAssignments(snapBefore, d.assignAll(now));
        checkState();
      }
      expect(everAssigned.size).toBeGreaterThan(100);
    });
  }
});
