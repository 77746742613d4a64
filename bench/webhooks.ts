/**
 * Webhook outbox scenario (`npm run bench -- webhooks`): a local receiver (this process) subscribes
 * to `message.created`; V visitors with open sessions send M messages each as fast as their acks
 * allow; midway the server is killed (SIGKILL) and started again on the same data directory. Every
 * acknowledged message must reach the receiver — deduplicated by event id — in order per session.
 *
 * Reported: acked messages, delivered (unique), lost (acked, never delivered), duplicates (deliveries
 * of an id already received), out-of-order deliveries, deliveries/s (unique deliveries over the time
 * from the first to the last), and the lag from the event's `occurredAt` to its receipt.
 */
import { createServer } from 'node:http';
import WebSocket from 'ws';
import { Histogram } from './histogram.ts';

export interface WebhookBenchOptions {
  visitors: number;
  messages: number;
  /** Kill the server after this share of the messages was acknowledged (0 = no restart). */
  restartAt: number;
  graceS: number;
  /**
   * Backlog mode: the receiver holds every request until all messages are acknowledged, then
   * answers; deliveries/s is then the outbox draining its backlog, not the pace of the senders.
   */
  backlog: boolean;
  log: (s: string) => void;
  /** Starts (or restarts, on the same data) the server and returns its URL. */
  start(): Promise<string>;
  /** Kills the running server (SIGKILL), keeping its data. */
  kill(): Promise<void>;
}

export interface WebhookBenchResult {
  scenario: 'webhooks';
  sessions: number;
  acked: number;
  delivered: number;
  lost: number;
  duplicates: number;
  /** Deliveries that arrived after a later event of the same session. */
  out_of_order: number;
  deliveries_per_s: number;
  lag_ms: ReturnType<Histogram['summary']>;
  restart: boolean;
  backlog: boolean;
}

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

interface Conn {
  ws: WebSocket;
  sessionId: string;
  next: number;
  acked: Set<number>;
  waiting?: () => void;
}

export async function runWebhooks(o: WebhookBenchOptions): Promise<WebhookBenchResult> {
  // ---- receiver
  const seen = new Set<string>();
  const lastSeq = new Map<string, number>();
  let duplicates = 0;
  let outOfOrder = 0;
  let first = 0;
  let last = 0;
  const lag = new Histogram();
  let held: Array<() => void> | undefined = o.backlog ? [] : undefined;
  let releasedAt = 0;
  const receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (held) {
        held.push(() => req.emit('end'));
        return;
      }
      const p = JSON.parse(body) as {
        id: string;
        occurredAt: number;
        data: { sessionId: string; seq: number };
      };
      res.writeHead(204).end();
      if (seen.has(p.id)) {
        duplicates++;
        return;
      }
      seen.add(p.id);
      const now = Date.now();
      first ||= now;
      last = now;
      lag.record(Math.max(0, now - p.occurredAt));
      const prev = lastSeq.get(p.data.sessionId) ?? 0;
      if (p.data.seq < prev) outOfOrder++;
      lastSeq.set(p.data.sessionId, p.data.seq);
    });
  });
  receiver.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const hookUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook`;

  let base = (await o.start()).replace(/\/$/, '');
  const admin = await http<{ token: string }>(base, 'POST', '/v1/auth/login', {
    email: 'admin@demo.test',
    password: 'switchboard',
  });
  await http(
    base,
    'PUT',
    '/v1/admin/config/webhooks',
    {
      subscriptions: [
        { id: 'bench', url: hookUrl, events: ['message.created'], secret: 'bench-secret-0123456789' },
      ],
    },
    admin.token,
  );

  // ---- visitors (re-connectable: after the restart they resume and resend unacked messages)
  const tokens: string[] = [];
  for (let i = 0; i < o.visitors; i++)
    tokens.push(
      (
        await http<{ token: string }>(base, 'POST', '/v1/visitor/token', {
          tenantId: 'demo',
          visitorId: `wb${i}`,
        })
      ).token,
    );
  const conns: Conn[] = [];
  const connect = (i: number): Promise<Conn> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(
        `${base.replace(/^http/, 'ws')}/v1/ws/visitor?token=${encodeURIComponent(tokens[i]!)}`,
      );
      const c: Conn = conns[i] ?? { ws, sessionId: '', next: 0, acked: new Set() };
      c.ws = ws;
      ws.on('message', (d) => {
        const f = JSON.parse(String(d)) as {
          type: string;
          session?: { sessionId: string };
          clientMsgId?: string;
        };
        if (f.type === 'welcome') ws.send(JSON.stringify({ type: 'open' }));
        else if (f.type === 'session' && f.session) {
          c.sessionId = f.session.sessionId;
          resolve(c);
        } else if (f.type === 'ack' && f.clientMsgId) {
          c.acked.add(Number(f.clientMsgId.slice(1)));
          c.waiting?.();
        }
      });
      ws.once('error', reject);
      ws.once('close', () => c.waiting?.());
    });
  for (let i = 0; i < o.visitors; i++) conns[i] = await connect(i);
  o.log(`[webhooks] ${o.visitors} sessions open; sending ${o.messages} messages each`);

  const total = o.visitors * o.messages;
  const ackedCount = (): number => conns.reduce((n, c) => n + c.acked.size, 0);
  let restarted = false;
  const sender = async (c: Conn): Promise<void> => {
    while (c.acked.size < o.messages) {
      const m = [...Array(o.messages).keys()].find((k) => !c.acked.has(k));
      if (m === undefined) return;
      if (c.ws.readyState !== WebSocket.OPEN) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      await new Promise<void>((r) => {
        c.waiting = r;
        c.ws.send(
          JSON.stringify({
            type: 'send',
            sessionId: c.sessionId,
            clientMsgId: `m${m}`,
            text: `message ${m}`,
          }),
        );
        setTimeout(r, 2000);
      });
    }
  };
  const progress = setInterval(
    () =>
      o.log(`[webhooks] acked ${ackedCount()}/${total}, delivered ${seen.size}, duplicates ${duplicates}`),
    1000,
  );
  const restarter = (async () => {
    if (o.restartAt <= 0) return;
    while (ackedCount() < total * o.restartAt) await new Promise((r) => setTimeout(r, 20));
    o.log(`[webhooks] killing the server (SIGKILL) at ${ackedCount()} acked, ${seen.size} delivered`);
    await o.kill();
    base = (await o.start()).replace(/\/$/, '');
    restarted = true;
    o.log('[webhooks] server restarted on the same data; visitors reconnect');
    for (let i = 0; i < o.visitors; i++) conns[i] = await connect(i);
  })();
  await Promise.all([...conns.map(sender), restarter]);
  // Some senders may have finished before the restart completed; make sure all are acked.
  await Promise.all(conns.map(sender));
  const acked = ackedCount();
  if (held) {
    o.log(`[webhooks] all ${acked} acknowledged; releasing the receiver (${held.length} requests held)`);
    const waiting = held;
    held = undefined;
    releasedAt = Date.now();
    first = 0;
    for (const go of waiting) go();
  }
  const graceEnd = Date.now() + o.graceS * 1000;
  while (seen.size < acked && Date.now() < graceEnd) await new Promise((r) => setTimeout(r, 100));
  clearInterval(progress);
  for (const c of conns) c.ws.close();
  receiver.closeAllConnections();
  receiver.close();
  // Lost: acknowledged messages whose event never arrived. Event ids are `<sessionId>:<seq>`;
  // each session holds exactly its `messages` message events, so count per session.
  const perSession = new Map<string, number>();
  for (const id of seen) {
    const sid = id.slice(0, id.indexOf(':'));
    perSession.set(sid, (perSession.get(sid) ?? 0) + 1);
  }
  let lost = 0;
  for (const c of conns) lost += Math.max(0, c.acked.size - (perSession.get(c.sessionId) ?? 0));
  const seconds = Math.max(0.001, (last - (releasedAt || first)) / 1000);
  return {
    scenario: 'webhooks',
    sessions: o.visitors,
    acked,
    delivered: seen.size,
    lost,
    duplicates,
    out_of_order: outOfOrder,
    deliveries_per_s: Math.round(seen.size / seconds),
    lag_ms: lag.summary(),
    restart: restarted,
    backlog: o.backlog,
  };
}
