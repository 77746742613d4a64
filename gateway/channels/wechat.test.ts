import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SbError, type ErrorCode } from '../../protos/errors.ts';
import {
  WechatAdapter,
  channelErrorResponse,
  handleChannelRequest,
  inboundDedupeKey,
  sha1Signature,
  type ChannelRequest,
  type InboundMessage,
} from './index.ts';

const TOKEN = 'switchboard-token';
const NOW = 1_700_000_000_000;
const TS = String(NOW / 1000);

/** Computed here with node:crypto, independently of the module. */
function sign(token: string, timestamp: string, nonce: string): string {
  return createHash('sha1').update([token, timestamp, nonce].sort().join('')).digest('hex');
}

function req(
  method: string,
  body: string | Buffer = '',
  q: Partial<Record<'signature' | 'timestamp' | 'nonce' | 'echostr' | 'encrypt_type', string>> = {},
): ChannelRequest {
  const timestamp = q.timestamp ?? TS;
  const nonce = q.nonce ?? '12345';
  const query = new URLSearchParams({
    signature: q.signature ?? sign(TOKEN, timestamp, nonce),
    timestamp,
    nonce,
  });
  if (q.echostr !== undefined) query.set('echostr', q.echostr);
  if (q.encrypt_type !== undefined) query.set('encrypt_type', q.encrypt_type);
  return { method, query, headers: {}, body: Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8') };
}

function xml(fields: Record<string, string | number>): string {
  return (
    '<xml>' +
    Object.entries(fields)
      .map(([k, v]) => (typeof v === 'number' ? `<${k}>${v}</${k}>` : `<${k}><![CDATA[${v}]]></${k}>`))
      .join('') +
    '</xml>'
  );
}

const BASE = { ToUserName: 'gh_abc123', FromUserName: 'oUser-OpenId_1', CreateTime: NOW / 1000 };

const adapter = new WechatAdapter({ token: TOKEN, now: () => NOW });

async function run(r: ChannelRequest, a = adapter): Promise<{ stored: InboundMessage[]; error?: SbError }> {
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

async function expectRefused(r: ChannelRequest, code: ErrorCode, a = adapter): Promise<SbError> {
  const { stored, error } = await run(r, a);
  expect(error?.code).toBe(code);
  expect(stored).toEqual([]);
  return error!;
}

describe('WeChat signature', () => {
  it('the module computes the documented signature', () => {
    expect(sha1Signature(TOKEN, TS, 'abc')).toBe(sign(TOKEN, TS, 'abc'));
    // Known vector: sha1("1234567890abctoken") with sorted parts "1234567890", "abc", "token".
    expect(sha1Signature('token', '1234567890', 'abc')).toBe(
      createHash('sha1').update('1234567890abctoken').digest('hex'),
    );
  });

  it('answers the URL verification with echostr', async () => {
    const res = await handleChannelRequest(
      adapter,
      req('GET', '', { echostr: '5837397557483' }),
      async () => {},
    );
    expect(res).toEqual({ status: 200, contentType: 'text/plain; charset=utf-8', body: '5837397557483' });
  });

  it('accepts lower-case methods (as uWS reports them)', async () => {
    const res = await handleChannelRequest(adapter, req('get', '', { echostr: 'ok' }), async () => {});
    expect(res.body).toBe('ok');
  });

  it('refuses a wrong, missing or malformed signature', async () => {
    await expectRefused(
      req('GET', '', { echostr: 'x', signature: sign('other', TS, '12345') }),
      'SB_ERR_UNAUTHENTICATED',
    );
    const noSig = req('GET', '', { echostr: 'x' });
    noSig.query.delete('signature');
    await expectRefused(noSig, 'SB_ERR_UNAUTHENTICATED');
    await expectRefused(req('GET', '', { echostr: 'x', signature: 'zz' }), 'SB_ERR_UNAUTHENTICATED');
    // Signed for another nonce than the one sent.
    const swapped = req('GET', '', { echostr: 'x' });
    swapped.query.set('nonce', '99999');
    await expectRefused(swapped, 'SB_ERR_UNAUTHENTICATED');
  });

  it('refuses a POST with a bad signature before reading the body', async () => {
    await expectRefused(
      req('POST', xml({ ...BASE, MsgType: 'text', Content: 'hi', MsgId: 1 }), {
        signature: sign('x', TS, '12345'),
      }),
      'SB_ERR_UNAUTHENTICATED',
    );
  });

  it('refuses stale and future timestamps outside the window, accepts inside', async () => {
    const old = String(NOW / 1000 - 301);
    await expectRefused(req('GET', '', { echostr: 'x', timestamp: old }), 'SB_ERR_UNAUTHENTICATED');
    const future = String(NOW / 1000 + 301);
    await expectRefused(req('GET', '', { echostr: 'x', timestamp: future }), 'SB_ERR_UNAUTHENTICATED');
    const recent = String(NOW / 1000 - 299);
    expect(
      (
        await handleChannelRequest(
          adapter,
          req('GET', '', { echostr: 'x', timestamp: recent }),
          async () => {},
        )
      ).body,
    ).toBe('x');
    const strict = new WechatAdapter({ token: TOKEN, now: () => NOW, maxAgeMs: 10_000 });
    await expectRefused(
      req('GET', '', { echostr: 'x', timestamp: String(NOW / 1000 - 11) }),
      'SB_ERR_UNAUTHENTICATED',
      strict,
    );
  });

  it('refuses a verification without a usable echostr', async () => {
    await expectRefused(req('GET'), 'SB_ERR_INVALID_FIELD');
    await expectRefused(req('GET', '', { echostr: '<script>' + 'x'.repeat(300) }), 'SB_ERR_INVALID_FIELD');
  });

  it('refuses other methods', async () => {
    await expectRefused(req('PUT', ''), 'SB_ERR_INVALID_FIELD');
  });
});

describe('WeChat messages', () => {
  it('text', async () => {
    const { stored, error } = await run(
      req('POST', xml({ ...BASE, MsgType: 'text', Content: '你好 <b>&', MsgId: 1234567890123456 })),
    );
    expect(error).toBeUndefined();
    expect(stored).toEqual([
      {
        channel: 'wechat',
        associationId: 'gh_abc123',
        externalUserId: 'oUser-OpenId_1',
        msgId: '1234567890123456',
        kind: 'text',
        text: '你好 <b>&',
        at: NOW,
      },
    ]);
    expect(inboundDedupeKey(stored[0]!)).toBe('wechat:gh_abc123:1234567890123456');
  });

  it('text with entities instead of CDATA, declaration and whitespace', async () => {
    const body =
      '<?xml version="1.0" encoding="utf-8"?>\n<xml>\n  <ToUserName>gh_abc123</ToUserName>\n' +
      `  <FromUserName>u1</FromUserName>\n  <CreateTime>${NOW / 1000}</CreateTime>\n` +
      '  <MsgType>text</MsgType>\n  <Content>a &lt;b&gt; &amp; &#20013;&#x6587;</Content>\n  <MsgId>42</MsgId>\n</xml>\n';
    const { stored } = await run(req('POST', body));
    expect(stored[0]!.text).toBe('a <b> & 中文');
  });

  it('image', async () => {
    const { stored } = await run(
      req(
        'POST',
        xml({ ...BASE, MsgType: 'image', PicUrl: 'http://mmbiz.qpic.cn/abc', MediaId: 'media_1', MsgId: 7 }),
      ),
    );
    expect(stored).toEqual([
      expect.objectContaining({
        kind: 'image',
        mediaUrl: 'http://mmbiz.qpic.cn/abc',
        mediaId: 'media_1',
        msgId: '7',
      }),
    ]);
  });

  it('voice, with and without recognition', async () => {
    const plain = await run(
      req('POST', xml({ ...BASE, MsgType: 'voice', MediaId: 'v1', Format: 'amr', MsgId: 8 })),
    );
    expect(plain.stored).toEqual([expect.objectContaining({ kind: 'voice', mediaId: 'v1', msgId: '8' })]);
    expect(plain.stored[0]!.text).toBeUndefined();
    const rec = await run(
      req(
        'POST',
        xml({ ...BASE, MsgType: 'voice', MediaId: 'v1', Format: 'amr', Recognition: '我要退款', MsgId: 9 }),
      ),
    );
    expect(rec.stored[0]!.text).toBe('我要退款');
  });

  it('subscribe and unsubscribe events, deduped on sender and time', async () => {
    const sub = await run(req('POST', xml({ ...BASE, MsgType: 'event', Event: 'subscribe' })));
    expect(sub.stored).toEqual([
      {
        channel: 'wechat',
        associationId: 'gh_abc123',
        externalUserId: 'oUser-OpenId_1',
        msgId: `oUser-OpenId_1:${NOW / 1000}:subscribe`,
        kind: 'event',
        event: 'subscribe',
        at: NOW,
      },
    ]);
    const unsub = await run(req('POST', xml({ ...BASE, MsgType: 'event', Event: 'unsubscribe' })));
    expect(unsub.stored[0]!.event).toBe('unsubscribe');
    // The same event retried by the platform yields the same key.
    const again = await run(req('POST', xml({ ...BASE, MsgType: 'event', Event: 'subscribe' })));
    expect(inboundDedupeKey(again.stored[0]!)).toBe(inboundDedupeKey(sub.stored[0]!));
    // Upper-case events (CLICK, VIEW) come through lower-cased.
    const click = await run(
      req('POST', xml({ ...BASE, MsgType: 'event', Event: 'CLICK', EventKey: 'MENU_1' })),
    );
    expect(click.stored[0]!.event).toBe('click');
  });

  it('acknowledges unsupported message types without storing anything', async () => {
    const res = await handleChannelRequest(
      adapter,
      req('POST', xml({ ...BASE, MsgType: 'location', Location_X: '23.1', Location_Y: '113.3', MsgId: 5 })),
      async () => {
        throw new Error('must not be called');
      },
    );
    expect(res.body).toBe('success');
  });

  it('answers success, or a passive text reply', async () => {
    const body = xml({ ...BASE, MsgType: 'text', Content: 'hi', MsgId: 1 });
    const ok = await handleChannelRequest(adapter, req('POST', body), async () => {});
    expect(ok).toEqual({ status: 200, contentType: 'text/plain; charset=utf-8', body: 'success' });
    const replied = await handleChannelRequest(
      adapter,
      req('POST', body),
      async () => 'An agent will answer ]]> soon',
    );
    expect(replied.contentType).toBe('application/xml; charset=utf-8');
    expect(replied.body).toBe(
      '<xml><ToUserName><![CDATA[oUser-OpenId_1]]></ToUserName><FromUserName><![CDATA[gh_abc123]]></FromUserName>' +
        `<CreateTime>${NOW / 1000}</CreateTime><MsgType><![CDATA[text]]></MsgType>` +
        '<Content><![CDATA[An agent will answer ]]]]><![CDATA[> soon]]></Content></xml>',
    );
  });

  it('shortens long passive replies to 2048 bytes without splitting characters', () => {
    const m = {
      channel: 'wechat',
      associationId: 'gh',
      externalUserId: 'u',
      msgId: '1',
      kind: 'text',
      at: NOW,
    } as const;
    const body = adapter.reply(m, '中'.repeat(1000)).body;
    const content = /<Content><!\[CDATA\[(.*)\]\]><\/Content>/.exec(body)![1]!;
    expect(Buffer.byteLength(content)).toBe(2046);
  });

  it('refuses messages for another account when the URL is bound to one', async () => {
    const bound = new WechatAdapter({ token: TOKEN, now: () => NOW, accountId: 'gh_other' });
    await expectRefused(
      req('POST', xml({ ...BASE, MsgType: 'text', Content: 'hi', MsgId: 1 })),
      'SB_ERR_FORBIDDEN',
      bound,
    );
  });
});

describe('WeChat malformed input: typed error, nothing stored', () => {
  const good = xml({ ...BASE, MsgType: 'text', Content: 'hi', MsgId: 1 });

  it('truncated XML', async () => {
    for (const cut of [10, 40, good.length - 3, good.length - 1])
      await expectRefused(req('POST', good.slice(0, cut)), 'SB_ERR_BAD_FRAME');
  });

  it('DOCTYPE and entity declarations (XXE, billion laughs)', async () => {
    const xxe =
      '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>' +
      xml({ ...BASE, MsgType: 'text', MsgId: 1 }).replace('<MsgId>', '<Content>&x;</Content><MsgId>');
    const err = await expectRefused(req('POST', xxe), 'SB_ERR_BAD_FRAME');
    expect(err.message).toMatch(/DTD/);
    await expectRefused(req('POST', '<!doctype xml>' + good), 'SB_ERR_BAD_FRAME');
    await expectRefused(req('POST', good.replace('<![CDATA[hi]]>', '&lol;')), 'SB_ERR_BAD_FRAME');
  });

  it('wrong root element', async () => {
    await expectRefused(req('POST', good.replaceAll('xml>', 'message>')), 'SB_ERR_BAD_FRAME');
  });

  it('missing or empty required fields', async () => {
    await expectRefused(req('POST', xml({ ...BASE, Content: 'hi', MsgId: 1 })), 'SB_ERR_INVALID_FIELD');
    await expectRefused(req('POST', xml({ ...BASE, MsgType: 'text', MsgId: 1 })), 'SB_ERR_INVALID_FIELD');
    await expectRefused(
      req('POST', xml({ ...BASE, MsgType: 'text', Content: 'hi' })),
      'SB_ERR_INVALID_FIELD',
    );
    await expectRefused(
      req('POST', xml({ ...BASE, MsgType: 'text', Content: '', MsgId: 1 })),
      'SB_ERR_INVALID_FIELD',
    );
    const { FromUserName: _f, ...noFrom } = BASE;
    await expectRefused(
      req('POST', xml({ ...noFrom, MsgType: 'text', Content: 'hi', MsgId: 1 })),
      'SB_ERR_INVALID_FIELD',
    );
    await expectRefused(req('POST', xml({ ...BASE, MsgType: 'event' })), 'SB_ERR_INVALID_FIELD');
    await expectRefused(req('POST', xml({ ...BASE, MsgType: 'image', MsgId: 1 })), 'SB_ERR_INVALID_FIELD');
    await expectRefused(req('POST', xml({ ...BASE, MsgType: 'voice', MsgId: 1 })), 'SB_ERR_INVALID_FIELD');
  });

  it('fields of the wrong form', async () => {
    await expectRefused(
      req('POST', xml({ ...BASE, CreateTime: 'yesterday', MsgType: 'text', Content: 'hi', MsgId: 1 })),
      'SB_ERR_INVALID_FIELD',
    );
    await expectRefused(
      req('POST', xml({ ...BASE, FromUserName: 'has space', MsgType: 'text', Content: 'hi', MsgId: 1 })),
      'SB_ERR_INVALID_FIELD',
    );
    await expectRefused(
      req('POST', xml({ ...BASE, MsgType: 'image', PicUrl: 'javascript:alert(1)', MsgId: 1 })),
      'SB_ERR_INVALID_FIELD',
    );
    await expectRefused(
      req('POST', xml({ ...BASE, MsgType: 'text', Content: 'x'.repeat(4097), MsgId: 1 })),
      'SB_ERR_INVALID_FIELD',
    );
    await expectRefused(
      req('POST', good.replace('<MsgId>', '<MsgId><Nested>1</Nested>').replace('1</MsgId>', '</MsgId>')),
      'SB_ERR_INVALID_FIELD',
    );
  });

  it('repeated fields, attributes, junk after the root, invalid UTF-8, empty body', async () => {
    await expectRefused(req('POST', good.replace('</xml>', '<MsgId>2</MsgId></xml>')), 'SB_ERR_BAD_FRAME');
    await expectRefused(req('POST', good.replace('<xml>', '<xml a="1">')), 'SB_ERR_BAD_FRAME');
    await expectRefused(req('POST', good + '<xml></xml>'), 'SB_ERR_BAD_FRAME');
    await expectRefused(
      req(
        'POST',
        Buffer.concat([
          Buffer.from(good.slice(0, 20)),
          Buffer.from([0xff, 0xfe]),
          Buffer.from(good.slice(20)),
        ]),
      ),
      'SB_ERR_BAD_FRAME',
    );
    await expectRefused(req('POST', ''), 'SB_ERR_BAD_FRAME');
    await expectRefused(req('POST', 'not xml at all'), 'SB_ERR_BAD_FRAME');
  });

  it('encrypted mode is refused, not misread', async () => {
    await expectRefused(req('POST', good, { encrypt_type: 'aes' }), 'SB_ERR_INVALID_FIELD');
    await expectRefused(
      req('POST', xml({ ToUserName: 'gh_abc123', Encrypt: 'AAAA' })),
      'SB_ERR_INVALID_FIELD',
    );
  });

  it('oversized body', async () => {
    const big = xml({ ...BASE, MsgType: 'text', Content: 'x'.repeat(64 * 1024), MsgId: 1 });
    const err = await expectRefused(req('POST', big), 'SB_ERR_FRAME_TOO_LARGE');
    expect(channelErrorResponse(err).status).toBe(413);
    const small = new WechatAdapter({ token: TOKEN, now: () => NOW, maxBodyBytes: 100 });
    await expectRefused(req('POST', good), 'SB_ERR_FRAME_TOO_LARGE', small);
  });

  it('errors map to HTTP answers', () => {
    const r = channelErrorResponse(new SbError('SB_ERR_UNAUTHENTICATED', 'callback signature mismatch'));
    expect(r.status).toBe(401);
    expect(JSON.parse(r.body)).toEqual({
      error: { code: 'SB_ERR_UNAUTHENTICATED', message: 'callback signature mismatch' },
    });
    expect(channelErrorResponse(new Error('boom')).status).toBe(500);
  });

  it('a failing store propagates and the platform is not told success', async () => {
    await expect(
      handleChannelRequest(adapter, req('POST', good), async () => {
        throw new SbError('SB_ERR_STORE_UNAVAILABLE');
      }),
    ).rejects.toMatchObject({ code: 'SB_ERR_STORE_UNAVAILABLE' });
  });

  it('the adapter needs a token', () => {
    expect(() => new WechatAdapter({ token: '' })).toThrow(SbError);
  });
});
