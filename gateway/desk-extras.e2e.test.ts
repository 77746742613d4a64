/**
 * What the console needs beyond chat text: attachments (upload, send, download, type safety,
 * tenant isolation, limits), team and personal quick replies, visitor device details (F7), and
 * offline messages left while nobody is working.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AckFrame, ErrorFrame, SessionEvent, SessionFrame } from '../protos/ws-v1.ts';
import { Directory, seedDemo } from '../actors/index.ts';
import { api, boot, login, TestClient, visitorToken, type Booted } from './testing.ts';

let env: Booted | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await env?.stop();
  env = undefined;
});

// The smallest valid PNG (1×1, transparent).
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
  'base64',
);

interface Uploaded {
  fileId: string;
  name: string;
  mime: string;
  size: number;
  url: string;
}

async function upload(
  base: string,
  token: string,
  name: string,
  type: string,
  bytes: Buffer,
): Promise<{ status: number; body: Uploaded & { error?: { code: string } } }> {
  const r = await fetch(`${base}/v1/files?name=${encodeURIComponent(name)}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': type },
    body: new Uint8Array(bytes),
  });
  return { status: r.status, body: (await r.json()) as Uploaded & { error?: { code: string } } };
}

async function chat(b: Booted): Promise<{ v: TestClient; a: TestClient; sid: string; vid: string }> {
  const agent = await login(b.url, 'agent1@demo.test');
  const a = await TestClient.connect(b.wsUrl, 'agent', agent.token);
  clients.push(a);
  const vt = await visitorToken(b.url);
  const v = await TestClient.connect(b.wsUrl, 'visitor', vt.token);
  clients.push(v);
  v.send({ type: 'open', ref: 'o' });
  const s = await v.next<SessionFrame>((f) => f.type === 'session');
  await a.next((f) => f.type === 'assigned');
  return { v, a, sid: s.session.sessionId, vid: vt.id };
}

describe('attachments', () => {
  it('an image and a file go both ways, stored once, downloadable by capability URL only', async () => {
    env = await boot();
    const { v, a, sid } = await chat(env);
    const agent = await login(env.url, 'agent1@demo.test');

    const img = await upload(env.url, agent.token, '截图 1.png', 'image/png', PNG);
    expect(img.status).toBe(200);
    expect(img.body).toMatchObject({ name: '截图 1.png', mime: 'image/png', size: PNG.length });
    a.send({
      type: 'send',
      sessionId: sid,
      clientMsgId: 'img1',
      text: '',
      attachment: { fileId: img.body.fileId, name: 'lies.exe', mime: 'text/html', size: 1 },
    });
    const ack = await a.next<AckFrame>((f) => f.type === 'ack' && f.clientMsgId === 'img1');
    expect(ack.duplicate).toBe(false);
    const seen = await v.nextEvent((e) => e.body.kind === 'message' && e.body.clientMsgId === 'img1');
    const body = seen.body as Extract<SessionEvent['body'], { kind: 'message' }>;
    // Name and type come from the stored upload, not from the frame.
    expect(body.attachment).toMatchObject({ fileId: img.body.fileId, name: '截图 1.png', mime: 'image/png' });
    const got = await fetch(`${env.url}${body.attachment!.url}`);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('image/png');
    expect(got.headers.get('content-disposition')).toMatch(/^inline/);
    expect(Buffer.from(await got.arrayBuffer()).equals(PNG)).toBe(true);
    // A forged or missing signature reads as not found.
    // (Change the first character of the signature to a different one.)
    const forged = body.attachment!.url!.replace(
      /sig=(.)/,
      (_m, c: string) => `sig=${c === 'A' ? 'B' : 'A'}`,
    );
    expect((await fetch(`${env.url}${forged}`)).status).toBe(404);
    expect((await fetch(`${env.url}/v1/files/demo/${img.body.fileId}`)).status).toBe(404);

    // HTML is never served as HTML: a download, nosniff, sandboxed.
    const html = await upload(
      env.url,
      agent.token,
      'x.html',
      'text/html',
      Buffer.from('<script>alert(1)</script>'),
    );
    const h = await fetch(`${env.url}${html.body.url}`);
    expect(h.headers.get('content-type')).toBe('application/octet-stream');
    expect(h.headers.get('content-disposition')).toMatch(/^attachment/);
    expect(h.headers.get('x-content-type-options')).toBe('nosniff');

    // A large file spans several stored chunks and comes back byte for byte.
    const big = Buffer.alloc(700_000);
    for (let i = 0; i < big.length; i++) big.writeUInt8((i * 31) % 251, i);
    const up = await upload(env.url, agent.token, 'report.pdf', 'application/pdf', big);
    expect(up.status).toBe(200);
    const back = Buffer.from(await (await fetch(`${env.url}${up.body.url}`)).arrayBuffer());
    expect(back.equals(big)).toBe(true);

    // A visitor cannot attach someone else's upload.
    v.send({
      type: 'send',
      sessionId: sid,
      clientMsgId: 'steal',
      text: '',
      attachment: { fileId: up.body.fileId, name: 'x', mime: 'x/y', size: 1 },
    });
    const err = await v.next<ErrorFrame>((f) => f.type === 'error' && f.ref === 'steal');
    expect(err.code).toBe('SB_ERR_INVALID_FIELD');
  });

  it('limits, bad names, unknown files and other tenants are refused with typed errors', async () => {
    env = await boot({ maxFileBytes: 2048 });
    const { a, sid } = await chat(env);
    const agent = await login(env.url, 'agent1@demo.test');
    const tooBig = await upload(
      env.url,
      agent.token,
      'a.bin',
      'application/octet-stream',
      Buffer.alloc(4096),
    );
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error?.code).toBe('SB_ERR_FRAME_TOO_LARGE');
    const noName = await upload(env.url, agent.token, '', 'image/png', PNG);
    expect(noName.body.error?.code).toBe('SB_ERR_INVALID_FIELD');
    const empty = await upload(env.url, agent.token, 'e.txt', 'text/plain', Buffer.alloc(0));
    expect(empty.body.error?.code).toBe('SB_ERR_INVALID_FIELD');
    const anon = await fetch(`${env.url}/v1/files?name=a.png`, { method: 'POST', body: new Uint8Array(PNG) });
    expect(anon.status).toBe(401);
    // A path in the name is dropped.
    const pathy = await upload(env.url, agent.token, '../../etc/passwd', 'text/plain', Buffer.from('x'));
    expect(pathy.body.name).toBe('passwd');

    // Another tenant's file id is unknown here.
    await seedDemo(
      new Directory(env.server.runtime.stores.state),
      { tenantId: 'other', password: 'switchboard', agents: 1, agentMaxConcurrent: 5 },
      Date.now(),
    );
    const other = await login(env.url, 'agent1@other.test');
    const foreign = await upload(env.url, other.token, 'o.png', 'image/png', PNG);
    a.send({
      type: 'send',
      sessionId: sid,
      clientMsgId: 'foreign',
      text: 'look',
      attachment: { fileId: foreign.body.fileId, name: 'o.png', mime: 'image/png', size: PNG.length },
    });
    expect((await a.next<ErrorFrame>((f) => f.type === 'error')).code).toBe('SB_ERR_INVALID_FIELD');
    // The other tenant's URL with this tenant's id does not verify.
    expect((await fetch(`${env.url}${foreign.body.url.replace('/other/', '/demo/')}`)).status).toBe(404);
    // No text and no attachment is still refused.
    a.send({ type: 'send', sessionId: sid, clientMsgId: 'empty', text: '' });
    expect((await a.next<ErrorFrame>((f) => f.type === 'error')).code).toBe('SB_ERR_INVALID_FIELD');
  });
});

describe('quick replies', () => {
  it('team replies from the configuration and personal replies per member', async () => {
    env = await boot();
    const admin = await login(env.url, 'admin@demo.test');
    const agent = await login(env.url, 'agent1@demo.test');
    const team = [
      { id: 'hello', category: 'Greetings', title: 'Hello', text: '您好，请问有什么可以帮您？' },
      { id: 'bye', title: 'Bye', text: 'Thanks for contacting us.' },
    ];
    expect((await api(env.url, 'PUT', '/v1/admin/config/quickReplies', admin.token, team)).status).toBe(200);
    expect((await api(env.url, 'PUT', '/v1/admin/config/quickReplies', agent.token, team)).status).toBe(403);
    const bad = await api<{ error: { message: string } }>(
      env.url,
      'PUT',
      '/v1/admin/config/quickReplies',
      admin.token,
      [{ id: 'x', title: '', text: 'y' }],
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/quickReplies\[0\]\.title/);
    const pub = await api<{ quickReplies: unknown[] }>(env.url, 'GET', '/v1/config/public', agent.token);
    expect(pub.body.quickReplies).toEqual(team);

    const mine = [{ id: 'sig', title: 'Signature', text: '— Alice, Support' }];
    expect(
      (await api(env.url, 'PUT', '/v1/me/quick-replies', agent.token, { quickReplies: mine })).status,
    ).toBe(200);
    expect((await api(env.url, 'GET', '/v1/me/quick-replies', agent.token)).body).toEqual({
      quickReplies: mine,
    });
    // Another member has its own list.
    const agent2 = await login(env.url, 'agent2@demo.test');
    expect((await api(env.url, 'GET', '/v1/me/quick-replies', agent2.token)).body).toEqual({
      quickReplies: [],
    });
    const dup = await api(env.url, 'PUT', '/v1/me/quick-replies', agent.token, {
      quickReplies: [...mine, ...mine],
    });
    expect(dup.status).toBe(400);
    const visitor = await visitorToken(env.url);
    expect((await api(env.url, 'GET', '/v1/me/quick-replies', visitor.token)).status).toBe(403);
  });
});

describe('visitor context and offline messages', () => {
  it('agents see the address, browser and app device of a visitor', async () => {
    env = await boot();
    const { v, vid } = await chat(env);
    v.send({
      type: 'device',
      os: 'Android 14',
      model: 'Pixel 8',
      appVersion: '3.2.1',
      carrier: 'China Mobile',
    });
    v.send({ type: 'device', os: 'x'.repeat(101) });
    expect((await v.next<ErrorFrame>((f) => f.type === 'error')).code).toBe('SB_ERR_INVALID_FIELD');
    const agent = await login(env.url, 'agent1@demo.test');
    let profile: { device?: Record<string, string> } = {};
    for (let i = 0; i < 50 && !profile.device?.['model']; i++) {
      profile = (await api<typeof profile>(env.url, 'GET', `/v1/visitors/${vid}`, agent.token)).body;
      if (!profile.device?.['model']) await new Promise((r) => setTimeout(r, 20));
    }
    expect(profile.device).toMatchObject({
      ip: expect.stringMatching(/127\.0\.0\.1|::1/),
      os: 'Android 14',
      model: 'Pixel 8',
      appVersion: '3.2.1',
      carrier: 'China Mobile',
    });
  });

  it('a visitor leaves a message while nobody works; admins find it among tickets', async () => {
    env = await boot();
    const vt = await visitorToken(env.url);
    const avail = await api<{ available: boolean; agentsOnline: number }>(
      env.url,
      'GET',
      '/v1/visitor/availability',
      vt.token,
    );
    expect(avail.body).toEqual({ available: false, agentsOnline: 0 });
    const left = await api<{ ticketId: string }>(env.url, 'POST', '/v1/visitor/offline-message', vt.token, {
      contact: 'wang@example.com',
      text: '订单 1234 还没发货\n请回电',
    });
    expect(left.status).toBe(200);
    expect((await api(env.url, 'POST', '/v1/visitor/offline-message', vt.token, { text: ' ' })).status).toBe(
      400,
    );
    expect(
      (await api(env.url, 'POST', '/v1/visitor/offline-message', vt.token, { text: 'x', extra: 1 })).status,
    ).toBe(400);
    // Visitors cannot create other tickets or read them.
    expect((await api(env.url, 'POST', '/v1/tickets', vt.token, { subject: 'x' })).status).toBe(403);
    expect((await api(env.url, 'GET', `/v1/tickets/${left.body.ticketId}`, vt.token)).status).toBe(403);

    const admin = await login(env.url, 'admin@demo.test');
    const t = await api<{ source: string; visitor: { contact: string; visitorId: string }; subject: string }>(
      env.url,
      'GET',
      `/v1/tickets/${left.body.ticketId}`,
      admin.token,
    );
    expect(t.body).toMatchObject({
      source: 'offline',
      visitor: { contact: 'wang@example.com', visitorId: vt.id },
      subject: expect.stringContaining('订单 1234 还没发货'),
    });
    const list = await api<{ tickets: Array<{ ticketId: string; source?: string }> }>(
      env.url,
      'GET',
      '/v1/tickets',
      admin.token,
    );
    expect(list.body.tickets.find((x) => x.ticketId === left.body.ticketId)?.source).toBe('offline');

    // With an agent online the visitor is told someone is available.
    const agent = await login(env.url, 'agent1@demo.test');
    clients.push(await TestClient.connect(env.wsUrl, 'agent', agent.token));
    let now = avail.body;
    for (let i = 0; i < 50 && !now.available; i++) {
      now = (await api<typeof now>(env.url, 'GET', '/v1/visitor/availability', vt.token)).body;
      if (!now.available) await new Promise((r) => setTimeout(r, 20));
    }
    expect(now).toEqual({ available: true, agentsOnline: 1 });
  });
});

describe('bad input on the new routes and frames', () => {
  it('typed errors for malformed, oversized, unauthorised and cross-tenant requests', async () => {
    env = await boot({ platformToken: 'z'.repeat(40) });
    const { v, a, sid } = await chat(env);
    // Malformed attachments and device fields are refused before any actor sees them.
    for (const attachment of ['x', null, [], { fileId: '../etc' }, { name: 'no id' }]) {
      a.send({ type: 'send', sessionId: sid, clientMsgId: 'bad-att', text: 'x', attachment });
      const e = await a.next<ErrorFrame>((f) => f.type === 'error');
      expect(e.code).toBe('SB_ERR_INVALID_FIELD');
    }
    v.send({ type: 'device', model: 5 });
    expect((await v.next<ErrorFrame>((f) => f.type === 'error')).code).toBe('SB_ERR_INVALID_FIELD');
    // Agents cannot send the visitors' device frame.
    a.send({ type: 'device', os: 'x' });
    expect((await a.next<ErrorFrame>((f) => f.type === 'error')).code).toMatch(/^SB_ERR_/);

    const agent = await login(env.url, 'agent1@demo.test');
    const visitor = await visitorToken(env.url);
    // Quick replies: too many, wrong shape, unknown fields.
    const many = Array.from({ length: 201 }, (_, i) => ({ id: `q${i}`, title: 't', text: 'x' }));
    for (const body of [{ quickReplies: many }, { quickReplies: 'x' }, { quickReplies: [], extra: 1 }, [1]])
      expect((await api(env.url, 'PUT', '/v1/me/quick-replies', agent.token, body)).status).toBe(400);
    // Offline messages: too long, wrong types.
    for (const body of [
      { text: 'x'.repeat(2001) },
      { text: 'hi', contact: 'c'.repeat(201) },
      { text: 5 },
      { text: 'hi', contact: 7 },
    ])
      expect((await api(env.url, 'POST', '/v1/visitor/offline-message', visitor.token, body)).status).toBe(
        400,
      );
    // Staff routes refuse visitors; visitor routes refuse staff.
    expect((await api(env.url, 'GET', '/v1/queue', visitor.token)).status).toBe(403);
    expect((await api(env.url, 'GET', '/v1/visitor/availability', agent.token)).status).toBe(403);
    expect((await api(env.url, 'GET', '/v1/queue', 'forged')).status).toBe(401);
    // The queue is the caller's tenant's only.
    await seedDemo(
      new Directory(env.server.runtime.stores.state),
      { tenantId: 'other', password: 'switchboard', agents: 1, agentMaxConcurrent: 5 },
      Date.now(),
    );
    const vOther = await TestClient.connect(env.wsUrl, 'visitor', (await visitorToken(env.url)).token);
    clients.push(vOther);
    vOther.send({ type: 'open', ref: 'o', entry: 'sales' });
    await vOther.next((f) => f.type === 'session');
    const other = await login(env.url, 'agent1@other.test');
    const q = await api<{ groups: Array<{ waiting: Array<{ sessionId: string }> }> }>(
      env.url,
      'GET',
      '/v1/queue',
      other.token,
    );
    expect(q.status).toBe(200);
    expect(q.body.groups.flatMap((g) => g.waiting)).toEqual([]);
    // Operator status: platform token only; a single node says so.
    expect((await fetch(`${env.url}/v1/platform/cluster`)).status).toBe(401);
    expect(
      (
        await fetch(`${env.url}/v1/platform/cluster`, {
          headers: { authorization: `Bearer ${'y'.repeat(40)}` },
        })
      ).status,
    ).toBe(401);
    const st = await fetch(`${env.url}/v1/platform/cluster`, {
      headers: { authorization: `Bearer ${'z'.repeat(40)}` },
    });
    expect(await st.json()).toEqual({ mode: 'single' });
    // Files: another tenant's path with a made-up signature is not found; a malformed id is refused.
    expect((await fetch(`${env.url}/v1/files/other/f123?sig=abc`)).status).toBe(404);
    const bad = await fetch(`${env.url}/v1/files/demo/..%2F..?sig=abc`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('SB_ERR_INVALID_FIELD');
  });
});
