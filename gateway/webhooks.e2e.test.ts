/**
 * Webhooks (F23) end to end against a real local receiver: signatures (with the verification code
 * from docs/WEBHOOKS.md), exactly-once after deduplication and order per session while the receiver
 * fails and times out, a restart in the middle of retries, dead letters and redelivery, SSRF
 * refusals.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SbError } from '../protos/errors.ts';
import type { AckFrame, SessionFrame } from '../protos/ws-v1.ts';
import { isPrivateAddress, validateTargetUrl, checkResolvedTarget } from '../actors/webhooks.ts';
import { api, boot, login, TestClient, visitorToken, type Booted } from './testing.ts';

const SECRET = 'receiver-secret-0123456789';
// Short delays, but attempts enough (about 8 s of retrying) that a slow machine never dead-letters here.
const FAST = { allowLoopbackHttp: true, baseDelayMs: 20, maxDelayMs: 200, maxAttempts: 40, timeoutMs: 400 };

type Verify = (secret: string, headers: IncomingHttpHeaders, body: string, now?: number) => boolean;

/** The verification function exactly as docs/WEBHOOKS.md shows it. */
async function docsVerifier(): Promise<Verify> {
  const md = readFileSync(new URL('../docs/WEBHOOKS.md', import.meta.url), 'utf8');
  const code = /## Verifying a request[\s\S]*?```js\n([\s\S]*?)```/.exec(md)![1]!;
  const dir = mkdtempSync(join(tmpdir(), 'sb-doc-'));
  const file = join(dir, 'verify.mjs');
  writeFileSync(file, code);
  const mod = (await import(pathToFileURL(file).href)) as { verifySwitchboardWebhook: Verify };
  rmSync(dir, { recursive: true, force: true });
  return mod.verifySwitchboardWebhook;
}

interface Received {
  id: string;
  kind: string;
  data: Record<string, unknown>;
  attempt: number;
}

/** A receiver that can fail, hang, and deduplicates by event id like a careful integrator. */
class Receiver {
  readonly raw: Received[] = [];
  readonly unique = new Map<string, Received>();
  readonly order: Received[] = [];
  failNext = 0;
  hangNext = 0;
  down = false;
  badSignatures = 0;
  private server: HttpServer;
  url = '';
  constructor(private readonly verify: Verify) {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (this.hangNext > 0) {
          this.hangNext--;
          return; // never answers: the sender times out
        }
        if (this.down || this.failNext > 0) {
          if (!this.down) this.failNext--;
          res.writeHead(503).end();
          return;
        }
        if (!this.verify(SECRET, req.headers, body)) {
          this.badSignatures++;
          res.writeHead(401).end();
          return;
        }
        const p = JSON.parse(body) as { id: string; kind: string; data: Record<string, unknown> };
        const r: Received = {
          id: p.id,
          kind: p.kind,
          data: p.data,
          attempt: Number(req.headers['x-sb-delivery-attempt']),
        };
        this.raw.push(r);
        if (!this.unique.has(p.id)) {
          this.unique.set(p.id, r);
          this.order.push(r);
        }
        res.writeHead(204).end();
      });
    });
  }
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    const a = this.server.address() as { port: number };
    this.url = `http://127.0.0.1:${a.port}/hook`;
  }
  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

async function waitFor(cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

let env: Booted | undefined;
let receiver: Receiver | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await env?.stop();
  env = undefined;
  await receiver?.stop();
  receiver = undefined;
});

async function chat(b: Booted, sessions: number, messages: number): Promise<string[]> {
  const agentTok = await login(b.url, 'agent1@demo.test');
  const agent = await TestClient.connect(b.wsUrl, 'agent', agentTok.token);
  clients.push(agent);
  const ids: string[] = [];
  for (let s = 0; s < sessions; s++) {
    const t = await visitorToken(b.url);
    const v = await TestClient.connect(b.wsUrl, 'visitor', t.token);
    clients.push(v);
    v.send({ type: 'open', ref: 'o' });
    const sid = (await v.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
    ids.push(sid);
    for (let m = 0; m < messages; m++) {
      v.send({ type: 'send', sessionId: sid, clientMsgId: `m${m}`, text: `s${s} message ${m}` });
      await v.next<AckFrame>((f) => f.type === 'ack' && f.clientMsgId === `m${m}`);
    }
    v.send({ type: 'close', sessionId: sid, ref: 'c' });
    await v.next((f) => f.type === 'session' && f.ref === 'c');
  }
  return ids;
}

function checkOrder(r: Receiver, sessions: string[], messages: number): void {
  for (const [i, sid] of sessions.entries()) {
    const got = r.order.filter((x) => x.data['sessionId'] === sid);
    const texts = got.filter((x) => x.kind === 'message.created').map((x) => x.data['text']);
    expect(texts).toEqual(Array.from({ length: messages }, (_, m) => `s${i} message ${m}`));
    expect(got.at(-1)!.kind).toBe('session.closed');
  }
}

describe('webhook targets', () => {
  it('refuses private, link-local, metadata and non-https targets unless allowed', async () => {
    const policy = { allowLoopbackHttp: false };
    const refused = [
      'http://hooks.example.com/x',
      'https://10.1.2.3/x',
      'https://172.20.0.1/x',
      'https://192.168.1.1/x',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/x',
      'https://[fd00::1]/x',
      'https://100.64.0.1/x',
      'https://0.0.0.0/x',
      'https://localhost/x',
      'https://metadata.google.internal/x',
      'https://user:pw@hooks.example.com/x',
      'ftp://hooks.example.com/x',
      'not a url',
    ];
    for (const u of refused) {
      let code = 'none';
      try {
        validateTargetUrl(u, [], policy, 'url');
      } catch (e) {
        code = (e as SbError).code;
      }
      expect(code, u).toBe('SB_ERR_INVALID_FIELD');
    }
    expect(validateTargetUrl('https://hooks.example.com/x', [], policy, 'url').host).toBe(
      'hooks.example.com',
    );
    expect(validateTargetUrl('https://10.1.2.3/x', ['10.1.2.3'], policy, 'url').host).toBe('10.1.2.3');
    expect(() => validateTargetUrl('http://127.0.0.1:9/x', [], policy, 'url')).toThrow(SbError);
    expect(validateTargetUrl('http://127.0.0.1:9/x', [], { allowLoopbackHttp: true }, 'url').port).toBe('9');
    // At delivery time a name that resolves to a private address is refused too.
    await expect(checkResolvedTarget(new URL('https://localhost/x'), [], policy)).rejects.toThrow(
      /private address/,
    );
    for (const [ip, priv] of [
      ['8.8.8.8', false],
      ['1.1.1.1', false],
      ['172.32.0.1', false],
      ['172.31.255.255', true],
      ['::ffff:10.0.0.1', true],
      ['2606:4700::1111', false],
      ['fe80::1', true],
    ] as const)
      expect(isPrivateAddress(ip), ip).toBe(priv);
  });

  it('the admin API refuses SSRF targets and unknown kinds', async () => {
    env = await boot({ webhooks: { ...FAST, allowLoopbackHttp: false } });
    const admin = await login(env.url, 'admin@demo.test');
    for (const url of ['https://169.254.169.254/x', 'http://127.0.0.1:1/x', 'https://10.0.0.5/x']) {
      const r = await api<{ error: { code: string } }>(
        env.url,
        'PUT',
        '/v1/admin/config/webhooks',
        admin.token,
        {
          subscriptions: [{ id: 's', url, events: ['message.created'], secret: SECRET }],
        },
      );
      expect(r.status, url).toBe(400);
    }
    const kind = await api(env.url, 'PUT', '/v1/admin/config/webhooks', admin.token, {
      subscriptions: [
        { id: 's', url: 'https://hooks.example.com/x', events: ['everything'], secret: SECRET },
      ],
    });
    expect(kind.status).toBe(400);
    const short = await api(env.url, 'PUT', '/v1/admin/config/webhooks', admin.token, {
      subscriptions: [
        { id: 's', url: 'https://hooks.example.com/x', events: ['message.created'], secret: 'short' },
      ],
    });
    expect(short.status).toBe(400);
  });
});

describe('webhook delivery', () => {
  it('every event once after dedup, in order per session, through failures, timeouts and a restart', async () => {
    const verify = await docsVerifier();
    receiver = new Receiver(verify);
    await receiver.start();
    env = await boot({ webhooks: FAST });
    const admin = await login(env.url, 'admin@demo.test');
    const put = await api(env.url, 'PUT', '/v1/admin/config/webhooks', admin.token, {
      subscriptions: [
        {
          id: 'crm',
          url: receiver.url,
          events: ['message.created', 'session.closed', 'agent.status_changed', 'visitor.tag_added'],
          secret: SECRET,
        },
      ],
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);

    // Phase 1: the receiver fails now and then and hangs twice (timeouts).
    receiver.failNext = 4;
    receiver.hangNext = 2;
    const first = await chat(env, 3, 5);
    await waitFor(() => receiver!.order.filter((x) => x.kind === 'session.closed').length === 3);
    checkOrder(receiver, first, 5);
    expect(receiver.raw.some((x) => x.attempt > 1)).toBe(true);
    expect(receiver.badSignatures).toBe(0);

    // Phase 2: the receiver goes down, messages keep coming, the server restarts mid-retries.
    receiver.down = true;
    const second = await chat(env, 2, 4);
    await new Promise((r) => setTimeout(r, 300)); // some failed attempts happen
    for (const c of clients.splice(0)) c.close();
    const dataDir = env.dataDir;
    await env.stop({ keepData: true });
    env = undefined;
    receiver.down = false;
    env = await boot({ dataDir, webhooks: FAST });
    await waitFor(() => receiver!.order.filter((x) => x.kind === 'session.closed').length === 5);
    checkOrder(receiver, second, 4);
    // Nothing lost, nothing unexpected: 5 sessions × their messages + closes, plus agent status events.
    const messages = receiver.order.filter((x) => x.kind === 'message.created');
    expect(messages).toHaveLength(3 * 5 + 2 * 4);
    expect(new Set(receiver.order.map((x) => x.id)).size).toBe(receiver.order.length);
    expect(receiver.order.some((x) => x.kind === 'agent.status_changed')).toBe(true);

    // Visitor tags come through their own stream.
    const adminTok = await login(env.url, 'admin@demo.test');
    const visitorId = 'v-webhook-tags';
    await visitorToken(env.url, 'demo', visitorId);
    await api(env.url, 'POST', `/v1/visitors/${visitorId}/tags`, adminTok.token, { add: ['VIP'] });
    await waitFor(() =>
      receiver!.order.some((x) => x.kind === 'visitor.tag_added' && x.data['tag'] === 'VIP'),
    );
  });

  it('dead-letters an event after its attempts, lists it, and redelivers it on demand', async () => {
    receiver = new Receiver(() => true);
    await receiver.start();
    env = await boot({ webhooks: { ...FAST, maxAttempts: 3 } });
    const admin = await login(env.url, 'admin@demo.test');
    await api(env.url, 'PUT', '/v1/admin/config/webhooks', admin.token, {
      subscriptions: [{ id: 'crm', url: receiver.url, events: ['session.closed'], secret: SECRET }],
    });
    receiver.down = true;
    const [sid] = await chat(env, 1, 1);
    let dead: Array<{
      key: string;
      payload: { kind: string; data: { sessionId: string } };
      attempts: number;
    }> = [];
    for (let i = 0; i < 100 && dead.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      dead = (await api<typeof dead>(env.url, 'GET', '/v1/admin/webhooks/dead-letters', admin.token)).body;
    }
    expect(dead).toHaveLength(1);
    expect(dead[0]!.payload).toMatchObject({ kind: 'session.closed', data: { sessionId: sid } });
    expect(dead[0]!.attempts).toBe(3);
    // Still down: the redelivery fails and the letter stays.
    const again = await api<{ delivered: boolean }>(
      env.url,
      'POST',
      '/v1/admin/webhooks/dead-letters/redeliver',
      admin.token,
      {
        key: dead[0]!.key,
      },
    );
    expect(again.body.delivered).toBe(false);
    receiver.down = false;
    const ok = await api<{ delivered: boolean }>(
      env.url,
      'POST',
      '/v1/admin/webhooks/dead-letters/redeliver',
      admin.token,
      {
        key: dead[0]!.key,
      },
    );
    expect(ok.body.delivered).toBe(true);
    expect(receiver.order.map((x) => x.kind)).toEqual(['session.closed']);
    const after = await api<unknown[]>(env.url, 'GET', '/v1/admin/webhooks/dead-letters', admin.token);
    expect(after.body).toEqual([]);
  });
});
