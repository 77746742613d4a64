/**
 * Cluster nodes end to end on loopback: real Redis for membership, real gRPC links, one shared
 * store (LMDB at one path, standing in for Cassandra). Remote asks and tells to actors and
 * endpoints, and shard handoff on a join and on a graceful drain with messages flowing: every
 * recorded value is kept exactly once and actors continue from the store on their new node.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureRedis, redisTestsCanRun, stopRedis } from '../../scripts/services.ts';
import { startClusterNode, type ClusterNode } from './node.ts';

const PORT = 6394;
const REDIS = `redis://127.0.0.1:${PORT}`;
const product = new URL('../testing/product.ts', import.meta.url);
const haveRedis = redisTestsCanRun('the cluster node tests');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(pred: () => boolean, ms = 15_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// One addressing model: the same scenarios with actors on each node's host thread, and with actors
// on worker threads (node a with one worker, node b with two).
describe.runIf(haveRedis).each([
  { mode: 'host thread', wa: 0, wb: 0 },
  { mode: 'worker threads', wa: 1, wb: 2 },
])('cluster nodes, actors on the $mode', ({ wa, wb }) => {
  const nodes: ClusterNode[] = [];
  let dir = '';
  let n = 0;
  beforeAll(async () => {
    await ensureRedis({ port: PORT });
  }, 120_000);
  afterAll(async () => {
    await stopRedis({ port: PORT });
  });
  afterEach(async () => {
    await Promise.all(nodes.splice(0).map((x) => x.stop().catch(() => undefined)));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const SHARDS = 32;
  const start = async (id: string, prefix: string, workers: number): Promise<ClusterNode> => {
    const node = await startClusterNode({
      nodeId: id,
      redisUrl: REDIS,
      listen: '127.0.0.1:0',
      runtime: { productModule: product, shards: SHARDS, workers, config: { lmdbPath: dir } },
      membership: { prefix, leaseMs: 1500, heartbeatMs: 300, safetyMs: 200 },
    });
    nodes.push(node);
    return node;
  };
  const settled = (ns: ClusterNode[]): boolean =>
    ns.reduce((sum, x) => sum + x.membership.ownedShards().length, 0) === SHARDS &&
    ns.every((x) => x.membership.members().length === ns.length);

  it('asks and tells reach actors and endpoints on other nodes', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-cluster-'));
    const prefix = `c${Date.now().toString(36)}${++n}:`;
    const a = await start('na', prefix, wa);
    const b = await start('nb', prefix, wb);
    await until(() => settled([a, b]), 10_000, 'placement');
    // Every actor answers from whichever node serves it, asked from either node.
    for (let i = 0; i < 100; i++) {
      expect(await a.runtime.ask({ kind: 'test', key: `t:${i}` }, { t: 'echo', v: i })).toBe(i);
      expect(await b.runtime.ask({ kind: 'test', key: `t:${i}` }, { t: 'echo', v: 1000 + i })).toBe(1000 + i);
    }
    expect(a.transport.stats.envelopesSent).toBeGreaterThan(0);
    expect(b.transport.stats.envelopesSent).toBeGreaterThan(0);
    // An actor (wherever it runs) tells an endpoint pinned on node a.
    const got: unknown[] = [];
    const ep = a.runtime.registerEndpoint('sock-1', (m) => got.push(m));
    expect(ep.node).toBe('na');
    for (let i = 0; i < 20; i++)
      b.runtime.tell({ kind: 'test', key: `t:${i}` }, { t: 'toEndpoint', to: ep, v: i });
    await until(() => got.length === 20, 5000, 'endpoint deliveries');
    // A typed error crosses the link too.
    await expect(
      b.runtime.ask({ kind: 'test', key: 't:boom' }, { t: 'boom', typed: true }),
    ).rejects.toMatchObject({
      code: expect.stringMatching(/^SB_ERR_/),
    });
  });

  it('a join and a graceful drain hand shards off while values are being recorded: none lost, none doubled', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-cluster-'));
    const prefix = `c${Date.now().toString(36)}${++n}:`;
    const a = await start('ha', prefix, wa);
    await until(() => settled([a]), 10_000, 'single owner');
    const KEYS = 60;
    let next = 0;
    let stop = false;
    const failures: unknown[] = [];
    // Records go in through node a all along: value v to actor v % KEYS, each acknowledged once.
    const writer = (async () => {
      while (!stop) {
        const v = next++;
        try {
          await a.runtime.ask(
            { kind: 'test', key: `r:${v % KEYS}` },
            { t: 'record', v },
            { timeoutMs: 10_000 },
          );
        } catch (err) {
          failures.push(err);
        }
      }
    })();
    await sleep(300);
    const b = await start('hb', prefix, wb);
    await until(() => settled([a, b]), 10_000, 'placement after the join');
    expect(b.membership.ownedShards().length).toBeGreaterThan(0);
    await sleep(500);
    await b.drain();
    nodes.splice(nodes.indexOf(b), 1);
    await until(() => a.membership.ownedShards().length === SHARDS, 10_000, 'a to serve all again');
    await sleep(300);
    stop = true;
    await writer;
    expect(failures).toEqual([]);
    // Every value is in its actor's log exactly once, in order.
    const seen: number[] = [];
    for (let k = 0; k < KEYS; k++) {
      const log = await a.runtime.ask<number[]>({ kind: 'test', key: `r:${k}` }, { t: 'get' });
      for (let i = 1; i < log.length; i++) expect(log[i]!).toBeGreaterThan(log[i - 1]!);
      seen.push(...log);
    }
    seen.sort((x, y) => x - y);
    expect(seen).toEqual([...Array(next).keys()]);
    expect(next).toBeGreaterThan(50);
  }, 60_000);

  it('fencing - a turn that resumes after its node lost the lease cannot write; the new owner never sees it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-cluster-'));
    const prefix = `c${Date.now().toString(36)}${++n}:`;
    const a = await start('fa', prefix, wa);
    await until(() => settled([a]), 10_000, 'single owner');
    const key = { kind: 'test', key: 'f:1' };
    expect(await a.runtime.ask(key, { t: 'record', v: 'before' })).toBe(1);
    // The turn is busy for 2.5 s; meanwhile node a stops renewing its lease (as a process stalled
    // by GC or SIGSTOP would) and node b takes the shard over.
    const late = a.runtime.ask(key, { t: 'slowRecord', ms: 2500, v: 'stale' }, { timeoutMs: 10_000 });
    await sleep(100);
    a.membership.freeze();
    const b = await start('fb', prefix, wb);
    await until(() => b.membership.ownedShards().length === SHARDS, 10_000, 'b to take every shard');
    await expect(late).rejects.toMatchObject({ code: 'SB_ERR_NODE_UNAVAILABLE' });
    expect((await a.runtime.metrics()).fencedRefusals).toBeGreaterThan(0);
    // Node b serves the actor from the store: the stale write never landed.
    expect(await b.runtime.ask(key, { t: 'get' })).toEqual(['before']);
    expect(await b.runtime.ask(key, { t: 'record', v: 'after' })).toBe(2);
  }, 30_000);
});
