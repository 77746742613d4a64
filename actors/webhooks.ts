/**
 * Webhooks (F23): what a tenant subscribes to, how a payload is built and signed, and which target
 * URLs are allowed. Delivery itself (durable outbox, retries, dead letters) is in webhook-outbox.ts.
 *
 * Event kinds (the ten of F23): `session.closed`, `message.created`, `agent.created`,
 * `agent.status_changed`, `agent.logged_out`, `agent.deleted`, `agent.changed`,
 * `visitor.tag_added`, `visitor.tag_removed`, `visitor.changed`; and for tickets (F25)
 * `ticket.created`, `ticket.changed`, `ticket.commented`.
 *
 * Payload (JSON, `version: 1`): `{version, id, kind, tenantId, occurredAt, data}`; `id` is stable per
 * event (`<stream>:<seq>`) — receivers deduplicate on it. Headers:
 *   x-sb-event-id, x-sb-timestamp (Unix seconds), x-sb-signature: `v1=<hex HMAC-SHA256(secret,
 *   "<timestamp>.<body>")>`, x-sb-delivery-attempt.
 * Receivers recompute the HMAC over the raw body and refuse timestamps older than 5 minutes.
 *
 * Target URLs: https, except plain http to loopback when the server runs with loopback webhooks
 * allowed (tests, local development). Hosts that are IP literals or resolve to private, loopback,
 * link-local, CGNAT or unspecified ranges are refused unless the tenant allow-lists the host.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { SbError } from '../protos/errors.ts';
import { isValidId } from './ids.ts';

export const WEBHOOK_KINDS = [
  'session.closed',
  'message.created',
  'agent.created',
  'agent.status_changed',
  'agent.logged_out',
  'agent.deleted',
  'agent.changed',
  'visitor.tag_added',
  'visitor.tag_removed',
  'visitor.changed',
  // Tickets (F25), beyond the ten of F23.
  'ticket.created',
  'ticket.changed',
  'ticket.commented',
] as const;
export type WebhookKind = (typeof WEBHOOK_KINDS)[number];

export const WEBHOOK_LIMITS = { subscriptions: 20, allowHosts: 50, urlChars: 2048 } as const;
export const SIGNATURE_MAX_AGE_S = 300;

export interface WebhookSubscription {
  id: string;
  url: string;
  events: WebhookKind[];
  /** HMAC key, 16–128 characters. */
  secret: string;
  enabled: boolean;
}

export interface WebhookConfig {
  subscriptions: WebhookSubscription[];
  /** Keep the tenant's event feed for the partner API's SubscribeEvents (resumable by cursor). */
  feed: boolean;
  /** Hosts allowed even though they are (or resolve to) private addresses. */
  allowPrivateHosts: string[];
}

export function defaultWebhookConfig(): WebhookConfig {
  return { subscriptions: [], allowPrivateHosts: [], feed: false };
}

export interface WebhookPayload {
  version: 1;
  id: string;
  kind: WebhookKind;
  tenantId: string;
  occurredAt: number;
  data: Record<string, unknown>;
}

// ---- signing ------------------------------------------------------------------------------------------

export function signPayload(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** What a receiver does (and what docs/WEBHOOKS.md shows): true when signed by `secret` and fresh. */
export function verifySignature(
  secret: string,
  headers: { signature: string | undefined; timestamp: string | undefined },
  body: string,
  nowMs: number,
): boolean {
  const ts = Number(headers.timestamp);
  if (!headers.signature || !Number.isInteger(ts)) return false;
  if (Math.abs(nowMs / 1000 - ts) > SIGNATURE_MAX_AGE_S) return false;
  const want = Buffer.from(signPayload(secret, ts, body));
  const got = Buffer.from(headers.signature);
  return want.length === got.length && timingSafeEqual(want, got);
}

// ---- addresses ----------------------------------------------------------------------------------------

function v4(ip: string): number[] {
  return ip.split('.').map(Number);
}

/** Private, loopback, link-local, CGNAT, multicast, unspecified or documentation-free internal ranges. */
export function isPrivateAddress(ip: string): boolean {
  if (isIP(ip) === 4) {
    const [a, b] = v4(ip) as [number, number];
    return (
      a === 10 ||
      a === 127 ||
      a === 0 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 169 && b === 254) ||
      (a === 100 && b >= 64 && b <= 127) ||
      a >= 224
    );
  }
  if (isIP(ip) === 6) {
    const x = ip.toLowerCase();
    if (x === '::1' || x === '::') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(x);
    if (mapped) return isPrivateAddress(mapped[1]!);
    return /^f[cd]/.test(x) || /^fe[89ab]/.test(x) || x.startsWith('ff');
  }
  return true;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

export interface UrlPolicy {
  /** Plain http to loopback hosts (tests and local development). */
  allowLoopbackHttp: boolean;
}

/**
 * Static checks of a target URL (at configuration time). Resolution-time checks run again before
 * each delivery ({@link checkResolvedTarget}), since DNS can change.
 */
export function validateTargetUrl(
  raw: string,
  allowHosts: readonly string[],
  policy: UrlPolicy,
  path: string,
): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new SbError('SB_ERR_INVALID_FIELD', `${path}: not a URL`);
  }
  if (u.username || u.password)
    throw new SbError('SB_ERR_INVALID_FIELD', `${path}: credentials in the URL are not allowed`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const loopback = isLoopbackHost(host);
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback && policy.allowLoopbackHttp))
    throw new SbError('SB_ERR_INVALID_FIELD', `${path}: https required`);
  if (loopback && policy.allowLoopbackHttp) return u;
  if (isIP(host) && isPrivateAddress(host) && !allowHosts.includes(host))
    throw new SbError(
      'SB_ERR_INVALID_FIELD',
      `${path}: private address ${host} refused (allow-list it to use it)`,
    );
  if (
    !isIP(host) &&
    (host === 'localhost' || host.endsWith('.localhost') || host.endsWith('.internal')) &&
    !allowHosts.includes(host)
  )
    throw new SbError(
      'SB_ERR_INVALID_FIELD',
      `${path}: internal host ${host} refused (allow-list it to use it)`,
    );
  return u;
}

/** Before each delivery: the host must not resolve to a private address unless allow-listed. */
export async function checkResolvedTarget(
  u: URL,
  allowHosts: readonly string[],
  policy: UrlPolicy,
): Promise<void> {
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (allowHosts.includes(host)) return;
  if (isLoopbackHost(host) && policy.allowLoopbackHttp) return;
  const addrs = isIP(host) ? [{ address: host }] : await lookup(host, { all: true });
  for (const a of addrs) {
    if (isPrivateAddress(a.address))
      throw new SbError('SB_ERR_FORBIDDEN', `${host} resolves to the private address ${a.address}`);
  }
}

// ---- validation ---------------------------------------------------------------------------------------

function bad(path: string, problem: string): never {
  throw new SbError('SB_ERR_INVALID_FIELD', `${path}: ${problem}`);
}

export function validateWebhookConfig(input: unknown, policy: UrlPolicy): WebhookConfig {
  if (!input || typeof input !== 'object' || Array.isArray(input)) bad('webhooks', 'must be an object');
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (k !== 'subscriptions' && k !== 'allowPrivateHosts' && k !== 'feed')
      bad(`webhooks.${k}`, 'unknown field');
  const feed = o['feed'] ?? false;
  if (typeof feed !== 'boolean') bad('webhooks.feed', 'must be true or false');
  const hosts = o['allowPrivateHosts'] ?? [];
  if (!Array.isArray(hosts) || hosts.length > WEBHOOK_LIMITS.allowHosts)
    bad('webhooks.allowPrivateHosts', `an array of at most ${WEBHOOK_LIMITS.allowHosts} hosts`);
  const allowPrivateHosts = hosts.map((h, i) => {
    if (typeof h !== 'string' || !/^[A-Za-z0-9.:-]{1,253}$/.test(h))
      bad(`webhooks.allowPrivateHosts[${i}]`, 'not a host');
    return h.toLowerCase();
  });
  const subs = o['subscriptions'] ?? [];
  if (!Array.isArray(subs) || subs.length > WEBHOOK_LIMITS.subscriptions)
    bad('webhooks.subscriptions', `an array of at most ${WEBHOOK_LIMITS.subscriptions}`);
  const ids = new Set<string>();
  const subscriptions = subs.map((raw, i): WebhookSubscription => {
    const p = `webhooks.subscriptions[${i}]`;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) bad(p, 'must be an object');
    const s = raw as Record<string, unknown>;
    for (const k of Object.keys(s))
      if (!['id', 'url', 'events', 'secret', 'enabled'].includes(k)) bad(`${p}.${k}`, 'unknown field');
    if (!isValidId(s['id'])) bad(`${p}.id`, 'must be 1–64 letters, digits, - or _');
    if (ids.has(s['id'])) bad(`${p}.id`, 'duplicate');
    ids.add(s['id']);
    if (typeof s['url'] !== 'string' || s['url'].length > WEBHOOK_LIMITS.urlChars)
      bad(`${p}.url`, 'must be a URL');
    validateTargetUrl(s['url'], allowPrivateHosts, policy, `${p}.url`);
    const events = s['events'];
    if (!Array.isArray(events) || events.length === 0) bad(`${p}.events`, 'at least one event kind');
    for (const e of events)
      if (!(WEBHOOK_KINDS as readonly unknown[]).includes(e)) bad(`${p}.events`, `unknown kind ${String(e)}`);
    if (typeof s['secret'] !== 'string' || s['secret'].length < 16 || s['secret'].length > 128)
      bad(`${p}.secret`, 'must be 16–128 characters');
    const enabled = s['enabled'] ?? true;
    if (typeof enabled !== 'boolean') bad(`${p}.enabled`, 'must be true or false');
    return {
      id: s['id'],
      url: s['url'],
      events: [...new Set(events as WebhookKind[])],
      secret: s['secret'],
      enabled,
    };
  });
  return { subscriptions, allowPrivateHosts, feed };
}

// ---- events → payloads --------------------------------------------------------------------------------

/**
 * The webhook events an event of a stream stands for (usually zero or one). Streams: session ids,
 * `agent.<id>`, `visitor.<id>` (actors/domain-events.ts).
 */
export function webhookEventsOf(
  tenantId: string,
  stream: string,
  seq: number,
  at: number,
  body: Record<string, unknown>,
): WebhookPayload[] {
  const make = (kind: WebhookKind, data: Record<string, unknown>, suffix = ''): WebhookPayload => ({
    version: 1,
    id: `${stream}:${seq}${suffix}`,
    kind,
    tenantId,
    occurredAt: at,
    data,
  });
  const kind = body['kind'];
  if (stream.startsWith('agent.')) {
    const agentId = stream.slice(6);
    if (kind === 'agent_status') {
      const out = [
        make('agent.status_changed', { agentId, status: body['status'], previous: body['previous'] }),
      ];
      if (body['status'] === 'offline') out.push(make('agent.logged_out', { agentId }, ':logout'));
      return out;
    }
    if (kind === 'agent_profile')
      return [
        make('agent.changed', { agentId, maxConcurrent: body['maxConcurrent'], groups: body['groups'] }),
      ];
    if (kind === 'agent_created')
      return [make('agent.created', { agentId, name: body['name'], role: body['role'] })];
    if (kind === 'agent_deleted') return [make('agent.deleted', { agentId })];
    return [];
  }
  if (stream.startsWith('visitor.')) {
    const visitorId = stream.slice(8);
    if (kind === 'visitor_tags') {
      const out: WebhookPayload[] = [];
      for (const t of (body['added'] as string[] | undefined) ?? [])
        out.push(make('visitor.tag_added', { visitorId, tag: t }, `:+${t}`));
      for (const t of (body['removed'] as string[] | undefined) ?? [])
        out.push(make('visitor.tag_removed', { visitorId, tag: t }, `:-${t}`));
      return out;
    }
    if (kind === 'visitor_profile') return [make('visitor.changed', { visitorId, name: body['name'] })];
    return [];
  }
  if (stream.startsWith('ticket.')) {
    const { kind: _k, ...data } = body;
    if (kind === 'ticket_created') return [make('ticket.created', data)];
    if (kind === 'ticket_changed') return [make('ticket.changed', data)];
    if (kind === 'ticket_commented') return [make('ticket.commented', data)];
    return [];
  }
  if (kind === 'message')
    return [
      make('message.created', {
        sessionId: stream,
        seq,
        from: body['from'],
        senderId: body['senderId'],
        text: body['text'],
      }),
    ];
  if (kind === 'closed')
    return [make('session.closed', { sessionId: stream, by: body['by'], reason: body['reason'] })];
  return [];
}

/** Whether an event body can produce webhook events (cheap check on the writers' hot path). */
export function mayProduceWebhook(body: { kind?: unknown }): boolean {
  const k = body.kind;
  return (
    k === 'message' ||
    k === 'closed' ||
    k === 'agent_status' ||
    k === 'agent_profile' ||
    k === 'agent_created' ||
    k === 'agent_deleted' ||
    k === 'visitor_tags' ||
    k === 'visitor_profile' ||
    k === 'ticket_created' ||
    k === 'ticket_changed' ||
    k === 'ticket_commented'
  );
}
