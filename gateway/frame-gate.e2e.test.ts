/**
 * The gateway's frame gate (SB_MAX_FRAMES_IN_FLIGHT, SB_MAX_QUEUED_FRAMES): frames beyond the ones
 * in progress wait their turn in arrival order and lose nothing; past the waiting bound a frame is
 * refused with SB_ERR_BUSY, and sent again it is stored once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerFrame, SessionEvent } from '../protos/ws-v1.ts';
import { boot, login, TestClient, visitorToken, type Booted } from './testing.ts';

let env: Booted | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await env?.stop();
  env = undefined;
});

type Ack = Extract<ServerFrame, { type: 'ack' }>;
type Err = Extract<ServerFrame, { type: 'error' }>;

async function agentOnline(b: Booted): Promise<TestClient> {
  const t = await login(b.url, 'agent1@demo.test');
  const c = await TestClient.connect(b.wsUrl, 'agent', t.token);
  clients.push(c);
  return c;
}

async function visitorWithSession(b: Booted): Promise<{ c: TestClient; sid: string }> {
  const t = await visitorToken(b.url, 'demo');
  const c = await TestClient.connect(b.wsUrl, 'visitor', t.token);
  clients.push(c);
  c.send({ type: 'open', ref: 'o1' });
  const s = await c.next<Extract<ServerFrame, { type: 'session' }>>((f) => f.type === 'session');
  return { c, sid: s.session.sessionId };
}

/** The message events an agent socket received for a session, in arrival order. */
function messagesOf(a: TestClient, sid: string): SessionEvent[] {
  const out: SessionEvent[] = [];
  for (const f of a.frames) {
    const evs = f.type === 'event' ? [f.event] : f.type === 'events' ? f.events : [];
    for (const e of evs) if (e.sessionId === sid && e.body.kind === 'message') out.push(e);
  }
  return out;
}

describe('gateway frame gate', () => {
  it('gateway - with one frame in flight, bursts from several sockets all arrive, in order, once', async () => {
    env = await boot({ workers: 0, maxFramesInFlight: 1 });
    const a = await agentOnline(env);
    const vs = await Promise.all([1, 2, 3].map(() => visitorWithSession(env!)));
    for (const [i, v] of vs.entries())
      for (let n = 0; n < 25; n++)
        v.c.send({ type: 'send', sessionId: v.sid, clientMsgId: `v${i}-${n}`, text: `m${n}` });
    for (const [i, v] of vs.entries()) {
      const acks: Ack[] = [];
      for (let n = 0; n < 25; n++) acks.push(await v.c.next<Ack>((f) => f.type === 'ack', 10_000));
      // Acknowledged in the order sent, each at the next seq.
      expect(acks.map((k) => k.clientMsgId)).toEqual(Array.from({ length: 25 }, (_, n) => `v${i}-${n}`));
      for (let n = 1; n < 25; n++) expect(acks[n]!.seq).toBe(acks[n - 1]!.seq + 1);
      expect(acks.every((k) => !k.duplicate)).toBe(true);
    }
    await expect
      .poll(() => vs.map((v) => messagesOf(a, v.sid).length), { timeout: 10_000 })
      .toEqual([25, 25, 25]);
    for (const v of vs)
      expect(messagesOf(a, v.sid).map((e) => (e.body as { text?: string }).text)).toEqual(
        Array.from({ length: 25 }, (_, n) => `m${n}`),
      );
  });

  it('gateway - bad frames that wait their turn still get their typed errors; the socket stays usable', async () => {
    env = await boot({ workers: 0, maxFramesInFlight: 1 });
    await agentOnline(env);
    const v = await visitorWithSession(env);
    // A valid send first (in progress while the rest arrive), then bad frames and another tenant's
    // session id, all waiting behind it.
    v.c.send({ type: 'send', sessionId: v.sid, clientMsgId: 'ok1', text: 'one' });
    v.c.send('not json');
    v.c.send({ type: 'send', sessionId: v.sid, clientMsgId: 'empty', text: '' });
    v.c.send({ type: 'nope', ref: 'r1' });
    v.c.send({ type: 'send', sessionId: 'someone-elses', clientMsgId: 'foreign', text: 'hi' });
    v.c.send({ type: 'send', sessionId: v.sid, clientMsgId: 'ok2', text: 'two' });
    const answers: Array<[string, string | undefined]> = [];
    while (answers.length < 6) {
      const f = await v.c.next((x) => x.type === 'ack' || x.type === 'error');
      answers.push(f.type === 'ack' ? ['ack', f.clientMsgId] : [(f as Err).code, (f as Err).ref]);
    }
    expect(answers).toEqual([
      ['ack', 'ok1'],
      ['SB_ERR_BAD_FRAME', undefined],
      ['SB_ERR_INVALID_FIELD', 'empty'],
      ['SB_ERR_UNKNOWN_TYPE', 'r1'],
      ['SB_ERR_NOT_FOUND', 'foreign'],
      ['ack', 'ok2'],
    ]);
  });

  it('gateway - past the waiting bound a frame gets SB_ERR_BUSY; sent again, it is stored once', async () => {
    env = await boot({ workers: 0, maxFramesInFlight: 1, maxQueuedFrames: 0 });
    const a = await agentOnline(env);
    const v = await visitorWithSession(env);
    const ids = Array.from({ length: 10 }, (_, n) => `b${n}`);
    // One burst: a frame in progress (this one's append waits for the log, or the end of the
    // `open`) while the others arrive, and nothing may wait.
    for (const id of ids) v.c.send({ type: 'send', sessionId: v.sid, clientMsgId: id, text: id });
    const answered = new Map<string, 'ack' | 'busy'>();
    while (answered.size < ids.length) {
      const f = await v.c.next((x) => x.type === 'ack' || x.type === 'error');
      if (f.type === 'ack') answered.set(f.clientMsgId, 'ack');
      else {
        expect(f).toMatchObject({ code: 'SB_ERR_BUSY' });
        answered.set((f as Err).ref!, 'busy');
      }
    }
    const busy = ids.filter((id) => answered.get(id) === 'busy');
    expect(busy.length).toBeGreaterThan(0);
    const metrics = await (await fetch(`${env.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`sb_gateway_frames_busy_total ${busy.length}\\b`));
    // The client sends each refused frame again (after a pause while it is still refused): each
    // is stored once.
    for (const id of busy) {
      for (let attempt = 0; ; attempt++) {
        v.c.send({ type: 'send', sessionId: v.sid, clientMsgId: id, text: id });
        const f = await v.c.next(
          (x) => (x.type === 'ack' && x.clientMsgId === id) || (x.type === 'error' && x.ref === id),
        );
        if (f.type === 'ack') {
          expect(f.duplicate).toBe(false);
          break;
        }
        expect(f).toMatchObject({ code: 'SB_ERR_BUSY' });
        expect(attempt).toBeLessThan(50);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await expect.poll(() => messagesOf(a, v.sid).length, { timeout: 10_000 }).toBe(ids.length);
    const got = messagesOf(a, v.sid).map((e) => (e.body as { text?: string }).text);
    expect([...got].sort()).toEqual([...ids].sort());
    const seqs = messagesOf(a, v.sid).map((e) => e.seq);
    for (let n = 1; n < seqs.length; n++) expect(seqs[n]).toBe(seqs[n - 1]! + 1);
  });
});
