/**
 * A tenant's service-desk configuration (F1–F5, F11): routing rules and skill groups, tenant
 * settings (timeouts, forced tags, concurrency cap), channel associations, the session-tag tree and
 * the sensitive-word list.
 *
 * One writer: the TenantConfigActor (kind `tenantcfg`, key `<tenant>:config`) applies admin updates
 * one at a time, validating each section and bumping `version`. Readers on every thread go through
 * {@link readTenantConfig}, a per-thread cache that re-reads the store at most once per
 * {@link CONFIG_CACHE_MS}: a saved change is in force everywhere within that time.
 */
import type { Actor, ActorContext, ActorId } from '../engine/types.ts';
import type { StateStore } from '../engine/store/types.ts';
import { underlyingStore } from '../engine/store/fenced.ts';
import { SbError } from '../protos/errors.ts';
import { isValidId, splitKey } from './ids.ts';
import { defaultRoutingConfig, validateRoutingConfig, type RoutingConfig } from './routing-rules.ts';
import { SensitiveMatcher, validateSensitiveConfig, type SensitiveConfig } from './sensitive-words.ts';
import { defaultCrmConfig, validateCrmConfig, type CrmConfig } from './crm.ts';
import {
  defaultWebhookConfig,
  validateWebhookConfig,
  type UrlPolicy,
  type WebhookConfig,
} from './webhooks.ts';

export const CONFIG_KIND = 'tenantcfg';
export const CONFIG_CACHE_MS = 1000;

export const CHANNELS = ['web', 'app', 'wechat', 'weibo', 'callcenter'] as const;
export type ChannelName = (typeof CHANNELS)[number];

/** Largest per-agent cap without and with the tenant upgrade (F2). */
export const MAX_CONCURRENT = { standard: 100, upgraded: 200 } as const;

export interface TenantSettings {
  /** Upgrade flag: raises the per-agent cap from 100 to 200. */
  upgraded: boolean;
  /** Close sessions without any message for this many minutes; 0 = off. */
  autoCloseInactiveMin: number;
  /** Close sessions whose visitor has not answered the agent for `afterMin` minutes; 0 = off. */
  visitorNoReply: { afterMin: number; warnBeforeMin: number; warning: string };
  /** An agent must add at least one session tag before closing. */
  forceTagOnClose: boolean;
  /** Seconds a transfer target has to accept before the session returns to its agent. */
  transferTimeoutSec: number;
  /** Minimum gap between typing previews forwarded to agents (F6), ms. */
  typingThrottleMs: number;
}

export interface Association {
  associationId: string;
  channel: ChannelName;
  name: string;
  /** WeChat: the token of the callback; Weibo: the app secret. Never returned to agents. */
  secret?: string;
}

export interface TagNode {
  tagId: string;
  name: string;
  children?: TagNode[];
}

export interface DeskConfig {
  version: number;
  updatedAt: number;
  routing: RoutingConfig;
  settings: TenantSettings;
  associations: Association[];
  tags: TagNode[];
  sensitive: SensitiveConfig;
  webhooks: WebhookConfig;
  /** CRM iframe URL template (F24). */
  crm: CrmConfig;
  /** When each webhook subscription was created: it receives events from then on. */
  webhookCreatedAt: Record<string, number>;
  /** Team canned responses (常用语) every agent of the tenant can insert. */
  quickReplies: QuickReply[];
}

/** A canned response: a short title to find it by, and the text it inserts. */
export interface QuickReply {
  id: string;
  /** Optional grouping shown in the console ("Greetings", "Shipping"…). */
  category?: string;
  title: string;
  text: string;
}

export const MAX_QUICK_REPLIES = { team: 2000, personal: 200 } as const;

export const CONFIG_SECTIONS = [
  'routing',
  'settings',
  'associations',
  'tags',
  'sensitive',
  'webhooks',
  'crm',
  'quickReplies',
] as const;
export type ConfigSection = (typeof CONFIG_SECTIONS)[number];

export function defaultSettings(): TenantSettings {
  return {
    upgraded: false,
    autoCloseInactiveMin: 0,
    visitorNoReply: {
      afterMin: 0,
      warnBeforeMin: 1,
      warning: 'Are you still there? This chat will close soon.',
    },
    forceTagOnClose: false,
    transferTimeoutSec: 60,
    typingThrottleMs: 300,
  };
}

export function defaultDeskConfig(): DeskConfig {
  return {
    version: 0,
    updatedAt: 0,
    routing: defaultRoutingConfig(),
    settings: defaultSettings(),
    associations: [],
    tags: [],
    sensitive: { mode: 'block', words: [] },
    webhooks: defaultWebhookConfig(),
    crm: defaultCrmConfig(),
    webhookCreatedAt: {},
    quickReplies: [],
  };
}

// ---- validation --------------------------------------------------------------------------------

function bad(path: string, problem: string): never {
  throw new SbError('SB_ERR_INVALID_FIELD', `${path}: ${problem}`);
}

function obj(v: unknown, path: string, allowed: readonly string[]): Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) bad(path, 'must be an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!allowed.includes(k)) bad(`${path}.${k}`, 'unknown field');
  return o;
}

function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    bad(path, `must be an integer ${min}–${max}`);
  return v;
}

function str(v: unknown, path: string, max: number, min = 1): string {
  if (typeof v !== 'string' || v.trim().length < min || v.length > max)
    bad(path, `must be a string of ${min}–${max} characters`);
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') bad(path, 'must be true or false');
  return v;
}

function id(v: unknown, path: string): string {
  if (!isValidId(v)) bad(path, 'must be 1–64 letters, digits, - or _');
  return v;
}

/** Partial updates are merged over the current settings; every field is checked. */
export function validateSettings(
  input: unknown,
  current: TenantSettings = defaultSettings(),
): TenantSettings {
  const o = obj(input, 'settings', Object.keys(defaultSettings()));
  const out: TenantSettings = { ...current, visitorNoReply: { ...current.visitorNoReply } };
  if ('upgraded' in o) out.upgraded = bool(o['upgraded'], 'settings.upgraded');
  if ('autoCloseInactiveMin' in o)
    out.autoCloseInactiveMin = int(
      o['autoCloseInactiveMin'],
      'settings.autoCloseInactiveMin',
      0,
      7 * 24 * 60,
    );
  if ('forceTagOnClose' in o) out.forceTagOnClose = bool(o['forceTagOnClose'], 'settings.forceTagOnClose');
  if ('transferTimeoutSec' in o)
    out.transferTimeoutSec = int(o['transferTimeoutSec'], 'settings.transferTimeoutSec', 10, 3600);
  if ('typingThrottleMs' in o)
    out.typingThrottleMs = int(o['typingThrottleMs'], 'settings.typingThrottleMs', 0, 5000);
  if ('visitorNoReply' in o) {
    const n = obj(o['visitorNoReply'], 'settings.visitorNoReply', ['afterMin', 'warnBeforeMin', 'warning']);
    const v = out.visitorNoReply;
    if ('afterMin' in n) v.afterMin = int(n['afterMin'], 'settings.visitorNoReply.afterMin', 0, 24 * 60);
    if ('warnBeforeMin' in n)
      v.warnBeforeMin = int(n['warnBeforeMin'], 'settings.visitorNoReply.warnBeforeMin', 0, 24 * 60);
    if ('warning' in n) v.warning = str(n['warning'], 'settings.visitorNoReply.warning', 500);
    if (v.afterMin > 0 && v.warnBeforeMin >= v.afterMin)
      bad('settings.visitorNoReply.warnBeforeMin', 'must be less than afterMin');
  }
  return out;
}

export function validateAssociations(input: unknown): Association[] {
  if (!Array.isArray(input)) bad('associations', 'must be an array');
  if (input.length > 1000) bad('associations', 'at most 1000 associations');
  const seen = new Set<string>();
  return input.map((raw, i) => {
    const p = `associations[${i}]`;
    const o = obj(raw, p, ['associationId', 'channel', 'name', 'secret']);
    const associationId = id(o['associationId'], `${p}.associationId`);
    if (seen.has(associationId)) bad(`${p}.associationId`, 'duplicate');
    seen.add(associationId);
    const channel = o['channel'];
    if (!(CHANNELS as readonly unknown[]).includes(channel))
      bad(`${p}.channel`, `must be one of ${CHANNELS.join(', ')}`);
    const a: Association = {
      associationId,
      channel: channel as ChannelName,
      name: str(o['name'], `${p}.name`, 100),
    };
    if (o['secret'] !== undefined) a.secret = str(o['secret'], `${p}.secret`, 128, 3);
    return a;
  });
}

/** Tag trees: ids unique across the tree, names 1–50 characters, at most 5 levels and 2,000 tags. */
export function validateTags(input: unknown): TagNode[] {
  const seen = new Set<string>();
  const walk = (v: unknown, path: string, depth: number): TagNode[] => {
    if (!Array.isArray(v)) bad(path, 'must be an array');
    if (depth > 5) bad(path, 'tags nest at most 5 levels');
    return v.map((raw, i) => {
      const p = `${path}[${i}]`;
      const o = obj(raw, p, ['tagId', 'name', 'children']);
      const tagId = id(o['tagId'], `${p}.tagId`);
      if (seen.has(tagId)) bad(`${p}.tagId`, 'duplicate');
      seen.add(tagId);
      if (seen.size > 2000) bad('tags', 'at most 2000 tags');
      const node: TagNode = { tagId, name: str(o['name'], `${p}.name`, 50) };
      if (o['children'] !== undefined) node.children = walk(o['children'], `${p}.children`, depth + 1);
      return node;
    });
  };
  return walk(input, 'tags', 1);
}

/** Canned responses: ids unique, title 1–50, category ≤ 30, text 1–4,000 characters. */
export function validateQuickReplies(input: unknown, max: number, path = 'quickReplies'): QuickReply[] {
  if (!Array.isArray(input)) bad(path, 'must be an array');
  if (input.length > max) bad(path, `at most ${max} quick replies`);
  const seen = new Set<string>();
  return input.map((raw, i) => {
    const p = `${path}[${i}]`;
    const o = obj(raw, p, ['id', 'category', 'title', 'text']);
    const qid = id(o['id'], `${p}.id`);
    if (seen.has(qid)) bad(`${p}.id`, 'duplicate');
    seen.add(qid);
    const q: QuickReply = {
      id: qid,
      title: str(o['title'], `${p}.title`, 50),
      text: str(o['text'], `${p}.text`, 4000),
    };
    if (o['category'] !== undefined && o['category'] !== '')
      q.category = str(o['category'], `${p}.category`, 30);
    return q;
  });
}

export function tagIds(tags: readonly TagNode[]): Set<string> {
  const out = new Set<string>();
  const walk = (ns: readonly TagNode[]): void => {
    for (const n of ns) {
      out.add(n.tagId);
      if (n.children) walk(n.children);
    }
  };
  walk(tags);
  return out;
}

export function validateSection(
  section: ConfigSection,
  value: unknown,
  current: DeskConfig,
  policy: UrlPolicy = { allowLoopbackHttp: false },
  now = 0,
): DeskConfig {
  const next: DeskConfig = { ...current };
  switch (section) {
    case 'routing':
      next.routing = validateRoutingConfig(value);
      break;
    case 'settings':
      next.settings = validateSettings(value, current.settings);
      break;
    case 'associations':
      next.associations = validateAssociations(value);
      break;
    case 'tags':
      next.tags = validateTags(value);
      break;
    case 'sensitive':
      next.sensitive = validateSensitiveConfig(value);
      break;
    case 'crm':
      next.crm = validateCrmConfig(value);
      break;
    case 'quickReplies':
      next.quickReplies = validateQuickReplies(value, MAX_QUICK_REPLIES.team);
      break;
    case 'webhooks': {
      next.webhooks = validateWebhookConfig(value, policy);
      const created: Record<string, number> = {};
      for (const sub of next.webhooks.subscriptions)
        created[sub.id] = current.webhookCreatedAt[sub.id] ?? now;
      next.webhookCreatedAt = created;
      break;
    }
  }
  return next;
}

// ---- the writer --------------------------------------------------------------------------------

export type TenantConfigMsg =
  { t: 'get' } | { t: 'update'; section: ConfigSection; value: unknown; now: number };

export function configKey(tenantId: string): string {
  return `${tenantId}:config`;
}

export class TenantConfigActor implements Actor {
  private cfg: DeskConfig = defaultDeskConfig();
  constructor(
    readonly id: ActorId,
    private readonly policy: UrlPolicy = { allowLoopbackHttp: false },
  ) {
    splitKey(id.key);
  }

  async onActivate(ctx: ActorContext): Promise<void> {
    const saved = await ctx.loadState<DeskConfig>();
    if (saved) this.cfg = { ...defaultDeskConfig(), ...saved };
  }

  async onMessage(raw: unknown, ctx: ActorContext): Promise<DeskConfig> {
    const msg = raw as TenantConfigMsg;
    if (msg.t === 'get') return this.cfg;
    if (msg.t !== 'update' || !(CONFIG_SECTIONS as readonly string[]).includes(msg.section)) {
      throw new SbError('SB_ERR_INVALID_FIELD', 'unknown configuration section');
    }
    const next = validateSection(msg.section, msg.value, this.cfg, this.policy, msg.now);
    next.version = this.cfg.version + 1;
    next.updatedAt = msg.now;
    await ctx.saveState(next);
    if (msg.section === 'webhooks' && (next.webhooks.subscriptions.length > 0 || next.webhooks.feed)) {
      // So that a restarted server wakes this tenant's webhook outbox (gateway start-up).
      const t = splitKey(this.id.key).tenantId;
      await ctx.stores.state.put('_', 'whtenants', t, { since: msg.now });
    }
    this.cfg = next;
    // This thread's cache sees the change at once; others within CONFIG_CACHE_MS.
    caches.get(ctx.stores.state)?.delete(splitKey(this.id.key).tenantId);
    return next;
  }
}

// ---- per-thread read cache -------------------------------------------------------------------------

export interface LiveConfig {
  config: DeskConfig;
  /** Compiled sensitive-word matcher (built once per config version). */
  matcher: SensitiveMatcher;
}

/** Per store instance (several servers may share a process in tests), then per tenant. */
const caches = new WeakMap<StateStore, Map<string, { at: number; live: LiveConfig }>>();

/** The tenant's config when the cache has a fresh copy (no promise on the hot path), else undefined. */
export function cachedTenantConfig(state: StateStore, tenantId: string, now: number): LiveConfig | undefined {
  const hit = caches.get(underlyingStore(state))?.get(tenantId);
  return hit && now - hit.at < CONFIG_CACHE_MS ? hit.live : undefined;
}

/** The tenant's configuration as this thread knows it (at most {@link CONFIG_CACHE_MS} old). */
export async function readTenantConfig(
  state: StateStore,
  tenantId: string,
  now: number,
): Promise<LiveConfig> {
  // One cache per store, not per activation (in cluster mode each activation has its own view).
  const key = underlyingStore(state);
  let cache = caches.get(key);
  if (!cache) caches.set(key, (cache = new Map()));
  const hit = cache.get(tenantId);
  if (hit && now - hit.at < CONFIG_CACHE_MS) return hit.live;
  const saved = await state.get<DeskConfig>(tenantId, CONFIG_KIND, configKey(tenantId));
  const config = saved ? { ...defaultDeskConfig(), ...saved } : defaultDeskConfig();
  const live =
    hit && hit.live.config.version === config.version && hit.live.config.updatedAt === config.updatedAt
      ? hit.live
      : { config, matcher: new SensitiveMatcher(config.sensitive.words) };
  cache.set(tenantId, { at: now, live });
  return live;
}

/** Effective cap of a member: its own setting bounded by the tenant's plan. */
export function effectiveCap(memberMax: number, settings: TenantSettings): number {
  return Math.min(memberMax, settings.upgraded ? MAX_CONCURRENT.upgraded : MAX_CONCURRENT.standard);
}
