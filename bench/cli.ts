/**
 * `npm run bench -- <scenario> [flags]`: starts a server (Switchboard or the raw relay) pinned to
 * its own cores, drives it from load processes pinned to others, prints progress every second, a
 * human summary, and with --json a last line holding one JSON object.
 *
 *   chat --visitors V --agents A --rate R|max --duration S [--warmup S] [--target engine|raw-relay|both]
 *        [--procs P] [--workers W] [--window N] [--store embedded|cassandra] [--url http://…] [--json]
 *   idle --connections N [--procs P] [--hold S] [--target engine|raw-relay] [--json]
 *   history --store embedded|cassandra [--duration S] [--concurrency C] [--sessions N] [--reads N] [--json]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkFlags, num, parseArgs, str } from './args.ts';
import { Histogram } from './histogram.ts';
import { runHistory } from './history.ts';
import { ensureCassandra, stopCassandra } from '../scripts/services.ts';

const CHAT_CASSANDRA_PORT = 19045;
import type { ChildMsg, Done, ParentMsg, Progress } from './load.ts';

const root = new URL('..', import.meta.url).pathname;
const HARD_TIMEOUT_MS = 30 * 60_000;
const log = (s: string): void => void process.stderr.write(s + '\n');

const children = new Set<ChildProcess>();
function cleanup(): void {
  for (const c of children) c.kill('SIGKILL');
}
process.on('exit', cleanup);
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

function hasTaskset(): boolean {
  return spawnSync('taskset', ['-V']).status === 0;
}

/** Command prefixed with `taskset -c cpus` when pinning is possible. */
function pinned(cpuList: string, args: string[]): [string, string[]] {
  if (cpuList && hasTaskset()) return ['taskset', ['-c', cpuList, ...args]];
  return [args[0]!, args.slice(1)];
}

interface Started {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function startServer(target: string, cpusList: string, env: Record<string, string>): Promise<Started> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-bench-'));
  const entry = target === 'raw-relay' ? 'bench/raw-relay.ts' : 'gateway/main.ts';
  const [cmd, args] = pinned(cpusList, [
    process.execPath,
    ...(process.env['BENCH_NODE_FLAGS'] ?? '').split(' ').filter(Boolean),
    '--import',
    'tsx',
    entry,
  ]);
  const child = spawn(cmd, args, {
    cwd: root,
    env: { ...process.env, SB_PORT: '0', SB_DATA_DIR: dataDir, SB_STATIC_DIR: dataDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`server did not start within 120 s:\n${out}`)), 120_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /SB_LISTENING (\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`server exited (${code}):\n${out}`)));
  });
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
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
      children.delete(child);
      rmSync(dataDir, { recursive: true, force: true });
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

interface LoadProc {
  child: ChildProcess;
  ready: Promise<number>;
  done: Promise<Done>;
  progress: Progress | undefined;
}

function startLoad(cpusList: string): LoadProc {
  const [cmd, args] = pinned(cpusList, [process.execPath, '--import', 'tsx', 'bench/load.ts']);
  const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  const p: LoadProc = {
    child,
    ready: undefined as unknown as Promise<number>,
    done: undefined as unknown as Promise<Done>,
    progress: undefined,
  };
  let readyRes!: (n: number) => void;
  let doneRes!: (d: Done) => void;
  let fail!: (e: Error) => void;
  const failed = new Promise<never>((_, rej) => (fail = rej));
  p.ready = Promise.race([new Promise<number>((r) => (readyRes = r)), failed]);
  p.done = Promise.race([new Promise<Done>((r) => (doneRes = r)), failed]);
  child.on('message', (m: ChildMsg) => {
    if (m.ev === 'ready') readyRes(m.sockets);
    else if (m.ev === 'progress') p.progress = m;
    else if (m.ev === 'done') doneRes(m);
    else if (m.ev === 'failed') fail(new Error(m.error));
  });
  child.once('exit', (code) => fail(new Error(`load process exited (${code})`)));
  p.ready.catch(() => {});
  p.done.catch(() => {});
  return p;
}

function send(p: LoadProc, m: ParentMsg): void {
  p.child.send(m);
}

function split(n: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}

const cpuCount = cpus().length;
const defaultServerCpus = cpuCount >= 2 ? '0' : '';
const defaultClientCpus =
  cpuCount >= 2 ? Array.from({ length: cpuCount - 1 }, (_, i) => i + 1).join(',') : '';

interface ChatResult {
  scenario: 'chat';
  target: string;
  store: string;
  visitors: number;
  agents: number;
  rate: number | 'max';
  duration_s: number;
  warmup_s: number;
  procs: number;
  workers: number;
  sent: number;
  acked: number;
  delivered: number;
  lost: number;
  duplicated: number;
  errors: number;
  error_codes: Record<string, number>;
  msgs_per_s: number;
  latency_ms: { p50: number; p95: number; p99: number; max: number };
  server_rss_mb: number;
  server_cpu_pct: number;
  server_cpus: string;
  client_cpus: string;
}

async function chat(flags: Map<string, string | true>, target: string): Promise<ChatResult> {
  const visitors = num(flags, 'visitors', 100);
  const agents = num(flags, 'agents', 10);
  const rateFlag = str(flags, 'rate', '1000');
  const rate = rateFlag === 'max' ? 0 : Number(rateFlag);
  const duration = num(flags, 'duration', 10);
  const warmup = num(flags, 'warmup', 3);
  const grace = num(flags, 'grace', 3);
  const workers = num(flags, 'workers', 1);
  const window = num(flags, 'window', 4);
  const store = str(flags, 'store', 'embedded');
  const serverCpus = str(flags, 'server-cpus', defaultServerCpus);
  const clientCpus = str(flags, 'client-cpus', defaultClientCpus);
  const procs = num(flags, 'procs', Math.max(1, Math.ceil((visitors + agents) / 15_000)));
  const explicitUrl = flags.get('url');
  if (agents < 1 || visitors < 1) throw new Error('--visitors and --agents must be ≥ 1');
  if (agents > visitors * 100) throw new Error('more agents than visitors can keep busy');

  log(
    `[bench] chat target=${target} store=${store} visitors=${visitors} agents=${agents} rate=${rateFlag} duration=${duration}s warmup=${warmup}s procs=${procs}`,
  );
  const env: Record<string, string> = {
    SB_DEMO_AGENTS: String(agents),
    SB_DEMO_AGENT_MAX: String(Math.min(200, Math.ceil(visitors / agents) + 2)),
    SB_WORKERS: String(workers),
    SB_STORE: store,
  };
  let stopCassandraAfter = false;
  if (store === 'cassandra' && target === 'engine' && typeof explicitUrl !== 'string') {
    log('[bench] starting Cassandra…');
    await ensureCassandra({ port: CHAT_CASSANDRA_PORT, storagePort: 17003, wipe: true });
    stopCassandraAfter = true;
    env['SB_CASSANDRA_PORT'] = String(CHAT_CASSANDRA_PORT);
    env['SB_CASSANDRA_KEYSPACE'] = 'sb_chat_bench';
  }
  const server = typeof explicitUrl === 'string' ? undefined : await startServer(target, serverCpus, env);
  const url = typeof explicitUrl === 'string' ? explicitUrl : server!.url;
  try {
    const loads = Array.from({ length: procs }, () => startLoad(clientCpus));
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
    await Promise.all(loads.map((p) => p.ready));
    log(
      `[bench] ${visitors} visitors assigned to ${agents} agents in ${((Date.now() - t0) / 1000).toFixed(1)} s; sending`,
    );

    const rShare = split(rate, procs);
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
    const pid = server?.pid;
    let before: ProcSample | undefined;
    let after: ProcSample | undefined;
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
      if (pid) {
        const s = sampleProc(pid);
        maxRss = Math.max(maxRss, s.rssKb);
        if (!before && el >= warmup) before = s;
        if (el <= warmup + duration) after = s;
      }
      log(
        `[bench] ${el.toFixed(0).padStart(3)}s sent=${tot.sent} acked=${tot.acked} delivered=${tot.delivered} errors=${tot.errors} rate=${r.toFixed(0)}/s p99=${h.percentile(99).toFixed(2)}ms`,
      );
    }, 1000);
    const done = await Promise.all(loads.map((p) => p.done));
    clearInterval(timer);
    for (const p of loads) send(p, { cmd: 'exit' });

    const acked = new Set<string>();
    const delivered = new Set<string>();
    let duplicated = 0;
    let sent = 0;
    let errors = 0;
    const errorCodes: Record<string, number> = {};
    const hist = new Histogram();
    for (const d of done) {
      for (const id of d.ackedIds) acked.add(id);
      for (const id of d.deliveredIds) {
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
    const cpuPct =
      before && after && after.at > before.at
        ? ((after.cpuTicks - before.cpuTicks) / CLK_TCK / ((after.at - before.at) / 1000)) * 100
        : 0;
    const s = hist.summary();
    return {
      scenario: 'chat',
      target,
      store,
      visitors,
      agents,
      rate: rate === 0 ? 'max' : rate,
      duration_s: duration,
      warmup_s: warmup,
      procs,
      workers,
      sent,
      acked: acked.size,
      delivered: delivered.size,
      lost,
      duplicated,
      errors,
      error_codes: errorCodes,
      msgs_per_s: Math.round(hist.count / duration),
      latency_ms: { p50: s.p50, p95: s.p95, p99: s.p99, max: s.max },
      server_rss_mb: Math.round(maxRss / 102.4) / 10,
      server_cpu_pct: Math.round(cpuPct),
      server_cpus: serverCpus,
      client_cpus: clientCpus,
    };
  } finally {
    await server?.stop();
    if (stopCassandraAfter) await stopCassandra({ port: CHAT_CASSANDRA_PORT, wipe: true });
  }
}

function summarizeChat(r: ChatResult): string {
  return [
    `chat on ${r.target} (${r.store}): ${r.visitors} visitors, ${r.agents} agents, rate ${r.rate}, ${r.duration_s}s measured`,
    `  sent ${r.sent}, acked ${r.acked}, delivered ${r.delivered}, lost ${r.lost}, duplicated ${r.duplicated}, errors ${r.errors}`,
    `  throughput ${r.msgs_per_s} msgs/s; latency visitor→agent p50 ${r.latency_ms.p50} ms, p95 ${r.latency_ms.p95} ms, p99 ${r.latency_ms.p99} ms, max ${r.latency_ms.max} ms`,
    `  server RSS ${r.server_rss_mb} MB, CPU ${r.server_cpu_pct}% (cpus ${r.server_cpus || 'any'}; clients on ${r.client_cpus || 'any'})`,
  ].join('\n');
}

async function idle(flags: Map<string, string | true>): Promise<Record<string, unknown>> {
  const connections = num(flags, 'connections', 1000);
  const target = str(flags, 'target', 'engine');
  const procs = num(flags, 'procs', Math.max(1, Math.ceil(connections / 10_000)));
  const hold = num(flags, 'hold', 5);
  const serverCpus = str(flags, 'server-cpus', defaultServerCpus);
  const clientCpus = str(flags, 'client-cpus', defaultClientCpus);
  log(`[bench] idle target=${target} connections=${connections} procs=${procs}`);
  const server = await startServer(target, serverCpus, {
    SB_DEMO_AGENTS: '1',
    SB_WORKERS: String(num(flags, 'workers', 1)),
  });
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
    await new Promise((r) => setTimeout(r, 2000));
    const base = sampleProc(server.pid);
    const loads = Array.from({ length: procs }, () => startLoad(clientCpus));
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
    const progress = setInterval(
      () => log(`[bench] opening… rss=${(sampleProc(server.pid).rssKb / 1024).toFixed(0)} MB`),
      1000,
    );
    const opened = (await Promise.all(loads.map((p) => p.ready))).reduce((a, b) => a + b, 0);
    clearInterval(progress);
    const openSec = (Date.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, hold * 1000));
    const held = sampleProc(server.pid);
    for (const p of loads) send(p, { cmd: 'exit' });
    const perConnKb = (held.rssKb - base.rssKb) / opened;
    return {
      scenario: 'idle',
      target,
      connections: opened,
      open_s: Math.round(openSec * 10) / 10,
      connections_per_s: Math.round(opened / openSec),
      server_rss_before_mb: Math.round(base.rssKb / 102.4) / 10,
      server_rss_after_mb: Math.round(held.rssKb / 102.4) / 10,
      rss_kb_per_connection: Math.round(perConnKb * 100) / 100,
    };
  } finally {
    await server.stop();
  }
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
  const hard = setTimeout(() => {
    log('[bench] hard timeout reached; stopping');
    cleanup();
    process.exit(3);
  }, HARD_TIMEOUT_MS);
  hard.unref();
  if (parsed.scenario === 'chat') {
    const target = str(parsed.flags, 'target', 'engine');
    const targets = target === 'both' ? ['raw-relay', 'engine'] : [target];
    const results: ChatResult[] = [];
    for (const t of targets) {
      const r = await chat(parsed.flags, t);
      results.push(r);
      console.log(summarizeChat(r));
    }
    let out: Record<string, unknown> = { ...results[results.length - 1]! };
    if (results.length === 2) {
      const ratio = results[1]!.msgs_per_s / Math.max(1, results[0]!.msgs_per_s);
      console.log(`engine / raw relay throughput: ${(ratio * 100).toFixed(0)}%`);
      out = { ...out, raw_relay: results[0], engine_vs_raw_ratio: Math.round(ratio * 1000) / 1000 };
    }
    if (json) console.log(JSON.stringify(out));
  } else if (parsed.scenario === 'history') {
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
  } else if (parsed.scenario === 'idle') {
    const r = await idle(parsed.flags);
    console.log(
      `idle on ${String(r['target'])}: ${String(r['connections'])} connections opened in ${String(r['open_s'])} s; server RSS ${String(r['server_rss_before_mb'])} → ${String(r['server_rss_after_mb'])} MB = ${String(r['rss_kb_per_connection'])} KB per connection`,
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
