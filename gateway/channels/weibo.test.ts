import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SbError, type ErrorCode } from '../../protos/errors.ts';
import {
  WeiboAdapter,
  handleChannelRequest,
  inboundDedupeKey,
  type ChannelAdapter,
  type ChannelRequest,
  type InboundMessage,
} from './index.ts';

const SECRET = 'weibo-app-secret';
const NOW = 1_700_000_000_000;
const TS = String(NOW / 1000);

function sign(secret: string, timestamp: string, nonce: string): string {
  return createHash('sha1').update([secret, timestamp, nonce].sort().join('')).digest('hex');
}

function req(
  method: string,
  body: unknown = '',
  q: Partial<Record<'signature' | 'timestamp' | 'nonce' | 'echostr', string>> = {},
): ChannelRequest {
  const timestamp = q.timestamp ?? TS;
  const nonce = q.nonce ?? 'n0nce';
  const query = new URLSearchParams({
    signature: q.signature ?? sign(SECRET, timestamp, nonce),
    timestamp,
    nonce,
  });
  if (q.echostr !== undefined) query.set('echostr', q.echostr);
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  return { method, query, headers: { 'content-type': 'application/json' }, body: Buffer.from(raw, 'utf8') };
}

const BASE = { sender_id: 5678901234, receiver_id: 1234567890, created_at: 'Tue Nov 14 22:13:20 +0000 2023' };

const adapter = new WeiboAdapter({ appSecret: SECRET, now: () => NOW });

async function run(
  r: ChannelRequest,
  a: ChannelAdapter = adapter,
): Promise<{ stored: InboundMessage[]; error?: SbError }> {
  const stored: InboundMessage[] = [];
  try {
    await handleChannelRequest(a, r, async (m) => {
      stored.push(m);
    });
  } catch (e) {
    expect(e).toBeInstanceOf(SbError);
    return { stored, error: e as SbError };
  }
  return { stored };
}

async function expectRefused(r: ChannelRequest, code: ErrorCode, a: ChannelAdapter = adapter): Promise<void> {
  const { stored, error } = await run(r, a);
  expect(error?.code).toBe(code);
  expect(stored).toEqual([]);
}

describe('Weibo signature', () => {
  it('answers the URL verification with echostr', async () => {
    const res = await handleChannelRequest(adapter, req('GET', '', { echostr: 'abc123' }), async () => {});
    expect(res).toEqual({ status: 200, contentType: 'text/plain; charset=utf-8', body: 'abc123' });
  });

  it('refuses a wrong signature and stale timestamps', async () => {
    await expectRefused(
      req('GET', '', { echostr: 'x', signature: sign('wrong', TS, 'n0nce') }),
      'SB_ERR_UNAUTHENTICATED',
    );
    await expectRefused(
      req('POST', { ...BASE, type: 'text', text: 'hi' }, { signature: sign('wrong', TS, 'n0nce') }),
      'SB_ERR_UNAUTHENTICATED',
    );
    await expectRefused(
      req('POST', { ...BASE, type: 'text', text: 'hi' }, { timestamp: String(NOW / 1000 - 600) }),
      'SB_ERR_UNAUTHENTICATED',
    );
  });
});

describe('Weibo messages', () => {
  it('text', async () => {
    const { stored, error } = await run(req('POST', { ...BASE, type: 'text', text: '请问怎么退货' }));
    expect(error).toBeUndefined();
    expect(stored).toHaveLength(1);
    const m = stored[0]!;
    expect(m).toMatchObject({
      channel: 'weibo',
      associationId: '1234567890',
      externalUserId: '5678901234',
      kind: 'text',
      text: '请问怎么退货',
      at: NOW,
    });
    // No id in the push: derived from sender, time, type and content — stable across retries.
    const again = await run(req('POST', { ...BASE, type: 'text', text: '请问怎么退货' }));
    expect(inboundDedupeKey(again.stored[0]!)).toBe(inboundDedupeKey(m));
    const other = await run(req('POST', { ...BASE, type: 'text', text: '另一条' }));
    expect(other.stored[0]!.msgId).not.toBe(m.msgId);
  });

  it('uses the push id when there is one; ids may be strings', async () => {
    const { stored } = await run(
      req('POST', {
        ...BASE,
        sender_id: '5678901234',
        receiver_id: '1234567890',
        id: 4091509081366576,
        type: 'text',
        text: 'x',
      }),
    );
    expect(stored[0]).toMatchObject({ msgId: '4091509081366576', externalUserId: '5678901234' });
  });

  it('events: follow → subscribe, unfollow → unsubscribe', async () => {
    const f = await run(req('POST', { ...BASE, type: 'event', data: { subtype: 'follow' } }));
    expect(f.stored).toEqual([
      expect.objectContaining({ kind: 'event', event: 'subscribe', channel: 'weibo' }),
    ]);
    const u = await run(req('POST', { ...BASE, type: 'event', data: { subtype: 'unfollow' } }));
    expect(u.stored[0]!.event).toBe('unsubscribe');
    expect(u.stored[0]!.msgId).not.toBe(f.stored[0]!.msgId);
    const s = await run(req('POST', { ...BASE, type: 'event', data: { subtype: 'subscribe' } }));
    expect(s.stored[0]!.event).toBe('subscribe');
  });

  it('image and voice carry the media id', async () => {
    const i = await run(
      req('POST', { ...BASE, type: 'image', data: { vfid: 821804459, tovfid: 821804469 } }),
    );
    expect(i.stored[0]).toMatchObject({ kind: 'image', mediaId: '821804469' });
    const v = await run(req('POST', { ...BASE, type: 'voice', data: { vfid: 1234 } }));
    expect(v.stored[0]).toMatchObject({ kind: 'voice', mediaId: '1234' });
  });

  it('accepts ISO and Unix-second timestamps', async () => {
    const iso = await run(
      req('POST', { ...BASE, created_at: '2023-11-14T22:13:20Z', type: 'text', text: 'a' }),
    );
    expect(iso.stored[0]!.at).toBe(NOW);
    const secs = await run(req('POST', { ...BASE, created_at: NOW / 1000, type: 'text', text: 'a' }));
    expect(secs.stored[0]!.at).toBe(NOW);
  });

  it('acknowledges unsupported types without storing', async () => {
    const res = await handleChannelRequest(
      adapter,
      req('POST', { ...BASE, type: 'position', data: { longitude: 1 } }),
      async () => {
        throw new Error('must not be called');
      },
    );
    expect(res.body).toBe('success');
  });

  it('passive text reply', async () => {
    const res = await handleChannelRequest(
      adapter,
      req('POST', { ...BASE, type: 'text', text: 'hi' }),
      async () => '稍等',
    );
    expect(res.contentType).toBe('application/json; charset=utf-8');
    const body = JSON.parse(res.body) as Record<string, unknown>;
    expect(body).toMatchObject({
      result: true,
      sender_id: '1234567890',
      receiver_id: '5678901234',
      type: 'text',
    });
    expect(JSON.parse(decodeURIComponent(body['data'] as string))).toEqual({ text: '稍等' });
  });
});

describe('Weibo malformed input: typed error, nothing stored', () => {
  it('not JSON, truncated, not an object', async () => {
    await expectRefused(req('POST', '{"type":"text",'), 'SB_ERR_BAD_FRAME');
    await expectRefused(req('POST', 'hello'), 'SB_ERR_BAD_FRAME');
    await expectRefused(req('POST', '[1,2]'), 'SB_ERR_BAD_FRAME');
    await expectRefused(req('POST', 'null'), 'SB_ERR_BAD_FRAME');
    await expectRefused(req('POST', ''), 'SB_ERR_BAD_FRAME');
  });

  it('missing or wrong fields', async () => {
    await expectRefused(req('POST', { ...BASE, text: 'hi' }), 'SB_ERR_INVALID_FIELD');
    await expectRefused(req('POST', { ...BASE, type: 'text' }), 'SB_ERR_INVALID_FIELD');
    await expectRefused(req('POST', { ...BASE, type: 'text', text: '   ' }), 'SB_ERR_INVALID_FIELD');
    await expectRefused(req('POST', { ...BASE, type: 'text', text: 42 }), 'SB_ERR_INVALID_FIELD');
    await expectRefused(
      req('POST', { receiver_id: 1, created_at: BASE.created_at, type: 'text', text: 'x' }),
      'SB_ERR_INVALID_FIELD',
    );
    await expectRefused(
      req('POST', { ...BASE, sender_id: -1, type: 'text', text: 'x' }),
      'SB_ERR_INVALID_FIELD',
    );
    await expectRefused(
      req('POST', { ...BASE, sender_id: 1.5, type: 'text', text: 'x' }),
      'SB_ERR_INVALID_FIELD',
    );
    await expectRefused(
      req('POST', { ...BASE, created_at: 'someday', type: 'text', text: 'x' }),
      'SB_ERR_INVALID_FIELD',
    );
    await expectRefused(req('POST', { ...BASE, type: 'event' }), 'SB_ERR_INVALID_FIELD');
    await expectRefused(req('POST', { ...BASE, type: 'event', data: 'follow' }), 'SB_ERR_INVALID_FIELD');
    await expectRefused(req('POST', { ...BASE, type: 'image', data: {} }), 'SB_ERR_INVALID_FIELD');
  });

  it('oversized body', async () => {
    await expectRefused(
      req('POST', { ...BASE, type: 'text', text: 'x'.repeat(70_000) }),
      'SB_ERR_FRAME_TOO_LARGE',
    );
  });

  it('another account than the one bound to the URL', async () => {
    const bound = new WeiboAdapter({ appSecret: SECRET, now: () => NOW, accountId: '999' });
    await expectRefused(req('POST', { ...BASE, type: 'text', text: 'x' }), 'SB_ERR_FORBIDDEN', bound);
  });
});
