import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOSE_CODES } from '../protos/ws-v1.ts';
import { boot, postJson, TestClient, visitorToken, type Booted } from './testing.ts';

let env: Booted;
beforeAll(async () => {
  env = await boot({
    limits: {
      maxFrameBytes: 4096,
      maxTextChars: 1000,
      framesPerSecond: 20,
      maxBackpressureBytes: 64 * 1024,
      idleTimeoutSec: 2,
      resumePageSize: 500,
    },
  });
});
afterAll(async () => {
  await env.stop();
});

async function v(): Promise<TestClient> {
  return TestClient.connect(env.wsUrl, 'visitor', (await visitorToken(env.url)).token);
}

function upgradeStatus(path: string, protocols?: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${env.wsUrl}${path}`, protocols);
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('error', reject);
  });
}

describe('gateway bad input', () => {
  it('gateway - bad, forged, expired or wrong-role tokens are refused before the upgrade', async () => {
    expect(await upgradeStatus('/v1/ws/visitor')).toBe(401);
    expect(await upgradeStatus('/v1/ws/visitor?token=garbage')).toBe(401);
    const t = await visitorToken(env.url);
    const [body, mac] = t.token.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>;
    const forged =
      Buffer.from(JSON.stringify({ ...claims, tenantId: 'other' })).toString('base64url') + '.' + mac;
    expect(await upgradeStatus(`/v1/ws/visitor?token=${forged}`)).toBe(401);
    expect(await upgradeStatus(`/v1/ws/agent?token=${t.token}`)).toBe(401);
    expect(await upgradeStatus(`/v1/ws/visitor?token=${t.token}`)).toBe(101);
    expect(await upgradeStatus('/v1/ws/visitor', ['sb.v1', t.token])).toBe(101);
    expect(await upgradeStatus('/v1/ws/visitor', ['sb.v1', 'forged.token'])).toBe(401);
  });

  it('gateway - malformed frames get typed errors and the socket stays usable', async () => {
    const c = await v();
    const cases: Array<[unknown, string]> = [
      ['not json', 'SB_ERR_BAD_FRAME'],
      ['[1,2]', 'SB_ERR_BAD_FRAME'],
      [{ no: 'type' }, 'SB_ERR_BAD_FRAME'],
      [{ type: 42 }, 'SB_ERR_BAD_FRAME'],
      [{ type: 'status', status: 'online' }, 'SB_ERR_UNKNOWN_TYPE'],
      [{ type: 'nope' }, 'SB_ERR_UNKNOWN_TYPE'],
      [{ type: 'send', sessionId: 'x', clientMsgId: 'a', text: '' }, 'SB_ERR_INVALID_FIELD'],
      [{ type: 'send', sessionId: 'x', clientMsgId: 'a', text: 'x'.repeat(1001) }, 'SB_ERR_INVALID_FIELD'],
      [{ type: 'send', sessionId: '../../etc', clientMsgId: 'a', text: 'hi' }, 'SB_ERR_INVALID_FIELD'],
      [{ type: 'send', sessionId: 'x', clientMsgId: 'a'.repeat(65), text: 'hi' }, 'SB_ERR_INVALID_FIELD'],
      [{ type: 'send', sessionId: 'x', text: 'hi' }, 'SB_ERR_INVALID_FIELD'],
      [{ type: 'resume', sessionId: 'x', lastSeq: -1 }, 'SB_ERR_INVALID_FIELD'],
      [{ type: 'resume', sessionId: 'x', lastSeq: 1.5 }, 'SB_ERR_INVALID_FIELD'],
      [{ type: 'open', channel: 'telex' }, 'SB_ERR_INVALID_FIELD'],
      [{ type: 'send', sessionId: 'doesnotexist', clientMsgId: 'q', text: 'hi' }, 'SB_ERR_NOT_FOUND'],
    ];
    for (const [frame, code] of cases) {
      c.send(frame);
      const e = await c.next((f) => f.type === 'error');
      expect(e, JSON.stringify(frame)).toMatchObject({ code });
    }
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await c.next((f) => f.type === 'error')).toMatchObject({ code: 'SB_ERR_BAD_FRAME' });
    c.send({ type: 'ping', ref: 'p' });
    expect(await c.next((f) => f.type === 'pong')).toMatchObject({ ref: 'p' });
    c.close();
  });

  it('gateway - an oversized frame closes the socket with 4009', async () => {
    const c = await v();
    c.send({ type: 'ping', pad: 'x'.repeat(5000) });
    expect((await c.waitClose()).code).toBe(CLOSE_CODES.FRAME_TOO_LARGE);
    expect(c.frames.some((f) => f.type === 'error' && f.code === 'SB_ERR_FRAME_TOO_LARGE')).toBe(true);
  });

  it('gateway - a flood is rate limited, then closed with 4029', async () => {
    const c = await v();
    for (let i = 0; i < 200; i++) c.send({ type: 'ping' });
    expect((await c.waitClose()).code).toBe(CLOSE_CODES.RATE_LIMITED);
    expect(c.frames.some((f) => f.type === 'error' && f.code === 'SB_ERR_RATE_LIMITED')).toBe(true);
  });

  it('gateway - an idle socket is closed with 4000 after the idle timeout', async () => {
    const c = await v();
    // The ws client answers pings automatically; stop it so the socket is really silent.
    (c.ws as unknown as { pong: () => void }).pong = () => {};
    c.ws.removeAllListeners('ping');
    const closed = await c.waitClose(8000);
    expect([CLOSE_CODES.IDLE, 1006]).toContain(closed.code);
  });

  it('gateway - a slow consumer is closed with 4008 instead of buffering without bound', async () => {
    const b = await boot({
      limits: {
        maxFrameBytes: 8192,
        maxTextChars: 4000,
        framesPerSecond: 2000,
        maxBackpressureBytes: 256 * 1024,
        idleTimeoutSec: 60,
        resumePageSize: 500,
      },
    });
    try {
      const vt = await visitorToken(b.url);
      const vis = await TestClient.connect(b.wsUrl, 'visitor', vt.token);
      vis.send({ type: 'open' });
      const s = await vis.next((f) => f.type === 'session');
      const sid = s.type === 'session' ? s.session.sessionId : '';
      const text = 'y'.repeat(3000);
      for (let i = 0; i < 300; i++) vis.send({ type: 'send', sessionId: sid, clientMsgId: `f${i}`, text });
      for (let i = 0; i < 300; i++) await vis.next((f) => f.type === 'ack');
      // A second socket of the same visitor stops reading and asks for the whole history again and
      // again: about 1 MB of output per request. Kernel buffers fill, then the server's bound trips.
      const slow = await TestClient.connect(b.wsUrl, 'visitor', vt.token);
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      for (let i = 0; i < 40; i++) slow.send({ type: 'resume', sessionId: sid, lastSeq: 0 });
      const deadline = Date.now() + 20_000;
      while (!slow.closed && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
        await new Promise((r) => setImmediate(r));
        (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      }
      (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
      // The close frame queues behind the unread data, so a client that never reads may only see the
      // connection drop (1006); the server's count of slow-consumer closes says why.
      expect([CLOSE_CODES.SLOW_CONSUMER, 1006]).toContain((await slow.waitClose(10_000)).code);
      const metrics = await (await fetch(`${b.url}/metrics`)).text();
      expect(metrics).toMatch(/sb_gateway_closed_total\{code="SB_ERR_SLOW_CONSUMER"\} 1/);
      // The server and the healthy socket carry on.
      vis.send({ type: 'ping', ref: 'alive' });
      expect(await vis.next((f) => f.type === 'pong')).toMatchObject({ ref: 'alive' });
      vis.close();
    } finally {
      await b.stop();
    }
  }, 60_000);

  it('gateway - HTTP endpoints answer bad input with typed errors', async () => {
    const bad = await postJson<{ error: { code: string } }>(`${env.url}/v1/auth/login`, {
      email: 'agent1@demo.test',
      password: 'wrong',
    });
    expect(bad).toMatchObject({ status: 401, body: { error: { code: 'SB_ERR_BAD_CREDENTIALS' } } });
    const unknown = await postJson<{ error: { code: string } }>(`${env.url}/v1/auth/login`, {
      email: 'nobody@x.test',
      password: 'whatever1',
    });
    expect(unknown).toMatchObject({ status: 401, body: { error: { code: 'SB_ERR_BAD_CREDENTIALS' } } });
    const missing = await postJson<{ error: { code: string } }>(`${env.url}/v1/auth/login`, { email: 1 });
    expect(missing).toMatchObject({ status: 400, body: { error: { code: 'SB_ERR_INVALID_FIELD' } } });
    const notJson = await fetch(`${env.url}/v1/visitor/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    expect(notJson.status).toBe(400);
    const huge = await fetch(`${env.url}/v1/visitor/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tenantId: 'demo', pad: 'x'.repeat(100_000) }),
    });
    expect(huge.status).toBe(413);
    const noTenant = await postJson<{ error: { code: string } }>(`${env.url}/v1/visitor/token`, {
      tenantId: 'nope',
    });
    expect(noTenant).toMatchObject({ status: 404, body: { error: { code: 'SB_ERR_NOT_FOUND' } } });
    const badTenant = await postJson<{ error: { code: string } }>(`${env.url}/v1/visitor/token`, {
      tenantId: '../x',
    });
    expect(badTenant.status).toBe(400);
    const noAuth = await fetch(`${env.url}/v1/sessions/abc/events`);
    expect(noAuth.status).toBe(401);
    const nothing = await fetch(`${env.url}/v1/nothing`);
    expect(nothing.status).toBe(404);
    const h = await fetch(`${env.url}/v1/health`);
    expect(h.status).toBe(200);
  });
});
