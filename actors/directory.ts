/**
 * Tenants and their members (agents and admins), kept in the StateStore.
 * Logins are found by email through a global index (tenant `_`), since an email names one member
 * of one tenant across the deployment.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { StateStore } from '../engine/store/types.ts';
import { SbError } from '../protos/errors.ts';

const scrypt = promisify(scryptCb) as (
  pw: string,
  salt: Buffer,
  len: number,
  opts: object,
) => Promise<Buffer>;

/** scrypt parameters (RFC 7914). N=2^15, r=8: ~32 MiB and tens of ms per hash on this class of machine. */
export const KDF = { N: 1 << 15, r: 8, p: 1, keyLen: 32, maxmem: 64 * 1024 * 1024 } as const;

export interface TenantRecord {
  tenantId: string;
  name: string;
  createdAt: number;
  /** Default max concurrent sessions for new agents. */
  defaultMaxConcurrent: number;
  /** History retention in days (F12): default 180, extendable (e.g. 1095 for three years). Applies to new writes. */
  retentionDays?: number;
}

export interface MemberRecord {
  tenantId: string;
  memberId: string;
  email: string;
  name: string;
  role: 'agent' | 'admin';
  /** Max concurrent sessions (0–100, 200 with the tenant upgrade). Admins can take chats too. */
  maxConcurrent: number;
  /** Skill groups the member serves; none = the default group of ungrouped agents. */
  groups?: string[];
  passwordHash: string;
  createdAt: number;
}

const K_TENANT = 'tenant';
const K_MEMBER = 'member';
const K_LOGIN = 'login';
const GLOBAL = '_';

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, KDF.keyLen, { N: KDF.N, r: KDF.r, p: KDF.p, maxmem: KDF.maxmem });
  return `scrypt$${KDF.N}$${KDF.r}$${KDF.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [, n, r, p, saltB64, keyB64] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(keyB64, 'base64url');
  const key = await scrypt(password, Buffer.from(saltB64, 'base64url'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: KDF.maxmem,
  });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

export class Directory {
  constructor(private readonly state: StateStore) {}

  getTenant(tenantId: string): Promise<TenantRecord | undefined> {
    return this.state.get<TenantRecord>(tenantId, K_TENANT, tenantId);
  }

  async putTenant(t: TenantRecord): Promise<void> {
    await this.state.put(t.tenantId, K_TENANT, t.tenantId, t);
  }

  getMember(tenantId: string, memberId: string): Promise<MemberRecord | undefined> {
    return this.state.get<MemberRecord>(tenantId, K_MEMBER, memberId);
  }

  async listMembers(tenantId: string): Promise<MemberRecord[]> {
    const rows = await this.state.list(tenantId, K_MEMBER, { limit: 10_000 });
    return rows.map((r) => r.value as MemberRecord);
  }

  async putMember(m: MemberRecord): Promise<void> {
    const email = normaliseEmail(m.email);
    const owner = await this.state.get<{ tenantId: string; memberId: string }>(GLOBAL, K_LOGIN, email);
    if (owner && (owner.tenantId !== m.tenantId || owner.memberId !== m.memberId)) {
      throw new SbError('SB_ERR_INVALID_FIELD', `email already in use: ${email}`);
    }
    await this.state.put(m.tenantId, K_MEMBER, m.memberId, { ...m, email });
    await this.state.put(GLOBAL, K_LOGIN, email, { tenantId: m.tenantId, memberId: m.memberId });
  }

  /** Removes a member and its login. */
  async deleteMember(tenantId: string, memberId: string): Promise<boolean> {
    const m = await this.getMember(tenantId, memberId);
    if (!m) return false;
    await this.state.delete(GLOBAL, K_LOGIN, normaliseEmail(m.email));
    await this.state.delete(tenantId, K_MEMBER, memberId);
    return true;
  }

  /** Checks email + password; the same error for unknown email and wrong password. */
  async login(email: string, password: string): Promise<MemberRecord> {
    const ref = await this.state.get<{ tenantId: string; memberId: string }>(
      GLOBAL,
      K_LOGIN,
      normaliseEmail(email),
    );
    const member = ref ? await this.getMember(ref.tenantId, ref.memberId) : undefined;
    if (!member) {
      // Spend the same time as a real check so response time does not reveal which emails exist.
      await verifyPassword(password, DUMMY_HASH);
      throw new SbError('SB_ERR_BAD_CREDENTIALS');
    }
    if (!(await verifyPassword(password, member.passwordHash))) throw new SbError('SB_ERR_BAD_CREDENTIALS');
    return member;
  }
}

const DUMMY_HASH = `scrypt$${KDF.N}$${KDF.r}$${KDF.p}$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`;

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

export interface DemoSeed {
  tenantId: string;
  password: string;
  agents: number;
  agentMaxConcurrent: number;
}

/** Creates the demo tenant, its admin and agents when missing; returns the logins. */
export async function seedDemo(
  dir: Directory,
  seed: DemoSeed,
  now: number,
): Promise<Array<{ email: string; role: string }>> {
  if (!(await dir.getTenant(seed.tenantId))) {
    await dir.putTenant({ tenantId: seed.tenantId, name: 'Demo', createdAt: now, defaultMaxConcurrent: 10 });
  }
  const wanted: Array<Omit<MemberRecord, 'passwordHash' | 'createdAt'>> = [
    {
      tenantId: seed.tenantId,
      memberId: 'admin',
      email: `admin@${seed.tenantId}.test`,
      name: 'Admin',
      role: 'admin',
      maxConcurrent: seed.agentMaxConcurrent,
    },
  ];
  for (let i = 1; i <= seed.agents; i++) {
    wanted.push({
      tenantId: seed.tenantId,
      memberId: `agent${i}`,
      email: `agent${i}@${seed.tenantId}.test`,
      name: `Agent ${i}`,
      role: 'agent',
      maxConcurrent: seed.agentMaxConcurrent,
    });
  }
  // One hash for all demo members: seeding hundreds of bench agents must not take minutes.
  let hash: string | undefined;
  for (const w of wanted) {
    const existing = await dir.getMember(w.tenantId, w.memberId);
    if (
      existing &&
      existing.maxConcurrent === w.maxConcurrent &&
      (await verifyPasswordCached(seed.password, existing.passwordHash))
    )
      continue;
    hash ??= await hashPassword(seed.password);
    await dir.putMember({ ...w, passwordHash: hash, createdAt: existing?.createdAt ?? now });
  }
  return wanted.map((w) => ({ email: w.email, role: w.role }));
}

const verified = new Map<string, boolean>();
async function verifyPasswordCached(password: string, hash: string): Promise<boolean> {
  const k = `${password}\u0000${hash}`;
  let ok = verified.get(k);
  if (ok === undefined) {
    ok = await verifyPassword(password, hash);
    verified.set(k, ok);
  }
  return ok;
}
