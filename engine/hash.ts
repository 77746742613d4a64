/** FNV-1a, 32 bit: stable across processes and versions, so shard placement never moves by itself. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Shard of an actor: hash(kind, key) mod shards. */
export function shardOf(kind: string, key: string, shards: number): number {
  return fnv1a(kind + '\u0000' + key) % shards;
}

/** Tenant of an actor key: the part before the first ':' (keys without one belong to tenant '_'). */
export function tenantOfKey(key: string): string {
  const i = key.indexOf(':');
  return i > 0 ? key.slice(0, i) : '_';
}
