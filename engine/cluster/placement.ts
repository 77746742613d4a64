/**
 * Shard placement by rendezvous (highest random weight) hashing: every node computes the same
 * owner for a shard from the same set of live nodes, with no coordination, and a join or leave
 * moves only the shards that node wins or held (about 1/N of them).
 *
 * A node may carry a weight in (0, 1] (a node that just started takes its shards back in steps:
 * see `MembershipOptions.rejoinRampMs`). Weighted rendezvous scores a node `-w / ln(u)`, with `u`
 * its hash for the shard in (0, 1): with every weight 1 that is the plain order of the hashes, so
 * the placement is exactly the unweighted one; raising one node's weight only raises its scores,
 * so shards only move to it.
 */
import { createHash } from 'node:crypto';

/** Weight of a node for a shard: 64 bits of SHA-256(node id, shard), as a bigint for exact ties. */
export function weight(nodeId: string, shard: number): bigint {
  return createHash('sha256').update(`${nodeId}\u0000${shard}`).digest().readBigUInt64BE(0);
}

/** A node's weight in placement, from 0 (exclusive) to 1 (full share). */
export type NodeWeights = ReadonlyMap<string, number>;

const TWO_64 = 2 ** 64;

/** The weighted score of a node for a shard (see the module comment). */
function score(nodeId: string, shard: number, w: number): number {
  const u = (Number(weight(nodeId, shard)) + 0.5) / (TWO_64 + 1);
  return -w / Math.log(u);
}

/**
 * The owner of a shard among the live nodes (undefined when there is none). Ties break by id.
 * Nodes missing from `weights`, and weights outside (0, 1], count as 1.
 */
export function ownerOf(shard: number, nodes: readonly string[], weights?: NodeWeights): string | undefined {
  const w = (n: string): number => {
    const x = weights?.get(n);
    return x !== undefined && x > 0 && x <= 1 ? x : 1;
  };
  if (!weights || nodes.every((n) => w(n) === 1)) {
    let best: string | undefined;
    let bestW = -1n;
    for (const n of nodes) {
      const h = weight(n, shard);
      if (h > bestW || (h === bestW && best !== undefined && n < best)) {
        best = n;
        bestW = h;
      }
    }
    return best;
  }
  let best: string | undefined;
  let bestS = -Infinity;
  for (const n of nodes) {
    const s = score(n, shard, w(n));
    if (s > bestS || (s === bestS && best !== undefined && n < best)) {
      best = n;
      bestS = s;
    }
  }
  return best;
}

/** Shards each node owns: node → sorted shard numbers. */
export function shardMap(
  shards: number,
  nodes: readonly string[],
  weights?: NodeWeights,
): Map<string, number[]> {
  const out = new Map<string, number[]>(nodes.map((n) => [n, []]));
  for (let s = 0; s < shards; s++) {
    const o = ownerOf(s, nodes, weights);
    if (o !== undefined) out.get(o)!.push(s);
  }
  return out;
}
