/**
 * Cluster scenario (`npm run bench -- cluster --nodes 3`): N node processes (cluster mode, real
 * Redis and Cassandra) on 127.0.0.1; agents and visitors spread over all nodes, so most messages
 * cross nodes; visitors send `rate` messages/s in total (open loop). During the run one node is
 * killed with SIGKILL and restarted later, and another leaves gracefully (SIGTERM → drain). Clients
 * of a dying node reconnect to another node, resume every session by seq and resend what was not
 * acknowledged (same clientMsgId); a send refused with a typed error is tried again a second later.
 *
 * Reported: acknowledged messages, lost (acknowledged, never received by the agent), duplicated
 * (one clientMsgId stored at two seqs), recovery_s (SIGKILL → the survivors serve every shard),
 * visitor send → agent receive latency outside the failure windows, msgs_per_s acknowledged.
 *
 * A failure window starts 2 s before the event (a message sent just before it may wait for it
 * too) and lasts until the failure's backlog is delivered: at least until 1 s after the cluster
 * settled (every shard served), and then until no message has waited longer than 100 ms.
 * Messages are classified after the run, when every window is known. `drain_s` reports, per
 * event, the time from the event to the end of its window; `latency_settle_ms` keeps the narrower
 * windows (settled + 1 s) for comparison.
 */
import { writeFileSync } from 'node:fs';
import WebSocket from 'ws';
import { Histogram } from './histogram.ts';

export interface ClusterBenchOptions {
  nodes: number;
  visitors: number;
  agents: number;
  rate: number;
  durationS: number;
  /** Load before the measured run: sent and checked for loss, but no latency recorded. */
  warmupS: number;
  /** Kill one node and let another leave during the run (off: steady-state latency only). */
  failures: boolean;
  /**
   * Every this many seconds agents ask again for everything after the last seq they saw (0: never,
   * the default). Off, the run proves that live delivery alone has no gaps.
   */
  catchUpS: number;
  graceS: number;
  platformToken: string;
  log: (s: string) => void;
  start(i: number): Promise<string>;
  kill(i: number): Promise<void>;
  leave(i: number): Promise<void>;
}

export interface ClusterBenchResult {
  scenario: 'cluster';
  nodes: number;
  visitors: number;
  agents: number;
  sent: number;
  acked: number;
  lost: number;
  duplicated: number;
  /** Events an agent received with a seq beyond the next one it expected (a hole in live delivery). */
  gaps: number;
  sessions_continued: number;
  recovery_s: number;
  /** One-way messages the surviving nodes dropped, by reason (their sb_dropped_tells_total). */
  dropped_tells: Record<string, number>;
  leave_s: number;
  latency_ms: ReturnType<Histogram['summary']>;
  /** Latency outside windows that end 1 s after the cluster settled, backlog or not. */
  latency_settle_ms: ReturnType<Histogram['summary']>;
  /** Per failure event (kill, rejoin, leave): event → end of its window (backlog delivered). */
  drain_s: number[];
  msgs_per_s: number;
  target_met: boolean;
}

interface Frame {
  type: string;
  [k: string]: unknown;
}
interface Ev {
  sessionId: string;
  seq: number;
  body: { kind: string; from?: string; clientMsgId?: string; text?: string };
}

/** Send and receive times (ms) of the messages received, index by index. */
export interface LatencySamples {
  sent: readonly number[];
  received: readonly number[];
}

/** A message that waited longer than this is backlog: its failure is not over yet. */
export const BACKLOG_AGE_MS = 100;

/**
 * Per failure event, when its backlog was delivered: the first moment, at least 1 s after the
 * cluster settled, from which no message waits longer than {@link BACKLOG_AGE_MS} (every message
 * sent more than that before it has been received by then).
 */
export function drainTimes(
  s: LatencySamples,
  events: ReadonlyArray<{ at: number; settled: number }>,
): number[] {
  // Messages by send time, with the latest receive time among those sent so far.
  const order = s.sent.map((_, i) => i).sort((a, b) => s.sent[a]! - s.sent[b]!);
  const sentSorted = order.map((i) => s.sent[i]!);
  const latestRecv: number[] = [];
  let m = -Infinity;
  for (const i of order) latestRecv.push((m = Math.max(m, s.received[i]!)));
  /** Latest receive time of the messages sent before `t` (-Infinity: none). */
  const receivedBy = (t: number): number => {
    let lo = 0;
    let hi = sentSorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sentSorted[mid]! < t) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? -Infinity : latestRecv[lo - 1]!;
  };
  const last = sentSorted.length > 0 ? sentSorted[sentSorted.length - 1]! : 0;
  return events.map((e) => {
    let t = e.settled + 1000;
    while (t < last && receivedBy(t - BACKLOG_AGE_MS) > t) t += 10;
    return t;
  });
}

/**
 * The failure windows: from 2 s before each event to 1 s after the cluster settled, or to the
 * delivery of the event's backlog (`drainedAt`) when that is later.
 */
export function failureWindows(
  events: ReadonlyArray<{ at: number; settled: number }>,
  drainedAt?: readonly number[],
): Array<[number, number]> {
  return events.map((e, i) => [e.at - 2000, Math.max(e.settled + 1000, drainedAt?.[i] ?? 0)]);
}

/** Latency of the messages sent from `from` on, outside every window (by send time). */
export function latencyOutside(
  s: LatencySamples,
  windows: ReadonlyArray<[number, number]>,
  from: number,
): ReturnType<Histogram['summary']> {
  const h = new Histogram();
  for (let i = 0; i < s.sent.length; i++) {
    const t = s.sent[i]!;
    if (t >= from && !windows.some(([a, b]) => t >= a && t <= b)) h.record(s.received[i]! - t);
  }
  return h.summary();
}

/**
 * What the harness knows of each message it sent (`m<n>` is message n): when it was sent, the seq
 * its ack and its delivery carried. Typed arrays, not maps keyed by id: a long run sends close to a
 * million messages, and maps of that size made the harness's own collector pause for 100+ ms,
 * which landed in the measured latency.
 */
export class MessageLedger {
  sentAt = new Float64Array(1 << 16);
  /** Seq of the ack (-1: acked without a seq; 0: not acked). */
  ackSeq = new Int32Array(1 << 16);
  /** Seq the agent received it at (0: not received). */
  recvSeq = new Int32Array(1 << 16);
  acked = 0;
  received = 0;

  /** The index of one of our ids, or -1. */
  static indexOf(id: string): number {
    const n = id.charCodeAt(0) === 109 /* m */ ? Number(id.slice(1)) : NaN;
    return Number.isSafeInteger(n) && n >= 0 ? n : -1;
  }

  sent(n: number, at: number): void {
    if (n >= this.sentAt.length) {
      const grow = <T extends Float64Array | Int32Array>(a: T, make: (len: number) => T): T => {
        const b = make(Math.max(n + 1, a.length * 2));
        b.set(a);
        return b;
      };
      this.sentAt = grow(this.sentAt, (l) => new Float64Array(l));
      this.ackSeq = grow(this.ackSeq, (l) => new Int32Array(l));
      this.recvSeq = grow(this.recvSeq, (l) => new Int32Array(l));
    }
    this.sentAt[n] = at;
  }

  ack(n: number, seq: number | undefined): void {
    if (n < 0 || n >= this.ackSeq.length) return;
    if (this.ackSeq[n] === 0) this.acked++;
    this.ackSeq[n] = seq ?? -1;
  }

  /** Records a delivery; returns the seq it was delivered at before (0: first delivery). */
  receive(n: number, seq: number): number {
    if (n < 0 || n >= this.recvSeq.length) return 0;
    const prior = this.recvSeq[n]!;
    if (prior === 0) {
      this.recvSeq[n] = seq;
      this.received++;
    }
    return prior;
  }

  /** Messages acknowledged but not delivered (up to `count` sent). */
  lost(count: number): number[] {
    const out: number[] = [];
    for (let n = 0; n < count && n < this.ackSeq.length; n++)
      if (this.ackSeq[n] !== 0 && this.recvSeq[n] === 0) out.push(n);
    return out;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A protocol client that survives node failures: reconnects to the next live node and resumes. */
class Client {
  ws: WebSocket | undefined;
  open = false;
  readonly lastSeq = new Map<string, number>();
  onFrame: (f: Frame) => void = () => {};
  /** Called after every reconnect (once the resumes are sent). */
  onReconnect: () => void = () => {};
  private connects = 0;
  private idx: number;
  constructor(
    readonly role: 'visitor' | 'agent',
    private readonly token: string,
    private readonly urls: () => string[],
    home: number,
    private readonly log: (s: string) => void,
  ) {
    this.idx = home;
  }
  connect(): Promise<void> {
    return new Promise((resolve) => {
      const list = this.urls();
      const url = list[this.idx % list.length]!.replace('http', 'ws');
      const ws = new WebSocket(`${url}/v1/ws/${this.role}?token=${encodeURIComponent(this.token)}`);
      this.ws = ws;
      let done = false;
      ws.on('open', () => {
        this.open = true;
        for (const [sid, seq] of this.lastSeq)
          ws.send(JSON.stringify({ type: 'resume', sessionId: sid, lastSeq: seq }));
        if (this.connects++ > 0) this.onReconnect();
        if (!done) {
          done = true;
          resolve();
        }
      });
      ws.on('message', (d) => this.onFrame(JSON.parse(String(d)) as Frame));
      const again = (): void => {
        if (this.ws !== ws) return;
        this.open = false;
        this.idx++;
        setTimeout(() => void this.connect().then(() => !done && ((done = true), resolve())), 200);
      };
      ws.on('close', again);
      ws.on('error', () => ws.terminate());
    });
  }
  send(f: unknown): boolean {
    if (!this.open || !this.ws) return false;
    this.ws.send(JSON.stringify(f));
    return true;
  }
  /** Called with a hole in a session's seqs (received `seq`, expected `last + 1`). */
  onGap: (sessionId: string, last: number, seq: number) => void = () => {};
  see(e: Ev): boolean {
    const last = this.lastSeq.get(e.sessionId) ?? 0;
    if (e.seq <= last) return false;
    if (e.seq > last + 1) this.onGap(e.sessionId, last, e.seq);
    this.lastSeq.set(e.sessionId, e.seq);
    return true;
  }
  close(): void {
    const ws = this.ws;
    this.ws = undefined;
    ws?.close();
  }
}

async function post<T>(url: string, path: string, body: unknown): Promise<T> {
  const r = await fetch(url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

export async function runCluster(o: ClusterBenchOptions): Promise<ClusterBenchResult> {
  const urls: Array<string | undefined> = [];
  for (let i = 0; i < o.nodes; i++) {
    urls[i] = await o.start(i);
    o.log(`[bench] node ${i} listening on ${urls[i]}`);
  }
  const live = (): string[] => urls.filter((u): u is string => u !== undefined);
  const status = async (url: string): Promise<{ owned: number; members: number }> => {
    const r = await fetch(`${url}/v1/platform/cluster`, {
      headers: { authorization: `Bearer ${o.platformToken}` },
    });
    const s = (await r.json()) as { owned: unknown[]; members: unknown[] };
    return { owned: s.owned.length, members: s.members.length };
  };
  const settled = async (n: number): Promise<boolean> => {
    const ss = await Promise.all(live().map((u) => status(u).catch(() => ({ owned: 0, members: 0 }))));
    return (
      ss.length === n && ss.every((s) => s.members === n) && ss.reduce((x, s) => x + s.owned, 0) === 1024
    );
  };
  for (let i = 0; i < 300 && !(await settled(o.nodes)); i++) await sleep(100);
  o.log('[bench] cluster settled');

  // Agents first (so visitors are assigned at once), spread over the nodes.
  const ledger = new MessageLedger();
  let duplicated = 0;
  // Send and receive time of every message received, classified against the windows at the end.
  const sentTimes: number[] = [];
  const recvTimes: number[] = [];
  /** Failure events: when each began and when the cluster had settled after it. */
  const events: Array<{ at: number; settled: number }> = [];
  const lastBySession = new Map<string, number>();
  let measureFrom = Infinity;
  let gaps = 0;
  const tStart = Date.now();
  const agents: Client[] = [];
  for (let i = 0; i < o.agents; i++) {
    const tok = await post<{ token: string }>(live()[i % o.nodes]!, '/v1/auth/login', {
      email: `agent${i + 1}@demo.test`,
      password: 'switchboard',
    });
    const c = new Client('agent', tok.token, live, i, o.log);
    c.onGap = (sid, last, seq) => {
      if (gaps++ < 20)
        o.log(
          `[bench] gap: agent ${i} session ${sid} expected seq ${last + 1}, got ${seq} at ${Date.now() - tStart} ms`,
        );
    };
    c.onFrame = (f) => {
      const evs = f.type === 'event' ? [f['event'] as Ev] : f.type === 'events' ? (f['events'] as Ev[]) : [];
      if (f.type === 'assigned' || f.type === 'welcome') {
        const list =
          f.type === 'assigned'
            ? [f['session'] as { sessionId: string }]
            : (f['sessions'] as Array<{ sessionId: string }>);
        for (const s of list)
          if (!c.lastSeq.has(s.sessionId)) {
            c.lastSeq.set(s.sessionId, 0);
            c.send({ type: 'resume', sessionId: s.sessionId, lastSeq: 0 });
          }
      }
      for (const e of evs) {
        if (!c.see(e)) continue;
        const id = e.body.clientMsgId;
        if (e.body.kind !== 'message' || e.body.from !== 'visitor' || !id) continue;
        const n = MessageLedger.indexOf(id);
        if (n < 0) continue;
        const prior = ledger.receive(n, e.seq);
        if (prior !== 0 && prior !== e.seq) duplicated++;
        if (prior !== 0) continue;
        const now = Date.now();
        lastBySession.set(e.sessionId, now);
        sentTimes.push(ledger.sentAt[n]!);
        recvTimes.push(now);
      }
    };
    await c.connect();
    agents.push(c);
  }
  const visitors: Array<{ c: Client; sid: string; pending: Map<string, string> }> = [];
  for (let i = 0; i < o.visitors; i++) {
    const tok = await post<{ token: string }>(live()[i % o.nodes]!, '/v1/visitor/token', {
      tenantId: 'demo',
    });
    const c = new Client('visitor', tok.token, live, i + 1, o.log);
    const v = { c, sid: '', pending: new Map<string, string>() };
    c.onFrame = (f) => {
      if (f.type === 'session' && !v.sid) {
        v.sid = (f['session'] as { sessionId: string }).sessionId;
        c.lastSeq.set(v.sid, 0);
      } else if (f.type === 'ack') {
        const id = f['clientMsgId'] as string;
        ledger.ack(MessageLedger.indexOf(id), typeof f['seq'] === 'number' ? f['seq'] : undefined);
        v.pending.delete(id);
      } else if (f.type === 'error' && typeof f['ref'] === 'string' && v.pending.has(f['ref'])) {
        // Refused for now (deadline, node unavailable, store unavailable): again in a second.
        const id = f['ref'];
        setTimeout(() => {
          if (v.pending.has(id)) c.send({ type: 'send', sessionId: v.sid, clientMsgId: id, text: id });
        }, 1000);
      }
    };
    // As a real client does: after a reconnect, everything not acknowledged goes again (same ids).
    c.onReconnect = () => {
      for (const [id, text] of v.pending) c.send({ type: 'send', sessionId: v.sid, clientMsgId: id, text });
    };
    await c.connect();
    c.send({ type: 'open', ref: 'o' });
    visitors.push(v);
  }
  for (let i = 0; i < 200 && visitors.some((v) => !v.sid); i++) await sleep(50);
  o.log(
    `[bench] ${visitors.length} visitors, ${agents.length} agents connected; sending ${o.rate} msgs/s for ${o.durationS} s`,
  );

  // Optionally, agents ask again for everything after the last seq they saw (replays overlap, seqs
  // deduplicate): a client-side safety net the server must not need.
  const resumer =
    o.catchUpS > 0
      ? setInterval(() => {
          for (const a of agents)
            for (const [sid, s] of a.lastSeq) a.send({ type: 'resume', sessionId: sid, lastSeq: s });
        }, o.catchUpS * 1000)
      : undefined;
  // Safety net for a send lost with a socket that died before its close was noticed: resend what
  // waits for an ack longer than 15 s (the server answers or refuses within its 5 s deadline).
  const resender = setInterval(() => {
    const now = Date.now();
    for (const v of visitors)
      for (const [id, text] of v.pending)
        if (now - (ledger.sentAt[MessageLedger.indexOf(id)] ?? now) > 15_000)
          v.c.send({ type: 'send', sessionId: v.sid, clientMsgId: id, text });
  }, 5000);

  const t0 = Date.now();
  measureFrom = t0 + o.warmupS * 1000;
  const end = measureFrom + o.durationS * 1000;
  const killAt = measureFrom + o.durationS * 300;
  const leaveAt = measureFrom + o.durationS * 650;
  let killed = !o.failures;
  let left = !o.failures;
  let recoveryS = -1;
  let leaveS = -1;
  let sent = 0;
  let seq = 0;
  let lastProgress = t0;
  let progressFrom = 0;
  const chores: Array<Promise<void>> = [];
  while (Date.now() < end) {
    const now = Date.now();
    const due = Math.floor(((now - t0) / 1000) * o.rate) - sent;
    for (let k = 0; k < due; k++) {
      const v = visitors[seq % visitors.length]!;
      const id = `m${seq++}`;
      sent++;
      ledger.sent(seq - 1, now);
      v.pending.set(id, id);
      v.c.send({ type: 'send', sessionId: v.sid, clientMsgId: id, text: id });
    }
    if (!killed && now >= killAt) {
      killed = true;
      const victim = o.nodes - 1;
      o.log(`[bench] SIGKILL node ${victim}`);
      const k0 = Date.now();
      urls[victim] = undefined;
      chores.push(
        (async () => {
          await o.kill(victim);
          while (!(await settled(o.nodes - 1))) await sleep(50);
          recoveryS = (Date.now() - k0) / 1000;
          events.push({ at: k0, settled: Date.now() });
          o.log(
            `[bench] survivors serve every shard ${recoveryS.toFixed(2)} s after the kill; restarting node ${victim}`,
          );
          await sleep(3000);
          urls[victim] = await o.start(victim);
          const r0 = Date.now();
          while (!(await settled(o.nodes))) await sleep(50);
          events.push({ at: r0, settled: Date.now() });
          o.log(`[bench] node ${victim} back`);
        })(),
      );
    }
    if (!left && now >= leaveAt) {
      left = true;
      chores.push(
        (async () => {
          await Promise.all(chores.slice(0, 1));
          const leaver = 0;
          o.log(`[bench] node ${leaver} leaves gracefully`);
          const l0 = Date.now();
          urls[leaver] = undefined;
          await o.leave(leaver);
          while (!(await settled(o.nodes - 1))) await sleep(50);
          leaveS = (Date.now() - l0) / 1000;
          events.push({ at: l0, settled: Date.now() });
          o.log(`[bench] node ${leaver} left in ${leaveS.toFixed(2)} s`);
        })(),
      );
    }
    if (now - lastProgress >= 1000) {
      lastProgress = now;
      // Latency of the messages received in the last second, whatever the windows.
      const h = new Histogram();
      for (let i = progressFrom; i < sentTimes.length; i++) h.record(recvTimes[i]! - sentTimes[i]!);
      progressFrom = sentTimes.length;
      o.log(
        `[bench] ${Math.round((now - t0) / 1000)}s sent=${sent} acked=${ledger.acked} received=${ledger.received} ` +
          `last second p99=${h.summary().p99}ms nodes=${live().length}`,
      );
    }
    await sleep(5);
  }
  await Promise.all(chores);
  // Grace: resends go on until every sent message is acknowledged and received.
  const graceEnd = Date.now() + o.graceS * 1000;
  while (Date.now() < graceEnd && (ledger.acked < sent || ledger.lost(sent).length > 0)) await sleep(100);
  clearInterval(resender);
  clearInterval(resumer);
  const lostIds = ledger.lost(sent);
  const lost = lostIds.length;
  for (const n of lostIds.slice(0, 20)) {
    const seq = ledger.ackSeq[n]!;
    o.log(
      `[bench] lost: m${n} sent at ${ledger.sentAt[n]! - tStart} ms, acked seq ${seq > 0 ? seq : '?'} in ${visitors[n % visitors.length]!.sid}`,
    );
  }
  // What the nodes still running dropped on the way (a killed node's counters die with it).
  const droppedTells: Record<string, number> = {};
  for (const u of live()) {
    const text = await fetch(`${u}/metrics`)
      .then((r) => r.text())
      .catch(() => '');
    for (const m of text.matchAll(/^sb_dropped_tells_total\{reason="(\w+)"\} (\d+)$/gm))
      droppedTells[m[1]!] = (droppedTells[m[1]!] ?? 0) + Number(m[2]);
  }
  const continued = visitors.filter(
    (v) => (lastBySession.get(v.sid) ?? 0) > (o.failures ? leaveAt : measureFrom),
  ).length;
  for (const c of [...agents, ...visitors.map((v) => v.c)]) c.close();
  // Each window ends when the failure's backlog is delivered (see the header), at the earliest
  // 1 s after the cluster settled.
  const samples = { sent: sentTimes, received: recvTimes };
  // For analysis: every message's send and receive time, the events and the measured span.
  const dump = process.env['BENCH_CLUSTER_SAMPLES'];
  if (dump) writeFileSync(dump, JSON.stringify({ sentTimes, recvTimes, events, measureFrom, t0 }));
  const drainedAt = drainTimes(samples, events);
  const latency = latencyOutside(samples, failureWindows(events, drainedAt), measureFrom);
  const latencySettle = latencyOutside(samples, failureWindows(events), measureFrom);
  const result: ClusterBenchResult = {
    scenario: 'cluster',
    nodes: o.nodes,
    visitors: o.visitors,
    agents: o.agents,
    sent,
    acked: ledger.acked,
    lost,
    duplicated,
    gaps,
    sessions_continued: continued,
    recovery_s: Math.round(recoveryS * 100) / 100,
    dropped_tells: droppedTells,
    leave_s: Math.round(leaveS * 100) / 100,
    latency_ms: latency,
    latency_settle_ms: latencySettle,
    drain_s: events.map((e, i) => Math.round((drainedAt[i]! - e.at) / 10) / 100),
    msgs_per_s: Math.round(ledger.acked / (o.durationS + o.warmupS)),
    target_met: false,
  };
  result.target_met =
    o.failures &&
    lost === 0 &&
    duplicated === 0 &&
    gaps === 0 &&
    continued === o.visitors &&
    recoveryS > 0 &&
    recoveryS <= 5 &&
    latency.p99 <= 50 &&
    o.rate >= 3000;
  return result;
}
