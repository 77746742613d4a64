/**
 * Outbound side: how agents' replies reach channel users (WeChat customer-service message API, Weibo
 * fan-service API, …). A provider makes one attempt per call and reports failures as a typed
 * {@link ChannelSendError}; retrying (with backoff, while `retryable`) is the caller's job.
 */
import { SbError, type ErrorCode } from '../../protos/errors.ts';
import type { ChannelKind } from './types.ts';

/**
 * Why a send failed:
 * - `unavailable`: network error, timeout or 5xx from the platform — retryable;
 * - `rate_limited`: the platform's quota or frequency limit — retryable later;
 * - `window_closed`: the platform no longer lets the account write to this user (WeChat's 48-hour
 *   customer-service window, the user unfollowed or blocked the account) — not retryable;
 * - `rejected`: the platform refused the content or the ids — not retryable;
 * - `unauthorized`: the account's credentials are wrong or expired — not retryable until fixed.
 */
export type SendFailure = 'unavailable' | 'rate_limited' | 'window_closed' | 'rejected' | 'unauthorized';

const FAILURE_CODES: Readonly<Record<SendFailure, ErrorCode>> = {
  unavailable: 'SB_ERR_TIMEOUT',
  rate_limited: 'SB_ERR_RATE_LIMITED',
  window_closed: 'SB_ERR_INVALID_STATE',
  rejected: 'SB_ERR_INVALID_FIELD',
  unauthorized: 'SB_ERR_INTERNAL',
};

export class ChannelSendError extends SbError {
  readonly reason: SendFailure;
  readonly retryable: boolean;
  /** The platform's own error code (e.g. WeChat `errcode`), when there is one. */
  readonly providerCode: string | undefined;
  constructor(reason: SendFailure, message: string, opts: { providerCode?: string; cause?: unknown } = {}) {
    super(FAILURE_CODES[reason], message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'ChannelSendError';
    this.reason = reason;
    this.retryable = reason === 'unavailable' || reason === 'rate_limited';
    this.providerCode = opts.providerCode;
  }
}

/** Sends to one channel's users; one instance per channel kind, shared by its associations. */
export interface ChannelProvider {
  readonly channel: ChannelKind;
  sendText(associationId: string, externalUserId: string, text: string): Promise<void>;
  sendImage(associationId: string, externalUserId: string, mediaUrl: string): Promise<void>;
}

export type ProviderCall =
  | { op: 'text'; associationId: string; externalUserId: string; text: string }
  | { op: 'image'; associationId: string; externalUserId: string; mediaUrl: string };

/**
 * A provider for tests: records successful calls in {@link sent} and every attempt in {@link attempts};
 * `failNext(n, reason)` fails the next n calls, `failAlways(reason)` every call until `recover()`.
 */
export class FakeProvider implements ChannelProvider {
  readonly channel: ChannelKind;
  readonly sent: ProviderCall[] = [];
  readonly attempts: ProviderCall[] = [];
  private failures: SendFailure[] = [];
  private always: SendFailure | undefined;

  constructor(channel: ChannelKind = 'wechat') {
    this.channel = channel;
  }

  failNext(n: number, reason: SendFailure = 'unavailable'): this {
    for (let i = 0; i < n; i++) this.failures.push(reason);
    return this;
  }

  failAlways(reason: SendFailure = 'unavailable'): this {
    this.always = reason;
    return this;
  }

  recover(): this {
    this.failures = [];
    this.always = undefined;
    return this;
  }

  async sendText(associationId: string, externalUserId: string, text: string): Promise<void> {
    if (text.length === 0) throw new ChannelSendError('rejected', 'empty text');
    await this.record({ op: 'text', associationId, externalUserId, text });
  }

  async sendImage(associationId: string, externalUserId: string, mediaUrl: string): Promise<void> {
    await this.record({ op: 'image', associationId, externalUserId, mediaUrl });
  }

  private async record(call: ProviderCall): Promise<void> {
    this.attempts.push(call);
    const reason = this.failures.shift() ?? this.always;
    if (reason !== undefined) throw new ChannelSendError(reason, `fake ${this.channel} provider: ${reason}`);
    this.sent.push(call);
  }
}
