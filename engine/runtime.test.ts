import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SbError } from '../protos/errors.ts';
import { FakeClock, settle } from './clock.ts';
import { createRuntime } from './runtime.ts';
import type { TestMsg } from './testing/product.ts';
import type { ActorId, Runtime, RuntimeOptions } from './types.ts';

const PRODUCT = new URL('./testing/product.ts', import.meta.url);
let runtimes: Runtime[] = [];
let n = 0;

async function start(
  o: Partial<RuntimeOptions> = {},
  config: Record<string, unknown> = {},
): Promise<Runtime> {
  const rt = await createRuntime({ productModule: PRODUCT, config: { storeId: `s${++n}`, ...config }, ...o });
  runtimes.push(rt);
  return rt;
}

afterEach(async () => {
  for (const rt of runtimes) await rt.drain();
  runtimes = [];
});

const a = (key: string): ActorId => ({ kind: 'test', key: `t1:${key}` });
const ask = <R = unknown>(rt: Runtime, key: string, m: TestMsg): Promise<R> => rt.ask<R>(a(key), m);

describe('engine runtime (host thread)', () => {
  it('engine - activates on first message and answers asks', async () => {
    const rt = await start();
    expect(await ask(rt, 'x', { t: 'echo', v: 42 })).toBe(42);
    expect((await rt.metrics()).activations).toBe(1);
    await ask(rt, 'y', { t: 'echo', v: 1 });
    expect((await rt.metrics()).activeActors).toBe(2);
  });

  it('engine - turns are serial and non-reentrant, in arrival order', async () => {
    const rt = await start();
    const results = await Promise.all([1, 2, 3, 4, 5].map((v) => ask(rt, 'slow', { t: 'sleep', ms: 10, v })));
    expect(results).toEqual([1, 2, 3, 4, 5]);
    expect(await ask(rt, 'slow', { t: 'get' })).toEqual([1, 2, 3, 4, 5]);
    const stats = await ask<{ maxRunning: number }>(rt, 'slow', { t: 'stats' });
    expect(stats.maxRunning).toBe(1);
  });

  it('engine - a Later answer ends the turn at once; the ask is answered (or failed) when it settles', async () => {
    const rt = await start();
    const first = ask(rt, 'l', { t: 'later', ms: 150, v: 'one' });
    const second = ask(rt, 'l', { t: 'later', ms: 10, v: 'two' });
    const failed = ask(rt, 'l', { t: 'later', ms: 20, v: 'three', fail: true });
    // The next turns ran before the first answer: all three were recorded at once.
    expect(await second).toBe('two');
    await expect(failed).rejects.toMatchObject({ code: 'SB_ERR_FORBIDDEN' });
    expect(await ask(rt, 'l', { t: 'get' })).toEqual(['one', 'two', 'three']);
    expect(await first).toBe('one');
  });

  it('engine - different actors run concurrently', async () => {
    const rt = await start();
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 10 }, (_, i) => ask(rt, `p${i}`, { t: 'sleep', ms: 100, v: i })));
    // Ten actors sleeping 100 ms each in parallel take far less than 10 × 100 ms.
    expect(Date.now() - t0).toBeLessThan(800);
  });

  it('engine - tells from one sender arrive in order', async () => {
    const rt = await start();
    for (let i = 0; i < 1000; i++) rt.tell(a('ord'), { t: 'record', v: i });
    const log = await ask<number[]>(rt, 'ord', { t: 'get' });
    expect(log).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it('engine - a throwing handler reaches the asker with its code and the actor lives on', async () => {
    const rt = await start();
    await expect(ask(rt, 'e', { t: 'boom', typed: true })).rejects.toMatchObject({
      code: 'SB_ERR_FORBIDDEN',
    });
    await expect(ask(rt, 'e', { t: 'boom' })).rejects.toMatchObject({ code: 'SB_ERR_INTERNAL' });
    rt.tell(a('e'), { t: 'boom' });
    expect(await ask(rt, 'e', { t: 'echo', v: 'alive' })).toBe('alive');
    const m = await rt.metrics();
    expect(m.handlerErrors).toBe(3);
    expect(m.activations).toBe(1);
  });

  it('engine - ask times out with SB_ERR_TIMEOUT', async () => {
    const rt = await start();
    const err = await rt
      .ask(a('late'), { t: 'sleep', ms: 300, v: 1 }, { timeoutMs: 50 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SbError);
    expect((err as SbError).code).toBe('SB_ERR_TIMEOUT');
  });

  it('engine - a full mailbox refuses with SB_ERR_MAILBOX_FULL instead of growing', async () => {
    const rt = await start({}, { mailboxSize: 5 });
    const all = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => ask(rt, 'mb', { t: 'sleep', ms: 5, v: i })),
    );
    const refused = all.filter((r) => r.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused)
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'SB_ERR_MAILBOX_FULL' });
    expect(all.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(5);
  });

  it('engine - dropped tells are counted by reason and exported on the metrics text', async () => {
    const rt = await start({}, { mailboxSize: 2 });
    rt.tell({ kind: 'nope', key: 't1:x' }, {});
    for (let i = 0; i < 6; i++) rt.tell(a('full'), { t: 'sleep', ms: 20, v: i });
    await new Promise((r) => setTimeout(r, 200));
    const m = await rt.metrics();
    expect(m.droppedTells.kind).toBe(1);
    expect(m.droppedTells.mailbox).toBeGreaterThan(0);
    expect(m.droppedTells.hops).toBe(0);
    const text = await rt.metricsText();
    expect(text).toContain('sb_dropped_tells_total{reason="kind"} 1\n');
    expect(text).toMatch(/sb_dropped_tells_total\{reason="mailbox"\} [1-9]/);
  });

  it('engine - unknown kinds are refused with a typed error', async () => {
    const rt = await start();
    await expect(rt.ask({ kind: 'nope', key: 't1:x' }, {})).rejects.toMatchObject({
      code: 'SB_ERR_NOT_FOUND',
    });
  });

  it('engine - state persists across deactivation', async () => {
    const clock = new FakeClock();
    const rt = await start({ clock }, { idleMs: 1000 });
    await ask(rt, 'st', { t: 'record', v: 'a' });
    await clock.advance(5000);
    expect((await rt.metrics()).deactivations).toBe(1);
    expect(await ask(rt, 'st', { t: 'get' })).toEqual(['a']);
    expect((await rt.metrics()).activations).toBe(2);
  });

  it('engine - in-memory timers fire on the fake clock and can be cancelled', async () => {
    const clock = new FakeClock();
    const rt = await start({ clock });
    await ask(rt, 'tm', { t: 'timer', name: 'one', ms: 1000, v: 'once' });
    await ask(rt, 'tm', { t: 'interval', name: 'rep', ms: 300, v: 'tick' });
    await clock.advance(999);
    expect(await ask(rt, 'tm', { t: 'get' })).toEqual(['tick', 'tick', 'tick']);
    await clock.advance(1);
    expect(await ask(rt, 'tm', { t: 'get' })).toContain('once');
    await ask(rt, 'tm', { t: 'cancel', name: 'rep' });
    const before = (await ask<unknown[]>(rt, 'tm', { t: 'get' })).length;
    await clock.advance(3000);
    expect((await ask<unknown[]>(rt, 'tm', { t: 'get' })).length).toBe(before);
  });

  it('engine - idle actors are deactivated after idleMs', async () => {
    const clock = new FakeClock();
    const rt = await start({ clock }, { idleMs: 10_000 });
    await ask(rt, 'idle', { t: 'echo', v: 1 });
    await clock.advance(9000);
    expect((await rt.metrics()).activeActors).toBe(1);
    await clock.advance(3000);
    expect((await rt.metrics()).activeActors).toBe(0);
  });

  it('engine - durable reminders fire, also in a runtime started later on the same store', async () => {
    const clock = new FakeClock();
    const rt = await start({ clock }, { storeId: 'rem' });
    const now = clock.now();
    await ask(rt, 'r', { t: 'reminder', name: 'soon', dueAt: now + 5_000, v: 'soon' });
    await ask(rt, 'r', { t: 'reminder', name: 'later', dueAt: now + 600_000, v: 'later' });
    await clock.advance(6_000);
    expect(await ask(rt, 'r', { t: 'get' })).toEqual(['soon']);
    // "Restart": drop this runtime, start another on the same store; the later reminder still fires.
    await rt.drain();
    runtimes = runtimes.filter((x) => x !== rt);
    const clock2 = new FakeClock(now + 6_000);
    const rt2 = await start({ clock: clock2 }, { storeId: 'rem' });
    await clock2.advance(600_000);
    await settle();
    expect(await ask(rt2, 'r', { t: 'get' })).toEqual(['soon', 'later']);
    expect((await rt2.metrics()).remindersFired).toBe(1);
  });

  it('engine - endpoints pinned on the host receive tells from actors', async () => {
    const rt = await start();
    const got: unknown[] = [];
    const ep = rt.registerEndpoint('sock1', (m) => got.push(m));
    await ask(rt, 'src', { t: 'toEndpoint', to: ep, v: 'hi' });
    await settle();
    expect(got).toEqual([{ from: 't1:src', thread: 0, v: 'hi' }]);
    rt.unregisterEndpoint('sock1');
  });

  it('engine - drain deactivates actors and refuses new work', async () => {
    const rt = await start();
    await ask(rt, 'd', { t: 'echo', v: 1 });
    await rt.drain();
    runtimes = runtimes.filter((x) => x !== rt);
    await expect(rt.ask(a('d'), { t: 'echo', v: 1 })).rejects.toMatchObject({ code: 'SB_ERR_SHUTTING_DOWN' });
  });
});

describe('engine runtime (worker threads)', () => {
  it('engine - actors are sharded over workers and answer across threads', async () => {
    const rt = await start({ workers: 2 });
    const threads = new Set<number>();
    for (let i = 0; i < 40; i++) threads.add(await ask<number>(rt, `w${i}`, { t: 'whoami' }));
    expect([...threads].sort()).toEqual([1, 2]);
  });

  it('engine - cross-thread envelopes are batched and keep per-sender order', async () => {
    const rt = await start({ workers: 2 });
    // Find two actors on different workers; one forwards 2,000 messages to the other.
    let src = '';
    let dst = '';
    for (let i = 0; !src || !dst; i++) {
      const t = await ask<number>(rt, `k${i}`, { t: 'whoami' });
      if (t === 1 && !src) src = `k${i}`;
      if (t === 2 && !dst) dst = `k${i}`;
    }
    for (let i = 0; i < 2000; i++) rt.tell(a(src), { t: 'forward', to: a(dst), v: i });
    await ask(rt, src, { t: 'echo', v: 0 });
    await new Promise((r) => setTimeout(r, 100));
    const log = await ask<number[]>(rt, dst, { t: 'get' });
    expect(log).toEqual(Array.from({ length: 2000 }, (_, i) => i));
    const m = await rt.metrics();
    expect(m.envelopesSent).toBeGreaterThan(4000);
    // Many envelopes per postMessage, not one each.
    expect(m.batchesSent).toBeLessThan(m.envelopesSent / 10);
  });

  it('engine - a worker actor reaches an endpoint on the host thread', async () => {
    const rt = await start({ workers: 2 });
    const got: Array<{ thread: number }> = [];
    const ep = rt.registerEndpoint('sock', (m) => got.push(m as { thread: number }));
    for (let i = 0; i < 10; i++) await ask(rt, `e${i}`, { t: 'toEndpoint', to: ep, v: i });
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toHaveLength(10);
    expect(got.every((g) => g.thread === 1 || g.thread === 2)).toBe(true);
  });

  it('engine - handler errors in a worker do not kill the thread', async () => {
    const rt = await start({ workers: 2 });
    for (let i = 0; i < 10; i++) {
      await expect(ask(rt, `b${i}`, { t: 'boom', typed: true })).rejects.toMatchObject({
        code: 'SB_ERR_FORBIDDEN',
      });
    }
    for (let i = 0; i < 10; i++) expect(await ask(rt, `b${i}`, { t: 'echo', v: i })).toBe(i);
  });

  it('engine - reminders survive a restart with worker threads and LMDB', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-engine-'));
    try {
      const rt = await start({ workers: 2 }, { lmdbPath: join(dir, 'db') });
      await ask(rt, 'rr', { t: 'reminder', name: 'r1', dueAt: Date.now() + 400, v: 'fired-after-restart' });
      await rt.drain();
      runtimes = runtimes.filter((x) => x !== rt);
      const rt2 = await start({ workers: 2 }, { lmdbPath: join(dir, 'db') });
      const deadline = Date.now() + 5000;
      let log: unknown[] = [];
      while (Date.now() < deadline) {
        log = await ask<unknown[]>(rt2, 'rr', { t: 'get' });
        if (log.length > 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(log).toEqual(['fired-after-restart']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
