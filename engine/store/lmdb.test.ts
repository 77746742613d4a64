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

describe('lmdb store - idempotency from the rows', () => {
  const ev = (stream: string, seq: number, cm: string) => ({
    tenant: 't',
    stream,
    seq,
    at: seq,
    body: { text: `${stream}-${seq}` },
    clientMsgId: cm,
  });

  it('store - resends are duplicates after a reopen and after their stream left the bounded id map', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-lmdb-ids-'));
    let s = openLmdbStores({ path: dir, idCacheMaxIds: 10 });
    try {
      for (let st = 0; st < 5; st++)
        for (let i = 1; i <= 8; i++) await s.messages.append(ev(`s${st}`, i, `c${st}-${i}`));
      // 40 ids written, at most 10 (plus the stream in use) held.
      expect(s.messages.idCacheSize().ids).toBeLessThanOrEqual(18);
      for (let st = 0; st < 5; st++)
        for (let i = 1; i <= 8; i++) {
          // A resend carries the next seq the writer would use; it must not be stored.
          const r = await s.messages.append(ev(`s${st}`, 9, `c${st}-${i}`));
          expect(r).toMatchObject({ duplicate: true, event: { seq: i, clientMsgId: `c${st}-${i}` } });
        }
      await s.close();
      s = openLmdbStores({ path: dir });
      expect(s.messages.idCacheSize()).toEqual({ streams: 0, ids: 0 });
      const again = await s.messages.append(ev('s3', 9, 'c3-4'));
      expect(again).toMatchObject({ duplicate: true, event: { seq: 4 } });
      expect((await s.messages.findByClientMsgId('t', 's1', 'c1-8'))?.seq).toBe(8);
      expect(await s.messages.findByClientMsgId('t', 's1', 'nope')).toBeUndefined();
      for (let st = 0; st < 5; st++) expect(await s.messages.lastSeq('t', `s${st}`)).toBe(8);
      const batch = await s.messages.appendBatch([ev('s2', 9, 'c2-1'), ev('s2', 9, 'fresh')]);
      expect(batch.map((r) => [r.event.seq, r.duplicate])).toEqual([
        [1, true],
        [9, false],
      ]);
      expect((await s.messages.append(ev('s2', 10, 'fresh'))).duplicate).toBe(true);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('store - two ids of one stream with the same 32-bit hash are told apart', async () => {
    // 'c693596' and 'c1170850' share their FNV-1a hash.
    const dir = mkdtempSync(join(tmpdir(), 'sb-lmdb-ids3-'));
    let s = openLmdbStores({ path: dir });
    try {
      expect((await s.messages.append(ev('h', 1, 'c693596'))).duplicate).toBe(false);
      // The second id's hash is taken by the first: not a duplicate of it.
      expect((await s.messages.append(ev('h', 2, 'c1170850'))).duplicate).toBe(false);
      for (let round = 0; round < 2; round++) {
        expect(await s.messages.append(ev('h', 3, 'c693596'))).toMatchObject({
          duplicate: true,
          event: { seq: 1 },
        });
        expect(await s.messages.append(ev('h', 3, 'c1170850'))).toMatchObject({
          duplicate: true,
          event: { seq: 2 },
        });
        expect((await s.messages.findByClientMsgId('t', 'h', 'c1170850'))?.seq).toBe(2);
        // Reloaded from the rows, the ambiguity is found again.
        await s.close();
        s = openLmdbStores({ path: dir });
      }
      expect((await s.messages.append(ev('h', 3, 'c3'))).event.seq).toBe(3);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('store - a second writer on the same data: its ids are found after the seq conflict', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-lmdb-ids2-'));
    const a = openLmdbStores({ path: dir });
    const b = openLmdbStores({ path: dir });
    try {
      await a.messages.append(ev('x', 1, 'one'));
      // b writes seq 2 with id 'two'; a's map of 'x' does not know it.
      await b.messages.append(ev('x', 2, 'two'));
      const r = await a.messages.append(ev('x', 2, 'two'));
      expect(r).toMatchObject({ duplicate: true, event: { seq: 2, clientMsgId: 'two' } });
      await expect(a.messages.append(ev('x', 2, 'three'))).rejects.toMatchObject({
        code: 'SB_ERR_SEQ_CONFLICT',
      });
      expect((await a.messages.read('t', 'x')).map((e) => e.clientMsgId)).toEqual(['one', 'two']);
      // b's map of 'x' was loaded before a wrote 'three' and 'four': a lookup still finds them.
      expect((await b.messages.findByClientMsgId('t', 'x', 'two'))?.seq).toBe(2);
      await a.messages.append(ev('x', 3, 'three'));
      await a.messages.append(ev('x', 4, 'four'));
      expect((await b.messages.findByClientMsgId('t', 'x', 'four'))?.seq).toBe(4);
      expect((await b.messages.findByClientMsgId('t', 'x', 'three'))?.seq).toBe(3);
      expect(await b.messages.append(ev('x', 5, 'three'))).toMatchObject({
        duplicate: true,
        event: { seq: 3 },
      });
    } finally {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
