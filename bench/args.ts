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
};

export function checkFlags(p: ParsedArgs): void {
  const known = KNOWN_FLAGS[p.scenario];
  if (!known)
    throw new Error(`unknown scenario "${p.scenario}" (scenarios: ${Object.keys(KNOWN_FLAGS).join(', ')})`);
  for (const k of p.flags.keys())
    if (!known.includes(k)) throw new Error(`unknown flag --${k} for ${p.scenario}`);
}
