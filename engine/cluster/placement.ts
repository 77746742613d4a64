/**
 * Shard placement by rendezvous (highest random weight) hashing: every node computes the same
 * owner for a shard from the same set of live nodes, with no coordination, and a join or leave
 * moves only the shards that node wins or held (about 1/N of them).
 */
import { createHash } from 'node:crypto';

/** Weight of a node for a shard: 64 bits of SHA-256(node id, shard), as a bigint for exact ties. */
export function weight(nodeId: string, shard: number): bigint {
  return createHash('sha256').update(`${nodeId}\u0000${shard}`).digest().readBigUInt64BE(0);
}

/** The owner of a shard among the live nodes (undefined when there is none). Ties break by id. */
export function ownerOf(shard: number, nodes: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestW = -1n;
  for (const n of nodes) {
    const w = weight(n, shard);
    if (w > bestW || (w === bestW && best !== undefined && n < best)) {
      best = n;
      bestW = w;
    }
  }
  return best;
}

/** Shards each node owns: node → sorted shard numbers. */
export function shardMap(shards: number, nodes: readonly string[]): Map<string, number[]> {
  const out = new Map<string, number[]>(nodes.map((n) => [n, []]));
  for (let s = 0; s < shards; s++) {
    const o = ownerOf(s, nodes);
    if (o !== undefined) out.get(o)!.push(s);
  }
  return out;
}
