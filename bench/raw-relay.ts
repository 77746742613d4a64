/**
 * Baseline for the chat bench: a bare uWebSockets.js relay speaking the subset of protocol v1 the
 * bench uses — no actors, no storage, no validation beyond JSON. Visitors are paired with agents
 * round-robin; `send` is acked at once and relayed to the agent's socket. The engine's results
 * divided by this one's show the cost of everything Switchboard adds.
 */
import { createRequire } from 'node:module';
import type * as Uws from 'uWebSockets.js';

const uws = createRequire(import.meta.url)('uWebSockets.js') as typeof Uws;

interface Data {
  role: 'visitor' | 'agent';
  id: string;
  sessionId?: string;
  agent?: Uws.WebSocket<Data>;
  seq: number;
}

const agents: Array<Uws.WebSocket<Data>> = [];
let nextAgent = 0;
let nextSession = 1;

function readBody(res: Uws.HttpResponse, cb: (body: Record<string, unknown>) => void): void {
  let buf = Buffer.alloc(0);
  res.onAborted(() => {});
  res.onData((chunk, last) => {
    buf = Buffer.concat([buf, Buffer.from(chunk.slice(0))]);
    if (last) cb(JSON.parse(buf.toString() || '{}') as Record<string, unknown>);
  });
}

const app = uws.App();
app.post('/v1/visitor/token', (res) =>
  readBody(res, (b) => {
    const id = String(b['visitorId'] ?? `v${Math.random()}`);
    res.cork(() =>
      res
        .writeHeader('content-type', 'application/json')
        .end(JSON.stringify({ token: `visitor:${id}`, id, role: 'visitor' })),
    );
  }),
);
app.post('/v1/auth/login', (res) =>
  readBody(res, (b) => {
    const id = String(b['email']);
    res.cork(() =>
      res
        .writeHeader('content-type', 'application/json')
        .end(JSON.stringify({ token: `agent:${id}`, id, role: 'agent' })),
    );
  }),
);

const behavior = (role: 'visitor' | 'agent'): Uws.WebSocketBehavior<Data> => ({
  maxPayloadLength: 64 * 1024,
  idleTimeout: 0,
  maxBackpressure: 16 * 1024 * 1024,
  upgrade: (res, req, ctx) => {
    const token = req.getQuery('token') ?? '';
    res.upgrade<Data>(
      { role, id: token.slice(token.indexOf(':') + 1), seq: 0 },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      ctx,
    );
  },
  open: (ws) => {
    const d = ws.getUserData();
    if (d.role === 'agent') agents.push(ws);
    ws.send(JSON.stringify({ type: 'welcome', protocol: 1, role: d.role, id: d.id, sessions: [] }));
  },
  message: (ws, message) => {
    const d = ws.getUserData();
    const f = JSON.parse(Buffer.from(message).toString()) as {
      type: string;
      clientMsgId?: string;
      text?: string;
    };
    if (f.type === 'open' && d.role === 'visitor') {
      const agent = agents[nextAgent++ % agents.length];
      d.sessionId = `s${nextSession++}`;
      d.agent = agent;
      d.seq = 3;
      const session = { sessionId: d.sessionId, visitorId: d.id, state: 'in_progress', lastSeq: 3 };
      ws.send(JSON.stringify({ type: 'session', session }));
      agent?.send(JSON.stringify({ type: 'assigned', session }));
    } else if (f.type === 'send' && d.agent) {
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
      d.agent.send(
        JSON.stringify({
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
        }),
      );
    } else if (f.type === 'ping') ws.send(JSON.stringify({ type: 'pong', at: Date.now() }));
  },
  close: (ws) => {
    const i = agents.indexOf(ws);
    if (i >= 0) agents.splice(i, 1);
  },
});
app.ws('/v1/ws/visitor', behavior('visitor'));
app.ws('/v1/ws/agent', behavior('agent'));
app.listen('127.0.0.1', Number(process.env['SB_PORT'] ?? 0), (s) => {
  if (!s) {
    console.error('raw relay: cannot listen');
    process.exit(1);
  }
  console.log(`SB_LISTENING http://127.0.0.1:${uws.us_socket_local_port(s)}`);
});
