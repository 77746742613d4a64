/**
 * A cluster member in its own process, for multi-process tests: holds a lease, claims the shards
 * placement gives it, and keeps writing to a fenced log per owned shard. Every write takes the
 * shard's epoch first, waits a little (a write in flight), then appends under a fencing check in
 * Redis, so a process frozen mid-write (SIGSTOP) and resumed after losing its lease must have that
 * write refused. Prints one JSON line per event on stdout.
 *
 *   node --import tsx engine/cluster/member-proc.ts <redisUrl> <nodeId> <shards> <prefix>
 */
import { Redis } from 'ioredis';
import { Membership } from './membership.ts';

const [redisUrl, nodeId, shardsArg, prefix] = process.argv.slice(2);
if (!redisUrl || !nodeId || !shardsArg || !prefix)
  throw new Error('usage: member-proc <redisUrl> <nodeId> <shards> <prefix>');
const shards = Number(shardsArg);
const out = (o: Record<string, unknown>): void =>
  void process.stdout.write(`${JSON.stringify({ node: nodeId, t: Date.now(), ...o })}\n`);

// Append only while this owner still holds the shard at this epoch.
const FENCED_APPEND = `
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] and redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  return 1
end
return 0
`;

const m = new Membership({
  redisUrl,
  nodeId,
  address: `127.0.0.1:0`,
  shards,
  prefix,
  leaseMs: 1500,
  heartbeatMs: 300,
  safetyMs: 200,
  log: (x) => {
    if (process.env['SB_DEBUG_MEMBER']) process.stderr.write(`[${nodeId}] ${x}\n`);
  },
});
const w = new Redis(redisUrl, { maxRetriesPerRequest: 1, commandTimeout: 500 });
w.on('error', () => {});
m.onOwnership((c) =>
  out({ ev: c.kind, shard: c.shard, ...(c.kind === 'acquired' ? { epoch: c.epoch } : { reason: c.reason }) }),
);
await m.start();
out({ ev: 'started', incarnation: m.incarnation });

let seq = 0;
const loop = async (): Promise<void> => {
  for (;;) {
    const claims = m.ownedShards().filter((c) => m.epochOf(c.shard) === c.epoch);
    const incarnation = m.incarnation;
    // The write is "in flight" for a moment: a SIGSTOP here resumes with the old epoch in hand.
    await new Promise((r) => setTimeout(r, 50));
    for (const c of claims) {
      const entry = `${nodeId}|${c.epoch}|${++seq}`;
      const ok = await w
        .eval(
          FENCED_APPEND,
          2,
          `${prefix}shard:${c.shard}`,
          `${prefix}log:${c.shard}`,
          `${nodeId}/${incarnation}`,
          String(c.epoch),
          entry,
        )
        .catch(() => -1);
      if (ok !== 1) out({ ev: 'refused', shard: c.shard, epoch: c.epoch });
    }
  }
};
void loop();
process.on('SIGTERM', () => {
  void m.drain().then(() => process.exit(0));
});
