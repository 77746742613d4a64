/**
 * Channel adapters (F1): WeChat official accounts and Weibo, the same shape for both. Pure and
 * transport-agnostic: an adapter verifies a callback request, parses it into normalised inbound
 * messages, and says what to answer. The gateway wires them to HTTP routes and session actors; a
 * {@link ChannelProvider} sends agents' replies back out (a fake one records them in tests).
 *
 * WeChat: `signature = sha1(sort([token, timestamp, nonce]).join(''))` in the query, for the URL
 * verification GET (answered with `echostr`) and for every POST of an XML message. Weibo: the same
 * scheme with the app secret, and JSON bodies. Callbacks older than {@link CALLBACK_MAX_AGE_MS}
 * (or as far in the future) are refused, so a captured request cannot be replayed later.
 * Bodies above {@link MAX_CALLBACK_BYTES} are refused. Errors are typed: bad or stale signature →
 * SB_ERR_UNAUTHENTICATED; malformed XML/JSON → SB_ERR_BAD_FRAME; missing fields → SB_ERR_INVALID_FIELD.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { SbError } from '../protos/errors.ts';

export const CALLBACK_MAX_AGE_MS = 5 * 60_000;
export const MAX_CALLBACK_BYTES = 64 * 1024;

export type ExternalChannel = 'wechat' | 'weibo';

export interface CallbackRequest {
  method: string;
  query: URLSearchParams;
  body: Buffer;
}

export interface InboundMessage {
  channel: ExternalChannel;
  /** The official account / Weibo account that received it (WeChat ToUserName, Weibo receiver_id). */
  accountId: string;
  /** The user on the channel (WeChat OpenID, Weibo sender_id). */
  externalUserId: string;
  /** Dedupe key: the platform retries callbacks, so the same message can arrive several times. */
  msgId: string;
  kind: 'text' | 'image' | 'voice' | 'event';
  text?: string;
  mediaUrl?: string;
  event?: string;
  /** ms epoch, from the platform. */
  at: number;
}

export interface CallbackAnswer {
  status: number;
  contentType: string;
  body: string;
}

export interface ChannelAdapter {
  readonly channel: ExternalChannel;
  /** Throws SB_ERR_UNAUTHENTICATED unless the request is signed with `secret` and fresh. */
  verify(req: CallbackRequest, secret: string, now: number): void;
  /** GET: the URL verification answer (after `verify`). */
  echo(req: CallbackRequest): CallbackAnswer;
  /** POST body → messages; throws typed errors on anything malformed. */
  parse(req: CallbackRequest): InboundMessage[];
  /** What to answer once the messages are stored. */
  ack(): CallbackAnswer;
}

/** Sends agents' replies to the channel (official-account customer-service API, Weibo API, …). */
export interface ChannelProvider {
  sendText(channel: ExternalChannel, accountId: string, externalUserId: string, text: string): Promise<void>;
}

/** Records every call; can be told to fail the next N calls. */
export class FakeProvider implements ChannelProvider {
  readonly sent: Array<{
    channel: ExternalChannel;
    accountId: string;
    externalUserId: string;
    text: string;
  }> = [];
  failNext = 0;
  async sendText(
    channel: ExternalChannel,
    accountId: string,
    externalUserId: string,
    text: string,
  ): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new SbError('SB_ERR_STORE_UNAVAILABLE', 'provider unavailable (fake)');
    }
    this.sent.push({ channel, accountId, externalUserId, text });
  }
}

// ---- signatures -------------------------------------------------------------------------------------

export function sha1Signature(secret: string, timestamp: string, nonce: string): string {
  return createHash('sha1').update([secret, timestamp, nonce].sort().join('')).digest('hex');
}

function verifySignature(req: CallbackRequest, secret: string, now: number): void {
  const signature = req.query.get('signature') ?? '';
  const timestamp = req.query.get('timestamp') ?? '';
  const nonce = req.query.get('nonce') ?? '';
  if (
    !/^[0-9a-f]{40}$/.test(signature) ||
    !/^\d{1,12}$/.test(timestamp) ||
    nonce === '' ||
    nonce.length > 64
  ) {
    throw new SbError('SB_ERR_UNAUTHENTICATED', 'callback signature, timestamp or nonce missing');
  }
  const want = Buffer.from(sha1Signature(secret, timestamp, nonce), 'hex');
  if (!timingSafeEqual(want, Buffer.from(signature, 'hex')))
    throw new SbError('SB_ERR_UNAUTHENTICATED', 'callback signature does not match');
  if (Math.abs(now - Number(timestamp) * 1000) > CALLBACK_MAX_AGE_MS)
    throw new SbError('SB_ERR_UNAUTHENTICATED', 'callback timestamp outside the replay window');
}

function echoAnswer(req: CallbackRequest): CallbackAnswer {
  const echostr = req.query.get('echostr');
  if (echostr === null || echostr.length === 0 || echostr.length > 256)
    throw new SbError('SB_ERR_INVALID_FIELD', 'echostr required');
  return { status: 200, contentType: 'text/plain; charset=utf-8', body: echostr };
}

function checkSize(req: CallbackRequest): void {
  if (req.body.byteLength > MAX_CALLBACK_BYTES)
    throw new SbError('SB_ERR_FRAME_TOO_LARGE', `callback body larger than ${MAX_CALLBACK_BYTES} bytes`);
}

// ---- a strict little XML reader for WeChat's flat documents --------------------------------------------

export interface XmlElement {
  name: string;
  text: string;
  children: XmlElement[];
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]{1,6}|#\d{1,7}|[a-z]{2,4});/g, (m, e: string) => {
    if (e.startsWith('#x')) return String.fromCodePoint(parseInt(e.slice(2), 16));
    if (e.startsWith('#')) return String.fromCodePoint(parseInt(e.slice(1), 10));
    const v = ENTITIES[e];
    if (v === undefined) throw new SbError('SB_ERR_BAD_FRAME', `unknown XML entity ${m}`);
    return v;
  });
}

/**
 * Parses elements, text and CDATA. No DTDs, entities beyond the five predefined and numeric ones,
 * processing instructions (other than the leading declaration), attributes are ignored. Anything
 * else is SB_ERR_BAD_FRAME.
 */
export function parseXml(src: string): XmlElement {
  if (/<!DOCTYPE|<!ENTITY/i.test(src)) throw new SbError('SB_ERR_BAD_FRAME', 'XML with a DTD is refused');
  let i = 0;
  const fail = (why: string): never => {
    throw new SbError('SB_ERR_BAD_FRAME', `malformed XML at ${i}: ${why}`);
  };
  const skipWs = (): void => {
    while (i < src.length && /\s/.test(src[i]!)) i++;
  };
  skipWs();
  if (src.startsWith('<?xml', i)) {
    const end = src.indexOf('?>', i);
    if (end < 0) fail('unterminated declaration');
    i = end + 2;
  }
  const element = (depth: number): XmlElement => {
    if (depth > 8) fail('nested too deeply');
    if (src[i] !== '<') fail('expected an element');
    const m = /^<([A-Za-z_][\w.-]{0,63})(\s[^<>]*)?(\/?)>/.exec(src.slice(i, i + 512));
    if (!m) fail('bad start tag');
    const name = m![1]!;
    i += m![0].length;
    const el: XmlElement = { name, text: '', children: [] };
    if (m![3] === '/') return el;
    for (;;) {
      if (i >= src.length) fail(`unterminated <${name}>`);
      if (src.startsWith('<![CDATA[', i)) {
        const end = src.indexOf(']]>', i);
        if (end < 0) fail('unterminated CDATA');
        el.text += src.slice(i + 9, end);
        i = end + 3;
      } else if (src.startsWith('</', i)) {
        const close = `</${name}>`;
        if (!src.startsWith(close, i)) fail(`expected ${close}`);
        i += close.length;
        return el;
      } else if (src.startsWith('<!--', i)) {
        const end = src.indexOf('-->', i);
        if (end < 0) fail('unterminated comment');
        i = end + 3;
      } else if (src[i] === '<') {
        if (src[i + 1] === '?' || src[i + 1] === '!') fail('unexpected markup');
        el.children.push(element(depth + 1));
      } else {
        const next = src.indexOf('<', i);
        if (next < 0) fail(`unterminated <${name}>`);
        el.text += decodeEntities(src.slice(i, next));
        i = next;
      }
    }
  };
  const root = element(0);
  skipWs();
  if (i !== src.length) fail('content after the root element');
  return root;
}

function field(el: XmlElement, name: string): string | undefined {
  const c = el.children.find((x) => x.name === name);
  return c?.text.trim();
}

function required(el: XmlElement, name: string): string {
  const v = field(el, name);
  if (v === undefined || v === '')
    throw new SbError('SB_ERR_INVALID_FIELD', `WeChat message without ${name}`);
  if (v.length > 4096) throw new SbError('SB_ERR_INVALID_FIELD', `${name} too long`);
  return v;
}

function seconds(v: string, what: string): number {
  if (!/^\d{1,12}$/.test(v)) throw new SbError('SB_ERR_INVALID_FIELD', `${what} must be a Unix time`);
  return Number(v) * 1000;
}

export const wechatAdapter: ChannelAdapter = {
  channel: 'wechat',
  verify: verifySignature,
  echo: echoAnswer,
  parse(req) {
    checkSize(req);
    const root = parseXml(req.body.toString('utf8'));
    if (root.name !== 'xml') throw new SbError('SB_ERR_BAD_FRAME', 'WeChat message root must be <xml>');
    const type = required(root, 'MsgType');
    const base = {
      channel: 'wechat' as const,
      accountId: required(root, 'ToUserName'),
      externalUserId: required(root, 'FromUserName'),
      at: seconds(required(root, 'CreateTime'), 'CreateTime'),
    };
    switch (type) {
      case 'text':
        return [{ ...base, kind: 'text', msgId: required(root, 'MsgId'), text: required(root, 'Content') }];
      case 'image':
        return [
          { ...base, kind: 'image', msgId: required(root, 'MsgId'), mediaUrl: required(root, 'PicUrl') },
        ];
      case 'voice': {
        const m: InboundMessage = { ...base, kind: 'voice', msgId: required(root, 'MsgId') };
        const recognised = field(root, 'Recognition');
        if (recognised) m.text = recognised;
        return [m];
      }
      case 'event': {
        const event = required(root, 'Event');
        return [
          { ...base, kind: 'event', event, msgId: `${base.externalUserId}:${base.at / 1000}:${event}` },
        ];
      }
      default:
        // Video, location, link, …: nothing to store; answering `success` stops the platform's retries.
        return [];
    }
  },
  ack: () => ({ status: 200, contentType: 'text/plain; charset=utf-8', body: 'success' }),
};

export const weiboAdapter: ChannelAdapter = {
  channel: 'weibo',
  verify: verifySignature,
  echo: echoAnswer,
  parse(req) {
    checkSize(req);
    let o: unknown;
    try {
      o = JSON.parse(req.body.toString('utf8'));
    } catch {
      throw new SbError('SB_ERR_BAD_FRAME', 'Weibo message is not valid JSON');
    }
    if (!o || typeof o !== 'object' || Array.isArray(o))
      throw new SbError('SB_ERR_BAD_FRAME', 'Weibo message must be an object');
    const m = o as Record<string, unknown>;
    const str = (k: string): string => {
      const v = m[k];
      if ((typeof v !== 'string' && typeof v !== 'number') || String(v) === '' || String(v).length > 4096)
        throw new SbError('SB_ERR_INVALID_FIELD', `Weibo message without ${k}`);
      return String(v);
    };
    const type = str('type');
    const createdAt = Date.parse(str('created_at'));
    if (Number.isNaN(createdAt)) throw new SbError('SB_ERR_INVALID_FIELD', 'created_at is not a date');
    const base = {
      channel: 'weibo' as const,
      accountId: str('receiver_id'),
      externalUserId: str('sender_id'),
      at: createdAt,
    };
    const id = m['id'] !== undefined ? str('id') : `${base.externalUserId}:${createdAt}`;
    if (type === 'text') return [{ ...base, kind: 'text', msgId: id, text: str('text') }];
    if (type === 'event') {
      const data = m['data'] as { subtype?: unknown } | undefined;
      const event = typeof data?.subtype === 'string' ? data.subtype : 'event';
      return [{ ...base, kind: 'event', event, msgId: id }];
    }
    if (type === 'image') {
      const data = m['data'] as { url?: unknown } | undefined;
      if (typeof data?.url !== 'string')
        throw new SbError('SB_ERR_INVALID_FIELD', 'Weibo image without data.url');
      return [{ ...base, kind: 'image', msgId: id, mediaUrl: data.url }];
    }
    throw new SbError('SB_ERR_INVALID_FIELD', `unsupported Weibo message type ${type.slice(0, 20)}`);
  },
  ack: () => ({ status: 200, contentType: 'text/plain; charset=utf-8', body: 'success' }),
};

export const ADAPTERS: Record<ExternalChannel, ChannelAdapter> = {
  wechat: wechatAdapter,
  weibo: weiboAdapter,
};

/**
 * One callback: verifies, parses, hands every message to `onInbound` only when all of them
 * validated (nothing is stored from a malformed request), and answers. Errors propagate typed.
 */
export async function handleCallback(
  adapter: ChannelAdapter,
  req: CallbackRequest,
  secret: string,
  now: number,
  onInbound: (m: InboundMessage) => Promise<void>,
): Promise<CallbackAnswer> {
  adapter.verify(req, secret, now);
  if (req.method === 'get') return adapter.echo(req);
  const msgs = adapter.parse(req);
  for (const m of msgs) await onInbound(m);
  return adapter.ack();
}
