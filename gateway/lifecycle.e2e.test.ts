/**
 * Routing rules, skill-group queues and the session lifecycle (F2–F6, F9, F11) end to end over real
 * sockets and HTTP: admin configuration, routing decisions, chatbot handoff, transfer
 * accept/decline/timeout, tags and forced tags, rating, sensitive words, typing throttle, proactive
 * chat, durable auto-close timers across a restart, tenant isolation.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type {
  AckFrame,
  AssignedFrame,
  ErrorFrame,
  NoticeFrame,
  SessionFrame,
  TokenResponse,
  TransferOfferFrame,
} from '../protos/ws-v1.ts';
import { Directory, seedDemo } from '../actors/index.ts';
import { api, boot, JumpClock, login, TestClient, visitorToken, type Booted } from './testing.ts';

let env: Booted | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await env?.stop();
  env = undefined;
});

const ROUTING = {
  priority: ['entry', 'association', 'channel'],
  rules: [
    {
      id: 'pricing',
      kind: 'entry',
      match: 'pricing',
      targets: { mode: 'allDay', target: { kind: 'group', groupId: 'sales' } },
      enabled: true,
    },
    {
      id: 'help',
      kind: 'entry',
      match: 'help',
      targets: { mode: 'allDay', target: { kind: 'bot', botId: 'faq' } },
      enabled: true,
    },
  ],
  defaultTargets: { mode: 'allDay', target: { kind: 'group', groupId: 'ungrouped' } },
  bots: [{ botId: 'faq', name: 'FAQ bot', handoffGroupId: 'support' }],
  groups: [
    { groupId: 'sales', name: 'Sales' },
    { groupId: 'support', name: 'Support' },
  ],
};

const TAGS = [
  { tagId: 'billing', name: 'Billing', children: [{ tagId: 'refund', name: 'Refund' }] },
  { tagId: 'tech', name: 'Technical' },
];

interface Desk {
  b: Booted;
  admin: TokenResponse;
}

async function desk(b: Booted): Promise<Desk> {
  const admin = await login(b.url, 'admin@demo.test');
  expect((await api(b.url, 'PUT', '/v1/admin/config/routing', admin.token, ROUTING)).status).toBe(200);
  expect((await api(b.url, 'PUT', '/v1/admin/config/tags', admin.token, TAGS)).status).toBe(200);
  for (const [memberId, groups] of [
    ['sam', ['sales']],
    ['sue', ['support']],
  ] as const) {
    const r = await api(b.url, 'POST', '/v1/admin/members', admin.token, {
      memberId,
      email: `${memberId}@demo.test`,
      name: memberId.toUpperCase(),
      password: 'switchboard',
      maxConcurrent: 5,
      groups,
    });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  }
  return { b, admin };
}

async function agentNamed(b: Booted, email: string): Promise<TestClient> {
  const t = await login(b.url, email);
  const c = await TestClient.connect(b.wsUrl, 'agent', t.token);
  clients.push(c);
  return c;
}

async function visitor(b: Booted, tenantId = 'demo'): Promise<{ c: TestClient; id: string }> {
  const t = await visitorToken(b.url, tenantId);
  const c = await TestClient.connect(b.wsUrl, 'visitor', t.token);
  clients.push(c);
  return { c, id: t.id };
}

async function open(v: TestClient, entry?: string): Promise<string> {
  v.send(entry ? { type: 'open', entry, ref: 'o' } : { type: 'open', ref: 'o' });
  return (await v.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
}

describe('admin API', () => {
  it('validates every section, rejects unknown fields, and is for admins only', async () => {
    env = await boot();
    const { b, admin } = await desk(env);
    const cfg = await api<{ version: number; routing: { groups: unknown[] } }>(
      b.url,
      'GET',
      '/v1/admin/config',
      admin.token,
    );
    expect(cfg.body.routing.groups).toHaveLength(2);
    expect(cfg.body.version).toBe(2);

    const bad = async (path: string, body: unknown, method = 'PUT'): Promise<string> => {
      const r = await api<{ error: { code: string; message: string } }>(
        b.url,
        method,
        path,
        admin.token,
        body,
      );
      expect(r.status, JSON.stringify(r.body)).toBe(400);
      expect(r.body.error.code).toMatch(/^SB_ERR_(INVALID_FIELD|BAD_FRAME)$/);
      return r.body.error.message;
    };
    expect(await bad('/v1/admin/config/settings', { autoCloseInactiveMin: -1 })).toContain(
      'autoCloseInactiveMin',
    );
    expect(await bad('/v1/admin/config/settings', { nope: 1 })).toContain('unknown field');
    expect(await bad('/v1/admin/config/tags', [{ tagId: 'a b', name: 'x' }])).toContain('tagId');
    expect(
      await bad('/v1/admin/config/associations', [{ associationId: 'x', channel: 'fax', name: 'x' }]),
    ).toContain('channel');
    await bad('/v1/admin/config/routing', { ...ROUTING, surprise: true });
    await bad('/v1/admin/config/sensitive', { mode: 'shout', words: [] });
    await bad('/v1/admin/members/sam', { maxConcurrent: 101 }, 'PATCH');
    await bad('/v1/admin/members/sam', { groups: ['nope'] }, 'PATCH');
    await bad('/v1/admin/members/sam', { password: 'x' }, 'PATCH');
    // The upgrade raises the cap to 200.
    expect(
      (await api(b.url, 'PUT', '/v1/admin/config/settings', admin.token, { upgraded: true })).status,
    ).toBe(200);
    expect(
      (await api(b.url, 'PATCH', '/v1/admin/members/sam', admin.token, { maxConcurrent: 150 })).status,
    ).toBe(200);
    await bad('/v1/admin/members/sam', { maxConcurrent: 201 }, 'PATCH');
    // Nothing of the failed writes was applied.
    const after = await api<{ version: number; settings: { autoCloseInactiveMin: number } }>(
      b.url,
      'GET',
      '/v1/admin/config',
      admin.token,
    );
    expect(after.body.version).toBe(3);
    expect(after.body.settings.autoCloseInactiveMin).toBe(0);

    const agent = await login(b.url, 'agent1@demo.test');
    expect((await api(b.url, 'GET', '/v1/admin/config', agent.token)).status).toBe(403);
    expect((await api(b.url, 'PUT', '/v1/admin/config/tags', agent.token, [])).status).toBe(403);
    expect((await api(b.url, 'GET', '/v1/admin/config', 'forged')).status).toBe(401);
    expect((await api(b.url, 'PUT', '/v1/admin/config/bogus', admin.token, {})).status).toBe(404);
  });

  it('keeps tenants apart: config, members, sessions and visitors', async () => {
    env = await boot();
    await desk(env);
    const dir = new Directory(env.server.runtime.stores.state);
    await seedDemo(
      dir,
      { tenantId: 'other', password: 'switchboard', agents: 1, agentMaxConcurrent: 5 },
      Date.now(),
    );
    const otherAdmin = await login(env.url, 'admin@other.test');
    const cfg = await api<{ routing: { groups: unknown[] }; tags: unknown[] }>(
      env.url,
      'GET',
      '/v1/admin/config',
      otherAdmin.token,
    );
    expect(cfg.body.routing.groups).toEqual([]);
    expect(cfg.body.tags).toEqual([]);
    const members = await api<Array<{ memberId: string }>>(
      env.url,
      'GET',
      '/v1/admin/members',
      otherAdmin.token,
    );
    expect(members.body.map((m) => m.memberId).sort()).toEqual(['admin', 'agent1']);
    // A demo session is invisible to the other tenant's admin.
    const a = await agentNamed(env, 'agent1@demo.test');
    const { c: v, id: vid } = await visitor(env);
    const sid = await open(v);
    await a.next((f) => f.type === 'assigned');
    expect((await api(env.url, 'GET', `/v1/sessions/${sid}`, otherAdmin.token)).status).toBe(404);
    expect((await api(env.url, 'GET', `/v1/visitors/${vid}`, otherAdmin.token)).body).toMatchObject({
      visitorId: vid,
      tags: [],
      sessions: [],
    });
    const online = await api<{ visitors: Array<{ visitorId: string }> }>(
      env.url,
      'GET',
      '/v1/visitors/online',
      otherAdmin.token,
    );
    expect(online.body.visitors.map((x) => x.visitorId)).not.toContain(vid);
  });
});

describe('routing and queues', () => {
  it('routes by entry to a skill group, records why, and assigns only to that group', async () => {
    env = await boot();
    const { b, admin } = await desk(env);
    const ungrouped = await agentNamed(b, 'agent1@demo.test');
    const sam = await agentNamed(b, 'sam@demo.test');
    const { c: v } = await visitor(b);
    const sid = await open(v, 'pricing');
    const assigned = await sam.next<AssignedFrame>((f) => f.type === 'assigned');
    expect(assigned.session).toMatchObject({ sessionId: sid, groupId: 'sales' });
    const routed = await sam.nextEvent((e) => e.body.kind === 'routed');
    expect(routed.body).toMatchObject({
      ruleId: 'pricing',
      ruleKind: 'entry',
      target: { kind: 'group', groupId: 'sales' },
    });
    const details = await api<{ routing: { ruleId: string; reason: string }; groupId: string }>(
      b.url,
      'GET',
      `/v1/sessions/${sid}`,
      admin.token,
    );
    expect(details.body.routing.ruleId).toBe('pricing');
    expect(details.body.routing.reason.length).toBeGreaterThan(0);
    // Visitors never see staff-only events.
    await v.nextEvent((e) => e.body.kind === 'assigned');
    expect(v.frames.some((f) => f.type === 'event' && f.event.body.kind === 'routed')).toBe(false);
    // No rule → the default group: ungrouped agents only.
    const { c: v2 } = await visitor(b);
    const sid2 = await open(v2);
    expect((await ungrouped.next<AssignedFrame>((f) => f.type === 'assigned')).session.sessionId).toBe(sid2);
    expect(sam.frames.filter((f) => f.type === 'assigned')).toHaveLength(1);
  });

  it('queues per group, pushes positions, and assigns when an agent frees capacity or comes online', async () => {
    env = await boot();
    const { b, admin } = await desk(env);
    await api(b.url, 'PATCH', '/v1/admin/members/sam', admin.token, { maxConcurrent: 1 });
    const visitors = [];
    for (let i = 0; i < 3; i++) {
      const { c } = await visitor(b);
      visitors.push({ c, sid: await open(c, 'pricing') });
    }
    for (let i = 0; i < 3; i++) {
      const q = await visitors[i]!.c.next((f) => f.type === 'queue');
      expect(q).toMatchObject({ position: i + 1 });
    }
    const sam = await agentNamed(b, 'sam@demo.test');
    expect((await sam.next<AssignedFrame>((f) => f.type === 'assigned')).session.sessionId).toBe(
      visitors[0]!.sid,
    );
    // The others move up.
    await visitors[1]!.c.next((f) => f.type === 'queue' && f.position === 1);
    await visitors[2]!.c.next((f) => f.type === 'queue' && f.position === 2);
    const snap = await api<{ queues: Record<string, string[]> }>(
      b.url,
      'GET',
      '/v1/admin/dispatch',
      admin.token,
    );
    expect(snap.body.queues['sales']).toEqual([visitors[1]!.sid, visitors[2]!.sid]);
    // Closing frees capacity: the next one is assigned.
    sam.send({ type: 'close', sessionId: visitors[0]!.sid, ref: 'c' });
    expect((await sam.next<AssignedFrame>((f) => f.type === 'assigned')).session.sessionId).toBe(
      visitors[1]!.sid,
    );
    // Away agents get nothing; back online they do.
    sam.send({ type: 'status', status: 'away' });
    await sam.next((f) => f.type === 'status');
    sam.send({ type: 'close', sessionId: visitors[1]!.sid, ref: 'c2' });
    await sam.next((f) => f.type === 'session' && f.ref === 'c2');
    await new Promise((r) => setTimeout(r, 200));
    expect(sam.frames.filter((f) => f.type === 'assigned')).toHaveLength(2);
    sam.send({ type: 'status', status: 'online' });
    expect((await sam.next<AssignedFrame>((f) => f.type === 'assigned')).session.sessionId).toBe(
      visitors[2]!.sid,
    );
  });

  it('hands a chatbot session to the bot’s skill group', async () => {
    env = await boot();
    const { b } = await desk(env);
    const sue = await agentNamed(b, 'sue@demo.test');
    const { c: v } = await visitor(b);
    const sid = await open(v, 'help');
    await v.nextEvent((e) => e.body.kind === 'message' && e.body.from === 'system');
    const kinds = v.frames.flatMap((f) =>
      f.type === 'events' ? f.events : f.type === 'event' ? [f.event] : [],
    );
    expect(kinds.find((e) => e.body.kind === 'chatbot')?.body).toMatchObject({ botId: 'faq' });
    v.send({ type: 'send', sessionId: sid, clientMsgId: 'q1', text: 'how do I reset my password' });
    await v.next<AckFrame>((f) => f.type === 'ack');
    await v.nextEvent((e) => e.body.kind === 'message' && e.body.from === 'system');
    expect(sue.frames.some((f) => f.type === 'assigned')).toBe(false);
    v.send({ type: 'send', sessionId: sid, clientMsgId: 'q2', text: '转人工' });
    const assigned = await sue.next<AssignedFrame>((f) => f.type === 'assigned');
    expect(assigned.session).toMatchObject({ sessionId: sid, groupId: 'support', state: 'in_progress' });
    await v.nextEvent((e) => e.body.kind === 'queued');
    await v.nextEvent((e) => e.body.kind === 'assigned');
  });
});

describe('session lifecycle', () => {
  it('transfer to an agent: decline, accept, timeout; transfer to a group goes ahead of the queue', async () => {
    const clock = new JumpClock();
    env = await boot({}, { clock });
    const { b } = await desk(env);
    const a1 = await agentNamed(b, 'agent1@demo.test');
    const { c: v } = await visitor(b);
    const sid = await open(v);
    await a1.next((f) => f.type === 'assigned');
    const a2 = await agentNamed(b, 'agent2@demo.test');

    a1.send({ type: 'transfer', sessionId: sid, toAgentId: 'agent2', ref: 't1' });
    await a1.next((f) => f.type === 'session' && f.ref === 't1');
    const offer = await a2.next<TransferOfferFrame>((f) => f.type === 'transferOffer');
    expect(offer).toMatchObject({ fromAgentId: 'agent1', session: { sessionId: sid } });
    a1.send({ type: 'transfer', sessionId: sid, toAgentId: 'agent2', ref: 't2' });
    expect(await a1.next<ErrorFrame>((f) => f.type === 'error' && f.ref === 't2')).toMatchObject({
      code: 'SB_ERR_TRANSFER_PENDING',
    });
    a2.send({ type: 'transferAnswer', sessionId: sid, accept: false, ref: 'd' });
    await a2.next((f) => f.type === 'session' && f.ref === 'd');
    await a1.nextEvent((e) => e.body.kind === 'transfer_declined' && e.body.reason === 'declined');

    // Timeout: nobody answers; the session stays with agent1.
    a1.send({ type: 'transfer', sessionId: sid, toAgentId: 'agent2', ref: 't3' });
    await a2.next((f) => f.type === 'transferOffer');
    clock.advance(61_000);
    await a1.nextEvent((e) => e.body.kind === 'transfer_declined' && e.body.reason === 'timeout', 8000);
    a2.send({ type: 'transferAnswer', sessionId: sid, accept: true, ref: 'late' });
    expect(await a2.next<ErrorFrame>((f) => f.type === 'error' && f.ref === 'late')).toMatchObject({
      code: 'SB_ERR_INVALID_STATE',
    });

    // Accept: agent2 takes over, agent1 is released, the chat continues with agent2.
    a1.send({ type: 'transfer', sessionId: sid, toAgentId: 'agent2', ref: 't4' });
    await a2.next((f) => f.type === 'transferOffer');
    a2.send({ type: 'transferAnswer', sessionId: sid, accept: true, ref: 'acc' });
    await a2.next((f) => f.type === 'assigned');
    await a1.next((f) => f.type === 'released' && f.sessionId === sid);
    v.send({ type: 'send', sessionId: sid, clientMsgId: 'after', text: 'still there?' });
    await a2.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'still there?');
    a1.send({ type: 'send', sessionId: sid, clientMsgId: 'x', text: 'not mine anymore' });
    expect(await a1.next<ErrorFrame>((f) => f.type === 'error' && f.ref === 'x')).toMatchObject({
      code: 'SB_ERR_FORBIDDEN',
    });
    const assignedEv = await v.nextEvent((e) => e.body.kind === 'assigned' && e.body.agentId === 'agent2');
    expect(assignedEv).toBeDefined();
    expect(v.frames.some((f) => f.type === 'event' && f.event.body.kind.startsWith('transfer'))).toBe(false);

    // Transfer to a group: queued with priority ahead of a visitor already waiting there.
    const { c: waiting } = await visitor(b);
    const waitingSid = await open(waiting, 'pricing');
    await waiting.next((f) => f.type === 'queue');
    a2.send({ type: 'transfer', sessionId: sid, toGroupId: 'sales', ref: 'g' });
    await a2.next((f) => f.type === 'released');
    await v.nextEvent((e) => e.body.kind === 'queued' && e.body.group === 'sales');
    const sam = await agentNamed(b, 'sam@demo.test');
    const first = await sam.next<AssignedFrame>((f) => f.type === 'assigned');
    expect(first.session.sessionId).toBe(sid);
    const second = await sam.next<AssignedFrame>((f) => f.type === 'assigned');
    expect(second.session.sessionId).toBe(waitingSid);
  });

  it('tags from the tree, forced tag before close, notes staff-only, rating once', async () => {
    env = await boot();
    const { b, admin } = await desk(env);
    await api(b.url, 'PUT', '/v1/admin/config/settings', admin.token, { forceTagOnClose: true });
    const a = await agentNamed(b, 'agent1@demo.test');
    const { c: v } = await visitor(b);
    const sid = await open(v);
    await a.next((f) => f.type === 'assigned');
    a.send({ type: 'close', sessionId: sid, ref: 'c1' });
    expect(await a.next<ErrorFrame>((f) => f.type === 'error' && f.ref === 'c1')).toMatchObject({
      code: 'SB_ERR_TAG_REQUIRED',
    });
    a.send({ type: 'tag', sessionId: sid, tagId: 'nope', op: 'add', ref: 'bad' });
    expect(await a.next<ErrorFrame>((f) => f.type === 'error' && f.ref === 'bad')).toMatchObject({
      code: 'SB_ERR_NOT_FOUND',
    });
    a.send({ type: 'tag', sessionId: sid, tagId: 'refund', op: 'add', ref: 'tg' });
    expect((await a.next<SessionFrame>((f) => f.type === 'session' && f.ref === 'tg')).session.tags).toEqual([
      'refund',
    ]);
    a.send({ type: 'note', sessionId: sid, text: 'asked twice about the invoice', ref: 'n' });
    await a.nextEvent((e) => e.body.kind === 'note');
    a.send({ type: 'inviteRating', sessionId: sid, ref: 'inv' });
    await v.nextEvent((e) => e.body.kind === 'rating_invited');
    v.send({ type: 'rate', sessionId: sid, score: 6, ref: 'r0' });
    expect(await v.next<ErrorFrame>((f) => f.type === 'error' && f.ref === 'r0')).toMatchObject({
      code: 'SB_ERR_INVALID_FIELD',
    });
    v.send({ type: 'rate', sessionId: sid, score: 5, remark: 'quick and kind', ref: 'r1' });
    expect(
      (await v.next<SessionFrame>((f) => f.type === 'session' && f.ref === 'r1')).session.rating,
    ).toEqual({
      score: 5,
      remark: 'quick and kind',
    });
    v.send({ type: 'rate', sessionId: sid, score: 1, ref: 'r2' });
    expect(await v.next<ErrorFrame>((f) => f.type === 'error' && f.ref === 'r2')).toMatchObject({
      code: 'SB_ERR_ALREADY_RATED',
    });
    a.send({ type: 'close', sessionId: sid, ref: 'c2' });
    expect((await a.next<SessionFrame>((f) => f.type === 'session' && f.ref === 'c2')).session.state).toBe(
      'closed',
    );
    // Visitors never received the note or tag events.
    expect(
      v.frames.some((f) => f.type === 'event' && ['note', 'tag_added'].includes(f.event.body.kind)),
    ).toBe(false);
    const hist = await api<{
      sessions: Array<{ sessionId: string; tags: string[]; rating?: { score: number } }>;
    }>(b.url, 'GET', '/v1/history/sessions?tag=refund', admin.token);
    expect(hist.body.sessions.map((s) => [s.sessionId, s.rating?.score])).toEqual([[sid, 5]]);
  });

  it('sensitive words: block refuses the message, remind tells the agent', async () => {
    env = await boot();
    const { b, admin } = await desk(env);
    const words = ['FREE MONEY', '免费', ...Array.from({ length: 3000 }, (_, i) => `filler${i}`)];
    expect(
      (await api(b.url, 'PUT', '/v1/admin/config/sensitive', admin.token, { mode: 'block', words })).status,
    ).toBe(200);
    const a = await agentNamed(b, 'agent1@demo.test');
    const { c: v } = await visitor(b);
    const sid = await open(v);
    await a.next((f) => f.type === 'assigned');
    v.send({ type: 'send', sessionId: sid, clientMsgId: 'spam', text: 'get free money now' });
    expect(await v.next<ErrorFrame>((f) => f.type === 'error' && f.ref === 'spam')).toMatchObject({
      code: 'SB_ERR_SENSITIVE_WORD',
    });
    v.send({ type: 'send', sessionId: sid, clientMsgId: 'spam2', text: '这是ＦＲＥＥ　ＭＯＮＥＹ和免费的' });
    await v.next((f) => f.type === 'error' && f.ref === 'spam2');
    v.send({ type: 'send', sessionId: sid, clientMsgId: 'ok', text: 'a normal question' });
    await v.next((f) => f.type === 'ack');
    const got = await a.nextEvent((e) => e.body.kind === 'message');
    expect(got.body).toMatchObject({ text: 'a normal question' });

    await api(b.url, 'PUT', '/v1/admin/config/sensitive', admin.token, {
      mode: 'remind',
      words,
      reminder: 'Please do not promise money.',
    });
    await new Promise((r) => setTimeout(r, 1100)); // config cache period
    a.send({ type: 'send', sessionId: sid, clientMsgId: 'a1', text: 'you get FREE money' });
    // The reminder comes with the send (before or after its ack).
    const notice = await a.next<NoticeFrame>((f) => f.type === 'notice');
    expect(
      a.frames.some((f) => f.type === 'ack' && f.clientMsgId === 'a1') ||
        (await a.next((f) => f.type === 'ack')),
    ).toBeTruthy();
    expect(notice).toMatchObject({ kind: 'sensitive', text: 'Please do not promise money.' });
    expect(notice.words.map((w) => w.toLowerCase())).toContain('free money');
    await v.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'you get FREE money');
  });

  it('throttles the typing preview but always delivers the latest draft', async () => {
    env = await boot();
    const { b } = await desk(env);
    const a = await agentNamed(b, 'agent1@demo.test');
    const { c: v } = await visitor(b);
    const sid = await open(v);
    await a.next((f) => f.type === 'assigned');
    const drafts = [
      'h',
      'he',
      'hel',
      'hell',
      'hello',
      'hello t',
      'hello th',
      'hello the',
      'hello ther',
      'hello there',
    ];
    for (const text of drafts) v.send({ type: 'typing', sessionId: sid, text });
    await a.next((f) => f.type === 'typing' && f.text === 'hello there', 3000);
    const seen = a.frames.filter((f) => f.type === 'typing').length;
    expect(seen).toBeLessThan(drafts.length);
  });

  it('proactive chat: the agent sees the visitor on the site and starts a session', async () => {
    env = await boot();
    const { b } = await desk(env);
    const a = await agentNamed(b, 'agent1@demo.test');
    const agentTok = await login(b.url, 'agent1@demo.test');
    const { c: v, id: vid } = await visitor(b);
    v.send({ type: 'page', url: 'https://shop.example/', title: 'Shop' });
    v.send({ type: 'page', url: 'https://shop.example/pricing', title: 'Pricing' });
    // The window reports its page again after a reconnect: no second trail entry for it.
    v.send({ type: 'page', url: 'https://shop.example/pricing', title: 'Pricing' });
    let online: { visitors: Array<{ visitorId: string; url?: string }> } = { visitors: [] };
    // Pages reach the presence list in order, shortly after they are sent: wait for the last one.
    for (let i = 0; i < 50 && !online.visitors.some((x) => x.url === 'https://shop.example/pricing'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      online = (await api<typeof online>(b.url, 'GET', '/v1/visitors/online', agentTok.token)).body;
    }
    expect(online.visitors).toContainEqual(
      expect.objectContaining({ visitorId: vid, url: 'https://shop.example/pricing' }),
    );
    const inv = await api<{ sessionId: string; agentId: string; state: string }>(
      b.url,
      'POST',
      `/v1/visitors/${vid}/invite`,
      agentTok.token,
    );
    expect(inv.status, JSON.stringify(inv.body)).toBe(200);
    expect(inv.body).toMatchObject({ agentId: 'agent1', state: 'in_progress' });
    await v.next((f) => f.type === 'invited');
    await a.next((f) => f.type === 'assigned');
    a.send({
      type: 'send',
      sessionId: inv.body.sessionId,
      clientMsgId: 'hi',
      text: 'Can I help you with pricing?',
    });
    await v.nextEvent((e) => e.body.kind === 'message' && e.body.from === 'agent');
    // A second invitation while chatting is refused.
    expect((await api(b.url, 'POST', `/v1/visitors/${vid}/invite`, agentTok.token)).status).toBe(409);
    const profile = await api<{ trail: Array<{ url: string }>; sessions: string[] }>(
      b.url,
      'GET',
      `/v1/visitors/${vid}`,
      agentTok.token,
    );
    expect(profile.body.trail.map((x) => x.url)).toEqual([
      'https://shop.example/pricing',
      'https://shop.example/',
    ]);
    expect(profile.body.sessions).toContain(inv.body.sessionId);
    const tagged = await api<{ tags: string[] }>(b.url, 'POST', `/v1/visitors/${vid}/tags`, agentTok.token, {
      add: ['VIP', 'returning'],
    });
    expect(tagged.body.tags).toEqual(['VIP', 'returning']);
  });

  it('CRM iframe URL: identifiers of the session and the agent, for participants only', async () => {
    env = await boot();
    const { b, admin } = await desk(env);
    const put = await api(b.url, 'PUT', '/v1/admin/config/crm', admin.token, {
      urlTemplate: 'https://crm.example.com/c?v={visitorId}&a={agentId}&e={agentEmail}&s={sessionId}',
    });
    expect(put.status).toBe(200);
    const a = await agentNamed(b, 'agent1@demo.test');
    const { c: v, id: vid } = await visitor(b);
    const sid = await open(v);
    await a.next((f) => f.type === 'assigned');
    const tok = await login(b.url, 'agent1@demo.test');
    const r = await api<{ url: string }>(b.url, 'GET', `/v1/sessions/${sid}/crm-url`, tok.token);
    const u = new URL(r.body.url);
    expect(Object.fromEntries(u.searchParams)).toEqual({
      v: vid,
      a: 'agent1',
      e: 'agent1@demo.test',
      s: sid,
    });
    const other = await login(b.url, 'agent2@demo.test');
    expect((await api(b.url, 'GET', `/v1/sessions/${sid}/crm-url`, other.token)).status).toBe(403);
  });

  it('auto-close timers are durable: they fire after a restart', async () => {
    const clock = new JumpClock();
    env = await boot({}, { clock });
    const { b, admin } = await desk(env);
    await api(b.url, 'PUT', '/v1/admin/config/settings', admin.token, {
      autoCloseInactiveMin: 30,
      visitorNoReply: { afterMin: 5, warnBeforeMin: 2, warning: 'Still there?' },
    });
    const a = await agentNamed(b, 'agent1@demo.test');
    const { c: v1 } = await visitor(b);
    const noReplySid = await open(v1);
    await a.next((f) => f.type === 'assigned');
    a.send({ type: 'send', sessionId: noReplySid, clientMsgId: 'q', text: 'Anything else?' });
    await a.next((f) => f.type === 'ack');
    // Warning after 3 minutes without an answer.
    clock.advance(3 * 60_000 + 1000);
    await v1.nextEvent(
      (e) => e.body.kind === 'message' && e.body.from === 'system' && e.body.text === 'Still there?',
      8000,
    );

    const { c: v2 } = await visitor(b);
    const idleSid = await open(v2);
    await a.next((f) => f.type === 'assigned' && f.session.sessionId === idleSid);
    for (const c of clients.splice(0)) c.close();
    const dataDir = env.dataDir;
    await env.stop({ keepData: true });
    env = undefined;

    // Restart later: both reminders are due and fire from the store.
    const clock2 = new JumpClock();
    clock2.offsetMs = clock.offsetMs + 31 * 60_000;
    env = await boot({ dataDir }, { clock: clock2 });
    const adminTok = await login(env.url, 'admin@demo.test');
    const closedBy = async (sid: string): Promise<string | undefined> => {
      const r = await api<{ state: string }>(env!.url, 'GET', `/v1/sessions/${sid}`, adminTok.token);
      return r.body.state;
    };
    for (
      let i = 0;
      i < 100 && ((await closedBy(noReplySid)) !== 'closed' || (await closedBy(idleSid)) !== 'closed');
      i++
    )
      await new Promise((r) => setTimeout(r, 100));
    expect(await closedBy(noReplySid)).toBe('closed');
    expect(await closedBy(idleSid)).toBe('closed');
    const events = await api<{ events: Array<{ body: { kind: string; reason?: string } }> }>(
      env.url,
      'GET',
      `/v1/sessions/${noReplySid}/events?afterSeq=0&limit=100`,
      adminTok.token,
    );
    expect(events.body.events.at(-1)!.body).toMatchObject({ kind: 'closed', reason: 'visitor_no_reply' });
    const idle = await api<{ events: Array<{ body: { kind: string; reason?: string } }> }>(
      env.url,
      'GET',
      `/v1/sessions/${idleSid}/events?afterSeq=0&limit=100`,
      adminTok.token,
    );
    expect(idle.body.events.at(-1)!.body).toMatchObject({ kind: 'closed', reason: 'inactive' });
  });
});
