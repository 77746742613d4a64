/**
 * `npm run bench -- <scenario> [flags]`: starts a server (Switchboard or the raw relay) pinned to
 * its own cores, drives it from load processes pinned to others, prints progress every second, a
 * human summary, and with --json a last line holding one JSON object.
 *
 *   chat --visitors V --agents A --rate R|max --duration S [--warmup S] [--grace S]
 *        [--target engine|raw-relay|both] [--procs P] [--window N] [--workers W]
 *        [--store embedded|cassandra] [--server-cpus LIST --client-cpus LIST] [--url URL] [--json]
 *   idle --connections N [--procs P] [--hold S] [--target engine|raw-relay] [--url URL] [--json]
 *   history --store embedded|cassandra [--duration S] [--concurrency C] [--sessions N] [--reads N] [--json]
 *   partner [--sessions 200] [--concurrency 64] [--duration 20] [--warmup 3] [--feed 0|1] [--client lite|grpc-js] [--workers W] [--json]
 *   webhooks [--visitors 200] [--messages 100] [--restart-at 0.5] [--backlog 0|1] [--grace 60] [--workers W] [--json]
 *   cluster [--nodes 3] [--visitors max(60, rate/5)] [--agents max(6, visitors/10)] [--rate 1000] [--duration 60] [--warmup 5]
 *           [--failures 1|0] [--catch-up 0] [--grace 30] [--workers 0] [--cassandra-nice 0]
 *           [--cassandra-background-shares 2] [--json]
 *   routing [--visitors 10000] [--agents 300] [--groups 5] [--duration 60] [--hold S] [--grace S]
 *           [--understaffed 1|0] [--workers W] [--server-cpus LIST --client-cpus LIST] [--url URL] [--json]
 *   console [--sessions 100] [--rate 10] [--duration 30] [--json]
 *
 * chat: V visitors open sessions that A agents serve; visitors send R messages/s in total
 *   (open loop: sends follow the clock), or with `--rate max` keep N messages in flight each
 *   (closed loop, saturation). Latency is visitor send → agent receive. `lost` counts acked
 *   messages no agent received by the end of the grace period; `duplicated` counts second
 *   deliveries. `--target both` runs the raw relay, then the engine, and prints their ratio.
 * routing: V visitors arrive evenly over the duration into G skill groups (one entry rule each)
 *   served by A agents with caps 1–8 who close each chat after ~hold seconds; the last group is
 *   understaffed so its visitors queue. Reports assignments, violations (double assignments, cap
 *   breaches), arrival → assignment latency when capacity existed, and queue-position update
 *   latency (see bench/routing.ts for exactly what is measured).
 * partner: gRPC SendMessage calls over one channel with a write-scoped API key, C in flight (closed
 *   loop), spread over S sessions; calls/s and call latency (bench/partner.ts).
 * webhooks: a local receiver subscribes to message.created; V visitors send M messages each; at the
 *   given share of acks the server is SIGKILLed and restarted on the same data. Every acknowledged
 *   message must be delivered (deduplicated by id), in order per session (bench/webhooks.ts).
 * console: the agent console (built to a temp dir) in headless Chromium at 1366×800, agent1 with S
 *   open sessions while visitors send R messages/s in total; every ~1 s the bench clicks another
 *   session, types a reply and presses Enter. Reports click → session rendered and Enter → reply
 *   rendered latency, long tasks, Event Timing, JS heap, and that every visitor message was rendered
 *   (bench/console.ts). Target: p95 interaction ≤ 100 ms and no long task > 200 ms.
 * idle: N authenticated visitor sockets (each waits for its welcome); server RSS per connection.
 * Defaults: visitors 100, agents 10, rate 1000, duration 10, warmup 3, grace 3, window 4,
 *   procs = one per 15,000 sockets (idle: 10,000), server on CPU 0 and load on the others when the
 *   machine has ≥ 2 cores (`--server-cpus '' --client-cpus ''` turns pinning off).
 * `--url` (http:// or ws://, loopback only) drives a running server instead of starting one; its
 *   RSS/CPU are sampled when a local process listens on that port.
 * A server pinned to a single core runs with `--single-threaded-gc` (see serverGcFlags).
 * Environment: BENCH_NODE_FLAGS adds Node flags to the server it starts (e.g. `--cpu-prof
 *   --cpu-prof-dir=/tmp/prof`); BENCH_SERVER_OUTPUT=1 copies the server's stdout and stderr to the harness's stderr;
 *   BENCH_CLUSTER_SAMPLES=FILE makes the cluster scenario write every message's send and receive
 *   time and its failure events to FILE (JSON), to see where a tail comes from.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  chatConfig,
  checkFlags,
  consoleConfig,
  defaultCpus,
  httpBase,
  num,
  parseArgs,
  split,
  str,
  type ChatConfig,
  type ChatTarget,
} from './args.ts';
import { Histogram, slopeOf } from './histogram.ts';
import { runHistory } from './history.ts';
import type { RoutingOptions, RoutingResult } from './routing.ts';
import { runWebhooks } from './webhooks.ts';
import { runConsole, TARGET_LONG_TASK_MS, TARGET_P95_MS, type ConsoleBenchResult } from './console.ts';
import type { PartnerOptions, PartnerResult } from './partner.ts';
import type { ChildMsg, Done, ParentMsg, Progress } from './load.ts';
import { ensureCassandra, ensureRedis, stopCassandra, stopRedis } from '../scripts/services.ts';
import { runCluster } from './cluster.ts';
import { DEFAULT_LIMITS } from '../protos/ws-v1.ts';

const CHAT_CASSANDRA_PORT = 19045;
const CLUSTER_CASSANDRA_PORT = 19046;
/** Messages per second one visitor sends by default in the cluster scenario. */
const CLUSTER_VISITOR_RATE = 5;
const CLUSTER_REDIS_PORT = 6397;

const root = new URL('..', import.meta.url).pathname;
const HARD_TIMEOUT_MS = 30 * 60_000;
const log = (s: string): void => void process.stderr.write(s + '\n');

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
/** Kills every process this harness started and removes its temporary data directories. */
function cleanup(): void {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.on(sig, () => {
    log(`[bench] ${sig}: stopping`);
    cleanup();
    process.exit(130);
  });

/** PID of the process listening on `port` on this machine, found through /proc (Linux), if any. */
function pidListeningOn(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10 || cols[3] !== '0A') continue;
      if (parseInt(cols[1]!.split(':')[1]!, 16) === port) inodes.add(`socket:[${cols[9]}]`);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return Number(pid);
      } catch {
        // The descriptor closed while we looked.
      }
    }
  }
  return undefined;
}

function hasTaskset(): boolean {
  return spawnSync('taskset', ['-V']).status === 0;
}

/** Command prefixed with `taskset -c cpus` when pinning is possible. */
function pinned(cpuList: string, args: string[]): [string, string[]] {
  if (cpuList && hasTaskset()) return ['taskset', ['-c', cpuList, ...args]];
  return [args[0]!, args.slice(1)];
}

/**
 * A server pinned to one core runs V8's garbage collector on its main thread only
 * (`--single-threaded-gc`): helper threads would share that core with it and add switches and
 * synchronisation instead of parallelism. At 5,000 msgs/s this cut the p99 from 168–251 ms to
 * 31–48 ms and the server CPU from 82–91 % to 70–72 % (bench/RESULTS.md).
 */
function serverGcFlags(cpuList: string): string[] {
  return /^\d+$/.test(cpuList.trim()) && hasTaskset() ? ['--single-threaded-gc'] : [];
}

interface Started {
  url: string;
  /** host:port of the partner gRPC API when the server runs it. */
  grpc?: string;
  pid: number;
  dataDir: string;
  /** SIGTERM (graceful) or SIGKILL (crash); the data directory is removed unless `keepData`. */
  stop(opts?: { signal?: 'SIGTERM' | 'SIGKILL'; keepData?: boolean }): Promise<void>;
}

async function startServer(
  target: string,
  cpusList: string,
  env: Record<string, string>,
  reuseDataDir?: string,
): Promise<Started> {
  const dataDir = reuseDataDir ?? mkdtempSync(join(tmpdir(), 'sb-bench-'));
  tempDirs.add(dataDir);
  const entry = target === 'raw-relay' ? 'bench/raw-relay.ts' : 'gateway/main.ts';
  const [cmd, args] = pinned(cpusList, [
    process.execPath,
    ...serverGcFlags(cpusList),
    ...(process.env['BENCH_NODE_FLAGS'] ?? '').split(' ').filter(Boolean),
    '--import',
    'tsx',
    entry,
  ]);
  const child = spawn(cmd, args, {
    cwd: root,
    env: {
      ...process.env,
      SB_PORT: '0',
      SB_GRPC_PORT: 'off',
      SB_DATA_DIR: dataDir,
      SB_STATIC_DIR: dataDir,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stopping = false;
  let out = '';
  const keep = (d: Buffer): void => {
    // Keep the tail only: a chatty server must not grow the harness's memory.
    out = (out + d.toString()).slice(-20_000);
  };
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`server did not start within 120 s:\n${out}`)), 120_000);
    child.stdout!.on('data', (d: Buffer) => {
      keep(d);
      const m = /SB_LISTENING (\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    child.stderr!.on('data', keep);
    if (process.env['BENCH_SERVER_OUTPUT']) {
      child.stdout!.on('data', (d: Buffer) => process.stderr.write(d));
      child.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
    }
    child.once('exit', (code, sig) => reject(new Error(`server exited (${code ?? sig}):\n${out}`)));
  });
  child.once('exit', (code, sig) => {
    children.delete(child);
    if (!stopping) log(`[bench] the server exited during the run (${code ?? sig}); its last output:\n${out}`);
  });
  const grpcAt = /SB_GRPC_LISTENING (\S+)/.exec(out)?.[1];
  return {
    url,
    ...(grpcAt ? { grpc: grpcAt } : {}),
    pid: child.pid!,
    dataDir,
    async stop(opts = {}) {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(opts.signal ?? 'SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => {
            child.kill('SIGKILL');
            r(undefined);
          }, 10_000);
          child.once('exit', () => {
            clearTimeout(t);
            r(undefined);
          });
        });
      }
      children.delete(child);
      if (opts.keepData) return;
      rmSync(dataDir, { recursive: true, force: true });
      tempDirs.delete(dataDir);
    },
  };
}

interface ProcSample {
  cpuTicks: number;
  rssKb: number;
  at: number;
}

function sampleProc(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuTicks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuTicks, rssKb: Number(rss?.[1] ?? 0), at: performance.now() };
}

const CLK_TCK = 100;

/** Busy CPU time of the whole machine (all cores), in clock ticks, from /proc/stat. */
function machineBusyTicks(): number {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …: everything but idle and iowait is busy.
    return cpu.reduce((a, b) => a + b, 0) - (cpu[3] ?? 0) - (cpu[4] ?? 0);
  } catch {
    return 0;
  }
}

interface LoadProc {
  child: ChildProcess;
  ready: Promise<{ sockets: number; failed: number }>;
  done: Promise<Done>;
  progress: Progress | undefined;
  /** Visitors connected (and, in chat, assigned) so far during setup. */
  setupProgress: number | undefined;
}

function startLoad(cpusList: string): LoadProc {
  const [cmd, args] = pinned(cpusList, [process.execPath, '--import', 'tsx', 'bench/load.ts']);
  const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  let readyRes!: (r: { sockets: number; failed: number }) => void;
  let doneRes!: (d: Done) => void;
  let fail!: (e: Error) => void;
  const failed = new Promise<never>((_, rej) => (fail = rej));
  const p: LoadProc = {
    child,
    ready: Promise.race([new Promise<{ sockets: number; failed: number }>((r) => (readyRes = r)), failed]),
    done: Promise.race([new Promise<Done>((r) => (doneRes = r)), failed]),
    progress: undefined,
    setupProgress: undefined,
  };
  child.on('message', (m: ChildMsg) => {
    if (m.ev === 'ready') readyRes({ sockets: m.sockets, failed: m.failed });
    else if (m.ev === 'setup') p.setupProgress = m.visitors;
    else if (m.ev === 'progress') p.progress = m;
    else if (m.ev === 'done') doneRes(m);
    else if (m.ev === 'failed') fail(new Error(m.error));
  });
  child.once('exit', (code, sig) => {
    children.delete(child);
    fail(new Error(`load process exited (${code ?? sig})`));
  });
  p.ready.catch(() => {});
  p.done.catch(() => {});
  return p;
}

function send(p: LoadProc, m: ParentMsg): void {
  p.child.send(m);
}

const cpuCount = cpus().length;

/** Server under test: one the harness started, or a running one found by its port. */
interface Target {
  url: string;
  /** PID to sample in /proc; undefined when a `--url` server could not be found locally. */
  pid: number | undefined;
  stop(): Promise<void>;
}

async function targetFor(url: string | undefined, start: () => Promise<Started>): Promise<Target> {
  if (url === undefined) return start();
  const pid = pidListeningOn(Number(new URL(url).port || 80));
  if (pid === undefined)
    log(`[bench] no local process found listening on ${url}: server RSS/CPU not sampled`);
  return { url, pid, stop: async () => {} };
}

/** CPU time (s) of a process and its RSS. */
function cpuSeconds(s: ProcSample): number {
  return s.cpuTicks / CLK_TCK;
}

/** CPU use between two samples as % of one core. */
function cpuPct(a: ProcSample | undefined, b: ProcSample | undefined): number {
  if (!a || !b || b.at <= a.at) return 0;
  return Math.round(((cpuSeconds(b) - cpuSeconds(a)) / ((b.at - a.at) / 1000)) * 100);
}

function trySample(pid: number | undefined): ProcSample | undefined {
  if (pid === undefined) return undefined;
  try {
    return sampleProc(pid);
  } catch {
    return undefined;
  }
}

export interface ChatResult {
  scenario: 'chat';
  target: ChatTarget;
  store: string;
  visitors: number;
  agents: number;
  rate: number | 'max';
  window: number | null;
  duration_s: number;
  warmup_s: number;
  grace_s: number;
  procs: number;
  workers: number;
  url: string | null;
  sent: number;
  acked: number;
  delivered: number;
  lost: number;
  duplicated: number;
  errors: number;
  error_codes: Record<string, number>;
  msgs_per_s: number;
  latency_ms: { p50: number; p95: number; p99: number; max: number; mean: number };
  /** Open loop: how late the load generators sent against their schedule (their own limit). */
  send_lag_ms: { p99: number; max: number } | null;
  setup_s: number;
  server_rss_mb: number | null;
  server_cpu_pct: number | null;
  client_cpu_pct: number;
  /** CPU (% of one core) used by other processes on the machine during the measured window. */
  other_cpu_pct: number;
  load_avg_1m: number;
  server_cpus: string;
  client_cpus: string;
}

async function chat(cfg: ChatConfig, target: ChatTarget): Promise<ChatResult> {
  const { visitors, agents, duration, warmup, grace, workers, window, store, procs } = cfg;
  const { serverCpus, clientCpus } = cfg;
  const perProc = Math.ceil((visitors + agents) / procs);
  if (perProc > 19_000)
    throw new Error(`${perProc} sockets per load process is over the open-files cap: raise --procs`);
  if (visitors + agents > 19_000 && cfg.url === undefined)
    log(
      `[bench] warning: ${visitors + agents} sockets on one server process exceed the ~19,000 open-files cap`,
    );
  log(
    `[bench] chat target=${target} store=${store} visitors=${visitors} agents=${agents} rate=${cfg.rate}` +
      `${cfg.rate === 'max' ? ` window=${window}` : ''} duration=${duration}s warmup=${warmup}s procs=${procs}` +
      ` server-cpus=${serverCpus || 'any'} client-cpus=${clientCpus || 'any'}`,
  );
  const env: Record<string, string> = {
    SB_DEMO_AGENTS: String(agents),
    // Head-room over the even share: assignment is not perfectly even while sessions open at once.
    SB_DEMO_AGENT_MAX: String(Math.min(200, Math.ceil(visitors / agents) + 2)),
    SB_WORKERS: String(workers),
    SB_STORE: store,
  };
  let stopCassandraAfter = false;
  if (store === 'cassandra' && target === 'engine' && cfg.url === undefined) {
    log('[bench] starting Cassandra…');
    await ensureCassandra({ port: CHAT_CASSANDRA_PORT, storagePort: 17003, wipe: true });
    stopCassandraAfter = true;
    env['SB_CASSANDRA_PORT'] = String(CHAT_CASSANDRA_PORT);
    env['SB_CASSANDRA_KEYSPACE'] = 'sb_chat_bench';
  }
  const server = await targetFor(cfg.url, () => startServer(target, serverCpus, env));
  const url = server.url;
  const loads: LoadProc[] = [];
  try {
    for (let i = 0; i < procs; i++) loads.push(startLoad(clientCpus));
    const vShare = split(visitors, procs);
    const agentIds = Array.from({ length: agents }, (_, i) => i + 1);
    const aShare = split(agents, procs);
    let a0 = 0;
    loads.forEach((p, i) => {
      send(p, {
        cmd: 'setup',
        proc: i,
        url,
        agents: agentIds.slice(a0, a0 + aShare[i]!),
        visitors: vShare[i]!,
        password: 'switchboard',
        idle: false,
      });
      a0 += aShare[i]!;
    });
    const t0 = Date.now();
    const setupTimer = setInterval(() => {
      const opened = loads.reduce((n, p) => n + (p.setupProgress ?? 0), 0);
      log(`[bench] setting up: ${opened}/${visitors} visitors assigned`);
    }, 1000);
    try {
      await Promise.all(loads.map((p) => p.ready));
    } finally {
      clearInterval(setupTimer);
    }
    const setupS = (Date.now() - t0) / 1000;
    log(`[bench] ${visitors} visitors assigned to ${agents} agents in ${setupS.toFixed(1)} s; sending`);

    const rShare = cfg.rate === 'max' ? loads.map(() => 0) : split(cfg.rate, procs);
    loads.forEach((p, i) =>
      send(p, {
        cmd: 'go',
        rate: rShare[i]!,
        window,
        durationMs: duration * 1000,
        warmupMs: warmup * 1000,
        graceMs: grace * 1000,
      }),
    );
    const pid = server.pid;
    const loadPids = loads.map((p) => p.child.pid).filter((x): x is number => x !== undefined);
    let before: ProcSample | undefined;
    let after: ProcSample | undefined;
    let clientBefore: ProcSample[] | undefined;
    let clientAfter: ProcSample[] | undefined;
    let machineBefore: { ticks: number; at: number } | undefined;
    let machineAfter: { ticks: number; at: number } | undefined;
    let maxRss = 0;
    const started = Date.now();
    let last = { sent: 0, at: started };
    const timer = setInterval(() => {
      const tot = loads.reduce(
        (s, p) => ({
          sent: s.sent + (p.progress?.sent ?? 0),
          acked: s.acked + (p.progress?.acked ?? 0),
          delivered: s.delivered + (p.progress?.delivered ?? 0),
          errors: s.errors + (p.progress?.errors ?? 0),
        }),
        { sent: 0, acked: 0, delivered: 0, errors: 0 },
      );
      const h = new Histogram();
      for (const p of loads) if (p.progress?.hist) h.merge(p.progress.hist);
      const now = Date.now();
      const r = ((tot.sent - last.sent) / (now - last.at)) * 1000;
      last = { sent: tot.sent, at: now };
      const el = (now - started) / 1000;
      const s = trySample(pid);
      if (s) maxRss = Math.max(maxRss, s.rssKb);
      const inWindow = el >= warmup && el <= warmup + duration;
      if (inWindow) {
        const cs = loadPids.map(trySample).filter((x): x is ProcSample => x !== undefined);
        const busy = { ticks: machineBusyTicks(), at: performance.now() };
        if (!before) {
          before = s;
          clientBefore = cs;
          machineBefore = busy;
        }
        after = s;
        clientAfter = cs;
        machineAfter = busy;
      }
      const phase = el < warmup ? 'warmup' : el <= warmup + duration ? 'measure' : 'grace';
      log(
        `[bench] ${el.toFixed(0).padStart(3)}s ${phase.padEnd(7)} sent=${tot.sent} acked=${tot.acked} delivered=${tot.delivered} errors=${tot.errors} rate=${r.toFixed(0)}/s p99=${h.percentile(99).toFixed(2)}ms${s ? ` rss=${(s.rssKb / 1024).toFixed(0)}MB` : ''}`,
      );
    }, 1000);
    let done: Done[];
    try {
      done = await Promise.all(loads.map((p) => p.done));
    } finally {
      clearInterval(timer);
    }

    const acked = new Set<string>();
    const delivered = new Set<string>();
    let duplicated = 0;
    let sent = 0;
    let errors = 0;
    const errorCodes: Record<string, number> = {};
    const hist = new Histogram();
    const lag = new Histogram();
    for (const d of done) {
      lag.merge(d.lag);
      for (const id of d.ackedIds) acked.add(id);
      for (const id of d.deliveredIds) {
        // The same message delivered to agents in two load processes.
        if (delivered.has(id)) duplicated++;
        delivered.add(id);
      }
      duplicated += d.duplicated;
      sent += d.sent;
      errors += d.errors;
      for (const [k, v] of Object.entries(d.errorCodes)) errorCodes[k] = (errorCodes[k] ?? 0) + v;
      hist.merge(d.hist);
    }
    let lost = 0;
    for (const id of acked) if (!delivered.has(id)) lost++;
    let clientPct = 0;
    if (clientBefore && clientAfter)
      for (let i = 0; i < Math.min(clientBefore.length, clientAfter.length); i++)
        clientPct += cpuPct(clientBefore[i], clientAfter[i]);
    // Whatever else ran on the machine during the measured window (other jobs skew the result).
    let otherPct = 0;
    if (machineBefore && machineAfter && machineAfter.at > machineBefore.at) {
      const all =
        ((machineAfter.ticks - machineBefore.ticks) /
          CLK_TCK /
          ((machineAfter.at - machineBefore.at) / 1000)) *
        100;
      otherPct = Math.max(0, Math.round(all - clientPct - (pid === undefined ? 0 : cpuPct(before, after))));
    }
    const s = hist.summary();
    return {
      scenario: 'chat',
      target,
      store: target === 'engine' ? store : 'none',
      visitors,
      agents,
      rate: cfg.rate,
      window: cfg.rate === 'max' ? window : null,
      duration_s: duration,
      warmup_s: warmup,
      grace_s: grace,
      procs,
      workers,
      url: cfg.url ?? null,
      sent,
      acked: acked.size,
      delivered: delivered.size,
      lost,
      duplicated,
      errors,
      error_codes: errorCodes,
      msgs_per_s: Math.round(hist.count / duration),
      latency_ms: {
        p50: s.p50,
        p95: s.p95,
        p99: s.p99,
        max: s.max,
        mean: Math.round(hist.mean * 100) / 100,
      },
      send_lag_ms: cfg.rate === 'max' ? null : { p99: lag.summary().p99, max: lag.summary().max },
      setup_s: Math.round(setupS * 10) / 10,
      server_rss_mb: pid === undefined ? null : Math.round(maxRss / 102.4) / 10,
      server_cpu_pct: pid === undefined ? null : cpuPct(before, after),
      client_cpu_pct: clientPct,
      other_cpu_pct: otherPct,
      load_avg_1m: Math.round(loadavg()[0]! * 100) / 100,
      server_cpus: cfg.url === undefined ? serverCpus : 'external',
      client_cpus: clientCpus,
    };
  } finally {
    for (const p of loads) if (p.child.connected) send(p, { cmd: 'exit' });
    await server.stop();
    if (stopCassandraAfter) await stopCassandra({ port: CHAT_CASSANDRA_PORT, wipe: true });
  }
}

function summarizeChat(r: ChatResult): string {
  const rate = r.rate === 'max' ? `max (closed loop, ${r.window} in flight per visitor)` : `${r.rate} msgs/s`;
  return [
    `chat on ${r.target}${r.target === 'engine' ? ` (${r.store})` : ''}: ${r.visitors} visitors, ${r.agents} agents, rate ${rate}, ${r.duration_s} s measured after ${r.warmup_s} s warm-up`,
    `  sent ${r.sent}, acked ${r.acked}, delivered ${r.delivered}, lost ${r.lost}, duplicated ${r.duplicated}, errors ${r.errors}${r.errors ? ` ${JSON.stringify(r.error_codes)}` : ''}`,
    `  throughput ${r.msgs_per_s} msgs/s; latency visitor→agent p50 ${r.latency_ms.p50} ms, p95 ${r.latency_ms.p95} ms, p99 ${r.latency_ms.p99} ms, max ${r.latency_ms.max} ms` +
      (r.send_lag_ms ? `; send lag p99 ${r.send_lag_ms.p99} ms` : ''),
    `  server RSS ${r.server_rss_mb ?? '?'} MB, CPU ${r.server_cpu_pct ?? '?'}% (cpus ${r.server_cpus || 'any'}); load generators CPU ${r.client_cpu_pct}% (cpus ${r.client_cpus || 'any'}, ${r.procs} procs); other processes ${r.other_cpu_pct}%`,
  ].join('\n');
}

/** RSS once it stops moving (< 0.5 % between samples 500 ms apart, at most 10 s): GC settles. */
async function settledSample(pid: number): Promise<ProcSample> {
  let last = sampleProc(pid);
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const s = sampleProc(pid);
    const stable = Math.abs(s.rssKb - last.rssKb) < last.rssKb * 0.005;
    last = s;
    if (stable && i >= 1) break;
  }
  return last;
}

interface IdleResult {
  scenario: 'idle';
  target: ChatTarget;
  connections: number;
  requested: number;
  failed: number;
  procs: number;
  open_s: number;
  connections_per_s: number;
  server_rss_before_mb: number;
  server_rss_after_mb: number;
  /** (RSS after − RSS before) / connections. */
  rss_kb_per_connection: number;
  /** Least-squares slope of RSS over connections open, sampled every second while opening. */
  rss_kb_per_connection_slope: number | null;
  server_cpus: string;
  client_cpus: string;
}

async function idle(flags: Map<string, string | true>): Promise<IdleResult> {
  const connections = num(flags, 'connections', 1000);
  if (!Number.isInteger(connections) || connections < 1)
    throw new Error('--connections must be an integer ≥ 1');
  const target = str(flags, 'target', 'engine');
  if (target !== 'engine' && target !== 'raw-relay') throw new Error('--target must be engine or raw-relay');
  const procs = num(flags, 'procs', Math.max(1, Math.ceil(connections / 10_000)));
  if (Math.ceil(connections / procs) > 19_000)
    throw new Error('over 19,000 sockets per load process: raise --procs');
  if (connections > 19_000)
    log('[bench] warning: more than ~19,000 sockets exceed the open-files cap of one server process');
  const hold = num(flags, 'hold', 5);
  const cpus = defaultCpus(cpuCount);
  const serverCpus = str(flags, 'server-cpus', cpus.server);
  const clientCpus = str(flags, 'client-cpus', cpus.client);
  const rawUrl = flags.get('url');
  if (rawUrl === true) throw new Error('--url needs a value');
  const url = rawUrl === undefined ? undefined : httpBase(rawUrl);
  log(`[bench] idle target=${target} connections=${connections} procs=${procs}`);
  const server = await targetFor(url, () =>
    startServer(target, serverCpus, {
      SB_DEMO_AGENTS: '1',
      SB_WORKERS: String(num(flags, 'workers', 1)),
    }),
  );
  if (server.pid === undefined) throw new Error('idle needs the server PID to sample its RSS');
  const pid = server.pid;
  const loads: LoadProc[] = [];
  try {
    // Warm the server (JIT, allocator, one connection of each kind) before the baseline.
    const warm = startLoad(clientCpus);
    send(warm, {
      cmd: 'setup',
      proc: 99,
      url: server.url,
      agents: [],
      visitors: 50,
      password: 'switchboard',
      idle: true,
    });
    await warm.ready;
    send(warm, { cmd: 'exit' });
    const base = await settledSample(pid);
    for (let i = 0; i < procs; i++) loads.push(startLoad(clientCpus));
    const share = split(connections, procs);
    const t0 = Date.now();
    loads.forEach((p, i) =>
      send(p, {
        cmd: 'setup',
        proc: i,
        url: server.url,
        agents: [],
        visitors: share[i]!,
        password: 'switchboard',
        idle: true,
      }),
    );
    // (connections open, RSS) pairs while opening: their slope is a second, GC-robust estimate.
    const points: Array<[number, number]> = [];
    const progress = setInterval(() => {
      const opened = loads.reduce((n, p) => n + (p.setupProgress ?? 0), 0);
      const rss = sampleProc(pid).rssKb;
      points.push([opened, rss]);
      log(
        `[bench] ${((Date.now() - t0) / 1000).toFixed(0).padStart(3)}s opened ${opened}/${connections} rss=${(rss / 1024).toFixed(0)} MB`,
      );
    }, 1000);
    let opened = 0;
    let failed = 0;
    try {
      for (const r of await Promise.all(loads.map((p) => p.ready))) {
        opened += r.sockets;
        failed += r.failed;
      }
    } finally {
      clearInterval(progress);
    }
    const openSec = (Date.now() - t0) / 1000;
    log(`[bench] ${opened} open (${failed} failed) in ${openSec.toFixed(1)} s; holding ${hold} s`);
    await new Promise((r) => setTimeout(r, hold * 1000));
    const held = await settledSample(pid);
    points.push([opened, held.rssKb]);
    const perConnKb = opened ? (held.rssKb - base.rssKb) / opened : 0;
    const slope = slopeOf(points.filter(([n]) => n > 0));
    return {
      scenario: 'idle',
      target,
      connections: opened,
      requested: connections,
      failed,
      procs,
      open_s: Math.round(openSec * 10) / 10,
      connections_per_s: Math.round(opened / openSec),
      server_rss_before_mb: Math.round(base.rssKb / 102.4) / 10,
      server_rss_after_mb: Math.round(held.rssKb / 102.4) / 10,
      rss_kb_per_connection: Math.round(perConnKb * 100) / 100,
      rss_kb_per_connection_slope: slope === undefined ? null : Math.round(slope * 100) / 100,
      server_cpus: url === undefined ? serverCpus : 'external',
      client_cpus: clientCpus,
    };
  } finally {
    for (const p of loads) if (p.child.connected) send(p, { cmd: 'exit' });
    await server.stop();
  }
}

async function routing(
  flags: Map<string, string | true>,
  opts: Omit<RoutingOptions, 'url'>,
): Promise<RoutingResult & { server_cpu_pct: number; server_rss_mb: number; load_cpu_pct: number }> {
  const { server: serverCpus, client: clientCpus } = defaultCpus(cpuCount);
  const sCpus = str(flags, 'server-cpus', serverCpus);
  const cCpus = str(flags, 'client-cpus', clientCpus);
  const workers = num(flags, 'workers', 0);
  const target = await targetFor(flags.get('url') as string | undefined, () =>
    startServer('engine', sCpus, {
      SB_DEMO_AGENTS: String(opts.agents),
      SB_DEMO_AGENT_MAX: '8',
      SB_WORKERS: String(workers),
    }),
  );
  const before = trySample(target.pid);
  const [cmd, args] = pinned(cCpus, [
    process.execPath,
    '--import',
    'tsx',
    join(root, 'bench/routing.ts'),
    JSON.stringify({ ...opts, url: target.url }),
  ]);
  const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  // The load process's own CPU, sampled while it runs (it exits before we could read /proc after).
  const loadPid = child.pid!;
  const loadFirst = trySample(loadPid);
  let loadLast = loadFirst;
  const loadSampler = setInterval(() => (loadLast = trySample(loadPid) ?? loadLast), 1000);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-100_000)));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearInterval(loadSampler);
  children.delete(child);
  const after = trySample(target.pid);
  await target.stop();
  if (code !== 0) throw new Error(`routing load exited with ${code}`);
  const last = out.trim().split('\n').pop() ?? '{}';
  const r = JSON.parse(last) as RoutingResult;
  return {
    ...r,
    server_cpu_pct: cpuPct(before, after),
    server_rss_mb: after ? Math.round(after.rssKb / 1024) : 0,
    load_cpu_pct: cpuPct(loadFirst, loadLast),
  };
}

type ConsoleRun = ConsoleBenchResult & {
  /** Server CPU during the window, % of one core. */
  server_cpu_pct: number | null;
  /** Whole machine (browser, server, bench) during the window, % of one core. */
  machine_cpu_pct: number;
  cpus: number;
  /** Other work on the machine skews a browser measurement: the 1-minute load average after it. */
  load_avg_1m: number;
};

async function consoleScenario(flags: Map<string, string | true>): Promise<ConsoleRun> {
  const cfg = consoleConfig(flags);
  log(`[bench] console sessions=${cfg.sessions} rate=${cfg.rate}/s duration=${cfg.duration}s`);
  let server: Started | undefined;
  let serverAt: ProcSample[] = [];
  let machineAt: Array<{ ticks: number; at: number }> = [];
  try {
    const r = await runConsole({
      sessions: cfg.sessions,
      rate: cfg.rate,
      durationS: cfg.duration,
      log,
      tempDir: (prefix) => {
        const d = mkdtempSync(join(tmpdir(), prefix));
        tempDirs.add(d);
        return d;
      },
      // Not pinned: the browser is what is measured, and the server's load here is light.
      start: async (staticDir) => {
        server = await startServer('engine', '', {
          SB_DEMO_AGENTS: '1',
          SB_DEMO_AGENT_MAX: String(cfg.sessions),
          SB_STATIC_DIR: staticDir,
        });
        return server.url;
      },
      onWindow: (edge) => {
        const s = trySample(server?.pid);
        const m = { ticks: machineBusyTicks(), at: performance.now() };
        if (edge === 'start') {
          serverAt = s ? [s] : [];
          machineAt = [m];
        } else {
          if (s && serverAt.length) serverAt.push(s);
          machineAt.push(m);
        }
      },
    });
    const [m0, m1] = machineAt;
    return {
      ...r,
      server_cpu_pct: serverAt.length === 2 ? cpuPct(serverAt[0], serverAt[1]) : null,
      machine_cpu_pct:
        m0 && m1 && m1.at > m0.at
          ? Math.round(((m1.ticks - m0.ticks) / CLK_TCK / ((m1.at - m0.at) / 1000)) * 100)
          : 0,
      cpus: cpuCount,
      load_avg_1m: Math.round(loadavg()[0]! * 100) / 100,
    };
  } finally {
    await server?.stop();
  }
}

function summarizeConsole(r: ConsoleRun): string {
  const lat = (l: { p50: number; p95: number; p99: number; max: number; count: number }): string =>
    `p50 ${l.p50} / p95 ${l.p95} / p99 ${l.p99} / max ${l.max} ms (${l.count})`;
  const met =
    r.switch_ms.p95 <= TARGET_P95_MS && r.send_ms.p95 <= TARGET_P95_MS && r.timeouts === 0
      ? 'met'
      : 'not met';
  const ltMet = r.long_tasks.max_ms <= TARGET_LONG_TASK_MS ? 'met' : 'not met';
  return [
    `console: agent1 with ${r.sessions} open sessions, visitors ${r.rate} msgs/s in total, ${r.duration_s} s measured (Chromium headless 1366×800)`,
    `  switch session (click → chat rendered): ${lat(r.switch_ms)}`,
    `  send reply (Enter → reply rendered): ${lat(r.send_ms)}; acknowledged: ${lat(r.send_ack_ms)}` +
      (r.timeouts ? `; ${r.timeouts} interactions timed out` : ''),
    `  keystroke (keydown → composer painted): ${lat(r.keystroke_ms)}`,
    `  long tasks ${r.long_tasks.count}, total ${r.long_tasks.total_ms} ms (${(r.blocked_share * 100).toFixed(2)}% of the window blocked), max ${r.long_tasks.max_ms} ms; ` +
      `event timing: ${r.event_timing.count} events ≥ 16 ms, max ${r.event_timing.max_ms} ms${r.event_timing.max_event ? ` (${r.event_timing.max_event})` : ''}, ` +
      `${r.event_timing.over_100ms} over 100 ms; largest input delay + processing ${r.event_timing.max_main_thread_ms} ms`,
    `  visitor messages: ${r.sent} sent in the window (+${r.setup_messages} before), ${r.acked} acked in all, ${r.page_received} received by the page, ` +
      `${r.rendered} rendered (${r.missing ? `${r.missing} MISSING` : 'none missing'}); unread badges at the end ${r.unread_badges}; ` +
      `visitor errors ${r.visitor_errors}, page errors ${r.page_errors}`,
    `  JS heap ${r.heap_mb.start} → ${r.heap_mb.end} MB; server CPU ${r.server_cpu_pct ?? '?'}%, whole machine ${r.machine_cpu_pct}% (of one core; ${r.cpus} cores), load average ${r.load_avg_1m}; send lag p99 ${r.send_lag_ms.p99} ms`,
    `  target: p95 interaction ≤ ${TARGET_P95_MS} ms: ${met}; no long task > ${TARGET_LONG_TASK_MS} ms: ${ltMet}; overall: ${r.target_met ? 'met' : 'not met'}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const parsed = parseArgs(process.argv.slice(2));
  if (parsed.scenario === 'help' || parsed.flags.has('help')) {
    log(
      readFileSync(new URL(import.meta.url), 'utf8')
        .split('*/')[0]!
        .replace(/^\/\*\*?|^ \* ?/gm, ''),
    );
    return;
  }
  checkFlags(parsed);
  const json = parsed.flags.has('json');
  const armHardTimeout = (ms: number): void => {
    const hard = setTimeout(() => {
      log(`[bench] hard timeout (${Math.round(ms / 1000)} s) reached; stopping`);
      cleanup();
      process.exit(3);
    }, ms);
    hard.unref();
  };
  if (parsed.scenario === 'chat') {
    const cfg = chatConfig(parsed.flags, cpuCount);
    // Server start, setup (generous per visitor), the run itself, grace, and shutdown; per target.
    const perTarget =
      120 +
      (cfg.store === 'cassandra' ? 300 : 0) +
      cfg.visitors / 50 +
      cfg.warmup +
      cfg.duration +
      cfg.grace +
      60;
    armHardTimeout(perTarget * cfg.targets.length * 1000);
    const results: ChatResult[] = [];
    for (const t of cfg.targets) {
      const r = await chat(cfg, t);
      results.push(r);
      console.log(summarizeChat(r));
    }
    let out: Record<string, unknown> = { ...results[results.length - 1]! };
    if (results.length === 2) {
      const [raw, engine] = results as [ChatResult, ChatResult];
      const ratio = engine.msgs_per_s / Math.max(1, raw.msgs_per_s);
      console.log(
        `ratio: engine ${engine.msgs_per_s} msgs/s / raw relay ${raw.msgs_per_s} msgs/s = ${(ratio * 100).toFixed(0)}% ` +
          `(target ≥ 40%: ${ratio >= 0.4 ? 'met' : 'not met'})`,
      );
      out = {
        ...out,
        target: 'both',
        engine,
        raw_relay: raw,
        engine_vs_raw_ratio: Math.round(ratio * 1000) / 1000,
      };
    }
    if (json) console.log(JSON.stringify(out));
  } else if (parsed.scenario === 'history') {
    armHardTimeout(HARD_TIMEOUT_MS);
    const store = str(parsed.flags, 'store', 'embedded');
    if (store !== 'embedded' && store !== 'cassandra')
      throw new Error('--store must be embedded or cassandra');
    const r = await runHistory({
      store,
      durationS: num(parsed.flags, 'duration', 20),
      concurrency: num(parsed.flags, 'concurrency', 256),
      sessions: num(parsed.flags, 'sessions', 1000),
      reads: num(parsed.flags, 'reads', 2000),
      log,
    });
    console.log(
      `history on ${r.store}: ${r.writes} acknowledged writes in ${r.duration_s} s = ${r.writes_per_s}/s (errors ${r.write_errors}); ` +
        `ack p50 ${r.write_ack_ms.p50} / p99 ${r.write_ack_ms.p99} ms; last-50 read p50 ${r.read_last50_ms.p50} / p99 ${r.read_last50_ms.p99} ms; ` +
        `history page p99 ${r.history_page_ms.p99} ms`,
    );
    if (json) console.log(JSON.stringify(r));
  } else if (parsed.scenario === 'partner') {
    const f = parsed.flags;
    armHardTimeout(15 * 60_000);
    const { server: sDef, client: cDef } = defaultCpus(cpuCount);
    const server = await startServer('engine', str(f, 'server-cpus', sDef), {
      SB_GRPC_PORT: '0',
      SB_WORKERS: String(num(f, 'workers', 0)),
    });
    if (!server.grpc) throw new Error('the server did not report its gRPC port');
    const opts: PartnerOptions = {
      url: server.url,
      grpc: server.grpc,
      sessions: num(f, 'sessions', 200),
      concurrency: num(f, 'concurrency', 64),
      durationS: num(f, 'duration', 20),
      warmupS: num(f, 'warmup', 3),
      feed: str(f, 'feed', '0') === '1',
      client: str(f, 'client', 'lite') === 'grpc-js' ? 'grpc-js' : 'lite',
    };
    const before = trySample(server.pid);
    const [cmd, args] = pinned(str(f, 'client-cpus', cDef), [
      process.execPath,
      '--import',
      'tsx',
      join(root, 'bench/partner.ts'),
      JSON.stringify(opts),
    ]);
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    const loadFirst = trySample(child.pid!);
    let loadLast = loadFirst;
    const sampler = setInterval(() => (loadLast = trySample(child.pid!) ?? loadLast), 1000);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-100_000)));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    clearInterval(sampler);
    children.delete(child);
    const after = trySample(server.pid);
    await server.stop();
    if (code !== 0) throw new Error(`partner load exited with ${code}`);
    const r = {
      ...(JSON.parse(out.trim().split('\n').pop() ?? '{}') as PartnerResult),
      server_cpu_pct: cpuPct(before, after),
      load_cpu_pct: cpuPct(loadFirst, loadLast),
    };
    console.log(
      `partner gRPC: ${r.calls_per_s} SendMessage calls/s over one channel (target ≥ 5,000: ${r.calls_per_s >= 5000 ? 'met' : 'not met'}); ` +
        `latency p50 ${r.latency_ms.p50} / p99 ${r.latency_ms.p99} ms (target ≤ 20: ${r.latency_ms.p99 <= 20 ? 'met' : 'not met'}); ` +
        `errors ${r.errors}; server CPU ${r.server_cpu_pct}%, load generator CPU ${r.load_cpu_pct}%` +
        (r.feed_events_per_s !== undefined
          ? `; event feed read back at ${r.feed_events_per_s} events/s (${r.feed_events} events; target ≥ 20,000: ${r.feed_events_per_s >= 20_000 ? 'met' : 'not met'})`
          : ''),
    );
    if (json) console.log(JSON.stringify(r));
  } else if (parsed.scenario === 'webhooks') {
    const f = parsed.flags;
    armHardTimeout(20 * 60_000);
    const sCpus = str(f, 'server-cpus', defaultCpus(cpuCount).server);
    const env = {
      SB_WEBHOOK_ALLOW_LOOPBACK_HTTP: '1',
      SB_WORKERS: String(num(f, 'workers', 0)),
      // Backlog mode holds requests until the senders are done: no timeouts meanwhile.
      SB_WEBHOOK_TIMEOUT_MS: '60000',
    };
    let server: Started | undefined;
    let dataDir: string | undefined;
    const r = await runWebhooks({
      visitors: num(f, 'visitors', 200),
      messages: num(f, 'messages', 100),
      restartAt: Number(str(f, 'restart-at', '0.5')),
      graceS: num(f, 'grace', 60),
      backlog: str(f, 'backlog', '0') === '1',
      log,
      start: async () => {
        server = await startServer('engine', sCpus, env, dataDir);
        dataDir = server.dataDir;
        return server.url;
      },
      kill: async () => {
        await server?.stop({ signal: 'SIGKILL', keepData: true });
      },
    });
    await server?.stop();
    console.log(
      `webhooks: ${r.delivered} of ${r.acked} acknowledged messages delivered (lost ${r.lost}, duplicates ${r.duplicates}, ` +
        `out of order ${r.out_of_order})${r.restart ? ' across a SIGKILL restart' : ''}; ${r.deliveries_per_s} deliveries/s ` +
        `(target ≥ 2,000: ${r.deliveries_per_s >= 2000 ? 'met' : 'not met'}); lag p50 ${r.lag_ms.p50} / p99 ${r.lag_ms.p99} ms`,
    );
    if (json) console.log(JSON.stringify(r));
  } else if (parsed.scenario === 'routing') {
    const f = parsed.flags;
    const opts = {
      visitors: num(f, 'visitors', 10_000),
      agents: num(f, 'agents', 300),
      groups: num(f, 'groups', 5),
      durationS: num(f, 'duration', 60),
      holdMs: num(f, 'hold', 4) * 1000,
      graceS: num(f, 'grace', 60),
      understaffed: str(f, 'understaffed', '1') !== '0',
    };
    armHardTimeout((300 + opts.durationS + opts.graceS + opts.agents / 5) * 1000);
    const r = await routing(f, opts);
    console.log(
      `routing: ${r.assigned} of ${r.visitors} sessions assigned (${r.unassigned} unassigned), violations ${r.violations} ` +
        `(double ${r.double_assignments}, cap ${r.cap_breaches}); arrival→assignment p50 ${r.assign_latency_ms.p50} / p99 ${r.assign_latency_ms.p99} ms ` +
        `(target ≤ 50: ${r.assign_latency_ms.p99 <= 50 ? 'met' : 'not met'}); queue update p50 ${r.queue_update_latency_ms.p50} / p99 ${r.queue_update_latency_ms.p99} ms ` +
        `(target ≤ 100: ${r.queue_update_latency_ms.p99 <= 100 ? 'met' : 'not met'}) over ${r.queue_update_latency_ms.count} updates; ` +
        `${r.queued_sessions} sessions waited (p99 wait ${r.queued_wait_ms.p99} ms); server CPU ${r.server_cpu_pct}%, RSS ${r.server_rss_mb} MB; load generator CPU ${r.load_cpu_pct}%`,
    );
    if (json) console.log(JSON.stringify(r));
  } else if (parsed.scenario === 'cluster') {
    const f = parsed.flags;
    const nodes = num(f, 'nodes', 3);
    const rate = num(f, 'rate', 1000);
    // Each visitor sends at a human-like pace by default (≤ 5 msgs/s): a visitor at the server's
    // per-socket limit (50 frames/s) has its resends after a failover refused and its socket
    // closed, which tests the harness rather than the cluster.
    const visitors = num(f, 'visitors', Math.max(60, Math.ceil(rate / CLUSTER_VISITOR_RATE)));
    const agents = num(f, 'agents', Math.max(6, Math.ceil(visitors / 10)));
    if (nodes < 3) throw new Error('--nodes: at least 3 (one is killed, another leaves)');
    if (rate / visitors > DEFAULT_LIMITS.framesPerSecond / 2)
      log(
        `[bench] warning: each visitor sends ${(rate / visitors).toFixed(1)} msgs/s, over half the server's per-socket limit ` +
          `(${DEFAULT_LIMITS.framesPerSecond} frames/s): resends after a failover will be refused; use more --visitors`,
      );
    const durationS = num(f, 'duration', 60);
    armHardTimeout((durationS + num(f, 'grace', 30) + 400) * 1000);
    // Cassandra shares this machine's cores with the nodes and the load generator; in a deployment it
    // has hosts of its own. Its memtable flushes (each ~1 CPU-second at 3,000 writes/s) and
    // compactions run in a CPU group with a small share, on the CPU the nodes leave idle, instead of
    // stalling them (bench/RESULTS.md, Cluster; docs/LOCAL-SERVICES.md).
    // The launcher checks both values (scripts/cassandra/start.sh); 0 shares = no background group.
    const cassandraNice = num(f, 'cassandra-nice', 0);
    const backgroundShares = num(f, 'cassandra-background-shares', 2);
    log(
      `[bench] starting Redis and Cassandra (nice ${cassandraNice}, background CPU shares ${backgroundShares || 'off'})…`,
    );
    const stopServices = async (): Promise<void> => {
      await stopCassandra({ port: CLUSTER_CASSANDRA_PORT, wipe: true }).catch(() => undefined);
      await stopRedis({ port: CLUSTER_REDIS_PORT }).catch(() => undefined);
    };
    try {
      await Promise.all([
        ensureRedis({ port: CLUSTER_REDIS_PORT }),
        ensureCassandra({
          port: CLUSTER_CASSANDRA_PORT,
          storagePort: 17005,
          wipe: true,
          nice: cassandraNice,
          ...(backgroundShares > 0 ? { backgroundCpuShares: backgroundShares } : {}),
        }),
      ]);
    } catch (err) {
      // A refused setting or a failed start: leave nothing running.
      await stopServices();
      throw err;
    }
    const token = 'b'.repeat(40);
    const prefix = `bench${Date.now().toString(36)}:`;
    const servers: Array<Started | undefined> = [];
    let dataDir: string | undefined;
    try {
      const r = await runCluster({
        nodes,
        visitors,
        agents,
        rate,
        durationS,
        warmupS: num(f, 'warmup', 5),
        failures: str(f, 'failures', '1') !== '0',
        catchUpS: num(f, 'catch-up', 0),
        graceS: num(f, 'grace', 30),
        platformToken: token,
        log,
        start: async (i) => {
          const s = await startServer(
            'engine',
            '',
            {
              SB_CLUSTER_NODE_ID: `node${i}`,
              SB_REDIS_URL: `redis://127.0.0.1:${CLUSTER_REDIS_PORT}`,
              SB_CLUSTER_LISTEN: '127.0.0.1:0',
              SB_CLUSTER_PREFIX: prefix,
              SB_STORE: 'cassandra',
              SB_CASSANDRA_PORT: String(CLUSTER_CASSANDRA_PORT),
              SB_CASSANDRA_KEYSPACE: 'sb_cluster_bench',
              SB_PLATFORM_TOKEN: token,
              SB_DEMO_AGENTS: String(agents),
              SB_DEMO_AGENT_MAX: '100',
              // Three nodes share this machine with Cassandra and the load generator: by default each
              // runs its actors on its gateway thread, as a node on a 1–2 core host should (a worker
              // thread adds a cross-thread hop per envelope); `--workers 1` measures that path.
              SB_WORKERS: String(num(f, 'workers', 0)),
            },
            dataDir,
          );
          dataDir = s.dataDir;
          servers[i] = s;
          return s.url;
        },
        kill: async (i) => servers[i]?.stop({ signal: 'SIGKILL', keepData: true }),
        leave: async (i) => servers[i]?.stop({ signal: 'SIGTERM', keepData: true }),
      });
      const l = r.latency_ms;
      console.log(
        `cluster: ${r.nodes} nodes, ${r.visitors} visitors, ${r.agents} agents; ${r.acked} of ${r.sent} messages acknowledged ` +
          `(${r.msgs_per_s} msgs/s), lost ${r.lost}, duplicated ${r.duplicated}, gaps in live delivery ${r.gaps}, sessions continued ${r.sessions_continued}/${r.visitors}; ` +
          `SIGKILL → all shards served again in ${r.recovery_s} s (target ≤ 5), graceful leave ${r.leave_s} s; ` +
          `one-way messages dropped on the surviving nodes: ${
            Object.entries(r.dropped_tells)
              .filter(([, n]) => n > 0)
              .map(([k, n]) => `${k} ${n}`)
              .join(', ') || 'none'
          }; ` +
          `failure backlogs delivered ${r.drain_s.map((d) => `${d} s`).join(', ') || '—'} after their events; ` +
          `visitor → agent outside the failure windows p50 ${l.p50} / p95 ${l.p95} / p99 ${l.p99} / max ${l.max} ms ` +
          `(p99 ${r.latency_settle_ms.p99} ms if windows end 1 s after the cluster settled); ` +
          `all targets (failures run at ≥ 3,000 msgs/s, p99 ≤ 50 ms): ${r.target_met ? 'met' : 'not met'}`,
      );
      if (json) console.log(JSON.stringify(r));
    } finally {
      // Gracefully, all at once (profiles from BENCH_NODE_FLAGS are written on a normal exit).
      await Promise.all(servers.map((s) => s?.stop({ signal: 'SIGTERM' }).catch(() => undefined)));
      await stopServices();
    }
  } else if (parsed.scenario === 'console') {
    const sessions = num(parsed.flags, 'sessions', 100);
    // Build, server start, setup, the window, the drain and the sweep.
    armHardTimeout((300 + sessions + num(parsed.flags, 'duration', 30) + 120) * 1000);
    const r = await consoleScenario(parsed.flags);
    console.log(summarizeConsole(r));
    if (json) console.log(JSON.stringify(r));
  } else if (parsed.scenario === 'idle') {
    armHardTimeout(
      (180 + num(parsed.flags, 'connections', 1000) / 100 + num(parsed.flags, 'hold', 5)) * 1000,
    );
    const r = await idle(parsed.flags);
    console.log(
      `idle on ${r.target}: ${r.connections} of ${r.requested} connections open (${r.failed} failed) in ${r.open_s} s (${r.connections_per_s}/s); ` +
        `server RSS ${r.server_rss_before_mb} → ${r.server_rss_after_mb} MB = ${r.rss_kb_per_connection} KB per connection ` +
        `(slope while opening: ${r.rss_kb_per_connection_slope ?? '?'} KB)`,
    );
    if (json) console.log(JSON.stringify(r));
  }
  cleanup();
  process.exit(0);
}

main().catch((err: unknown) => {
  log(`[bench] failed: ${(err as Error)?.stack ?? String(err)}`);
  cleanup();
  process.exit(1);
});
