/**
 * The launcher's CPU settings on a real Cassandra: with SB_CASSANDRA_BACKGROUND_CPU_SHARES its
 * background threads (flush, compaction, JIT) run in a CPU group of their own and its request
 * threads do not; with SB_CASSANDRA_NICE the JVM runs at that nice value; stop.sh removes the group.
 */
import { accessSync, constants, existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cassandraTestsCanRun, ensureCassandra, stopCassandra } from './services.ts';

const PORT = 19047;
const STORAGE_PORT = 17006;
const INSTANCE = `node-${PORT}`;
const HOME = fileURLToPath(new URL(`../.cache/cassandra/${INSTANCE}/`, import.meta.url));
const CPU_ROOT = '/sys/fs/cgroup/cpu';
const GROUP = join(CPU_ROOT, `switchboard-cassandra-${INSTANCE}-background`);

/** The kernel's name of each thread of `pid`, by thread id. */
function threads(pid: number): Map<number, string> {
  const out = new Map<number, string>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim());
    } catch {
      // The thread ended meanwhile.
    }
  }
  return out;
}

/** Field 19 of /proc/<pid>/stat: the nice value. */
function niceOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

function cgroupWritable(): boolean {
  try {
    accessSync(join(CPU_ROOT, 'tasks'), constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

describe.runIf(cassandraTestsCanRun('the Cassandra launcher CPU settings test'))(
  'local Cassandra CPU settings',
  () => {
    afterAll(async () => {
      await stopCassandra({ port: PORT, wipe: true });
    }, 120_000);

    it('scripts - background threads go to a low-share CPU group, requests stay, the JVM gets the nice value, stop removes the group', async () => {
      const started = await ensureCassandra({
        port: PORT,
        storagePort: STORAGE_PORT,
        wipe: true,
        heap: '512M',
        nice: 3,
        backgroundCpuShares: 2,
      });
      const pid = Number(readFileSync(join(HOME, 'cassandra.pid'), 'utf8').trim());
      expect(niceOf(pid)).toBe(3);
      const names = threads(pid);
      const requestThreads = [...names].filter(([, n]) =>
        /^(Native-Transpor|MutationStage|epollEventLoop)/.test(n),
      );
      expect(requestThreads.length).toBeGreaterThan(0);
      for (const [tid] of requestThreads) expect(niceOf(tid)).toBe(3);
      if (!cgroupWritable()) {
        expect(started.message).toMatch(/notice: no writable cgroup-v1 cpu controller/);
        return;
      }
      expect(started.message).toMatch(/\d+ background threads in .*cpu\.shares 2/);
      expect(readFileSync(join(GROUP, 'cpu.shares'), 'utf8').trim()).toBe('2');
      const inGroup = new Set(
        readFileSync(join(GROUP, 'tasks'), 'utf8').split('\n').filter(Boolean).map(Number),
      );
      const movedNames = [...inGroup]
        .map((tid) => names.get(tid))
        .filter((n): n is string => n !== undefined);
      // The thread that starts flushes, the flush or compaction pools' threads, the JIT compilers.
      expect(movedNames).toContain('NativePoolClean');
      expect(movedNames.some((n) => /^(MemtableFlushWr|PerDiskMemtable|CompactionExecu)/.test(n))).toBe(true);
      expect(movedNames.some((n) => /^C2 CompilerThre/.test(n))).toBe(true);
      for (const [tid] of requestThreads) expect(inGroup.has(tid)).toBe(false);
      await stopCassandra({ port: PORT, wipe: true });
      expect(existsSync(GROUP)).toBe(false);
    }, 240_000);
  },
);
