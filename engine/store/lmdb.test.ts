import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  describeIndexStoreContract,
  describeMessageStoreContract,
  describeReminderStoreContract,
  describeStateStoreContract,
  type Harness,
} from './contract.ts';
import { openLmdbStores, type LmdbStores } from './lmdb.ts';
import { MemoryReminderStore, MemoryStateStore } from './memory.ts';

function lmdbHarness<S>(pick: (s: LmdbStores) => S): () => Promise<Harness<S>> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-lmdb-'));
    const handles: LmdbStores[] = [openLmdbStores({ path: dir })];
    return {
      store: pick(handles[0]!),
      reopen: async () => {
        await handles[handles.length - 1]!.close();
        const h = openLmdbStores({ path: dir });
        handles.push(h);
        return pick(h);
      },
      cleanup: async () => {
        for (const h of handles) await h.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  };
}

describeMessageStoreContract(
  'lmdb',
  lmdbHarness((s) => s.messages),
);
describeIndexStoreContract(
  'lmdb',
  lmdbHarness((s) => s.index),
);
describeStateStoreContract(
  'lmdb',
  lmdbHarness((s) => s.state),
);
describeReminderStoreContract(
  'lmdb',
  lmdbHarness((s) => s.reminders),
);
describeStateStoreContract('memory', async () => ({
  store: new MemoryStateStore(),
  cleanup: async () => {},
}));
describeReminderStoreContract('memory', async () => ({
  store: new MemoryReminderStore(),
  cleanup: async () => {},
}));

describe('lmdb store across threads and processes', () => {
  it('store - a worker thread and the main thread append to one environment; conflicts are detected', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-lmdb-mt-'));
    const main = openLmdbStores({ path: dir });
    try {
      const code = `
        const { register } = await import('tsx/esm/api'); register();
        const { workerData, parentPort } = await import('node:worker_threads');
        const { openLmdbStores } = await import(workerData.mod);
        const s = openLmdbStores({ path: workerData.dir });
        let conflicts = 0;
        for (let i = 1; i <= 200; i++) {
          await s.messages.append({ tenant: 't', stream: 'w', seq: i, at: i, body: { i } });
          try { await s.messages.append({ tenant: 't', stream: 'shared', seq: i, at: i, body: { by: 'worker' } }); }
          catch (e) { if (e.code === 'SB_ERR_SEQ_CONFLICT') conflicts++; else throw e; }
        }
        await s.close();
        parentPort.postMessage(conflicts);
      `;
      const w = new Worker(code, {
        eval: true,
        workerData: { dir, mod: new URL('./lmdb.ts', import.meta.url).href },
      });
      let mainConflicts = 0;
      const mainJob = (async () => {
        for (let i = 1; i <= 200; i++) {
          try {
            await main.messages.append({
              tenant: 't',
              stream: 'shared',
              seq: i,
              at: i,
              body: { by: 'main' },
            });
          } catch (e) {
            if ((e as { code?: string }).code === 'SB_ERR_SEQ_CONFLICT') mainConflicts++;
            else throw e;
          }
        }
      })();
      const workerConflicts = await new Promise<number>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      await mainJob;
      // Every seq of the shared stream was won by exactly one writer.
      expect(mainConflicts + workerConflicts).toBe(200);
      expect((await main.messages.read('t', 'shared', { limit: 1000 })).map((e) => e.seq)).toEqual(
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      expect(await main.messages.lastSeq('t', 'w')).toBe(200);
    } finally {
      await main.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
