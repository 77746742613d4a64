/**
 * WeChat and Weibo channels (F1): the pure adapters (signatures, XML, replay window) and the
 * callback routes end to end — a signed message reaches an agent once however often the platform
 * retries, the agent's reply goes out through the provider, and malformed or unsigned callbacks
 * get a typed error with nothing stored.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AssignedFrame } from '../protos/ws-v1.ts';
import { SbError } from '../protos/errors.ts';
import {
  FakeProvider,
  parseXml,
  sha1Signature,
  wechatAdapter,
  weiboAdapter,
  type CallbackRequest,
} from './channel-adapters.ts';
import { channelVisitorId } from './channel-routes.ts';
import { api, boot, login, TestClient, type Booted } from './testing.ts';

const TOKEN = 'wx-callback-token';
const NOW = Date.parse('2026-11-25T08:00:00Z');

function signed(secret: string, now = NOW, extra: Record<string, string> = {}): URLSearchParams {
  const timestamp = String(Math.floor(now / 1000));
  const nonce = 'n0nce42';
  return new URLSearchParams({
    signature: sha1Signature(secret, timestamp, nonce),
    timestamp,
    nonce,
    ...extra,
  });
}

function wxText(
  content: string,
  msgId = '24681357',
  from = 'oUser-OpenId_123',
  createTime = NOW / 1000,
): string {
  return (
    `<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[${from}]]></FromUserName>` +
    `<CreateTime>${createTime}</CreateTime><MsgType><![CDATA[text]]></MsgType>` +
    `<Content><![CDATA[${content}]]></Content><MsgId>${msgId}</MsgId></xml>`
  );
}

function req(method: string, query: URLSearchParams, body = ''): CallbackRequest {
  return { method, query, body: Buffer.from(body) };
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as SbError).code;
  }
  return 'none';
}

describe('channel adapters', () => {
  it('WeChat: verifies signatures and the replay window, answers echostr', () => {
    const q = signed(TOKEN, NOW, { echostr: 'hello-echo' });
    expect(code(() => wechatAdapter.verify(req('get', q), TOKEN, NOW))).toBe('none');
    expect(wechatAdapter.echo(req('get', q)).body).toBe('hello-echo');
    expect(code(() => wechatAdapter.verify(req('get', q), 'other-token', NOW))).toBe(
      'SB_ERR_UNAUTHENTICATED',
    );
    expect(code(() => wechatAdapter.verify(req('get', q), TOKEN, NOW + 6 * 60_000))).toBe(
      'SB_ERR_UNAUTHENTICATED',
    );
    expect(code(() => wechatAdapter.verify(req('get', new URLSearchParams()), TOKEN, NOW))).toBe(
      'SB_ERR_UNAUTHENTICATED',
    );
    const tampered = new URLSearchParams(q);
    tampered.set('nonce', 'other');
    expect(code(() => wechatAdapter.verify(req('get', tampered), TOKEN, NOW))).toBe('SB_ERR_UNAUTHENTICATED');
  });

  it('WeChat: parses text, image, voice and events', () => {
    const q = signed(TOKEN);
    expect(wechatAdapter.parse(req('post', q, wxText('你好 & <hi>')))).toEqual([
      {
        channel: 'wechat',
        accountId: 'gh_account',
        externalUserId: 'oUser-OpenId_123',
        at: NOW,
        kind: 'text',
        msgId: '24681357',
        text: '你好 & <hi>',
      },
    ]);
    const image =
      '<xml><ToUserName>gh_a</ToUserName><FromUserName>u1</FromUserName><CreateTime>1</CreateTime>' +
      '<MsgType>image</MsgType><PicUrl>https://img.example/1.png</PicUrl><MediaId>m</MediaId><MsgId>9</MsgId></xml>';
    expect(wechatAdapter.parse(req('post', q, image))[0]).toMatchObject({
      kind: 'image',
      mediaUrl: 'https://img.example/1.png',
    });
    const event =
      '<?xml version="1.0"?><xml><ToUserName>gh_a</ToUserName><FromUserName>u1</FromUserName><CreateTime>5</CreateTime>' +
      '<MsgType>event</MsgType><Event>subscribe</Event><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo></xml>';
    expect(wechatAdapter.parse(req('post', q, event))[0]).toMatchObject({
      kind: 'event',
      event: 'subscribe',
      msgId: 'u1:5:subscribe',
    });
    expect(parseXml('<a>x &amp; &#20320; &#x597D;</a>').text).toBe('x & 你 好');
    // Types with nothing to store (video, location, …) yield no message, so the platform gets `success`.
    const video =
      '<xml><ToUserName>gh_a</ToUserName><FromUserName>u1</FromUserName><CreateTime>1</CreateTime>' +
      '<MsgType>video</MsgType><MediaId>m</MediaId><MsgId>10</MsgId></xml>';
    expect(wechatAdapter.parse(req('post', q, video))).toEqual([]);
  });

  it('WeChat: malformed bodies are typed errors', () => {
    const q = signed(TOKEN);
    const bad: Array<[string, string]> = [
      ['truncated', wxText('hi').slice(0, 60)],
      ['doctype', '<!DOCTYPE xml [<!ENTITY x "y">]><xml><MsgType>text</MsgType></xml>'],
      ['wrong root', '<doc><MsgType>text</MsgType></doc>'],
      ['no MsgType', '<xml><ToUserName>a</ToUserName></xml>'],
      ['mismatched', '<xml><A>1</B></xml>'],
      ['unknown entity', '<xml><A>&nbsp;</A></xml>'],
      ['trailing', '<xml></xml><xml></xml>'],
      ['not xml', '{"json": true}'],
    ];
    for (const [name, body] of bad) {
      expect(['SB_ERR_BAD_FRAME', 'SB_ERR_INVALID_FIELD'], name).toContain(
        code(() => wechatAdapter.parse(req('post', q, body))),
      );
    }
    expect(code(() => wechatAdapter.parse(req('post', q, 'x'.repeat(70_000))))).toBe(
      'SB_ERR_FRAME_TOO_LARGE',
    );
  });

  it('Weibo: same shape with JSON bodies', () => {
    const q = signed('weibo-secret');
    expect(code(() => weiboAdapter.verify(req('post', q), 'weibo-secret', NOW))).toBe('none');
    const body = JSON.stringify({
      id: 778899,
      type: 'text',
      sender_id: 1234567,
      receiver_id: 7654321,
      text: '在吗',
      created_at: 'Wed Nov 25 16:00:00 +0800 2026',
    });
    expect(weiboAdapter.parse(req('post', q, body))[0]).toMatchObject({
      channel: 'weibo',
      accountId: '7654321',
      externalUserId: '1234567',
      msgId: '778899',
      kind: 'text',
      text: '在吗',
    });
    expect(code(() => weiboAdapter.parse(req('post', q, '{broken')))).toBe('SB_ERR_BAD_FRAME');
    expect(code(() => weiboAdapter.parse(req('post', q, '{"type":"text"}')))).toBe('SB_ERR_INVALID_FIELD');
  });
});

let env: Booted | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await env?.stop();
  env = undefined;
});

describe('channel callbacks end to end', () => {
  it('a WeChat message reaches an agent once, the reply goes out, bad callbacks store nothing', async () => {
    const provider = new FakeProvider();
    env = await boot({}, { channelProvider: provider });
    const admin = await login(env.url, 'admin@demo.test');
    const put = await api(env.url, 'PUT', '/v1/admin/config/associations', admin.token, [
      { associationId: 'wx-main', channel: 'wechat', name: 'Main account', secret: TOKEN },
      { associationId: 'wb-main', channel: 'weibo', name: 'Weibo', secret: 'weibo-secret' },
    ]);
    expect(put.status).toBe(200);
    const agentTok = await login(env.url, 'agent1@demo.test');
    const agent = await TestClient.connect(env.wsUrl, 'agent', agentTok.token);
    clients.push(agent);
    const url = (q: URLSearchParams, assoc = 'wx-main', ch = 'wechat'): string =>
      `${env!.url}/v1/channels/${ch}/demo/${assoc}?${q.toString()}`;
    const post = (q: URLSearchParams, body: string, assoc?: string, ch?: string): Promise<Response> =>
      fetch(url(q, assoc, ch), { method: 'POST', headers: { 'content-type': 'text/xml' }, body });

    // URL verification.
    const echo = await fetch(url(signed(TOKEN, Date.now(), { echostr: 'abc123' })));
    expect(echo.status).toBe(200);
    expect(await echo.text()).toBe('abc123');

    // Unsigned, stale, malformed, unknown association: typed errors, nothing stored.
    expect((await post(signed('wrong', Date.now()), wxText('x'))).status).toBe(401);
    expect((await post(signed(TOKEN, Date.now() - 10 * 60_000), wxText('x'))).status).toBe(401);
    const malformed = await post(signed(TOKEN, Date.now()), '<xml><MsgType>text</MsgType>');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe('SB_ERR_BAD_FRAME');
    expect((await post(signed(TOKEN, Date.now()), wxText('x'), 'nope')).status).toBe(404);
    const visitorId = channelVisitorId('wechat', 'wx-main', 'oUser-OpenId_123');
    const before = await api<{ sessions: string[] }>(
      env.url,
      'GET',
      `/v1/visitors/${visitorId}`,
      admin.token,
    );
    expect(before.body.sessions).toEqual([]);

    // A real message, delivered twice by the platform (retry): one session, one message.
    const body = wxText('我的订单还没到', '700001', 'oUser-OpenId_123', Math.floor(Date.now() / 1000));
    for (let i = 0; i < 2; i++) {
      const r = await post(signed(TOKEN, Date.now()), body);
      expect(r.status).toBe(200);
      expect(await r.text()).toBe('success');
    }
    const assigned = await agent.next<AssignedFrame>((f) => f.type === 'assigned');
    expect(assigned.session).toMatchObject({ channel: 'wechat', visitorId });
    const sid = assigned.session.sessionId;
    await agent.nextEvent((e) => e.body.kind === 'message' && e.body.text === '我的订单还没到');
    const events = await api<{ events: Array<{ body: { kind: string; text?: string } }> }>(
      env.url,
      'GET',
      `/v1/sessions/${sid}/events?afterSeq=0&limit=100`,
      admin.token,
    );
    expect(events.body.events.filter((e) => e.body.kind === 'message')).toHaveLength(1);
    const details = await api<{ associationId: string }>(env.url, 'GET', `/v1/sessions/${sid}`, admin.token);
    expect(details.body.associationId).toBe('wx-main');

    // The agent answers; the provider carries it to the WeChat user, after a transient failure.
    provider.failNext = 1;
    agent.send({ type: 'send', sessionId: sid, clientMsgId: 'r1', text: '马上帮您查询' });
    await agent.next((f) => f.type === 'ack');
    for (let i = 0; i < 50 && provider.sent.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(provider.sent).toEqual([
      { channel: 'wechat', accountId: 'wx-main', externalUserId: 'oUser-OpenId_123', text: '马上帮您查询' },
    ]);

    // Weibo goes the same way.
    const wb = JSON.stringify({
      id: 5001,
      type: 'text',
      sender_id: 42,
      receiver_id: 7,
      text: 'hello from weibo',
      created_at: new Date().toISOString(),
    });
    const r = await fetch(url(signed('weibo-secret', Date.now()), 'wb-main', 'weibo'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: wb,
    });
    expect(r.status).toBe(200);
    const wbAssigned = await agent.next<AssignedFrame>((f) => f.type === 'assigned');
    expect(wbAssigned.session.channel).toBe('weibo');
  });
});
