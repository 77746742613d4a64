/**
 * Membership, placement and fencing against a real Redis (Debian redis-server, started by the
 * project's script on a test port): placement agreement, rebalancing on join and graceful drain,
 * takeover after a crash, the split-brain guard with a process frozen by SIGSTOP past its lease, and
 * a Redis restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureRedis, redisTestsCanRun, stopRedis } from '../../scripts/services.ts';
import { Membership } from './membership.ts';
import { ownerOf, shardMap } from './placement.ts';

const PORT = 6393;
const URL_ = `redis://127.0.0.1:${PORT}`;
const root = fileURLToPath(new URL('../..', import.meta.url));
const haveRedis = redisTestsCanRun('the cluster membership tests');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(
  pred: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe.runIf(haveRedis)('cluster membership (real Redis)', () => {
  let redis: Redis;
  const started: Membership[] = [];
  const procs: ChildProcess[] = [];
  let n = 0;
  const prefix = (): string => `t${Date.now().toString(36)}${++n}:`;

  beforeAll(async () => {
    await ensureRedis({ port: PORT });
    redis = new Redis(URL_);
    redis.on('error', () => {});
  }, 120_000);
  afterAll(async () => {
    redis?.disconnect();
    await stopRedis({ port: PORT });
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) {
      p.kill('SIGCONT');
      p.kill('SIGKILL');
    }
    await Promise.all(started.splice(0).map((m) => m.stop().catch(() => undefined)));
  });

  const member = async (nodeId: string, pfx: string, shards = 64): Promise<Membership> => {
    const m = new Membership({
      redisUrl: URL_,
      nodeId,
      address: `127.0.0.1:${9000 + started.length}`,
      shards,
      prefix: pfx,
      leaseMs: 1500,
      heartbeatMs: 300,
      safetyMs: 200,
    });
    started.push(m);
    await m.start();
    return m;
  };
  const settled = (ms: Membership[], shards: number): boolean => {
    const ids = ms.map((m) => m.nodeId);
    const want = shardMap(shards, ids);
    return ms.every(
      (m) => JSON.stringify(m.ownedShards().map((c) => c.shard)) === JSON.stringify(want.get(m.nodeId)),
    );
  };

  it('placement - rendezvous hashing is stable and moves about 1/N of the shards on a join', () => {
    const three = shardMap(1024, ['a', 'b', 'c']);
    const sizes = [...three.values()].map((x) => x.length);
    expect(sizes.reduce((x, y) => x + y, 0)).toBe(1024);
    for (const s of sizes) expect(s).toBeGreaterThan(250);
    let moved = 0;
    for (let s = 0; s < 1024; s++)
      if (ownerOf(s, ['a', 'b', 'c']) !== ownerOf(s, ['a', 'b', 'c', 'd'])) moved++;
    expect(moved).toBeGreaterThan(150);
    expect(moved).toBeLessThan(370);
    // Every shard that moved went to the newcomer.
    for (let s = 0; s < 1024; s++) {
      const before = ownerOf(s, ['a', 'b', 'c']);
      const after = ownerOf(s, ['a', 'b', 'c', 'd']);
      if (before !== after) expect(after).toBe('d');
    }
  });

  it('three nodes agree on the shard map; a join and a graceful drain move shards with higher epochs', async () => {
    const pfx = prefix();
    const ms = [await member('n1', pfx), await member('n2', pfx), await member('n3', pfx)];
    await until(() => settled(ms, 64), 10_000, 'three-node placement');
    const owners = new Map<number, string>();
    for (const m of ms)
      for (const c of m.ownedShards()) {
        expect(owners.has(c.shard)).toBe(false);
        owners.set(c.shard, m.nodeId);
      }
    expect(owners.size).toBe(64);
    const epochsBefore = new Map(ms.flatMap((m) => m.ownedShards().map((c) => [c.shard, c.epoch] as const)));

    const n4 = await member('n4', pfx);
    const all = [...ms, n4];
    await until(() => settled(all, 64), 10_000, 'four-node placement');
    for (const c of n4.ownedShards()) expect(c.epoch).toBeGreaterThan(epochsBefore.get(c.shard)!);

    // n2 leaves gracefully: its shards are released at once and taken by the others.
    const n2Shards = ms[1]!.ownedShards().map((c) => c.shard);
    await ms[1]!.drain();
    started.splice(started.indexOf(ms[1]!), 1);
    const rest = [ms[0]!, ms[2]!, n4];
    await until(() => settled(rest, 64), 10_000, 'placement after the drain');
    const taken = rest.flatMap((m) => m.ownedShards()).filter((c) => n2Shards.includes(c.shard));
    expect(taken).toHaveLength(n2Shards.length);
  });

  it('hand-offs slower than the lease neither delay the heartbeat nor cost the other shards', async () => {
    const pfx = prefix();
    const a = await member('a', pfx, 64);
    await until(() => a.ownedShards().length === 64, 10_000, 'a owns everything');
    const incarnation = a.incarnation;
    const leaseLost: number[] = [];
    let inFlight = 0;
    let most = 0;
    // Each shard's actors take 400 ms to persist; about 32 shards move: one after the other that
    // would be 13 s, four times the lease (1.5 s).
    a.onOwnership(async (c) => {
      if (c.kind !== 'lost') return;
      if (c.reason === 'lease') leaseLost.push(c.shard);
      inFlight++;
      most = Math.max(most, inFlight);
      await sleep(400);
      inFlight--;
    });
    const b = await member('b', pfx, 64);
    const t0 = Date.now();
    await until(() => settled([a, b], 64), 10_000, 'placement after the join');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(leaseLost).toEqual([]);
    expect(a.incarnation).toBe(incarnation);
    expect(most).toBeGreaterThan(1);
  });

  it('a crashed node loses its shards after its lease; the takeover has a higher epoch', async () => {
    const pfx = prefix();
    const a = await member('a', pfx, 32);
    const b = await member('b', pfx, 32);
    await until(() => settled([a, b], 32), 10_000, 'placement');
    const bShards = b.ownedShards();
    b.freeze(); // no more heartbeats, as after SIGKILL
    const t0 = Date.now();
    await until(() => a.ownedShards().length === 32, 10_000, 'takeover');
    const recovery = Date.now() - t0;
    expect(recovery).toBeLessThan(5000);
    for (const c of bShards)
      expect(a.ownedShards().find((x) => x.shard === c.shard)!.epoch).toBeGreaterThan(c.epoch);
    // b, resumed with its stale claims, is not owner by its own clock nor by Redis.
    for (const c of bShards) {
      expect(b.epochOf(c.shard)).toBeUndefined();
    }
    expect(
      await a.stillOwner(
        bShards[0]!.shard,
        a.ownedShards().find((x) => x.shard === bShards[0]!.shard)!.epoch,
      ),
    ).toBe(true);
  });

  it('split brain - a process frozen (SIGSTOP) past its lease never writes as owner after it resumes', async () => {
    const pfx = prefix();
    const shards = 16;
    // Each member writes its JSON lines to a file (not a pipe: a stopped process must not hold up
    // the reader, nor be held up by it).
    const logDir = mkdtempSync(join(tmpdir(), 'sb-members-'));
    const files: string[] = [];
    /** Every line written so far by every member (read afresh on each call). */
    const read = (): Array<Record<string, unknown>> => {
      const all: Array<Record<string, unknown>> = [];
      for (const f of files)
        for (const line of readFileSync(f, 'utf8').split('\n'))
          if (line.trim()) all.push(JSON.parse(line) as Record<string, unknown>);
      return all;
    };
    const spawnMember = (id: string): ChildProcess => {
      const file = join(logDir, `${id}.jsonl`);
      files.push(file);
      const fd = openSync(file, 'w');
      const p = spawn(
        process.execPath,
        ['--import', 'tsx', `${root}engine/cluster/member-proc.ts`, URL_, id, String(shards), pfx],
        { cwd: root, stdio: ['ignore', fd, 'inherit'] },
      );
      closeSync(fd);
      procs.push(p);
      return p;
    };
    const pa = spawnMember('pa');
    spawnMember('pb');
    // Both own shards and write.
    const logLen = async (): Promise<number> => {
      let total = 0;
      for (let s = 0; s < shards; s++) total += await redis.llen(`${pfx}log:${s}`);
      return total;
    };
    await until(
      async () =>
        read().some((l) => l['node'] === 'pa' && l['ev'] === 'acquired') &&
        read().some((l) => l['node'] === 'pb' && l['ev'] === 'acquired') &&
        (await logLen()) > 40,
      20_000,
      'both writing',
    );
    await sleep(300);
    // The shards pa holds now: acquired and not lost since.
    const held = new Set<number>();
    for (const l of read().filter((x) => x['node'] === 'pa')) {
      if (l['ev'] === 'acquired') held.add(l['shard'] as number);
      if (l['ev'] === 'lost') held.delete(l['shard'] as number);
    }
    const paShards = [...held];
    expect(paShards.length).toBeGreaterThan(0);

    const stopped = Date.now();
    pa.kill('SIGSTOP');
    // pb takes pa's shards once pa's lease ran out in Redis.
    await until(
      () => {
        const since = read().filter((l) => (l['t'] as number) >= stopped);
        return paShards.every((s) =>
          since.some((l) => l['node'] === 'pb' && l['ev'] === 'acquired' && l['shard'] === s),
        );
      },
      10_000,
      'takeover of the frozen node',
    );
    await sleep(300);
    const resumed = Date.now();
    pa.kill('SIGCONT');
    // pa notices that it lost every shard (by its own clock: `lease`, or by Redis when a claim in
    // flight comes back: `taken`), registers again and gets its shards back by placement.
    await until(
      () => {
        const since = read().filter((l) => (l['t'] as number) >= resumed);
        return paShards.every((s) =>
          since.some((l) => l['node'] === 'pa' && l['ev'] === 'lost' && l['shard'] === s),
        );
      },
      10_000,
      'pa to notice',
    );
    await sleep(2500);
    // The write pa had in flight when frozen was refused by the fencing check.
    expect(read().filter((l) => l['node'] === 'pa' && l['ev'] === 'refused').length).toBeGreaterThan(0);
    // Fencing: per shard, the log's epochs never go backwards, and each epoch has one writer.
    for (let s = 0; s < shards; s++) {
      const entries = (await redis.lrange(`${pfx}log:${s}`, 0, -1)).map((e) => {
        const [node, epoch] = e.split('|');
        return { node: node!, epoch: Number(epoch) };
      });
      let last = 0;
      const writer = new Map<number, string>();
      for (const e of entries) {
        expect(e.epoch, `shard ${s}: epoch went backwards`).toBeGreaterThanOrEqual(last);
        last = e.epoch;
        if (writer.has(e.epoch)) expect(writer.get(e.epoch)).toBe(e.node);
        writer.set(e.epoch, e.node);
      }
    }
  }, 60_000);

  it('a Redis restart: nodes register again and reclaim, with epochs that keep growing', async () => {
    const pfx = prefix();
    const a = await member('ra', pfx, 16);
    const b = await member('rb', pfx, 16);
    await until(() => settled([a, b], 16), 10_000, 'placement');
    const before = new Map([...a.ownedShards(), ...b.ownedShards()].map((c) => [c.shard, c.epoch]));
    const bootsBefore = new Map(a.members().map((n) => [n.id, { boot: n.boot, inc: n.incarnation }]));
    expect(bootsBefore.size).toBe(2);
    await stopRedis({ port: PORT });
    await sleep(500);
    await ensureRedis({ port: PORT });
    await until(
      () => settled([a, b], 16) && a.ownedShards().every((c) => c.epoch > before.get(c.shard)!),
      15_000,
      'reclaim after the restart',
    );
    for (const c of [...a.ownedShards(), ...b.ownedShards()])
      expect(c.epoch).toBeGreaterThan(before.get(c.shard)!);
    // New incarnations, same processes: the boot ids (which say the sockets are still there) stay.
    await until(() => a.members().length === 2, 5_000, 'members back');
    for (const n of a.members()) {
      expect(n.incarnation).not.toBe(bootsBefore.get(n.id)!.inc);
      expect(n.boot).toBe(bootsBefore.get(n.id)!.boot);
    }
    expect(existsSync(root)).toBe(true);
  }, 60_000);
});
