/**
 * Host side of the actor runtime: opens the stores, starts the worker threads, wires the batched
 * links between every pair of threads, schedules durable reminders, aggregates metrics, drains.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { SbError } from '../protos/errors.ts';
import { realClock } from './clock.ts';
import {
  ENV,
  ThreadNode,
  emptyMetrics,
  summarize,
  type Control,
  type Envelope,
  type Link,
  type PlacementView,
  type ReminderRef,
  type ThreadMetrics,
} from './thread.ts';
import type { ActorId, Clock, ProductModule, Runtime, RuntimeOptions, Stores } from './types.ts';
import { DEFAULTS } from './types.ts';

export async function loadProduct(url: URL | string): Promise<ProductModule> {
  const href = typeof url === 'string' ? url : url.href;
  const mod = (await import(href)) as { default?: ProductModule };
  if (
    !mod.default ||
    typeof mod.default.openStores !== 'function' ||
    typeof mod.default.registerKinds !== 'function'
  ) {
    throw new Error(`${href} does not export a ProductModule as default`);
  }
  return mod.default;
}

/** Durable reminders are scheduled in one place (the host), so each fires once per due time. */
class ReminderScheduler {
  private readonly entries = new Map<string, { dueAt: number; handle: unknown; fired: boolean }>();
  private pollHandle: unknown;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly stores: Stores,
    private readonly fire: (to: ActorId, name: string, dueAt: number, msg: unknown) => void,
  ) {}

  private k(r: ReminderRef): string {
    return `${r.kind}\u0000${r.key}\u0000${r.name}`;
  }

  start(): Promise<void> {
    return this.poll();
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    try {
      const due = await this.stores.reminders.due(this.clock.now() + DEFAULTS.reminderHorizonMs, 10_000);
      for (const r of due) this.schedule({ kind: r.kind, key: r.key, name: r.name }, r.dueAt, r.msg);
    } catch (err) {
      console.error('reminder poll failed; retrying', err);
    }
    if (!this.stopped)
      this.pollHandle = this.clock.setTimeout(() => void this.poll(), DEFAULTS.reminderHorizonMs / 2);
  }

  schedule(r: ReminderRef, dueAt: number, msg: unknown): void {
    if (this.stopped || dueAt > this.clock.now() + DEFAULTS.reminderHorizonMs) {
      // Beyond the horizon: the poll picks it up in time. Drop any earlier schedule for this name.
      this.cancel(r);
      return;
    }
    const k = this.k(r);
    const cur = this.entries.get(k);
    if (cur && cur.dueAt === dueAt) return;
    if (cur) this.clock.clearTimeout(cur.handle);
    const handle = this.clock.setTimeout(
      () => {
        const e = this.entries.get(k);
        if (!e || e.dueAt !== dueAt) return;
        e.fired = true;
        this.fire({ kind: r.kind, key: r.key }, r.name, dueAt, msg);
      },
      Math.max(0, dueAt - this.clock.now()),
    );
    this.entries.set(k, { dueAt, handle, fired: false });
  }

  cancel(r: ReminderRef): void {
    const k = this.k(r);
    const cur = this.entries.get(k);
    if (cur) this.clock.clearTimeout(cur.handle);
    this.entries.delete(k);
  }

  done(r: ReminderRef, dueAt: number): void {
    const k = this.k(r);
    const cur = this.entries.get(k);
    if (cur && cur.dueAt === dueAt) this.entries.delete(k);
  }

  handle(c: Control): void {
    if (c.c === 'reminderSet') this.schedule(c.r, c.dueAt, c.msg);
    else if (c.c === 'reminderCancel') this.cancel(c.r);
    else if (c.c === 'reminderDone') this.done(c.r, c.dueAt);
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.pollHandle);
    for (const e of this.entries.values()) this.clock.clearTimeout(e.handle);
    this.entries.clear();
  }
}

/**
 * Starts a runtime: the host thread plus `workers` worker threads, each loading the product module.
 * Resolves when every thread has opened its stores and registered its kinds.
 */
export async function createRuntime(opts: RuntimeOptions): Promise<Runtime> {
  const workers = opts.workers ?? 0;
  const shards = opts.shards ?? DEFAULTS.shards;
  if (!Number.isInteger(workers) || workers < 0) throw new Error('workers must be an integer ≥ 0');
  if (!Number.isInteger(shards) || shards < 1) throw new Error('shards must be an integer ≥ 1');
  const clock = workers === 0 && opts.clock ? opts.clock : realClock;
  const config = opts.config ?? {};
  const href = typeof opts.productModule === 'string' ? opts.productModule : opts.productModule.href;
  const product = await loadProduct(href);
  const stores = await product.openStores(config);
  const started = Date.now();

  const links = new Map<number, Link>();
  const scheduler: ReminderScheduler = new ReminderScheduler(clock, stores, (to, name, dueAt, msg) => {
    host.sendReminder(to, name, dueAt, msg);
  });
  const host = new ThreadNode({
    thread: 0,
    workers,
    shards,
    clock,
    stores,
    links,
    reminderControl: (c) => scheduler.handle(c),
    cluster: opts.cluster,
  });
  product.registerKinds(host, config);

  // ---- workers and the links between every pair of threads
  const threads: Worker[] = [];
  const metricWaiters = new Map<number, (m: ThreadMetrics) => void>();
  let nextMetricId = 1;
  const drained = new Map<number, () => void>();
  const releaseWaiters = new Map<number, () => void>();
  let nextReleaseId = 1;
  const pairPorts: Array<Record<number, MessagePort>> = Array.from({ length: workers + 1 }, () => ({}));
  for (let i = 1; i <= workers; i++) {
    for (let j = i + 1; j <= workers; j++) {
      const ch = new MessageChannel();
      pairPorts[i]![j] = ch.port1;
      pairPorts[j]![i] = ch.port2;
    }
  }
  const ready: Array<Promise<void>> = [];
  for (let i = 1; i <= workers; i++) {
    const ports = pairPorts[i]!;
    const w = new Worker(new URL('./worker-entry.mjs', import.meta.url), {
      workerData: {
        thread: i,
        workers,
        shards,
        productModule: href,
        config,
        ports,
        ...(opts.cluster ? { clusterNodeId: opts.cluster.nodeId } : {}),
      },
      transferList: Object.values(ports),
    });
    threads.push(w);
    links.set(i, { post: (c) => w.postMessage(c) });
    ready.push(
      new Promise<void>((resolve, reject) => {
        w.on('message', (c: Control) => {
          switch (c.c) {
            case 'batch':
              host.receiveBatch(c.data);
              return;
            case 'ready':
              resolve();
              return;
            case 'failed':
              reject(new Error(`worker ${i} failed to start: ${c.error}`));
              return;
            case 'metricsReply':
              metricWaiters.get(c.id)?.(c.m);
              return;
            case 'drained':
              drained.get(i)?.();
              return;
            case 'released':
              releaseWaiters.get(c.id)?.();
              return;
            default:
              scheduler.handle(c);
          }
        });
        w.on('error', (err) => {
          console.error(`worker thread ${i} crashed`, err);
          reject(err);
        });
      }),
    );
  }
  try {
    await Promise.all(ready);
  } catch (err) {
    await Promise.all(threads.map((t) => t.terminate()));
    await stores.state.close();
    throw err;
  }

  await scheduler.start();

  // Cluster mode with workers: each worker routes by the host's view of the shards this node
  // serves. The view goes out whenever ownership changes (before a release, so a worker never
  // activates an actor of a shard it is giving up) and is re-checked twice a second as a backstop.
  // The view also carries the epochs shards are held under and the lease's end, which fence the
  // workers' store access; the lease moves on with every heartbeat, so the timer sends it on too.
  let lastPlacement: PlacementView | undefined;
  const pushPlacement = (): void => {
    if (!opts.cluster || workers === 0) return;
    const view = host.placementSnapshot();
    const last = lastPlacement;
    if (
      last &&
      last.leaseUntil === view.leaseUntil &&
      last.local.every((v, s) => v === view.local[s]) &&
      last.epochs.every((v, s) => v === view.epochs[s])
    )
      return;
    lastPlacement = view;
    for (const w of threads) w.postMessage({ c: 'placement', view } satisfies Control);
  };
  pushPlacement();
  const placementTimer = opts.cluster && workers > 0 ? setInterval(pushPlacement, 500) : undefined;
  placementTimer?.unref();
  const releaseOnWorker = (shard: number): Promise<void> =>
    new Promise<void>((resolve) => {
      const id = nextReleaseId++;
      const t = setTimeout(() => {
        releaseWaiters.delete(id);
        console.error(`worker did not release shard ${shard} within 30 s`);
        resolve();
      }, 30_000);
      releaseWaiters.set(id, () => {
        clearTimeout(t);
        releaseWaiters.delete(id);
        resolve();
      });
      threads[host.threadOfShard(shard) - 1]!.postMessage({ c: 'release', shard, id } satisfies Control);
    });

  let draining = false;
  let changeScheduled = false;

  const allMetrics = async (): Promise<ThreadMetrics[]> => {
    const parts: Array<Promise<ThreadMetrics>> = [Promise.resolve(host.metrics())];
    threads.forEach((w, idx) => {
      const id = nextMetricId++;
      parts.push(
        new Promise<ThreadMetrics>((resolve) => {
          const t = setTimeout(() => {
            metricWaiters.delete(id);
            resolve(emptyMetrics(idx + 1));
          }, 2000);
          metricWaiters.set(id, (m) => {
            clearTimeout(t);
            metricWaiters.delete(id);
            resolve(m);
          });
          w.postMessage({ c: 'metrics', id } satisfies Control);
        }),
      );
    });
    return Promise.all(parts);
  };

  const runtime: Runtime = {
    threads: workers + 1,
    stores,
    ...(opts.cluster
      ? {
          cluster: {
            receive: (e: unknown, from: string) => host.receiveRemote(e as Envelope, from),
            releaseShard: async (s: number) => {
              pushPlacement();
              if (workers === 0) await host.releaseShard(s);
              else await releaseOnWorker(s);
            },
            endpointsGone: (node: string) => {
              host.endpointsGone(node);
              for (const w of threads) w.postMessage({ c: 'endpointsGone', node } satisfies Control);
            },
            leaseRenewed: () => pushPlacement(),
            // Once per tick: a lost lease or a join changes hundreds of shards at once, and each
            // change would otherwise rebuild the workers' view and re-route every held envelope.
            ownershipChanged: () => {
              if (changeScheduled) return;
              changeScheduled = true;
              setImmediate(() => {
                changeScheduled = false;
                pushPlacement();
                host.retryHeld();
              });
            },
          },
        }
      : {}),
    tell: (to, msg) => {
      if (draining) throw new SbError('SB_ERR_SHUTTING_DOWN');
      host.tell(to, msg);
    },
    ask: (to, msg, o) =>
      draining ? Promise.reject(new SbError('SB_ERR_SHUTTING_DOWN')) : host.ask(to, msg, o),
    registerEndpoint: (name, handler) => host.registerEndpoint(name, handler),
    unregisterEndpoint: (name) => host.unregisterEndpoint(name),
    async metrics() {
      return summarize(await allMetrics(), (Date.now() - started) / 1000);
    },
    async metricsText() {
      const m = summarize(await allMetrics(), (Date.now() - started) / 1000);
      const lines: string[] = [];
      const g = (name: string, help: string, type: 'gauge' | 'counter', v: number): void => {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${v}`);
      };
      g('sb_actor_activations_total', 'Actor activations since start.', 'counter', m.activations);
      g('sb_actor_deactivations_total', 'Actor deactivations since start.', 'counter', m.deactivations);
      g('sb_actors_active', 'Actors currently active.', 'gauge', m.activeActors);
      g('sb_actor_messages_total', 'Messages processed by actors.', 'counter', m.messagesProcessed);
      g('sb_envelopes_sent_total', 'Envelopes sent between threads.', 'counter', m.envelopesSent);
      g(
        'sb_envelope_batches_total',
        'Batches (postMessage calls) between threads.',
        'counter',
        m.batchesSent,
      );
      g(
        'sb_envelopes_per_second',
        'Average cross-thread envelopes per second since start.',
        'gauge',
        m.envelopesPerSecond,
      );
      g('sb_mailbox_depth_max', 'Deepest mailbox seen.', 'gauge', m.mailboxDepthMax);
      g('sb_turn_ms_p99', 'p99 of recent actor turn durations, ms.', 'gauge', m.turnTimeMsP99);
      g('sb_handler_errors_total', 'Errors thrown by actor handlers.', 'counter', m.handlerErrors);
      lines.push(
        '# HELP sb_dropped_tells_total One-way messages dropped, by reason (hops: ownership did not settle; held: hold queue full or expired; link: no link to a thread; endpoint: socket endpoint gone; mailbox: mailbox full; kind: unknown actor kind).',
        '# TYPE sb_dropped_tells_total counter',
      );
      for (const [reason, n] of Object.entries(m.droppedTells))
        lines.push(`sb_dropped_tells_total{reason="${reason}"} ${n}`);
      g('sb_reminders_fired_total', 'Durable reminders fired.', 'counter', m.remindersFired);
      g(
        'sb_fenced_refusals_total',
        'Store calls refused because this node no longer held the actor’s shard (cluster fencing).',
        'counter',
        m.fencedRefusals,
      );
      lines.push(
        '# HELP sb_thread_actors_active Actors active per thread.',
        '# TYPE sb_thread_actors_active gauge',
      );
      for (const t of m.perThread)
        lines.push(`sb_thread_actors_active{thread="${t.thread}"} ${t.activeActors}`);
      return lines.join('\n') + '\n';
    },
    async drain() {
      if (draining) return;
      draining = true;
      scheduler.stop();
      if (placementTimer) clearInterval(placementTimer);
      // Workers first: the answers their actors give while they stop still reach the host's
      // waiting asks (in cluster mode, asks from other nodes); then the host.
      host.flush();
      await Promise.all(
        threads.map(
          (w, idx) =>
            new Promise<void>((resolve) => {
              const t = setTimeout(resolve, 10_000);
              drained.set(idx + 1, () => {
                clearTimeout(t);
                resolve();
              });
              w.postMessage({ c: 'drain' } satisfies Control);
            }),
        ),
      );
      await host.drain();
      await Promise.all(threads.map((w) => w.terminate()));
      await closeStores(stores);
    },
  };
  return runtime;
}

export async function closeStores(s: Stores): Promise<void> {
  if (s.close) {
    await s.close().catch((err: unknown) => console.error('closing stores failed', err));
    return;
  }
  const seen = new Set<unknown>();
  for (const x of [s.state, s.reminders, ...Object.values(s.extra)]) {
    if (seen.has(x)) continue;
    seen.add(x);
    const c = (x as { close?: () => Promise<void> }).close;
    if (typeof c === 'function') await c.call(x).catch(() => {});
  }
}

export { ENV };
