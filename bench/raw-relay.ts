/**
 * Baseline for the chat bench: a bare uWebSockets.js relay speaking the subset of protocol v1 the
 * bench uses — no actors, no storage, no validation beyond JSON, no limits. The engine's results
 * divided by this one's show the cost of everything Switchboard adds.
 *
 * - `POST /v1/visitor/token`, `POST /v1/auth/login`: trivial tokens (`visitor:<id>`, `agent:<email>`).
 * - `/v1/ws/visitor`, `/v1/ws/agent`: `welcome` on open.
 * - `open` (visitor): paired at once with the next agent round-robin (or queued until an agent
 *   connects); the visitor gets `session` (state in_progress) and an `assigned` event, the agent an
 *   `assigned` frame.
 * - `send` (visitor): `ack` to the sender and an `event` (message) to the paired agent's socket.
 * - `status` (agent): echoed as a `status` notice. `ping`: `pong`.
 *
 * Fault injection, to check the harness's own accounting: `BENCH_RELAY_DROP_EVERY=N` acks but
 * never relays every Nth message (the bench must count it lost), `BENCH_RELAY_DUP_EVERY=N` relays
 * every Nth message twice (counted duplicated).
 *
 * Listens on 127.0.0.1 (`SB_PORT`, default 0 = any free port) and prints `SB_LISTENING <url>`
 * like the real server. Refuses to run on the package's slow pure-JS fallback.
 */
import { createRequire } from 'node:module';
import type * as Uws from 'uWebSockets.js';

const uws = createRequire(import.meta.url)('uWebSockets.js') as typeof Uws;
if (!String(uws.App).includes('[native code]')) {
  console.error('raw relay: the uWebSockets.js native binary did not load; refusing the slow fallback');
  process.exit(1);
}

const TENANT = 'demo';
const DROP_EVERY = Number(process.env['BENCH_RELAY_DROP_EVERY'] ?? 0);
const DUP_EVERY = Number(process.env['BENCH_RELAY_DUP_EVERY'] ?? 0);
let relayed = 0;

interface Data {
  role: 'visitor' | 'agent';
  id: string;
  closed: boolean;
  sessionId?: string;
  agent?: Uws.WebSocket<Data>;
  seq: number;
}

const agents: Array<Uws.WebSocket<Data>> = [];
/** Visitors that opened a session while no agent was connected. */
const waiting: Array<Uws.WebSocket<Data>> = [];
let nextAgent = 0;
let nextSession = 1;

function readBody(res: Uws.HttpResponse, cb: (body: Record<string, unknown>) => void): void {
  const chunks: Buffer[] = [];
  let aborted = false;
  res.onAborted(() => (aborted = true));
  res.onData((chunk, last) => {
    // uWS reuses the chunk's memory after the callback: copy it.
    chunks.push(Buffer.from(chunk.slice(0)));
    if (!last || aborted) return;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown>;
    } catch {
      res.cork(() => res.writeStatus('400 Bad Request').end('{"code":"SB_ERR_BAD_REQUEST"}'));
      return;
    }
    cb(body);
  });
}

function json(res: Uws.HttpResponse, body: unknown): void {
  res.cork(() => res.writeHeader('content-type', 'application/json').end(JSON.stringify(body)));
}

function summary(d: Data, agentId: string | undefined): Record<string, unknown> {
  return {
    sessionId: d.sessionId,
    tenantId: TENANT,
    visitorId: d.id,
    visitorName: d.id,
    channel: 'web',
    state: 'in_progress',
    agentId,
    createdAt: Date.now(),
    assignedAt: Date.now(),
    lastSeq: d.seq,
  };
}

function pair(visitor: Uws.WebSocket<Data>, agent: Uws.WebSocket<Data>): void {
  const d = visitor.getUserData();
  const a = agent.getUserData();
  d.agent = agent;
  d.seq = 3; // created, queued, assigned
  const session = summary(d, a.id);
  const at = Date.now();
  visitor.cork(() => {
    visitor.send(JSON.stringify({ type: 'session', session }));
    visitor.send(
      JSON.stringify({
        type: 'event',
        event: {
          sessionId: d.sessionId,
          seq: 3,
          at,
          body: { kind: 'assigned', agentId: a.id, agentName: a.id },
        },
      }),
    );
  });
  agent.send(JSON.stringify({ type: 'assigned', session }));
}

const app = uws.App();
app.post('/v1/visitor/token', (res) =>
  readBody(res, (b) => {
    const id = typeof b['visitorId'] === 'string' ? b['visitorId'] : `v${nextSession++}`;
    json(res, { token: `visitor:${id}`, visitorId: id, tenantId: TENANT, role: 'visitor', expiresAt: 0 });
  }),
);
app.post('/v1/auth/login', (res) =>
  readBody(res, (b) => {
    const id = String(b['email'] ?? 'agent');
    json(res, { token: `agent:${id}`, id, tenantId: TENANT, role: 'agent', name: id, expiresAt: 0 });
  }),
);
app.get('/v1/health', (res) => json(res, { ok: true }));

const behavior = (role: 'visitor' | 'agent'): Uws.WebSocketBehavior<Data> => ({
  maxPayloadLength: 64 * 1024,
  idleTimeout: 0,
  maxBackpressure: 64 * 1024 * 1024,
  upgrade: (res, req, ctx) => {
    const token = req.getQuery('token') ?? '';
    res.upgrade<Data>(
      { role, id: token.slice(token.indexOf(':') + 1), seq: 0, closed: false },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      ctx,
    );
  },
  open: (ws) => {
    const d = ws.getUserData();
    ws.send(
      JSON.stringify({
        type: 'welcome',
        protocol: 1,
        role: d.role,
        tenantId: TENANT,
        id: d.id,
        name: d.id,
        limits: {},
        ...(d.role === 'agent' ? { status: 'online' } : {}),
        sessions: [],
      }),
    );
    if (d.role === 'agent') {
      agents.push(ws);
      while (waiting.length > 0) {
        const v = waiting.shift()!;
        if (!v.getUserData().closed) pair(v, ws);
      }
    }
  },
  message: (ws, message) => {
    const d = ws.getUserData();
    let f: { type?: string; clientMsgId?: string; text?: string; status?: string; ref?: string };
    try {
      f = JSON.parse(Buffer.from(message).toString()) as typeof f;
    } catch {
      ws.send(JSON.stringify({ type: 'error', code: 'SB_ERR_BAD_FRAME', message: 'not JSON' }));
      return;
    }
    if (f.type === 'send' && d.agent) {
      const seq = ++d.seq;
      const at = Date.now();
      ws.send(
        JSON.stringify({
          type: 'ack',
          sessionId: d.sessionId,
          clientMsgId: f.clientMsgId,
          seq,
          at,
          duplicate: false,
        }),
      );
      relayed++;
      if (d.agent.getUserData().closed || (DROP_EVERY > 0 && relayed % DROP_EVERY === 0)) return;
      const event = JSON.stringify({
        type: 'event',
        event: {
          sessionId: d.sessionId,
          seq,
          at,
          body: {
            kind: 'message',
            from: 'visitor',
            senderId: d.id,
            text: f.text,
            clientMsgId: f.clientMsgId,
          },
        },
      });
      d.agent.send(event);
      if (DUP_EVERY > 0 && relayed % DUP_EVERY === 0) d.agent.send(event);
    } else if (f.type === 'open' && d.role === 'visitor') {
      if (d.sessionId) {
        ws.send(
          JSON.stringify({ type: 'session', session: summary(d, d.agent?.getUserData().id), ref: f.ref }),
        );
        return;
      }
      d.sessionId = `s${nextSession++}`;
      if (agents.length === 0) waiting.push(ws);
      else pair(ws, agents[nextAgent++ % agents.length]!);
    } else if (f.type === 'status' && d.role === 'agent') {
      ws.send(JSON.stringify({ type: 'status', status: f.status, ref: f.ref }));
    } else if (f.type === 'ping') {
      ws.send(JSON.stringify({ type: 'pong', ref: f.ref, at: Date.now() }));
    }
  },
  close: (ws) => {
    ws.getUserData().closed = true;
    const i = agents.indexOf(ws);
    if (i >= 0) agents.splice(i, 1);
  },
});
app.ws('/v1/ws/visitor', behavior('visitor'));
app.ws('/v1/ws/agent', behavior('agent'));

let listenSocket: Uws.us_listen_socket | undefined;
app.listen('127.0.0.1', Number(process.env['SB_PORT'] ?? 0), (s) => {
  if (!s) {
    console.error('raw relay: cannot listen');
    process.exit(1);
  }
  listenSocket = s;
  console.log(`SB_LISTENING http://127.0.0.1:${uws.us_socket_local_port(s)}`);
});

for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => {
    if (listenSocket) uws.us_listen_socket_close(listenSocket);
    process.exit(0);
  });
