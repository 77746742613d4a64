/**
 * CRM integration (F24): the agent console shows the tenant's CRM page in an iframe and passes who
 * is talking. The tenant configures a URL template with placeholders; every value is URL-encoded
 * where it is substituted (so no visitor-controlled text can add parameters, paths or fragments),
 * and with a signing secret the URL gets `sb_ts` and `sb_sig` (HMAC-SHA256 of the URL without
 * `sb_sig`) so the CRM can trust the identifiers.
 *
 * Placeholders: {tenantId} {sessionId} {visitorId} {visitorName} {channel} {agentId} {agentName}
 * {agentEmail}. The template must be an https URL (http only for loopback); at most 2,048 characters.
 */
import { createHmac } from 'node:crypto';
import { SbError } from '../protos/errors.ts';

export const CRM_PLACEHOLDERS = [
  'tenantId',
  'sessionId',
  'visitorId',
  'visitorName',
  'channel',
  'agentId',
  'agentName',
  'agentEmail',
] as const;
export type CrmPlaceholder = (typeof CRM_PLACEHOLDERS)[number];

export interface CrmConfig {
  /** Empty = no CRM tab. */
  urlTemplate: string;
  /** 16–128 characters; absent = unsigned. */
  signingSecret?: string;
}

export function defaultCrmConfig(): CrmConfig {
  return { urlTemplate: '' };
}

function bad(path: string, problem: string): never {
  throw new SbError('SB_ERR_INVALID_FIELD', `${path}: ${problem}`);
}

export function validateCrmConfig(input: unknown): CrmConfig {
  if (!input || typeof input !== 'object' || Array.isArray(input)) bad('crm', 'must be an object');
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (k !== 'urlTemplate' && k !== 'signingSecret') bad(`crm.${k}`, 'unknown field');
  const t = o['urlTemplate'] ?? '';
  if (typeof t !== 'string' || t.length > 2048) bad('crm.urlTemplate', 'a URL of at most 2048 characters');
  if (t !== '') {
    for (const m of t.matchAll(/\{([^}]*)\}/g))
      if (!(CRM_PLACEHOLDERS as readonly string[]).includes(m[1]!))
        bad('crm.urlTemplate', `unknown placeholder {${m[1]}}`);
    // Check the shape with every placeholder filled in.
    let u: URL;
    try {
      u = new URL(t.replace(/\{[^}]*\}/g, 'x'));
    } catch {
      return bad('crm.urlTemplate', 'not a URL');
    }
    const loopback = u.hostname === '127.0.0.1' || u.hostname === 'localhost' || u.hostname === '[::1]';
    if (u.protocol !== 'https:' && !(u.protocol === 'http:' && loopback))
      bad('crm.urlTemplate', 'https required');
    if (u.username || u.password) bad('crm.urlTemplate', 'credentials in the URL are not allowed');
    // Placeholders only in the path, query or fragment: a visitor's name must never pick the host.
    const hostPart = /^[a-z]+:\/\/[^/?#]*/i.exec(t)![0];
    if (/\{/.test(hostPart)) bad('crm.urlTemplate', 'placeholders are not allowed in the host');
  }
  const cfg: CrmConfig = { urlTemplate: t };
  if (o['signingSecret'] !== undefined) {
    const s = o['signingSecret'];
    if (typeof s !== 'string' || s.length < 16 || s.length > 128)
      bad('crm.signingSecret', '16–128 characters');
    cfg.signingSecret = s;
  }
  return cfg;
}

/** The CRM URL for one session, or undefined when the tenant has no CRM template. */
export function crmUrl(
  cfg: CrmConfig,
  values: Record<CrmPlaceholder, string>,
  nowMs: number,
): string | undefined {
  if (cfg.urlTemplate === '') return undefined;
  const filled = cfg.urlTemplate.replace(/\{([^}]*)\}/g, (_m, name: string) =>
    encodeURIComponent(values[name as CrmPlaceholder] ?? ''),
  );
  if (!cfg.signingSecret) return filled;
  const u = new URL(filled);
  u.searchParams.set('sb_ts', String(Math.floor(nowMs / 1000)));
  const sig = createHmac('sha256', cfg.signingSecret).update(u.toString()).digest('hex');
  u.searchParams.set('sb_sig', sig);
  return u.toString();
}

/** What a CRM does to trust the URL: recompute the HMAC over the URL without `sb_sig`. */
export function verifyCrmUrl(url: string, secret: string, nowMs: number, maxAgeS = 300): boolean {
  const u = new URL(url);
  const sig = u.searchParams.get('sb_sig');
  const ts = Number(u.searchParams.get('sb_ts'));
  if (!sig || !Number.isInteger(ts) || Math.abs(nowMs / 1000 - ts) > maxAgeS) return false;
  u.searchParams.delete('sb_sig');
  return createHmac('sha256', secret).update(u.toString()).digest('hex') === sig;
}
