/**
 * Durable webhook outbox (F23): one actor per tenant (`webhook/<tenant>:outbox`) delivers the
 * events of the tenant's streams to its subscriptions — signed, retried with exponential backoff
 * and jitter, in order per stream (so per session), at least once; receivers deduplicate on the
 * payload id. Events that exhaust their attempts are dead-lettered (listed for admins, redeliverable).
 *
 * The streams are the outbox. A writer (session, agent or visitor actor) that stores an event which
 * may produce a webhook also stores a *dirty marker* for its stream (kind `whdirty`) before the
 * event is acknowledged, and nudges this actor. Delivery progress is a durable cursor per
 * (subscription, stream) (kind `whcursor`), written after each page (≤ 100 events) delivered. After a restart the
 * actor lists the markers and continues from the cursors, so nothing acknowledged is skipped; the
 * events of a page may be delivered again if the process died before its cursor write.
 * A subscription receives events that happened after it was created.
 *
 * HTTP requests run outside the actor's turns (the turn only starts pumps and records results), one
 * pump per (subscription, stream): a failing receiver delays only its own streams.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Actor, ActorContext, ActorId } from '../engine/types.ts';
import type { Json, MessageStore } from '../engine/store/types.ts';
import { SbError } from '../protos/errors.ts';
import { splitKey } from './ids.ts';
import { cachedTenantConfig, readTenantConfig, type LiveConfig } from './tenant-config.ts';
import {
  checkResolvedTarget,
  WEBHOOK_KINDS,
  mayProduceWebhook,
  signPayload,
  webhookEventsOf,
  type UrlPolicy,
  type WebhookPayload,
  type WebhookSubscription,
} from './webhooks.ts';

export const OUTBOX_KIND = 'webhook';
/** The tenant's event feed (partner SubscribeEvents): a stream of payloads, its seq is the cursor. */
export const FEED_STREAM = '_feed';
const FEED_SUB = '~feed';
const FEED_SUBSCRIPTION: WebhookSubscription = {
  id: FEED_SUB,
  url: 'feed:',
  events: [...WEBHOOK_KINDS],
  secret: '',
  enabled: true,
};
/** Concurrent webhook requests per tenant. */
export const MAX_IN_FLIGHT = 128;
const DIRTY = 'whdirty';
const CURSOR = 'whcursor';
const DEAD = 'whdead';

export function outboxKey(tenantId: string): string {
  return `${tenantId}:outbox`;
}

export interface DeliveryPolicy extends UrlPolicy {
  /** First retry delay; doubles per attempt (with ±50 % jitter) up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Attempts before an event is dead-lettered. Defaults (2 s, 30 min, 16) retry for about 3.5 hours. */
  maxAttempts: number;
  timeoutMs: number;
}

export const DEFAULT_DELIVERY: DeliveryPolicy = {
  allowLoopbackHttp: false,
  baseDelayMs: 2000,
  maxDelayMs: 30 * 60_000,
  maxAttempts: 16,
  timeoutMs: 10_000,
};

/** Tenants that have (had) webhook subscriptions, under the global tenant `_`: woken at start. */
export const WEBHOOK_TENANTS = { tenant: '_', kind: 'whtenants' } as const;

export type OutboxMsg =
  /** Activates the outbox (it resumes every marked stream on activation). */
  | { t: 'wake' }
  | { t: 'dirty'; stream: string }
  | { t: 'pumpDone'; pump: string }
  | { t: 'deadLetters'; limit: number }
  | { t: 'redeliver'; key: string }
  | { t: 'stats' };

export interface DeadLetter {
  key: string;
  subscriptionId: string;
  stream: string;
  seq: number;
  payload: WebhookPayload;
  attempts: number;
  lastError: string;
  at: number;
}

/**
 * Called by a writer right after it stored `body` at `seq` of `stream`, before acknowledging it:
 * stores the stream's dirty marker when the tenant has subscriptions, and nudges the outbox.
 */
export function noteForWebhooks(
  ctx: ActorContext,
  tenantId: string,
  stream: string,
  seq: number,
  body: { kind?: unknown },
  live?: LiveConfig,
): Promise<void> | undefined {
  if (!mayProduceWebhook(body)) return undefined;
  // The common case answers without a promise: the config is cached and nobody subscribed.
  const cfg = live ?? cachedTenantConfig(ctx.stores.state, tenantId, ctx.clock.now());
  if (cfg && !wantsWebhooks(cfg)) return undefined;
  return noteDirty(ctx, tenantId, stream, seq, cfg);
}

function wantsWebhooks(cfg: LiveConfig): boolean {
  const w = cfg.config.webhooks;
  return w.feed || w.subscriptions.some((s) => s.enabled);
}

async function noteDirty(
  ctx: ActorContext,
  tenantId: string,
  stream: string,
  seq: number,
  live: LiveConfig | undefined,
): Promise<void> {
  const cfg = live ?? (await readTenantConfig(ctx.stores.state, tenantId, ctx.clock.now()));
  if (!wantsWebhooks(cfg)) return;
  await ctx.stores.state.put(tenantId, DIRTY, stream, { seq });
  ctx.tell({ kind: OUTBOX_KIND, key: outboxKey(tenantId) }, { t: 'dirty', stream } satisfies OutboxMsg);
}

/** Keep-alive agents shared by every outbox of the thread (connections are reused per host). */
const agents = {
  http: new HttpAgent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT }),
  https: new HttpsAgent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT }),
};

/** One POST; resolves with the status (redirects are not followed), rejects on timeout or error. */
function postOnce(
  url: URL,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
  abort: AbortSignal,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    const req = (secure ? httpsRequest : httpRequest)(
      url,
      {
        method: 'POST',
        headers,
        agent: secure ? agents.https : agents.http,
        timeout: timeoutMs,
        signal: abort,
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end(body);
  });
}

export class WebhookOutboxActor implements Actor {
  private readonly tenantId: string;
  private readonly running = new Set<string>();
  private readonly again = new Set<string>();
  private delivered = 0;
  /** Set on deactivation: pumps stop at their next step and write nothing more. */
  private stopped = false;
  private readonly pumps = new Set<Promise<void>>();
  private readonly sleepers = new Set<() => void>();
  private readonly aborter = new AbortController();
  private failedAttempts = 0;
  private deadLettered = 0;

  constructor(
    readonly id: ActorId,
    private readonly policy: DeliveryPolicy,
  ) {
    this.tenantId = splitKey(id.key).tenantId;
  }

  async onActivate(ctx: ActorContext): Promise<void> {
    const dirty = await ctx.stores.state.list(this.tenantId, DIRTY, { limit: 100_000 });
    for (const d of dirty) await this.kickStream(d.key, ctx);
  }

  async onMessage(raw: unknown, ctx: ActorContext): Promise<unknown> {
    const msg = raw as OutboxMsg;
    switch (msg.t) {
      case 'wake':
        return undefined;
      case 'dirty':
        await this.kickStream(msg.stream, ctx);
        return undefined;
      case 'pumpDone':
        this.running.delete(msg.pump);
        if (this.again.delete(msg.pump)) this.start(msg.pump, ctx);
        return undefined;
      case 'deadLetters': {
        const rows = await ctx.stores.state.list(this.tenantId, DEAD, { limit: msg.limit });
        return rows.map((r) => r.value as DeadLetter);
      }
      case 'redeliver':
        return this.redeliver(msg.key, ctx);
      case 'stats':
        return {
          pumps: this.running.size,
          delivered: this.delivered,
          failedAttempts: this.failedAttempts,
          deadLettered: this.deadLettered,
        };
      default:
        throw new SbError(
          'SB_ERR_UNKNOWN_TYPE',
          `webhook outbox: unknown message ${(msg as { t?: unknown }).t}`,
        );
    }
  }

  private async kickStream(stream: string, ctx: ActorContext): Promise<void> {
    const { config } = await readTenantConfig(ctx.stores.state, this.tenantId, ctx.clock.now());
    for (const s of config.webhooks.subscriptions) if (s.enabled) this.start(`${s.id}|${stream}`, ctx);
    if (config.webhooks.feed) this.start(`${FEED_SUB}|${stream}`, ctx);
  }

  private start(pump: string, ctx: ActorContext): void {
    if (this.stopped) return;
    if (this.running.has(pump)) {
      this.again.add(pump);
      return;
    }
    this.running.add(pump);
    const p = this.pump(pump, ctx)
      .catch((err: unknown) => {
        if (!this.stopped) console.error(`webhook pump ${pump} failed`, err);
      })
      .finally(() => {
        this.pumps.delete(p);
        if (!this.stopped) ctx.tell(ctx.self, { t: 'pumpDone', pump } satisfies OutboxMsg);
      });
    this.pumps.add(p);
  }

  /** Stops the pumps (they resume from their cursors at the next activation) and waits for them. */
  async onDeactivate(): Promise<void> {
    this.stopped = true;
    this.aborter.abort();
    for (const wake of this.sleepers) wake();
    for (const go of this.waiting.splice(0)) go();
    await Promise.all([...this.pumps]);
  }

  private sleep(ctx: ActorContext, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.sleepers.delete(done);
        resolve();
      };
      this.sleepers.add(done);
      ctx.clock.setTimeout(done, ms);
    });
  }

  private check(): void {
    if (this.stopped) throw new SbError('SB_ERR_SHUTTING_DOWN', 'webhook outbox stopped');
  }

  /** Delivers the stream's events after the subscription's cursor, in order, one at a time. */
  private async pump(pump: string, ctx: ActorContext): Promise<void> {
    const i = pump.indexOf('|');
    const subId = pump.slice(0, i);
    const stream = pump.slice(i + 1);
    const store = ctx.stores.extra['messages'] as MessageStore;
    const state = ctx.stores.state;
    for (;;) {
      this.check();
      const { config } = await readTenantConfig(state, this.tenantId, ctx.clock.now());
      const sub =
        subId === FEED_SUB
          ? config.webhooks.feed
            ? FEED_SUBSCRIPTION
            : undefined
          : config.webhooks.subscriptions.find((s) => s.id === subId && s.enabled);
      if (!sub) return;
      const since = sub === FEED_SUBSCRIPTION ? 0 : (config.webhookCreatedAt[sub.id] ?? 0);
      let cursor = (await state.get<{ seq: number }>(this.tenantId, CURSOR, pump))?.seq ?? 0;
      const events = await store.read(this.tenantId, stream, { afterSeq: cursor, limit: 100 });
      if (events.length === 0) {
        this.check();
        await this.maybeClean(stream, cursor, config.webhooks.subscriptions, ctx);
        return;
      }
      for (const e of events) {
        if (e.at >= since) {
          const payloads = webhookEventsOf(
            this.tenantId,
            stream,
            e.seq,
            e.at,
            e.body as Record<string, unknown>,
          );
          for (const p of payloads) {
            if (!sub.events.includes(p.kind)) continue;
            if (sub === FEED_SUBSCRIPTION) await this.appendFeed(p, ctx);
            else await this.deliver(sub, p, stream, e.seq, config.webhooks.allowPrivateHosts, ctx);
          }
        }
        cursor = e.seq;
      }
      // One cursor write per page: after a crash at most one page is delivered again (same ids).
      this.check();
      await state.put(this.tenantId, CURSOR, pump, { seq: cursor });
    }
  }

  /** Removes the stream's marker once every enabled subscription has passed its last event. */
  private async maybeClean(
    stream: string,
    cursor: number,
    subs: WebhookSubscription[],
    ctx: ActorContext,
  ): Promise<void> {
    const state = ctx.stores.state;
    const marker = await state.get<{ seq: number }>(this.tenantId, DIRTY, stream);
    if (!marker || marker.seq > cursor) return;
    const ids = subs.filter((s) => s.enabled).map((s) => s.id);
    const { config } = await readTenantConfig(state, this.tenantId, ctx.clock.now());
    if (config.webhooks.feed) ids.push(FEED_SUB);
    for (const id of ids) {
      const c = (await state.get<{ seq: number }>(this.tenantId, CURSOR, `${id}|${stream}`))?.seq ?? 0;
      if (c < marker.seq) return;
    }
    await state.delete(this.tenantId, DIRTY, stream);
  }

  /**
   * Appends to the feed (this actor is its single writer). Payloads that arrive while a write is
   * in progress go together in the next one: one durable batch for many events.
   */
  private feedSeq: number | undefined;
  private feedPending: Array<{ p: WebhookPayload; done: () => void; fail: (e: unknown) => void }> = [];
  private feedWriting = false;

  private appendFeed(p: WebhookPayload, ctx: ActorContext): Promise<void> {
    return new Promise((done, fail) => {
      this.feedPending.push({ p, done, fail });
      if (!this.feedWriting) void this.flushFeed(ctx);
    });
  }

  private async flushFeed(ctx: ActorContext): Promise<void> {
    this.feedWriting = true;
    try {
      while (this.feedPending.length > 0) {
        const batch = this.feedPending.splice(0, 500);
        try {
          this.check();
          const store = ctx.stores.extra['messages'] as MessageStore;
          this.feedSeq ??= await store.lastSeq(this.tenantId, FEED_STREAM);
          const at = ctx.clock.now();
          const first = this.feedSeq + 1;
          await store.appendBatch(
            batch.map((b, i) => ({
              tenant: this.tenantId,
              stream: FEED_STREAM,
              seq: first + i,
              at,
              body: b.p as unknown as Json,
            })),
          );
          this.feedSeq = first + batch.length - 1;
          for (const b of batch) b.done();
        } catch (err) {
          // The seq may be out of step now: re-read it before the next batch.
          this.feedSeq = undefined;
          for (const b of batch) b.fail(err);
        }
      }
    } finally {
      this.feedWriting = false;
    }
  }

  /** At most {@link MAX_IN_FLIGHT} requests at once per tenant; the others wait their turn. */
  private inFlight = 0;
  private readonly waiting: Array<() => void> = [];

  private async attempt(
    sub: WebhookSubscription,
    p: WebhookPayload,
    attempt: number,
    allowHosts: readonly string[],
    ctx: ActorContext,
  ): Promise<void> {
    if (this.inFlight >= MAX_IN_FLIGHT) await new Promise<void>((r) => this.waiting.push(r));
    this.inFlight++;
    try {
      await this.request(sub, p, attempt, allowHosts, ctx);
    } finally {
      this.inFlight--;
      this.waiting.shift()?.();
    }
  }

  private async request(
    sub: WebhookSubscription,
    p: WebhookPayload,
    attempt: number,
    allowHosts: readonly string[],
    ctx: ActorContext,
  ): Promise<void> {
    const url = new URL(sub.url);
    await checkResolvedTarget(url, allowHosts, this.policy);
    const body = JSON.stringify(p);
    const ts = Math.floor(ctx.clock.now() / 1000);
    const headers = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'user-agent': 'Switchboard-Webhooks/1',
      'x-sb-event-id': p.id,
      'x-sb-event-kind': p.kind,
      'x-sb-timestamp': String(ts),
      'x-sb-signature': signPayload(sub.secret, ts, body),
      'x-sb-delivery-attempt': String(attempt),
    };
    const status = await postOnce(url, headers, body, this.policy.timeoutMs, this.aborter.signal);
    if (status < 200 || status >= 300) throw new Error(`HTTP ${status}`);
  }

  private async deliver(
    sub: WebhookSubscription,
    p: WebhookPayload,
    stream: string,
    seq: number,
    allowHosts: readonly string[],
    ctx: ActorContext,
  ): Promise<void> {
    let lastError = '';
    for (let attempt = 1; attempt <= this.policy.maxAttempts; attempt++) {
      try {
        await this.attempt(sub, p, attempt, allowHosts, ctx);
        this.delivered++;
        return;
      } catch (err) {
        this.check();
        this.failedAttempts++;
        lastError = err instanceof Error ? err.message : String(err);
        if (attempt === this.policy.maxAttempts) break;
        const exp = Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** (attempt - 1));
        await this.sleep(ctx, exp * (0.5 + Math.random()));
        this.check();
      }
    }
    this.check();
    this.deadLettered++;
    const key = `${sub.id}|${stream}|${String(seq).padStart(12, '0')}|${p.id}`;
    const dead: DeadLetter = {
      key,
      subscriptionId: sub.id,
      stream,
      seq,
      payload: p,
      attempts: this.policy.maxAttempts,
      lastError: lastError.slice(0, 300),
      at: ctx.clock.now(),
    };
    await ctx.stores.state.put(this.tenantId, DEAD, key, dead);
  }

  /** One attempt now; on success the dead letter is removed, else its error is updated. */
  private async redeliver(key: string, ctx: ActorContext): Promise<{ delivered: boolean; error?: string }> {
    const dead = await ctx.stores.state.get<DeadLetter>(this.tenantId, DEAD, key);
    if (!dead) throw new SbError('SB_ERR_NOT_FOUND', 'no such dead letter');
    const { config } = await readTenantConfig(ctx.stores.state, this.tenantId, ctx.clock.now());
    const sub = config.webhooks.subscriptions.find((s) => s.id === dead.subscriptionId);
    if (!sub) throw new SbError('SB_ERR_NOT_FOUND', 'the subscription no longer exists');
    try {
      await this.attempt(sub, dead.payload, dead.attempts + 1, config.webhooks.allowPrivateHosts, ctx);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      await ctx.stores.state.put(this.tenantId, DEAD, key, {
        ...dead,
        attempts: dead.attempts + 1,
        lastError: error,
      });
      return { delivered: false, error };
    }
    this.delivered++;
    await ctx.stores.state.delete(this.tenantId, DEAD, key);
    return { delivered: true };
  }
}
