/**
 * WeChat official account callback (plaintext mode).
 *
 * - URL verification: `GET ?signature&timestamp&nonce&echostr` → `echostr` when the signature is right.
 * - Messages: `POST ?signature&timestamp&nonce` with an XML body:
 *   `<xml><ToUserName/><FromUserName/><CreateTime/><MsgType/>…</xml>`; `text` (Content, MsgId),
 *   `image` (PicUrl, MediaId, MsgId), `voice` (MediaId, MsgId, optional Recognition), `event` (Event).
 *   Other message types (video, location, link, …) are well-formed but not handled: parsed to no
 *   message, acknowledged with `success` so the platform does not retry them.
 * - Answer: `success`, or a passive text reply (XML) to the sender.
 *
 * The encrypted ("safe") mode — `encrypt_type=aes` in the query, `<Encrypt>` in the body — is not
 * supported and refused with SB_ERR_INVALID_FIELD; configure the account in plaintext mode.
 */
import { SbError } from '../../protos/errors.ts';
import {
  PLAIN_SUCCESS,
  boundedText,
  checkAccount,
  checkBodySize,
  echoChallenge,
  mediaUrl,
  platformId,
  resolveOptions,
  type ResolvedOptions,
} from './common.ts';
import { verifySignedQuery } from './signature.ts';
import type {
  AdapterOptions,
  ChannelAdapter,
  ChannelRequest,
  ChannelResponse,
  InboundMessage,
} from './types.ts';
import { cdata, decodeUtf8, parseXml, type XmlElement } from './xml.ts';

export interface WechatOptions extends AdapterOptions {
  /** The token entered in the official account's server configuration. */
  token: string;
}

/** WeChat cuts passive text replies at about 2048 bytes; longer ones are shortened to this. */
export const WECHAT_REPLY_MAX_BYTES = 2048;

const EVENT_NAME = /^[A-Za-z_]{1,64}$/;

/** Top-level fields by name; a field given twice is malformed. */
function fieldsOf(root: XmlElement): Map<string, XmlElement> {
  const out = new Map<string, XmlElement>();
  for (const c of root.children) {
    if (out.has(c.name)) throw new SbError('SB_ERR_BAD_FRAME', `WeChat message repeats <${c.name}>`);
    out.set(c.name, c);
  }
  return out;
}

/** Shortens `s` to at most `max` UTF-8 bytes without splitting a character. */
function truncateUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s, 'utf8') <= max) return s;
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const b = Buffer.byteLength(ch, 'utf8');
    if (bytes + b > max) break;
    out += ch;
    bytes += b;
  }
  return out;
}

export class WechatAdapter implements ChannelAdapter {
  readonly channel = 'wechat' as const;
  readonly maxBodyBytes: number;
  private readonly token: string;
  private readonly o: ResolvedOptions;

  constructor(opts: WechatOptions) {
    this.o = resolveOptions('token', opts.token, opts);
    this.token = opts.token;
    this.maxBodyBytes = this.o.maxBodyBytes;
  }

  verify(req: ChannelRequest): void {
    verifySignedQuery(req.query, this.token, this.o.now(), this.o.maxAgeMs);
  }

  challenge(req: ChannelRequest): ChannelResponse {
    return echoChallenge(req);
  }

  parse(req: ChannelRequest): InboundMessage[] {
    checkBodySize(req, this.o.maxBodyBytes);
    const enc = req.query.get('encrypt_type');
    if (enc !== null && enc !== 'raw')
      throw new SbError('SB_ERR_INVALID_FIELD', 'WeChat encrypted mode is not supported; use plaintext mode');
    const root = parseXml(decodeUtf8(req.body));
    if (root.name !== 'xml') throw new SbError('SB_ERR_BAD_FRAME', 'WeChat message root must be <xml>');
    const f = fieldsOf(root);
    if (f.has('Encrypt'))
      throw new SbError('SB_ERR_INVALID_FIELD', 'WeChat encrypted mode is not supported; use plaintext mode');
    const get = (name: string): string | undefined => {
      const el = f.get(name);
      if (el === undefined) return undefined;
      if (el.children.length > 0) throw new SbError('SB_ERR_INVALID_FIELD', `<${name}> must be text`);
      return el.text;
    };
    const id = (name: string): string => platformId(get(name)?.trim(), name);

    const msgType = id('MsgType');
    const associationId = id('ToUserName');
    checkAccount(this.o.accountId, associationId);
    const externalUserId = id('FromUserName');
    const createTime = id('CreateTime');
    if (!/^[0-9]{1,12}$/.test(createTime))
      throw new SbError('SB_ERR_INVALID_FIELD', 'CreateTime must be Unix seconds');
    const base = { channel: 'wechat' as const, associationId, externalUserId, at: Number(createTime) * 1000 };

    switch (msgType) {
      case 'text': {
        const text = boundedText(get('Content'), 'Content');
        if (text.trim() === '') throw new SbError('SB_ERR_INVALID_FIELD', 'Content is blank');
        return [{ ...base, msgId: id('MsgId'), kind: 'text', text }];
      }
      case 'image': {
        const m: InboundMessage = {
          ...base,
          msgId: id('MsgId'),
          kind: 'image',
          mediaUrl: mediaUrl(get('PicUrl'), 'PicUrl'),
        };
        const mediaId = get('MediaId')?.trim();
        if (mediaId !== undefined && mediaId !== '') m.mediaId = platformId(mediaId, 'MediaId');
        return [m];
      }
      case 'voice': {
        const m: InboundMessage = { ...base, msgId: id('MsgId'), kind: 'voice', mediaId: id('MediaId') };
        const recognition = get('Recognition')?.trim();
        if (recognition) m.text = boundedText(recognition, 'Recognition');
        return [m];
      }
      case 'event': {
        const raw = get('Event')?.trim();
        if (raw === undefined || !EVENT_NAME.test(raw))
          throw new SbError('SB_ERR_INVALID_FIELD', 'Event missing or not an event name');
        const event = raw.toLowerCase();
        return [{ ...base, msgId: `${externalUserId}:${createTime}:${event}`, kind: 'event', event }];
      }
      default:
        return [];
    }
  }

  reply(to: InboundMessage | undefined, text?: string): ChannelResponse {
    if (to === undefined || text === undefined || text === '') return PLAIN_SUCCESS;
    const xml =
      '<xml>' +
      `<ToUserName>${cdata(to.externalUserId)}</ToUserName>` +
      `<FromUserName>${cdata(to.associationId)}</FromUserName>` +
      `<CreateTime>${Math.floor(this.o.now() / 1000)}</CreateTime>` +
      `<MsgType>${cdata('text')}</MsgType>` +
      `<Content>${cdata(truncateUtf8(text, WECHAT_REPLY_MAX_BYTES))}</Content>` +
      '</xml>';
    return { status: 200, contentType: 'application/xml; charset=utf-8', body: xml };
  }
}
