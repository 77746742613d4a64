import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_LIMITS,
  type AckFrame,
  type AssignedFrame,
  type QueueFrame,
  type SessionEvent,
  type SessionFrame,
} from '../protos/ws-v1.ts';
import { Directory, seedDemo } from '../actors/index.ts';
import { boot, login, seenEvents, ShiftedClock, TestClient, visitorToken, type Booted } from './testing.ts';

let env: Booted | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await env?.stop();
  env = undefined;
});

async function agent(b: Booted, n: number): Promise<TestClient> {
  const t = await login(b.url, `agent${n}@demo.test`);
  const c = await TestClient.connect(b.wsUrl, 'agent', t.token);
  clients.push(c);
  return c;
}

async function visitor(b: Booted, visitorId?: string): Promise<{ c: TestClient; id: string; token: string }> {
  const t = await visitorToken(b.url, 'demo', visitorId);
  const c = await TestClient.connect(b.wsUrl, 'visitor', t.token);
  clients.push(c);
  return { c, id: t.id, token: t.token };
}

async function openSession(v: TestClient): Promise<string> {
  v.send({ type: 'open', ref: 'o1' });
  const s = await v.next<SessionFrame>((f) => f.type === 'session');
  return s.session.sessionId;
}

describe.each([0, 2])('gateway chat (workers=%i)', (workers) => {
  it('gateway - visitor → agent → visitor round trip', async () => {
    env = await boot({ workers });
    const a = await agent(env, 1);
    const { c: v } = await visitor(env);
    const sid = await openSession(v);
    const assigned = await a.next<AssignedFrame>((f) => f.type === 'assigned');
    expect(assigned.session.sessionId).toBe(sid);
    await v.nextEvent((e) => e.body.kind === 'assigned');

    v.send({ type: 'send', sessionId: sid, clientMsgId: 'm1', text: 'hello 你好' });
    const ack = await v.next<AckFrame>((f) => f.type === 'ack');
    expect(ack).toMatchObject({ clientMsgId: 'm1', duplicate: false, sessionId: sid });
    const got = await a.nextEvent((e) => e.body.kind === 'message');
    expect(got.seq).toBe(ack.seq);
    expect(got.body).toMatchObject({ from: 'visitor', text: 'hello 你好' });

    a.send({ type: 'send', sessionId: sid, clientMsgId: 'a1', text: 'How can I help?' });
    await a.next<AckFrame>((f) => f.type === 'ack');
    const back = await v.nextEvent((e) => e.body.kind === 'message' && e.body.from === 'agent');
    expect(back.body).toMatchObject({ text: 'How can I help?', senderId: 'agent1' });

    // Typing preview reaches the agent with the draft text; agent typing reaches the visitor without text.
    v.send({ type: 'typing', sessionId: sid, text: 'I would like' });
    const typing = await a.next((f) => f.type === 'typing');
    expect(typing).toMatchObject({ from: 'visitor', text: 'I would like' });

    a.send({ type: 'close', sessionId: sid, ref: 'c1' });
    const closed = await v.nextEvent((e) => e.body.kind === 'closed');
    expect(closed.body).toMatchObject({ by: 'agent' });
    v.send({ type: 'send', sessionId: sid, clientMsgId: 'm2', text: 'too late' });
    const err = await v.next((f) => f.type === 'error');
    expect(err).toMatchObject({ code: 'SB_ERR_SESSION_CLOSED', ref: 'm2' });
  });

  it('gateway - queue positions are pushed live until assignment', async () => {
    env = await boot({
      workers,
      demo: { enabled: true, tenantId: 'demo', password: 'switchboard', agents: 1, agentMaxConcurrent: 1 },
    });
    const a = await agent(env, 1);
    const v1 = await visitor(env);
    const s1 = await openSession(v1.c);
    await a.next((f) => f.type === 'assigned');
    const v2 = await visitor(env);
    const s2 = await openSession(v2.c);
    expect((await v2.c.next<QueueFrame>((f) => f.type === 'queue')).position).toBe(1);
    const v3 = await visitor(env);
    const s3 = await openSession(v3.c);
    expect((await v3.c.next<QueueFrame>((f) => f.type === 'queue')).position).toBe(2);

    v1.c.send({ type: 'close', sessionId: s1 });
    const next = await a.next<AssignedFrame>((f) => f.type === 'assigned');
    expect(next.session.sessionId).toBe(s2);
    expect((await v3.c.next<QueueFrame>((f) => f.type === 'queue')).position).toBe(1);
    await v2.c.nextEvent((e) => e.body.kind === 'assigned');
    expect(s3).not.toBe(s2);
  });

  it('gateway - reconnect mid-conversation resumes without gaps or duplicates', async () => {
    env = await boot({ workers });
    const a = await agent(env, 1);
    const v = await visitor(env);
    const sid = await openSession(v.c);
    await a.next((f) => f.type === 'assigned');
    for (let i = 0; i < 5; i++) {
      v.c.send({ type: 'send', sessionId: sid, clientMsgId: `v${i}`, text: `v${i}` });
      await v.c.next((f) => f.type === 'ack');
    }
    // The visitor's own messages come back as acks (with their seq), everything else as events.
    const ackSeqs = v.c.frames.flatMap((f) => (f.type === 'ack' ? [{ seq: f.seq, kind: 'message' }] : []));
    const seen = [...seenEvents(v.c, sid), ...ackSeqs].sort((x, y) => x.seq - y.seq);
    const lastSeen = Math.max(...seen.map((e) => e.seq));
    v.c.close();
    await v.c.waitClose();
    // While the visitor is away the agent writes.
    for (let i = 0; i < 3; i++) {
      a.send({ type: 'send', sessionId: sid, clientMsgId: `a${i}`, text: `a${i}` });
      await a.next((f) => f.type === 'ack');
    }
    const again = await TestClient.connect(env.wsUrl, 'visitor', v.token);
    clients.push(again);
    again.send({ type: 'resume', sessionId: sid, lastSeq: lastSeen });
    await again.next((f) => f.type === 'events' && !f.more);
    a.send({ type: 'send', sessionId: sid, clientMsgId: 'a3', text: 'a3' });
    await again.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'a3');
    const after = seenEvents(again, sid);
    const all = [...seen, ...after].map((e) => e.seq);
    expect(after.map((e) => e.text)).toEqual(['a0', 'a1', 'a2', 'a3']);
    // Every seq from 1 to the last, exactly once.
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
  });

  it('gateway - a live event lost on its way to a socket is replayed: every seq once, in order', async () => {
    let drop = -1;
    env = await boot({ workers }, { dropLiveEvent: (_sid, seq) => seq === drop && ((drop = -1), true) });
    const a = await agent(env, 1);
    const v = await visitor(env);
    const sid = await openSession(v.c);
    await a.next((f) => f.type === 'assigned');
    await a.next((f) => f.type === 'events' && !f.more);
    const before = Math.max(...seenEvents(a, sid).map((e) => e.seq));
    // The agent's copy of the next event goes missing (as with a broken link between nodes).
    drop = before + 1;
    for (const id of ['lost', 'after']) {
      v.c.send({ type: 'send', sessionId: sid, clientMsgId: id, text: id });
      await v.c.next((f) => f.type === 'ack');
    }
    await a.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'after');
    expect(drop).toBe(-1);
    const seen = seenEvents(a, sid);
    expect(seen.filter((e) => e.kind === 'message').map((e) => e.text)).toEqual(['lost', 'after']);
    expect(seen.map((e) => e.seq)).toEqual(Array.from({ length: seen.length }, (_, i) => i + 1));
    // The live stream goes on after the replay.
    a.send({ type: 'send', sessionId: sid, clientMsgId: 'a1', text: 'a1' });
    await a.next((f) => f.type === 'ack');
    v.c.send({ type: 'send', sessionId: sid, clientMsgId: 'next', text: 'next' });
    await a.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'next');
    const all = seenEvents(a, sid).map((e) => e.seq);
    const acked = a.frames.flatMap((f) => (f.type === 'ack' ? [f.seq] : []));
    expect([...all, ...acked].sort((x, y) => x - y)).toEqual(
      Array.from({ length: all.length + acked.length }, (_, i) => i + 1),
    );
    const metrics = await (await fetch(`${env.url}/metrics`)).text();
    expect(metrics).toMatch(/sb_gateway_gaps_filled_total 1\n/);
  });

  it('gateway - resending a clientMsgId is acknowledged once with the same seq', async () => {
    env = await boot({ workers });
    const a = await agent(env, 1);
    const v = await visitor(env);
    const sid = await openSession(v.c);
    await a.next((f) => f.type === 'assigned');
    v.c.send({ type: 'send', sessionId: sid, clientMsgId: 'same', text: 'once' });
    const first = await v.c.next<AckFrame>((f) => f.type === 'ack');
    v.c.send({ type: 'send', sessionId: sid, clientMsgId: 'same', text: 'once' });
    const second = await v.c.next<AckFrame>((f) => f.type === 'ack');
    expect(second.seq).toBe(first.seq);
    expect(second.duplicate).toBe(true);
    v.c.send({ type: 'send', sessionId: sid, clientMsgId: 'other', text: 'twice' });
    await v.c.next((f) => f.type === 'ack');
    await a.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'twice');
    const texts = seenEvents(a, sid)
      .filter((e) => e.kind === 'message')
      .map((e) => e.text);
    expect(texts).toEqual(['once', 'twice']);
  });

  it('gateway - a burst of messages sent without waiting: acks in order at consecutive seqs, each delivered once, the close after all', async () => {
    env = await boot({ workers });
    const a = await agent(env, 1);
    const v = await visitor(env);
    const sid = await openSession(v.c);
    await a.next((f) => f.type === 'assigned');
    await v.c.nextEvent((e) => e.body.kind === 'assigned');
    // 30 messages in one go, a resend of the 10th among them, a typing notice and the close right
    // behind: the close must come after every message, and the resend must not take a seq.
    for (let i = 1; i <= 30; i++) {
      v.c.send({ type: 'send', sessionId: sid, clientMsgId: `b${i}`, text: `burst ${i}` });
      if (i === 12) v.c.send({ type: 'send', sessionId: sid, clientMsgId: 'b10', text: 'burst 10' });
      if (i === 20) v.c.send({ type: 'typing', sessionId: sid, text: 'more' });
    }
    v.c.send({ type: 'close', sessionId: sid, ref: 'c1' });
    await v.c.next<SessionFrame>((f) => f.type === 'session' && f.ref === 'c1');
    const acks = v.c.frames.filter((f): f is AckFrame => f.type === 'ack');
    expect(acks.map((k) => k.clientMsgId)).toEqual([
      ...Array.from({ length: 12 }, (_, i) => `b${i + 1}`),
      'b10',
      ...Array.from({ length: 18 }, (_, i) => `b${i + 13}`),
    ]);
    const fresh = acks.filter((k) => !k.duplicate).map((k) => k.seq);
    expect(fresh).toEqual(Array.from({ length: 30 }, (_, i) => fresh[0]! + i));
    expect(acks.find((k) => k.duplicate)?.seq).toBe(fresh[9]);
    const closed = await a.nextEvent((e) => e.body.kind === 'closed');
    expect(closed.seq).toBe(fresh[29]! + 1);
    const texts = seenEvents(a, sid)
      .filter((e) => e.kind === 'message')
      .map((e) => e.text);
    expect(texts).toEqual(Array.from({ length: 30 }, (_, i) => `burst ${i + 1}`));
  });

  it('gateway - overlapping bursts: messages sent while earlier ones are being written get the next seqs', async () => {
    env = await boot({ workers, limits: { ...DEFAULT_LIMITS, framesPerSecond: 5000 } });
    const a = await agent(env, 1);
    const v = await visitor(env);
    const sid = await openSession(v.c);
    await a.next((f) => f.type === 'assigned');
    // Each new message goes out as soon as one ack comes back, with up to 8 in flight: later
    // messages are taken while earlier ones are still on their way to the disk.
    let sent = 0;
    const total = 200;
    const more = (): void => {
      if (sent < total)
        v.c.send({ type: 'send', sessionId: sid, clientMsgId: `o${++sent}`, text: `o ${sent}` });
    };
    // Two waves a moment apart, so the second is written while the first is being flushed.
    for (let i = 0; i < 4; i++) more();
    await new Promise((r) => setTimeout(r, 1));
    for (let i = 0; i < 4; i++) more();
    const acks: AckFrame[] = [];
    while (acks.length < total) {
      const f = await v.c.next((x) => x.type === 'ack' || x.type === 'error');
      if (f.type !== 'ack') throw new Error(JSON.stringify(f));
      acks.push(f as AckFrame);
      more();
    }
    expect(acks.map((k) => k.clientMsgId)).toEqual(Array.from({ length: total }, (_, i) => `o${i + 1}`));
    expect(acks.map((k) => k.seq - acks[0]!.seq)).toEqual(Array.from({ length: total }, (_, i) => i));
    await a.nextEvent((e) => e.body.kind === 'message' && e.body.text === `o ${total}`);
    expect(
      seenEvents(a, sid)
        .filter((e) => e.kind === 'message')
        .map((e) => e.text),
    ).toEqual(Array.from({ length: total }, (_, i) => `o ${i + 1}`));
  });

  it('gateway - a visitor reloading the page rejoins the same open session', async () => {
    env = await boot({ workers });
    const v = await visitor(env);
    const sid = await openSession(v.c);
    v.c.close();
    const again = await TestClient.connect(env.wsUrl, 'visitor', v.token);
    clients.push(again);
    const welcome = again.frames[0];
    expect(welcome?.type === 'welcome' && welcome.sessions.map((s) => s.sessionId)).toEqual([sid]);
    expect(await openSession(again)).toBe(sid);
  });
});

describe('gateway tenant isolation', () => {
  it('gateway - a visitor cannot read or write another visitor’s session, nor another tenant’s', async () => {
    env = await boot();
    const v1 = await visitor(env);
    const sid = await openSession(v1.c);
    const v2 = await visitor(env);
    v2.c.send({ type: 'resume', sessionId: sid, lastSeq: 0, ref: 'r' });
    expect(await v2.c.next((f) => f.type === 'error')).toMatchObject({ code: 'SB_ERR_FORBIDDEN', ref: 'r' });
    v2.c.send({ type: 'send', sessionId: sid, clientMsgId: 'x', text: 'intrude' });
    expect(await v2.c.next((f) => f.type === 'error')).toMatchObject({ code: 'SB_ERR_FORBIDDEN', ref: 'x' });
    const r = await fetch(`${env.url}/v1/sessions/${sid}/events`, {
      headers: { authorization: `Bearer ${(await visitorToken(env.url)).token}` },
    });
    expect(r.status).toBe(403);
    const own = await fetch(`${env.url}/v1/sessions/${sid}/events`, {
      headers: { authorization: `Bearer ${v1.token}` },
    });
    expect(own.status).toBe(200);
    const body = (await own.json()) as { events: unknown[] };
    expect(body.events.length).toBeGreaterThan(0);
  });

  it('gateway - another tenant sees nothing of this tenant’s sessions', async () => {
    env = await boot();
    await seedDemo(
      new Directory(env.server.runtime.stores.state),
      { tenantId: 'acme', password: 'switchboard', agents: 1, agentMaxConcurrent: 5 },
      Date.now(),
    );
    const v1 = await visitor(env);
    const sid = await openSession(v1.c);
    const other = await visitorToken(env.url, 'acme');
    const ov = await TestClient.connect(env.wsUrl, 'visitor', other.token);
    clients.push(ov);
    ov.send({ type: 'resume', sessionId: sid, lastSeq: 0, ref: 'r' });
    expect(await ov.next((f) => f.type === 'error')).toMatchObject({ code: 'SB_ERR_NOT_FOUND', ref: 'r' });
    const acmeAgent = await login(env.url, 'agent1@acme.test');
    const oa = await TestClient.connect(env.wsUrl, 'agent', acmeAgent.token);
    clients.push(oa);
    oa.send({ type: 'resume', sessionId: sid, lastSeq: 0, ref: 'r2' });
    expect(await oa.next((f) => f.type === 'error')).toMatchObject({ code: 'SB_ERR_NOT_FOUND', ref: 'r2' });
    const r = await fetch(`${env.url}/v1/sessions/${sid}/events`, {
      headers: { authorization: `Bearer ${acmeAgent.token}` },
    });
    expect(r.status).toBe(404);
    // The acme agent was never offered the demo visitor's session.
    expect(oa.frames.some((f) => f.type === 'assigned')).toBe(false);
  });
});

describe('gateway message recall', () => {
  it('gateway - an agent recalls within 2 minutes (1:59 ok, 2:01 refused); visitors lose the text, live and on replay', async () => {
    const clock = new ShiftedClock();
    env = await boot({ workers: 0 }, { clock });
    const a = await agent(env, 1);
    const v = await visitor(env);
    const sid = await openSession(v.c);
    await a.next((f) => f.type === 'assigned');
    const sendAgent = async (id: string, text: string): Promise<number> => {
      a.send({ type: 'send', sessionId: sid, clientMsgId: id, text });
      return (await a.next<AckFrame>((f) => f.type === 'ack' && f.clientMsgId === id)).seq;
    };
    const s1 = await sendAgent('a1', 'wrong price: 10');
    const s2 = await sendAgent('a2', 'old message');
    v.c.send({ type: 'send', sessionId: sid, clientMsgId: 'v1', text: 'visitor text' });
    const sv = (await v.c.next<AckFrame>((f) => f.type === 'ack')).seq;

    clock.offsetMs = 119_000; // 1:59 after sending
    a.send({ type: 'recall', sessionId: sid, seq: s1, ref: 'r1' });
    const recalled = await v.c.nextEvent((e) => e.body.kind === 'recalled');
    expect(recalled.body).toMatchObject({ targetSeq: s1, by: 'agent1' });

    clock.offsetMs = 121_000; // 2:01
    a.send({ type: 'recall', sessionId: sid, seq: s2, ref: 'r2' });
    expect(await a.next((f) => f.type === 'error')).toMatchObject({
      code: 'SB_ERR_RECALL_EXPIRED',
      ref: 'r2',
    });
    // Not the agent's own message / not a message at all / visitors cannot recall.
    a.send({ type: 'recall', sessionId: sid, seq: sv, ref: 'r3' });
    expect(await a.next((f) => f.type === 'error')).toMatchObject({ code: 'SB_ERR_FORBIDDEN', ref: 'r3' });
    a.send({ type: 'recall', sessionId: sid, seq: 1, ref: 'r4' });
    expect(await a.next((f) => f.type === 'error')).toMatchObject({ code: 'SB_ERR_NOT_FOUND', ref: 'r4' });
    v.c.send({ type: 'recall', sessionId: sid, seq: s1, ref: 'r5' });
    expect(await v.c.next((f) => f.type === 'error')).toMatchObject({
      code: 'SB_ERR_UNKNOWN_TYPE',
      ref: 'r5',
    });

    // Replay after reconnect: the visitor gets the recalled message without its text, then the recall event.
    const again = await TestClient.connect(env.wsUrl, 'visitor', v.token);
    clients.push(again);
    again.send({ type: 'resume', sessionId: sid, lastSeq: 0 });
    await again.next((f) => f.type === 'events' && !f.more);
    const replay = seenEvents(again, sid);
    expect(replay.find((e) => e.seq === s1)).toMatchObject({ kind: 'message', text: '' });
    expect(replay.find((e) => e.seq === s2)).toMatchObject({ kind: 'message', text: 'old message' });
    expect(replay.some((e) => e.kind === 'recalled')).toBe(true);
    // Staff (admin) still read the recalled content, marked recalled.
    const admin = await login(env.url, 'admin@demo.test');
    const r = await fetch(`${env.url}/v1/sessions/${sid}/events?afterSeq=0`, {
      headers: { authorization: `Bearer ${admin.token}` },
    });
    const { events } = (await r.json()) as { events: SessionEvent[] };
    const msg = events.find((e) => e.seq === s1)!;
    expect(msg.body).toMatchObject({ text: 'wrong price: 10' });
    expect(msg.recalled).toMatchObject({ by: 'agent1' });
  });
});

describe('gateway history retention', () => {
  it('gateway - history older than the tenant’s window is not served; an extended tenant keeps it', async () => {
    const clock = new ShiftedClock();
    env = await boot({ workers: 0 }, { clock });
    const dir = new Directory(env.server.runtime.stores.state);
    await seedDemo(
      dir,
      { tenantId: 'longco', password: 'switchboard', agents: 1, agentMaxConcurrent: 5 },
      Date.now(),
    );
    await dir.putTenant({ ...(await dir.getTenant('longco'))!, retentionDays: 1095 });
    const chatIn = async (tenantId: string): Promise<{ sid: string; token: string }> => {
      const t = await visitorToken(env!.url, tenantId);
      const c = await TestClient.connect(env!.wsUrl, 'visitor', t.token);
      clients.push(c);
      const sid = await openSession(c);
      c.send({ type: 'send', sessionId: sid, clientMsgId: 'm1', text: 'hello' });
      await c.next((f) => f.type === 'ack');
      return { sid, token: t.token };
    };
    const demo = await chatIn('demo');
    const long = await chatIn('longco');
    const history = async (s: { sid: string; token: string }): Promise<SessionEvent[]> => {
      const r = await fetch(`${env!.url}/v1/sessions/${s.sid}/events?afterSeq=0`, {
        headers: { authorization: `Bearer ${s.token}` },
      });
      return ((await r.json()) as { events: SessionEvent[] }).events;
    };
    expect((await history(demo)).some((e) => e.body.kind === 'message')).toBe(true);
    clock.offsetMs = 181 * 86_400_000;
    expect(await history(demo)).toEqual([]);
    expect((await history(long)).some((e) => e.body.kind === 'message')).toBe(true);
    // A resume over the socket sees the same window and still ends its replay.
    const again = await TestClient.connect(env.wsUrl, 'visitor', demo.token);
    clients.push(again);
    again.send({ type: 'resume', sessionId: demo.sid, lastSeq: 0 });
    const page = await again.next((f) => f.type === 'events' && !f.more);
    expect(page.type === 'events' && page.events).toEqual([]);
  });
});

describe('gateway unknown sessions', () => {
  it('gateway - asking about sessions that do not exist leaves no actors behind', async () => {
    env = await boot({ workers: 0 });
    const v = await visitor(env);
    const before = (await env.server.runtime.metrics()).activeActors;
    for (let i = 0; i < 50; i++) {
      v.c.send({ type: 'resume', sessionId: `guess${i}`, lastSeq: 0, ref: `r${i}` });
      expect(await v.c.next((f) => f.type === 'error')).toMatchObject({
        code: 'SB_ERR_NOT_FOUND',
        ref: `r${i}`,
      });
    }
    await new Promise((r) => setTimeout(r, 50));
    expect((await env.server.runtime.metrics()).activeActors).toBeLessThanOrEqual(before + 1);
  });
});
