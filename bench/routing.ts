/**
 * Routing scenario load (run as a child of `npm run bench -- routing`, pinned to the load cores).
 *
 * Setup over the admin API: G skill groups, one entry rule per group, A agents spread over the
 * groups with mixed caps (1–8). Then V visitors arrive evenly over D seconds, each opening a session
 * through the entry of a group; agents close each chat after a hold time, freeing capacity.
 *
 * Measured (all clocks are this process's):
 * - assign latency: visitor `open` sent → the agent's `assigned` frame received, for sessions that
 *   never waited in a queue (capacity existed); waits of queued sessions are reported apart.
 * - queue update latency: each `queue` frame after the first carries `changedAt`, the server time
 *   of the queue change it reflects (the dispatcher coalesces changes for 20 ms); latency = receipt
 *   (Date.now()) − changedAt. Server and load run on the same machine, so the clocks agree.
 * - violations: a session assigned to two agents or twice, and cap breaches — seen by agents (count
 *   decremented when the agent sends its close, so a breach seen here is real) and in the
 *   dispatcher's own view (`/v1/admin/dispatch`) sampled every second.
 * Prints progress on stderr and the result as the last stdout line (JSON).
 */
import WebSocket from 'ws';
import { Histogram } from './histogram.ts';

export interface RoutingOptions {
  url: string;
  visitors: number;
  agents: number;
  groups: number;
  durationS: number;
  holdMs: number;
  graceS: number;
  /** Agents of the last group: fewer, so that group queues (exercises queue positions). */
  understaffed: boolean;
}

export interface RoutingResult {
  scenario: 'routing';
  visitors: number;
  agents: number;
  groups: number;
  duration_s: number;
  arrivals_per_s: number;
  assigned: number;
  unassigned: number;
  violations: number;
  double_assignments: number;
  cap_breaches: number;
  queued_sessions: number;
  errors: number;
  assign_latency_ms: ReturnType<Histogram['summary']>;
  queued_wait_ms: ReturnType<Histogram['summary']>;
  queue_update_latency_ms: ReturnType<Histogram['summary']>;
  queue_updates: number;
  setup_s: number;
}

const log = (s: string): void => void process.stderr.write(s + '\n');

async function http<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers['authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

function connect(url: string, onMessage: (f: Record<string, unknown>) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on('message', (d) => onMessage(JSON.parse(String(d)) as Record<string, unknown>));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

async function inBatches(n: number, size: number, fn: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < n; i += size) {
    await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, k) => fn(i + k)));
  }
}

interface VisitorRec {
  group: string;
  sentAt: number;
  sessionId?: string;
  everQueued: boolean;
  position?: number;
  assignedTo?: string;
  ws?: WebSocket;
}

export async function runRouting(o: RoutingOptions): Promise<RoutingResult> {
  const base = o.url.replace(/^ws/, 'http').replace(/\/$/, '');
  const wsBase = base.replace(/^http/, 'ws');
  const setupStart = Date.now();
  const admin = await http<{ token: string }>(base, 'POST', '/v1/auth/login', {
    email: 'admin@demo.test',
    password: 'switchboard',
  });
  const groups = Array.from({ length: o.groups }, (_, i) => `g${i}`);
  await http(
    base,
    'PUT',
    '/v1/admin/config/routing',
    {
      priority: ['entry', 'association', 'channel'],
      rules: groups.map((g) => ({
        id: `r-${g}`,
        kind: 'entry',
        match: g,
        targets: { mode: 'allDay', target: { kind: 'group', groupId: g } },
        enabled: true,
      })),
      defaultTargets: { mode: 'allDay', target: { kind: 'group', groupId: 'ungrouped' } },
      bots: [],
      groups: groups.map((g) => ({ groupId: g, name: `Group ${g}` })),
    },
    admin.token,
  );

  // Agents: group by index; the last group gets a third of its share when understaffed.
  const caps = new Map<string, number>();
  const agentGroup = new Map<string, string>();
  const ids = Array.from({ length: o.agents }, (_, i) => `agent${i + 1}`);
  ids.forEach((id, i) => {
    let g = groups[i % o.groups]!;
    if (o.understaffed && g === groups[o.groups - 1] && i % 3 !== 0) g = groups[0]!;
    agentGroup.set(id, g);
    caps.set(id, 1 + (i % 8));
  });
  await inBatches(ids.length, 20, async (i) => {
    const id = ids[i]!;
    await http(
      base,
      'PATCH',
      `/v1/admin/members/${id}`,
      { groups: [agentGroup.get(id)], maxConcurrent: caps.get(id) },
      admin.token,
    );
  });
  log(`[routing] configured ${o.groups} groups and ${o.agents} agents`);

  const visitors = new Map<string, VisitorRec>(); // by sessionId
  const byGroupQueued = new Map<string, Set<VisitorRec>>();
  const assignLat = new Histogram();
  const queuedWait = new Histogram();
  const queueLat = new Histogram();
  let doubleAssignments = 0;
  let capBreaches = 0;
  let assigned = 0;
  let errors = 0;
  let queueUpdates = 0;
  const active = new Map<string, number>();
  const agentSockets = new Map<string, WebSocket>();
  const early = new Map<string, { agentId: string; at: number }>();

  const onDeparture = (v: VisitorRec): void => {
    byGroupQueued.get(v.group)?.delete(v);
  };

  const onAgentFrame = (agentId: string, f: Record<string, unknown>): void => {
    const now = performance.now();
    if (f['type'] === 'error') {
      errors++;
      return;
    }
    if (f['type'] !== 'assigned') return;
    const s = f['session'] as { sessionId: string };
    const v = visitors.get(s.sessionId);
    if (!v) {
      // The agent heard of the session before its visitor got the `session` answer.
      if (early.has(s.sessionId)) doubleAssignments++;
      else early.set(s.sessionId, { agentId, at: now });
      return;
    }
    onAssigned(agentId, s.sessionId, v, now);
  };

  const onAssigned = (agentId: string, sessionId: string, v: VisitorRec, now: number): void => {
    const s = { sessionId };
    if (v.assignedTo !== undefined) {
      // Twice, to the same agent or another: either way a violation.
      doubleAssignments++;
      return;
    }
    v.assignedTo = agentId;
    assigned++;
    const n = (active.get(agentId) ?? 0) + 1;
    active.set(agentId, n);
    if (n > caps.get(agentId)!) capBreaches++;
    if (v.everQueued) {
      queuedWait.record(now - v.sentAt);
      onDeparture(v);
    } else assignLat.record(now - v.sentAt);
    const ws = agentSockets.get(agentId)!;
    setTimeout(
      () => {
        active.set(agentId, active.get(agentId)! - 1);
        ws.send(JSON.stringify({ type: 'close', sessionId: s.sessionId }));
        v.ws?.close();
      },
      o.holdMs * (0.5 + Math.random()),
    );
  };

  await inBatches(ids.length, 10, async (i) => {
    const id = ids[i]!;
    const tok = await http<{ token: string }>(base, 'POST', '/v1/auth/login', {
      email: `${id}@demo.test`,
      password: 'switchboard',
    });
    let resolveWelcome: () => void = () => {};
    const welcomed = new Promise<void>((r) => (resolveWelcome = r));
    const ws = await connect(`${wsBase}/v1/ws/agent?token=${encodeURIComponent(tok.token)}`, (f) => {
      if (f['type'] === 'welcome') resolveWelcome();
      else onAgentFrame(id, f);
    });
    agentSockets.set(id, ws);
    await welcomed;
  });
  const setupS = (Date.now() - setupStart) / 1000;
  log(
    `[routing] ${ids.length} agents online after ${setupS.toFixed(1)} s; ${o.visitors} visitors over ${o.durationS} s`,
  );

  // Dispatcher's own view, sampled: agents above their cap.
  const serverCheck = setInterval(() => {
    void http<{ agents: Array<{ agentId: string; active: number; max: number }> }>(
      base,
      'GET',
      '/v1/admin/dispatch',
      undefined,
      admin.token,
    )
      .then((snap) => {
        for (const a of snap.agents) if (a.active > a.max) capBreaches++;
      })
      .catch(() => errors++);
  }, 1000);

  const arrive = async (i: number): Promise<void> => {
    const group = groups[i % o.groups]!;
    const v: VisitorRec = { group, sentAt: 0, everQueued: false };
    try {
      const tok = await http<{ token: string }>(base, 'POST', '/v1/visitor/token', { tenantId: 'demo' });
      let welcomed: () => void = () => {};
      const w = new Promise<void>((r) => (welcomed = r));
      const ws = await connect(`${wsBase}/v1/ws/visitor?token=${encodeURIComponent(tok.token)}`, (f) => {
        if (f['type'] === 'welcome') welcomed();
        else if (f['type'] === 'session' && !v.sessionId) {
          v.sessionId = (f['session'] as { sessionId: string }).sessionId;
          visitors.set(v.sessionId, v);
          const e = early.get(v.sessionId);
          if (e) {
            early.delete(v.sessionId);
            onAssigned(e.agentId, v.sessionId, v, e.at);
          }
        } else if (f['type'] === 'queue') {
          const p = f['position'] as number;
          queueUpdates++;
          if (!v.everQueued) {
            v.everQueued = true;
            let set = byGroupQueued.get(group);
            if (!set) byGroupQueued.set(group, (set = new Set()));
            set.add(v);
          } else if (typeof f['changedAt'] === 'number') {
            // Same machine, same wall clock: receipt − the server time of the change.
            queueLat.record(Math.max(0, Date.now() - (f['changedAt'] as number)));
          }
          v.position = p;
        } else if (f['type'] === 'error') errors++;
      });
      v.ws = ws;
      await w;
      v.sentAt = performance.now();
      ws.send(JSON.stringify({ type: 'open', entry: group }));
    } catch {
      errors++;
    }
  };

  const start = performance.now();
  const interval = (o.durationS * 1000) / o.visitors;
  let launched = 0;
  const inflight: Promise<void>[] = [];
  const progress = setInterval(() => {
    const waiting = [...byGroupQueued.values()].reduce((n, s) => n + s.size, 0);
    log(
      `[routing] t=${((performance.now() - start) / 1000).toFixed(0)}s arrived ${launched}/${o.visitors} assigned ${assigned} waiting ${waiting} ` +
        `assign p99 ${assignLat.summary().p99} ms, queue update p99 ${queueLat.summary().p99} ms, violations ${doubleAssignments + capBreaches}`,
    );
  }, 1000);
  while (launched < o.visitors) {
    const due = start + launched * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    inflight.push(arrive(launched++));
  }
  await Promise.all(inflight);
  // Grace: let the queue drain.
  const graceEnd = performance.now() + o.graceS * 1000;
  while (performance.now() < graceEnd && assigned < o.visitors) await new Promise((r) => setTimeout(r, 200));
  clearInterval(progress);
  clearInterval(serverCheck);
  const queuedSessions = [...visitors.values()].filter((v) => v.everQueued).length;
  for (const v of visitors.values()) v.ws?.close();
  for (const ws of agentSockets.values()) ws.close();
  return {
    scenario: 'routing',
    visitors: o.visitors,
    agents: o.agents,
    groups: o.groups,
    duration_s: o.durationS,
    arrivals_per_s: Math.round(o.visitors / o.durationS),
    assigned,
    unassigned: o.visitors - assigned,
    violations: doubleAssignments + capBreaches,
    double_assignments: doubleAssignments,
    cap_breaches: capBreaches,
    queued_sessions: queuedSessions,
    errors,
    assign_latency_ms: assignLat.summary(),
    queued_wait_ms: queuedWait.summary(),
    queue_update_latency_ms: queueLat.summary(),
    queue_updates: queueUpdates,
    setup_s: Math.round(setupS * 10) / 10,
  };
}

// Child entry: options as JSON in argv[2]; result as the last stdout line.
if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as RoutingOptions;
  runRouting(opts)
    .then((r) => {
      console.log(JSON.stringify(r));
      process.exit(0);
    })
    .catch((err: unknown) => {
      log(`[routing] failed: ${(err as Error)?.stack ?? String(err)}`);
      process.exit(1);
    });
}
