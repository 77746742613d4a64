/**
 * The local Cassandra launcher refuses bad settings before it starts anything, with a message that
 * names the setting (no Java needed: the checks run first).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const START = fileURLToPath(new URL('./cassandra/start.sh', import.meta.url));

function start(env: Record<string, string>): { status: number | null; stderr: string } {
  const r = spawnSync('bash', [START], {
    env: { ...process.env, SB_CASSANDRA_PORT: '19999', SB_CASSANDRA_STORAGE_PORT: '19998', ...env },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: r.status, stderr: r.stderr };
}

describe('local Cassandra launcher settings', () => {
  it.each([
    [{ SB_CASSANDRA_TIMERSLACK_NS: '1ms' }, /invalid SB_CASSANDRA_TIMERSLACK_NS '1ms'/],
    [{ SB_CASSANDRA_TIMERSLACK_NS: '-5' }, /invalid SB_CASSANDRA_TIMERSLACK_NS '-5'/],
    [{ SB_CASSANDRA_TIMERSLACK_NS: '99999999999' }, /invalid SB_CASSANDRA_TIMERSLACK_NS/],
    [{ SB_CASSANDRA_NICE: '20' }, /invalid SB_CASSANDRA_NICE '20'/],
    [{ SB_CASSANDRA_NICE: '-1' }, /invalid SB_CASSANDRA_NICE '-1'/],
    [{ SB_CASSANDRA_NICE: 'low' }, /invalid SB_CASSANDRA_NICE 'low'/],
    [{ SB_CASSANDRA_BACKGROUND_CPU_SHARES: '1' }, /invalid SB_CASSANDRA_BACKGROUND_CPU_SHARES '1'/],
    [{ SB_CASSANDRA_BACKGROUND_CPU_SHARES: 'low' }, /invalid SB_CASSANDRA_BACKGROUND_CPU_SHARES 'low'/],
    [{ SB_CASSANDRA_PORT: '70000' }, /invalid port '70000'/],
    [{ SB_CASSANDRA_INSTANCE: '../x' }, /invalid instance name/],
  ])('scripts - start.sh refuses %o', (env, message) => {
    const r = start(env);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
  });
});
