import { randomBytes } from 'node:crypto';
import { SbError } from '../protos/errors.ts';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * Time-ordered unique id (ULID layout: 10 chars of ms time + 16 random chars, Crockford base32),
 * so ids sort by creation time in stores and logs.
 */
/** A stable key of an endpoint address (node, thread and name: names repeat across nodes). */
export function endpointKey(ep: { node?: string; thread: number; name: string }): string {
  return `${ep.node ?? ''}/${ep.thread}/${ep.name}`;
}

/**
 * Removes from `byKey` every entry whose endpoint lives on `node` (a node that is gone); returns
 * whether any was removed.
 */
export function forgetNode<T>(
  byKey: Map<string, T>,
  node: string,
  endpointOf: (v: T) => { node?: string },
): boolean {
  let removed = false;
  for (const [key, v] of byKey)
    if (endpointOf(v).node === node) {
      byKey.delete(key);
      removed = true;
    }
  return removed;
}

export function newId(now: number = Date.now()): string {
  let t = now;
  let time = '';
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const rnd = randomBytes(16);
  let tail = '';
  for (let i = 0; i < 16; i++) tail += ALPHABET[rnd[i]! % 32];
  return time + tail;
}

/** Ids supplied from outside (tenant, visitor, session): letters, digits, `-` and `_`, 1–64 chars. */
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export function isValidId(x: unknown): x is string {
  return typeof x === 'string' && ID_RE.test(x);
}

export function assertId(x: unknown, field: string): string {
  if (!isValidId(x)) throw new SbError('SB_ERR_INVALID_FIELD', `${field} must match ${ID_RE.source}`);
  return x;
}

/** Actor key of a tenant-scoped entity: the tenant always comes first. */
export function tkey(tenantId: string, id: string): string {
  return `${tenantId}:${id}`;
}

export function splitKey(key: string): { tenantId: string; id: string } {
  const i = key.indexOf(':');
  if (i <= 0) throw new SbError('SB_ERR_INVALID_FIELD', `actor key without tenant: ${key}`);
  return { tenantId: key.slice(0, i), id: key.slice(i + 1) };
}

/** Key of a tenant's dispatcher (its default queue; skill groups will get their own). */
export function dispatchKey(tenantId: string): string {
  return tkey(tenantId, 'default');
}
