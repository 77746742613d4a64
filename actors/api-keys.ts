/**
 * Partner API keys (F22): per tenant, each with scopes (`read`, `write`, `admin`; admin implies the
 * others, write implies read). A key is `sbk_<tenant>.<keyId>.<secret>`, shown once when created; the
 * store keeps only the SHA-256 of the secret (the secret is 32 random bytes, so a fast hash is
 * enough — no password-style stretching is needed) and compares in constant time. Rotation = create
 * a new key, move the integration, revoke the old one; revoked keys stop working at once.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { StateStore } from '../engine/store/types.ts';
import { SbError } from '../protos/errors.ts';
import { isValidId, newId } from './ids.ts';

export const API_SCOPES = ['read', 'write', 'admin'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

export interface ApiKeyRecord {
  keyId: string;
  tenantId: string;
  name: string;
  scopes: ApiScope[];
  hash: string;
  createdAt: number;
  revokedAt?: number;
  lastUsedAt?: number;
}

export type PublicApiKey = Omit<ApiKeyRecord, 'hash'>;

const KIND = 'apikey';
const ORG_KIND = 'orgkey';
const GLOBAL = '_';

/** A partner organisation's key: several tenants (or all), the same scopes as tenant keys. */
export interface OrgKeyRecord {
  keyId: string;
  name: string;
  tenants: string[];
  scopes: ApiScope[];
  hash: string;
  createdAt: number;
  revokedAt?: number;
}
export type PublicOrgKey = Omit<OrgKeyRecord, 'hash'>;
export const MAX_KEYS_PER_TENANT = 50;

function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url');
}

export function hasScope(granted: readonly ApiScope[], needed: ApiScope): boolean {
  if (granted.includes('admin')) return true;
  if (needed === 'read') return granted.includes('read') || granted.includes('write');
  return granted.includes(needed);
}

export function publicKey(r: ApiKeyRecord): PublicApiKey {
  const { hash: _hidden, ...rest } = r;
  return rest;
}

export class ApiKeys {
  constructor(private readonly state: StateStore) {}

  async create(
    tenantId: string,
    name: string,
    scopes: unknown,
    now: number,
  ): Promise<{ key: string; record: PublicApiKey }> {
    if (typeof name !== 'string' || name.trim() === '' || name.length > 100)
      throw new SbError('SB_ERR_INVALID_FIELD', 'name: 1–100 characters');
    if (
      !Array.isArray(scopes) ||
      scopes.length === 0 ||
      scopes.some((s) => !(API_SCOPES as readonly unknown[]).includes(s))
    )
      throw new SbError('SB_ERR_INVALID_FIELD', `scopes: a non-empty list of ${API_SCOPES.join(', ')}`);
    const existing = await this.state.list(tenantId, KIND, { limit: MAX_KEYS_PER_TENANT + 1 });
    if (existing.filter((r) => !(r.value as ApiKeyRecord).revokedAt).length >= MAX_KEYS_PER_TENANT)
      throw new SbError('SB_ERR_INVALID_FIELD', `at most ${MAX_KEYS_PER_TENANT} active keys per tenant`);
    const keyId = newId(now);
    const secret = randomBytes(32).toString('base64url');
    const record: ApiKeyRecord = {
      keyId,
      tenantId,
      name: name.trim(),
      scopes: [...new Set(scopes as ApiScope[])],
      hash: hashSecret(secret),
      createdAt: now,
    };
    await this.state.put(tenantId, KIND, keyId, record);
    return { key: `sbk_${tenantId}.${keyId}.${secret}`, record: publicKey(record) };
  }

  async list(tenantId: string): Promise<PublicApiKey[]> {
    const rows = await this.state.list(tenantId, KIND, { limit: 1000 });
    return rows.map((r) => publicKey(r.value as ApiKeyRecord));
  }

  async revoke(tenantId: string, keyId: string, now: number): Promise<PublicApiKey> {
    const r = isValidId(keyId) ? await this.state.get<ApiKeyRecord>(tenantId, KIND, keyId) : undefined;
    if (!r) throw new SbError('SB_ERR_NOT_FOUND', 'no such key');
    r.revokedAt ??= now;
    await this.state.put(tenantId, KIND, keyId, r);
    return publicKey(r);
  }

  // ---- organisation keys: one partner, several tenants ------------------------------------------------

  /** An org key for `tenants` (ids, or `*` for every tenant). Stored under the global tenant `_`. */
  async createOrgKey(
    name: string,
    tenants: unknown,
    scopes: unknown,
    now: number,
  ): Promise<{ key: string; record: PublicOrgKey }> {
    if (typeof name !== 'string' || name.trim() === '' || name.length > 100)
      throw new SbError('SB_ERR_INVALID_FIELD', 'name: 1–100 characters');
    if (
      !Array.isArray(scopes) ||
      scopes.length === 0 ||
      scopes.some((s) => !(API_SCOPES as readonly unknown[]).includes(s))
    )
      throw new SbError('SB_ERR_INVALID_FIELD', `scopes: a non-empty list of ${API_SCOPES.join(', ')}`);
    if (
      !Array.isArray(tenants) ||
      tenants.length === 0 ||
      tenants.length > 1000 ||
      tenants.some((t) => t !== '*' && !isValidId(t))
    )
      throw new SbError('SB_ERR_INVALID_FIELD', 'tenants: a list of tenant ids, or ["*"]');
    const keyId = newId(now);
    const secret = randomBytes(32).toString('base64url');
    const record: OrgKeyRecord = {
      keyId,
      name: name.trim(),
      tenants: [...new Set(tenants as string[])],
      scopes: [...new Set(scopes as ApiScope[])],
      hash: hashSecret(secret),
      createdAt: now,
    };
    await this.state.put(GLOBAL, ORG_KIND, keyId, record);
    const { hash: _h, ...pub } = record;
    return { key: `sbo_${keyId}.${secret}`, record: pub };
  }

  async listOrgKeys(): Promise<PublicOrgKey[]> {
    const rows = await this.state.list(GLOBAL, ORG_KIND, { limit: 1000 });
    return rows.map((r) => {
      const { hash: _h, ...pub } = r.value as OrgKeyRecord;
      return pub;
    });
  }

  async revokeOrgKey(keyId: string, now: number): Promise<PublicOrgKey> {
    const r = isValidId(keyId) ? await this.state.get<OrgKeyRecord>(GLOBAL, ORG_KIND, keyId) : undefined;
    if (!r) throw new SbError('SB_ERR_NOT_FOUND', 'no such key');
    r.revokedAt ??= now;
    await this.state.put(GLOBAL, ORG_KIND, keyId, r);
    const { hash: _h, ...pub } = r;
    return pub;
  }

  /**
   * The key's record when `key` is a valid, unrevoked key; SB_ERR_UNAUTHENTICATED otherwise. An org
   * key acts on the tenant named by `tenant` (the `x-sb-tenant` header/metadata), if it covers it.
   */
  async authenticate(key: string | undefined, tenant?: string): Promise<ApiKeyRecord> {
    if (key?.startsWith('sbo_')) return this.authenticateOrg(key, tenant);
    return this.authenticateTenantKey(key);
  }

  private async authenticateOrg(key: string, tenant: string | undefined): Promise<ApiKeyRecord> {
    const fail = (): SbError =>
      new SbError('SB_ERR_UNAUTHENTICATED', 'missing, malformed, unknown or revoked API key');
    const m = /^sbo_([0-9A-Z]{26})\.([A-Za-z0-9_-]{43})$/.exec(key);
    if (!m) throw fail();
    const r = await this.state.get<OrgKeyRecord>(GLOBAL, ORG_KIND, m[1]!);
    if (!r || r.revokedAt !== undefined) throw fail();
    const a = Buffer.from(r.hash);
    const b = Buffer.from(hashSecret(m[2]!));
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw fail();
    if (!isValidId(tenant))
      throw new SbError('SB_ERR_INVALID_FIELD', 'an org key needs the x-sb-tenant header naming a tenant');
    if (!r.tenants.includes('*') && !r.tenants.includes(tenant))
      throw new SbError('SB_ERR_FORBIDDEN', 'this org key does not cover that tenant');
    return {
      keyId: `org:${r.keyId}`,
      tenantId: tenant,
      name: r.name,
      scopes: r.scopes,
      hash: r.hash,
      createdAt: r.createdAt,
    };
  }

  private async authenticateTenantKey(key: string | undefined): Promise<ApiKeyRecord> {
    const m = /^sbk_([A-Za-z0-9_-]{1,64})\.([0-9A-Z]{26})\.([A-Za-z0-9_-]{43})$/.exec(key ?? '');
    // Built only on failure: an Error captures a stack trace, too costly for every call.
    const fail = (): SbError =>
      new SbError('SB_ERR_UNAUTHENTICATED', 'missing, malformed, unknown or revoked API key');
    if (!m) throw fail();
    const [, tenantId, keyId, secret] = m as unknown as [string, string, string, string];
    const r = await this.state.get<ApiKeyRecord>(tenantId, KIND, keyId);
    if (!r || r.revokedAt !== undefined) throw fail();
    const a = Buffer.from(r.hash);
    const b = Buffer.from(hashSecret(secret));
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw fail();
    return r;
  }
}
