/** Command-line parsing for the bench: `<scenario> --flag value --bool`. */
export interface ParsedArgs {
  scenario: string;
  flags: Map<string, string | true>;
}

export function parseArgs(argv: string[]): ParsedArgs {
  const [scenario = 'help', ...rest] = argv;
  const flags = new Map<string, string | true>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"`);
    const eq = a.indexOf('=');
    if (eq > 0) {
      flags.set(a.slice(2, eq), a.slice(eq + 1));
      continue;
    }
    const next = rest[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      flags.set(a.slice(2), next);
      i++;
    } else flags.set(a.slice(2), true);
  }
  return { scenario, flags };
}

export function num(flags: Map<string, string | true>, name: string, def: number): number {
  const v = flags.get(name);
  if (v === undefined) return def;
  const n = Number(v);
  if (v === true || !Number.isFinite(n) || n < 0) throw new Error(`--${name} needs a number ≥ 0`);
  return n;
}

export function str(flags: Map<string, string | true>, name: string, def: string): string {
  const v = flags.get(name);
  if (v === undefined) return def;
  if (v === true) throw new Error(`--${name} needs a value`);
  return v;
}

export const KNOWN_FLAGS: Record<string, string[]> = {
  chat: [
    'visitors',
    'agents',
    'rate',
    'duration',
    'warmup',
    'json',
    'url',
    'target',
    'server-cpus',
    'client-cpus',
    'procs',
    'workers',
    'window',
    'store',
    'grace',
  ],
  idle: ['connections', 'procs', 'json', 'url', 'target', 'server-cpus', 'client-cpus', 'workers', 'hold'],
  history: ['store', 'duration', 'concurrency', 'sessions', 'reads', 'json'],
  partner: [
    'sessions',
    'concurrency',
    'duration',
    'warmup',
    'feed',
    'client',
    'workers',
    'json',
    'server-cpus',
    'client-cpus',
  ],
  webhooks: ['visitors', 'messages', 'restart-at', 'backlog', 'grace', 'workers', 'json', 'server-cpus'],
  routing: [
    'visitors',
    'agents',
    'groups',
    'duration',
    'hold',
    'grace',
    'understaffed',
    'workers',
    'json',
    'url',
    'server-cpus',
    'client-cpus',
  ],
  console: ['sessions', 'rate', 'duration', 'json'],
  cluster: [
    'nodes',
    'visitors',
    'agents',
    'rate',
    'duration',
    'warmup',
    'failures',
    'catch-up',
    'grace',
    'workers',
    'cassandra-nice',
    'cassandra-background-shares',
    'json',
  ],
};

export function checkFlags(p: ParsedArgs): void {
  const known = KNOWN_FLAGS[p.scenario];
  if (!known)
    throw new Error(`unknown scenario "${p.scenario}" (scenarios: ${Object.keys(KNOWN_FLAGS).join(', ')})`);
  for (const k of p.flags.keys())
    if (!known.includes(k)) throw new Error(`unknown flag --${k} for ${p.scenario}`);
}

/** The bench only ever talks to this machine: refuse anything but a loopback address. */
export function assertLoopback(url: string): void {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    throw new Error(`--url "${url}" is not a URL`);
  }
  if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(host))
    throw new Error(`--url must be a loopback address (127.x.x.x, localhost, [::1]), got ${host}`);
}

type Flags = Map<string, string | true>;

/** Default pinning: on a machine with ≥ 2 cores the server gets CPU 0 and the load the rest. */
export function defaultCpus(cpuCount: number): { server: string; client: string } {
  if (cpuCount < 2) return { server: '', client: '' };
  return {
    server: '0',
    client: Array.from({ length: cpuCount - 1 }, (_, i) => i + 1).join(','),
  };
}

/** Sockets one load process holds at most by default (the open-files cap is 20,000 per process). */
export const SOCKETS_PER_PROC = 15_000;

export type ChatTarget = 'engine' | 'raw-relay';

/** Validated options of the `chat` scenario. */
export interface ChatConfig {
  visitors: number;
  agents: number;
  /** Aggregate messages/s, or 'max' for the closed-loop saturation mode. */
  rate: number | 'max';
  /** Measured window, s. */
  duration: number;
  /** Sending before the measured window, s (not counted in latency or throughput). */
  warmup: number;
  /** Wait after the last send for acks and deliveries, s. */
  grace: number;
  /** Messages in flight per visitor in saturation mode. */
  window: number;
  workers: number;
  store: 'embedded' | 'cassandra';
  targets: ChatTarget[];
  procs: number;
  serverCpus: string;
  clientCpus: string;
  /** HTTP base of a running server; the harness starts its own when absent. */
  url: string | undefined;
  json: boolean;
}

/** Accepts `http(s)://` and `ws(s)://` bases; returns the HTTP one without a trailing slash. */
export function httpBase(url: string): string {
  assertLoopback(url);
  return url.replace(/^ws(s?):\/\//, 'http$1://').replace(/\/+$/, '');
}

function positiveInt(flags: Flags, name: string, def: number, min = 1): number {
  const n = num(flags, name, def);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}`);
  return n;
}

export function chatConfig(flags: Flags, cpuCount: number): ChatConfig {
  const visitors = positiveInt(flags, 'visitors', 100);
  const agents = positiveInt(flags, 'agents', 10);
  if (agents > visitors) throw new Error('--agents must not exceed --visitors (idle agents measure nothing)');
  const rateFlag = str(flags, 'rate', '1000');
  let rate: number | 'max';
  if (rateFlag === 'max') rate = 'max';
  else {
    rate = Number(rateFlag);
    if (!Number.isFinite(rate) || rate <= 0) throw new Error('--rate must be a number > 0 or "max"');
  }
  const duration = num(flags, 'duration', 10);
  if (duration <= 0) throw new Error('--duration must be > 0');
  const target = str(flags, 'target', 'engine');
  const targets: ChatTarget[] =
    target === 'both'
      ? ['raw-relay', 'engine']
      : target === 'engine' || target === 'raw-relay'
        ? [target]
        : ((): never => {
            throw new Error('--target must be engine, raw-relay or both');
          })();
  const store = str(flags, 'store', 'embedded');
  if (store !== 'embedded' && store !== 'cassandra') throw new Error('--store must be embedded or cassandra');
  const rawUrl = flags.get('url');
  if (rawUrl === true) throw new Error('--url needs a value');
  if (rawUrl !== undefined && targets.length > 1)
    throw new Error('--target both starts its own servers: drop --url');
  const cpus = defaultCpus(cpuCount);
  return {
    visitors,
    agents,
    rate,
    duration,
    warmup: num(flags, 'warmup', 3),
    grace: num(flags, 'grace', 3),
    window: positiveInt(flags, 'window', 4),
    workers: positiveInt(flags, 'workers', 1, 0),
    store,
    targets,
    procs: positiveInt(flags, 'procs', Math.max(1, Math.ceil((visitors + agents) / SOCKETS_PER_PROC))),
    serverCpus: str(flags, 'server-cpus', cpus.server),
    clientCpus: str(flags, 'client-cpus', cpus.client),
    url: rawUrl === undefined ? undefined : httpBase(rawUrl),
    json: flags.has('json'),
  };
}

/** Splits `n` into `parts` near-equal integer shares (the first ones get the remainder). */
export function split(n: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}

/** Validated options of the `console` scenario (one agent's console in Chromium under load). */
export interface ConsoleConfig {
  /** Open sessions, all assigned to the one agent (the demo agent cap is at most 200). */
  sessions: number;
  /** Visitor messages/s in total, round-robin over the sessions. */
  rate: number;
  /** Measured window, s. */
  duration: number;
  json: boolean;
}

export function consoleConfig(flags: Flags): ConsoleConfig {
  // At least two: the agent switches between sessions.
  const sessions = positiveInt(flags, 'sessions', 100, 2);
  if (sessions > 200) throw new Error('--sessions must be ≤ 200 (the cap of one demo agent)');
  const rate = num(flags, 'rate', 10);
  if (rate <= 0) throw new Error('--rate must be > 0');
  const duration = num(flags, 'duration', 30);
  if (duration <= 0) throw new Error('--duration must be > 0');
  return { sessions, rate, duration, json: flags.has('json') };
}
