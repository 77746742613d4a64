/**
 * Weibo message push (粉丝服务), the same shape as WeChat:
 *
 * - URL verification: `GET ?signature&timestamp&nonce&echostr`, signature = sha1 of the sorted
 *   (app secret, timestamp, nonce) → `echostr`.
 * - Messages: `POST ?signature&timestamp&nonce` with a JSON object body:
 *   `{ type, sender_id, receiver_id, created_at, text?, data? }`. Handled types: `text` (text),
 *   `event` (`data.subtype`: follow/subscribe → `subscribe`, unfollow/unsubscribe → `unsubscribe`,
 *   others passed through lower-case), `image` and `voice` (`data.tovfid` or `data.vfid` as media id).
 *   Other types are acknowledged and produce no message.
 * - `created_at`: Weibo's date format ("Wed Jun 10 14:00:00 +0800 2015"), ISO 8601, or Unix seconds.
 * - Message id: `id` / `msg_id` when the push carries one; otherwise
 *   `<sender_id>:<created_at seconds>:<type>:<12 hex of sha1(text or data)>`.
 * - Passive text reply: JSON `{ result: true, sender_id: <account>, receiver_id: <user>, type: 'text',
 *   data: urlencode(JSON({ text })) }` as the Weibo documentation describes it; otherwise `success`.
 *   (Both answers are as documented by the platform, not verified against it here.)
 */
import { createHash } from 'node:crypto';
import { SbError } from '../../protos/errors.ts';
import {
  PLAIN_SUCCESS,
  boundedText,
  checkAccount,
  checkBodySize,
  echoChallenge,
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
import { decodeUtf8 } from './xml.ts';

export interface WeiboOptions extends AdapterOptions {
  /** The app secret of the Weibo fan-service app. */
  appSecret: string;
}

const EVENT_ALIASES: Readonly<Record<string, string>> = {
  follow: 'subscribe',
  scan_follow: 'subscribe',
  unfollow: 'unsubscribe',
};

const EVENT_NAME = /^[A-Za-z_]{1,64}$/;

/** A numeric id (Weibo uids are numbers in JSON) or an id string. */
function idField(o: Record<string, unknown>, key: string, label = key): string {
  const v = o[key];
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new SbError('SB_ERR_INVALID_FIELD', `${label} is not an id`);
    return String(v);
  }
  return platformId(typeof v === 'string' ? v.trim() : undefined, label);
}

function createdAt(v: unknown): number {
  if (typeof v === 'number' || (typeof v === 'string' && /^[0-9]{1,13}$/.test(v))) {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new SbError('SB_ERR_INVALID_FIELD', 'created_at is not a time');
    return n < 1e11 ? n * 1000 : n;
  }
  if (typeof v !== 'string' || v.length > 64) throw new SbError('SB_ERR_INVALID_FIELD', 'created_at missing');
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new SbError('SB_ERR_INVALID_FIELD', 'created_at is not a date');
  return t;
}

export class WeiboAdapter implements ChannelAdapter {
  readonly channel = 'weibo' as const;
  readonly maxBodyBytes: number;
  private readonly secret: string;
  private readonly o: ResolvedOptions;

  constructor(opts: WeiboOptions) {
    this.o = resolveOptions('appSecret', opts.appSecret, opts);
    this.secret = opts.appSecret;
    this.maxBodyBytes = this.o.maxBodyBytes;
  }

  verify(req: ChannelRequest): void {
    verifySignedQuery(req.query, this.secret, this.o.now(), this.o.maxAgeMs);
  }

  challenge(req: ChannelRequest): ChannelResponse {
    return echoChallenge(req);
  }

  parse(req: ChannelRequest): InboundMessage[] {
    checkBodySize(req, this.o.maxBodyBytes);
    let v: unknown;
    try {
      v = JSON.parse(decodeUtf8(req.body));
    } catch (e) {
      if (e instanceof SbError) throw e;
      throw new SbError('SB_ERR_BAD_FRAME', 'Weibo message is not valid JSON');
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      throw new SbError('SB_ERR_BAD_FRAME', 'Weibo message must be a JSON object');
    const o = v as Record<string, unknown>;
    const type = o['type'];
    if (typeof type !== 'string' || !/^[a-z_]{1,32}$/.test(type))
      throw new SbError('SB_ERR_INVALID_FIELD', 'type missing or malformed');
    const associationId = idField(o, 'receiver_id');
    checkAccount(this.o.accountId, associationId);
    const externalUserId = idField(o, 'sender_id');
    const at = createdAt(o['created_at']);
    const rawData = o['data'];
    if (rawData !== undefined && rawData !== null && (typeof rawData !== 'object' || Array.isArray(rawData)))
      throw new SbError('SB_ERR_INVALID_FIELD', 'data must be an object');
    const data = (rawData ?? {}) as Record<string, unknown>;
    const base = { channel: 'weibo' as const, associationId, externalUserId, at };

    const msgId = (payload: unknown): string => {
      for (const k of ['id', 'msg_id']) if (o[k] !== undefined) return idField(o, k);
      const h = createHash('sha1')
        .update(JSON.stringify(payload ?? null))
        .digest('hex')
        .slice(0, 12);
      return `${externalUserId}:${Math.floor(at / 1000)}:${type}:${h}`;
    };

    switch (type) {
      case 'text': {
        const text = boundedText(typeof o['text'] === 'string' ? o['text'] : undefined, 'text');
        if (text.trim() === '') throw new SbError('SB_ERR_INVALID_FIELD', 'text is blank');
        return [{ ...base, msgId: msgId(text), kind: 'text', text }];
      }
      case 'event': {
        const sub = data['subtype'];
        if (typeof sub !== 'string' || !EVENT_NAME.test(sub))
          throw new SbError('SB_ERR_INVALID_FIELD', 'data.subtype missing or not an event name');
        const lower = sub.toLowerCase();
        const event = EVENT_ALIASES[lower] ?? lower;
        return [{ ...base, msgId: msgId({ event, key: data['key'] ?? null }), kind: 'event', event }];
      }
      case 'image':
      case 'voice': {
        const key = data['tovfid'] !== undefined ? 'tovfid' : 'vfid';
        const mediaId = idField(data, key, `data.${key}`);
        return [{ ...base, msgId: msgId(mediaId), kind: type, mediaId }];
      }
      default:
        return [];
    }
  }

  reply(to: InboundMessage | undefined, text?: string): ChannelResponse {
    if (to === undefined || text === undefined || text === '') return PLAIN_SUCCESS;
    const body = {
      result: true,
      sender_id: to.associationId,
      receiver_id: to.externalUserId,
      type: 'text',
      data: encodeURIComponent(JSON.stringify({ text })),
    };
    return { status: 200, contentType: 'application/json; charset=utf-8', body: JSON.stringify(body) };
  }
}
