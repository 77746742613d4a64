/**
 * Load generator process: holds a share of the agents and visitors over real WebSockets (`ws`),
 * sends visitor messages open-loop at a fixed rate (or closed-loop with a window for saturation),
 * and reports acks, deliveries and visitor→agent latency to the parent over IPC.
 */
import WebSocket from 'ws';
import { Histogram, type HistogramJSON } from './histogram.ts';
import { BENCH_TEXT, quickString } from './wire.ts';

export interface SetupMsg {
  cmd: 'setup';
  proc: number;
  url: string;
  /** Agent numbers (1-based) this process logs in. */
  agents: number[];
  visitors: number;
  password: string;
  /** Idle mode: connect visitors only, no sessions. */
  idle: boolean;
}
export interface GoMsg {
  cmd: 'go';
  /** Messages per second for this process; 0 = closed loop with `window` in flight per visitor. */
  rate: number;
  window: number;
  durationMs: number;
  warmupMs: number;
  graceMs: number;
}
export type ParentMsg = SetupMsg | GoMsg | { cmd: 'exit' };

export interface Progress {
  ev: 'progress';
  sent: number;
  acked: number;
  delivered: number;
  errors: number;
  hist?: HistogramJSON;
}
export interface Done {
  ev: 'done';
  sent: number;
  ackedIds: string[];
  deliveredIds: string[];
  duplicated: number;
  errors: number;
  errorCodes: Record<string, number>;
  hist: HistogramJSON;
  /** Open loop: how late sends left against their schedule, ms. */
  lag: HistogramJSON;
  measuredSent: number;
}
export type ChildMsg =
  | { ev: 'ready'; sockets: number; failed: number }
  /** Setup progress: visitors connected (idle) or assigned (chat) so far. */
  | { ev: 'setup'; visitors: number }
  | { ev: 'failed'; error: string }
  | Progress
  | Done;

const now = (): number => performance.timeOrigin + performance.now();

function post(msg: ChildMsg): void {
  process.send?.(msg);
}

async function postJson<T>(url: string, body: unknown): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!r.ok) throw new Error(`${url}: HTTP ${r.status} ${await r.text()}`);
      return (await r.json()) as T;
    } catch (err) {
      if (attempt >= 5) throw err;
      await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
    }
  }
}

/** Opens a socket; `onMessage` is attached before the upgrade completes (the first frame can come with it). */
function connect(url: string, onMessage?: (data: WebSocket.RawData) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      // The load generator must not be the bottleneck: an all-zero mask lets `ws` skip masking
      // (legal on the wire; the mask exists against proxy cache poisoning, moot on loopback), and
      // the server's frames are trusted to be UTF-8.
      generateMask: (mask: Buffer) => void mask.fill(0),
      skipUTF8Validation: true,
    });
    if (onMessage) ws.on('message', onMessage);
    let open = false;
    ws.once('open', () => {
      open = true;
      resolve(ws);
    });
    // A listener stays for the socket's life: an unhandled 'error' would end the process.
    ws.on('error', (err) => {
      if (!open) reject(err);
      else countError('socket_error');
    });
    ws.on('close', (code) => {
      if (open && !exiting) countError(`close_${code}`);
    });
  });
}

let exiting = false;
function countError(code: string): void {
  errors++;
  errorCodes[code] = (errorCodes[code] ?? 0) + 1;
}

interface Visitor {
  /** Index in this process, part of every clientMsgId. */
  i: number;
  ws: WebSocket;
  sessionId: string;
  n: number;
  inflight: number;
}

async function inBatches<T>(n: number, size: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += size) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(size, n - i) }, (_, j) => fn(i + j)))));
  }
  return out;
}

let setup: SetupMsg | undefined;
const visitors: Visitor[] = [];
const agentSockets: WebSocket[] = [];
const hist = new Histogram();
/** Open loop: actual minus scheduled send time, ms. */
const lag = new Histogram();
const acked = new Set<string>();
const delivered = new Set<string>();
let duplicated = 0;
let sent = 0;
let measuredSent = 0;
let errors = 0;
const errorCodes: Record<string, number> = {};
let measureFrom = Infinity;
let measureUntil = Infinity;
let closedLoop: { window: number; stopAt: number } | undefined;

/**
 * Sends one message stamped with the actual send time. In the open loop `due` is its scheduled
 * time: how late the generator sends (timer granularity, its own stalls) is kept apart in
 * `lag`, so a late generator shows up there instead of silently thinning the load.
 */
function sendFrom(v: Visitor, due?: number): void {
  const id = `p${setup!.proc}v${v.i}m${v.n++}`;
  const t = now();
  if (due !== undefined && t >= measureFrom && t < measureUntil) lag.record(t - due);
  // The send time rides in the text, so the agent's process computes the latency on arrival.
  // Built by hand: ids, session ids and times need no JSON escaping, and this is the hot path.
  v.ws.send(
    `{"type":"send","sessionId":${JSON.stringify(v.sessionId)},"clientMsgId":"${id}","text":"${id}|${t}"}`,
  );
  v.inflight++;
  sent++;
  if (t >= measureFrom && t < measureUntil) measuredSent++;
}

function onDelivered(text: string, t: number): void {
  const m = BENCH_TEXT.exec(text);
  if (!m) return;
  const id = m[1]!;
  if (delivered.has(id)) {
    duplicated++;
    return;
  }
  delivered.add(id);
  const sentAt = Number(m[2]);
  if (sentAt >= measureFrom && sentAt < measureUntil) hist.record(t - sentAt);
}

function onAgentFrame(data: WebSocket.RawData): void {
  const t = now();
  const s = String(data);
  // Fast path for the one frame that matters: a single live visitor message.
  if (s.startsWith('{"type":"event"')) {
    if (!s.includes('"kind":"message"') || !s.includes('"from":"visitor"')) return;
    const text = quickString(s, 'text');
    if (text !== undefined) {
      onDelivered(text, t);
      return;
    }
  }
  const f = JSON.parse(s) as {
    type: string;
    event?: { body: { kind: string; from?: string; text?: string } };
    events?: Array<{ body: { kind: string; from?: string; text?: string } }>;
  };
  const evs = f.type === 'event' && f.event ? [f.event] : f.type === 'events' && f.events ? f.events : [];
  for (const e of evs)
    if (e.body.kind === 'message' && e.body.from === 'visitor' && e.body.text) onDelivered(e.body.text, t);
}

async function doSetup(s: SetupMsg): Promise<void> {
  setup = s;
  const ws = s.url.replace(/^http/, 'ws');
  for (const n of s.agents) {
    const t = await postJson<{ token: string }>(`${s.url}/v1/auth/login`, {
      email: `agent${n}@demo.test`,
      password: s.password,
    });
    const sock = await connect(`${ws}/v1/ws/agent?token=${encodeURIComponent(t.token)}`, onAgentFrame);
    // Demo agents may start away; sessions are only assigned to agents that are online.
    sock.send(JSON.stringify({ type: 'status', status: 'online' }));
    agentSockets.push(sock);
  }
  let setupDone = 0;
  let failed = 0;
  const setupTimer = setInterval(() => post({ ev: 'setup', visitors: setupDone }), 500);
  await inBatches(s.visitors, 100, async (i) => {
    const v: Visitor = { i, ws: undefined as unknown as WebSocket, sessionId: '', n: 0, inflight: 0 };
    let welcomed = false;
    let assigned = false;
    let onProgress: (() => void) | undefined;
    const handler = (data: WebSocket.RawData): void => {
      const text = String(data);
      if (text.startsWith('{"type":"ack"')) {
        const id = quickString(text, 'clientMsgId');
        if (id !== undefined) {
          acked.add(id);
          v.inflight--;
          if (closedLoop && now() < closedLoop.stopAt) sendFrom(v);
          return;
        }
      }
      const f = JSON.parse(text) as {
        type: string;
        session?: { sessionId: string; state: string };
        event?: { body: { kind: string } };
        events?: Array<{ body: { kind: string } }>;
        clientMsgId?: string;
        code?: string;
        ref?: string;
      };
      if (f.type === 'ack' && f.clientMsgId) {
        acked.add(f.clientMsgId);
        v.inflight--;
        if (closedLoop && now() < closedLoop.stopAt) sendFrom(v);
        return;
      }
      if (f.type === 'welcome') welcomed = true;
      else if (f.type === 'session' && f.session) {
        v.sessionId = f.session.sessionId;
        if (f.session.state === 'in_progress') assigned = true;
      } else if (f.type === 'error') {
        countError(f.code ?? '?');
        if (f.ref && f.ref.startsWith('p')) {
          v.inflight--;
          if (closedLoop && now() < closedLoop.stopAt) sendFrom(v);
        }
        return;
      }
      const evs = f.type === 'event' && f.event ? [f.event] : f.type === 'events' && f.events ? f.events : [];
      if (evs.some((e) => e.body.kind === 'assigned')) assigned = true;
      onProgress?.();
    };
    // Idle: authenticated means welcomed. Chat: ready once the session is assigned to an agent.
    const ready = (): boolean => (s.idle ? welcomed : assigned && v.sessionId !== '');
    const wait = new Promise<void>((resolve, reject) => {
      const limit = s.idle ? 30_000 : 60_000;
      const timer = setTimeout(
        () =>
          reject(new Error(`visitor was not ${s.idle ? 'welcomed' : 'assigned'} within ${limit / 1000} s`)),
        limit,
      );
      onProgress = () => {
        if (!ready()) return;
        clearTimeout(timer);
        onProgress = undefined;
        resolve();
      };
    });
    wait.catch(() => {});
    try {
      const t = await postJson<{ token: string }>(`${s.url}/v1/visitor/token`, {
        tenantId: 'demo',
        visitorId: `bench-p${s.proc}-v${i}`,
      });
      // The welcome may arrive with the upgrade: the handler must be in place before it.
      const sock = await connect(`${ws}/v1/ws/visitor?token=${encodeURIComponent(t.token)}`, handler);
      v.ws = sock;
      // The server queues frames sent before its welcome, so `open` can go right away.
      if (!s.idle) sock.send(JSON.stringify({ type: 'open' }));
      visitors.push(v);
      onProgress?.();
      await wait;
      setupDone++;
    } catch (err) {
      // Idle mode measures how many sockets the server holds: count failures, do not abort.
      if (!s.idle) throw err;
      failed++;
      if (failed === 1) process.stderr.write(`[load ${s.proc}] first failed connection: ${String(err)}\n`);
    }
  });
  clearInterval(setupTimer);
  post({ ev: 'ready', sockets: setupDone + agentSockets.length, failed });
}

async function go(g: GoMsg): Promise<void> {
  const start = now();
  measureFrom = start + g.warmupMs;
  measureUntil = start + g.warmupMs + g.durationMs;
  const stopAt = measureUntil;
  const progress = setInterval(
    () =>
      post({
        ev: 'progress',
        sent,
        acked: acked.size,
        delivered: delivered.size,
        errors,
        hist: hist.toJSON(),
      }),
    1000,
  );
  if (g.rate === 0) {
    closedLoop = { window: g.window, stopAt };
    for (const v of visitors) for (let i = 0; i < g.window; i++) sendFrom(v);
    await new Promise((r) => setTimeout(r, stopAt - now()));
  } else {
    // Open loop: sends follow the clock, not the acks, so queueing delay shows in the latency.
    let next = 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const t = now();
        if (t >= stopAt) {
          resolve();
          return;
        }
        const due = Math.floor(((t - start) / 1000) * g.rate);
        while (sent < due) {
          sendFrom(visitors[next]!, start + ((sent + 1) * 1000) / g.rate);
          next = (next + 1) % visitors.length;
        }
        setTimeout(tick, 2);
      };
      tick();
    });
  }
  await new Promise((r) => setTimeout(r, g.graceMs));
  clearInterval(progress);
  post({
    ev: 'done',
    sent,
    ackedIds: [...acked],
    deliveredIds: [...delivered],
    duplicated,
    errors,
    errorCodes,
    hist: hist.toJSON(),
    lag: lag.toJSON(),
    measuredSent,
  });
}

process.on('message', (m: ParentMsg) => {
  if (m.cmd === 'setup')
    doSetup(m).catch((err: unknown) => post({ ev: 'failed', error: String((err as Error)?.stack ?? err) }));
  else if (m.cmd === 'go')
    go(m).catch((err: unknown) => post({ ev: 'failed', error: String((err as Error)?.stack ?? err) }));
  else if (m.cmd === 'exit') {
    exiting = true;
    for (const s of [...agentSockets, ...visitors.map((v) => v.ws)]) s.terminate();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
