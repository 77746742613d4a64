/**
 * Shapes shared by every external channel adapter (F1): the transport-agnostic request and answer, the
 * normalised inbound message, and the adapter interface that `wechat` and `weibo` implement.
 */

export type ChannelKind = 'wechat' | 'weibo';

/** An HTTP callback as the transport hands it over (header names lower-case). */
export interface ChannelRequest {
  method: string;
  query: URLSearchParams;
  headers: Record<string, string>;
  body: Buffer;
}

/** The HTTP answer to write back. */
export interface ChannelResponse {
  status: number;
  contentType: string;
  body: string;
}

export type InboundKind = 'text' | 'image' | 'voice' | 'event';

/** One message or event from a channel user, normalised. */
export interface InboundMessage {
  channel: ChannelKind;
  /** The platform account that received it: WeChat ToUserName (gh_…), Weibo receiver_id. */
  associationId: string;
  /** The user on the platform: WeChat OpenID (FromUserName), Weibo sender_id. */
  externalUserId: string;
  /**
   * Platform message id, unique per account: WeChat MsgId; for events (which have none)
   * `<FromUserName>:<CreateTime>:<event>`. Platforms retry callbacks, so store with this as the
   * idempotency key — see {@link inboundDedupeKey}.
   */
  msgId: string;
  kind: InboundKind;
  /** text: the content; voice: the platform's speech recognition when it sent one. */
  text?: string;
  /** image: the picture URL on the platform. */
  mediaUrl?: string;
  /** image/voice: the platform media id (to download the media through the platform API). */
  mediaId?: string;
  /** event: lower-case name, `subscribe` / `unsubscribe` for follows (others passed through). */
  event?: string;
  /** ms since the epoch, from the platform's timestamp. */
  at: number;
}

/** Idempotency key of an inbound message across channels and accounts. */
export function inboundDedupeKey(m: InboundMessage): string {
  return `${m.channel}:${m.associationId}:${m.msgId}`;
}

/** Options every adapter takes. */
export interface AdapterOptions {
  /** Accepted clock difference of a callback's `timestamp`, either way. Default 5 minutes. */
  maxAgeMs?: number;
  /** Largest accepted body. Default 64 KiB. */
  maxBodyBytes?: number;
  /** Clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /**
   * The platform account this callback URL belongs to (WeChat gh_… id, Weibo uid). When set, messages
   * addressed to any other account are refused with SB_ERR_FORBIDDEN.
   */
  accountId?: string;
}

export const DEFAULT_MAX_AGE_MS = 5 * 60_000;
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/**
 * One channel, configured for one association (its secret). All methods are synchronous and pure apart
 * from reading the clock; they throw `SbError`:
 * - SB_ERR_UNAUTHENTICATED: signature missing or wrong, timestamp outside the window;
 * - SB_ERR_FRAME_TOO_LARGE: body above the limit;
 * - SB_ERR_BAD_FRAME: body not UTF-8 / not well-formed XML or JSON / DTD present / wrong root;
 * - SB_ERR_INVALID_FIELD: a required field missing, empty, too long or of the wrong form; bad method;
 * - SB_ERR_FORBIDDEN: addressed to another account than {@link AdapterOptions.accountId}.
 */
export interface ChannelAdapter {
  readonly channel: ChannelKind;
  readonly maxBodyBytes: number;
  /** Checks the query's signature and timestamp. */
  verify(req: ChannelRequest): void;
  /** The answer to the platform's URL verification GET (call after {@link verify}). */
  challenge(req: ChannelRequest): ChannelResponse;
  /** Body → messages. An empty array means a well-formed callback with nothing to store. */
  parse(req: ChannelRequest): InboundMessage[];
  /**
   * The answer once the messages are stored: the platform's plain acknowledgement, or — with `text`
   * and exactly one message to answer — a passive text reply to its sender.
   */
  reply(to: InboundMessage | undefined, text?: string): ChannelResponse;
}
