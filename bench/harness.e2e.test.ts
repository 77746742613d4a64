import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;

/** Runs the bench CLI and returns its last stdout line parsed as JSON. */
function runBench(args: string[], env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/cli.ts', ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`bench exited ${code}:\n${err}`));
      const lines = out.trim().split('\n');
      resolve(JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>);
    });
  });
}

const small = [
  'chat',
  '--target',
  'raw-relay',
  '--visitors',
  '20',
  '--agents',
  '4',
  '--rate',
  '400',
  '--duration',
  '1.5',
  '--warmup',
  '0.5',
  '--grace',
  '1',
  '--procs',
  '2',
  '--server-cpus',
  '',
  '--client-cpus',
  '',
  '--json',
];

describe('bench harness against the raw relay', () => {
  it('bench - a clean relay: every message acked and delivered once, latency measured', async () => {
    const r = await runBench(small);
    expect(r['scenario']).toBe('chat');
    expect(r['target']).toBe('raw-relay');
    expect(r['sent']).toBeGreaterThan(700);
    expect(r['acked']).toBe(r['sent']);
    expect(r['delivered']).toBe(r['sent']);
    expect(r['lost']).toBe(0);
    expect(r['duplicated']).toBe(0);
    const lat = r['latency_ms'] as { p50: number; p99: number };
    expect(lat.p50).toBeGreaterThan(0);
    expect(lat.p99).toBeGreaterThanOrEqual(lat.p50);
    expect(r['server_rss_mb']).toBeGreaterThan(10);
  }, 60_000);

  it('bench - dropped and doubled deliveries are counted as lost and duplicated', async () => {
    const r = await runBench(small, { BENCH_RELAY_DROP_EVERY: '10', BENCH_RELAY_DUP_EVERY: '7' });
    const sent = r['sent'] as number;
    expect(r['acked']).toBe(sent);
    expect(r['lost']).toBe(Math.floor(sent / 10));
    // Every 7th relayed message is doubled unless it was also the dropped one (every 70th).
    expect(r['duplicated']).toBe(Math.floor(sent / 7) - Math.floor(sent / 70));
  }, 60_000);

  it('bench - saturation mode and the idle scenario run', async () => {
    const sat = await runBench(small.map((a) => (a === '400' ? 'max' : a)));
    expect(sat['rate']).toBe('max');
    expect(sat['lost']).toBe(0);
    expect(sat['msgs_per_s']).toBeGreaterThan(100);
    const idle = await runBench([
      'idle',
      '--target',
      'raw-relay',
      '--connections',
      '200',
      '--procs',
      '2',
      '--hold',
      '0',
      '--server-cpus',
      '',
      '--client-cpus',
      '',
      '--json',
    ]);
    expect(idle['connections']).toBe(200);
    expect(idle['failed']).toBe(0);
  }, 90_000);
});
