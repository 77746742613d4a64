import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { open } from 'lmdb';
import { afterAll, describe, expect, it } from 'vitest';
import {
  describeIndexStoreContract,
  describeMessageStoreContract,
  describeReminderStoreContract,
  describeStateStoreContract,
  type Harness,
} from './contract.ts';
import { openLmdbStores, type LmdbStores } from './lmdb.ts';
import { MemoryReminderStore, MemoryStateStore } from './memory.ts';
import type { StoredEvent } from './types.ts';
import { decodeRows, encodeRecord, listSegments, readSegment, WAL_MAGIC } from './wal.ts';

function lmdbHarness<S>(
  pick: (s: LmdbStores) => S,
  opts: { exclusive?: boolean } = {},
): () => Promise<Harness<S>> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-lmdb-'));
    const handles: LmdbStores[] = [openLmdbStores({ path: dir, ...opts })];
    if (opts.exclusive) expect(handles[0]!.messages.isExclusive()).toBe(true);
    return {
      store: pick(handles[0]!),
      reopen: async () => {
        await handles[handles.length - 1]!.close();
        const h = openLmdbStores({ path: dir, ...opts });
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
describeMessageStoreContract(
  'lmdb exclusive',
  lmdbHarness((s) => s.messages, { exclusive: true }),
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
    // No checkpoints: what each thread sees of the other's appends comes from `recent`.
    const main = openLmdbStores({ path: dir, checkpointMs: 0 });
    try {
      const code = `
        const { register } = await import('tsx/esm/api'); register();
        const { workerData, parentPort } = await import('node:worker_threads');
        const { openLmdbStores } = await import(workerData.mod);
        const s = openLmdbStores({ path: workerData.dir, checkpointMs: 0 });
        let conflicts = 0;
        for (let i = 1; i <= 200; i++) {
          await s.messages.append({ tenant: 't', stream: 'w', seq: i, at: i, clientMsgId: 'w' + i, body: { i } });
          try { await s.messages.append({ tenant: 't', stream: 'shared', seq: i, at: i, body: { by: 'worker' } }); }
          catch (e) { if (e.code === 'SB_ERR_SEQ_CONFLICT') conflicts++; else throw e; }
        }
        const pending = s.messages.pendingCheckpoint();
        parentPort.postMessage({ conflicts, pending });
        // Stays open (nothing checkpointed) until the main thread has looked.
        await new Promise((resolve) => parentPort.once('message', resolve));
        await s.close();
        parentPort.postMessage('closed');
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
      const fromWorker = await new Promise<{ conflicts: number; pending: number }>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      await mainJob;
      // Every seq of the shared stream was won by exactly one writer.
      expect(mainConflicts + fromWorker.conflicts).toBe(200);
      expect((await main.messages.read('t', 'shared', { limit: 1000 })).map((e) => e.seq)).toEqual(
        Array.from({ length: 200 }, (_, i) => i + 1),
      );
      // The worker's appends are acknowledged and not checkpointed, yet visible here.
      expect(fromWorker.pending).toBeGreaterThanOrEqual(200);
      expect(await main.messages.lastSeq('t', 'w')).toBe(200);
      expect(
        (await main.messages.read('t', 'w', { direction: 'backward', limit: 3 })).map((e) => e.seq),
      ).toEqual([200, 199, 198]);
      expect((await main.messages.findByClientMsgId('t', 'w', 'w77'))?.body).toEqual({ i: 77 });
      // A resend of the worker's message from this thread is a duplicate; a taken seq a conflict.
      expect(
        await main.messages.append({ tenant: 't', stream: 'w', seq: 201, at: 1, clientMsgId: 'w5', body: 0 }),
      ).toMatchObject({ duplicate: true, event: { seq: 5, body: { i: 5 } } });
      await expect(
        main.messages.append({ tenant: 't', stream: 'w', seq: 200, at: 1, clientMsgId: 'new', body: 0 }),
      ).rejects.toMatchObject({ code: 'SB_ERR_SEQ_CONFLICT' });
      const closed = new Promise((resolve) => w.once('message', resolve));
      w.postMessage('close');
      expect(await closed).toBe('closed');
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

/** A message as the crash child appends it; the child prints each one after its ack. */
interface Acked {
  stream: string;
  seq: number;
  cm: string;
}

const bodyOf = (a: Acked): { k: string; seq: number; text: string } => ({
  k: a.stream,
  seq: a.seq,
  text: 'x'.repeat(a.seq % 50),
});

/**
 * Runs a child process that appends to 8 streams (no checkpoints, so every acknowledged row is
 * only in its log and in `recent`; one stream in atomic batches of three) and kills it with SIGKILL once `acks` acknowledgements have
 * arrived. Returns the acknowledged messages.
 */
async function appendThenKill(dir: string, acks: number, exclusive = false): Promise<Acked[]> {
  const mod = new URL('./lmdb.ts', import.meta.url).href;
  const code = `
    const { openLmdbStores } = await import(${JSON.stringify(mod)});
    const s = openLmdbStores({ path: ${JSON.stringify(dir)}, checkpointMs: 0, exclusive: ${exclusive} });
    if (s.messages.isExclusive() !== ${exclusive}) throw new Error('exclusive mode not as asked');
    const ev = (k, seq) => ({ tenant: 't', stream: 'k' + k, seq, at: seq, clientMsgId: 'c' + k + '-' + seq,
      body: { k: 'k' + k, seq, text: 'x'.repeat(seq % 50) } });
    const acked = (e) => process.stdout.write(JSON.stringify({ stream: e.stream, seq: e.seq, cm: e.clientMsgId }) + '\\n');
    await Promise.all(Array.from({ length: 8 }, async (_, k) => {
      // Stream k7 appends batches of three (one log record each), the others one at a time.
      for (let seq = 1; ; seq += k === 7 ? 3 : 1) {
        if (k === 7) {
          const batch = [ev(k, seq), ev(k, seq + 1), ev(k, seq + 2)];
          await s.messages.appendBatch(batch);
          batch.forEach(acked);
        } else {
          const e = ev(k, seq);
          await s.messages.append(e);
          acked(e);
        }
      }
    }));
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked: Acked[] = [];
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', () => resolve());
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        acked.push(JSON.parse(buf.slice(0, nl)) as Acked);
        buf = buf.slice(nl + 1);
      }
      if (acked.length >= acks) child.kill('SIGKILL');
    });
  });
  expect(child.signalCode).toBe('SIGKILL');
  return acked;
}

/** The log segments the child left: files named after an owner, in write order. */
function segmentsIn(dir: string): string[] {
  return listSegments(join(dir, 'wal')).map((s) => s.file);
}

/** Rows of every intact record of a segment, with where each record starts. */
function recordsOf(file: string): Array<{ offset: number; length: number; rows: Array<[string, number]> }> {
  const bytes = readFileSync(file);
  const out: Array<{ offset: number; length: number; rows: Array<[string, number]> }> = [];
  let offset = WAL_MAGIC.length;
  for (const payload of readSegment(bytes).records) {
    out.push({ offset, length: payload.length, rows: decodeRows(payload).map((r) => [r.key[1], r.key[2]]) });
    offset += 8 + payload.length;
  }
  return out;
}

/** The highest seq of each of the 8 streams in `records` (0 when none). */
function lastSeqs(records: Array<{ rows: Array<[string, number]> }>): Map<string, number> {
  const last = new Map<string, number>(Array.from({ length: 8 }, (_, k) => [`k${k}`, 0]));
  for (const { rows } of records)
    for (const [stream, seq] of rows) last.set(stream, Math.max(last.get(stream)!, seq));
  return last;
}

/** Every stream's seqs are 1..n without gaps, and each message has the body it was sent with. */
async function expectGapFree(s: LmdbStores): Promise<Map<string, number>> {
  const last = new Map<string, number>();
  for (let k = 0; k < 8; k++) {
    const stream = `k${k}`;
    const got = await s.messages.read('t', stream, { limit: 1000 });
    expect(got.map((e) => e.seq)).toEqual(Array.from({ length: got.length }, (_, i) => i + 1));
    for (const e of got) {
      expect(e.clientMsgId).toBe(`c${k}-${e.seq}`);
      expect(e.body).toEqual(bodyOf({ stream, seq: e.seq, cm: '' }));
    }
    expect(await s.messages.lastSeq('t', stream)).toBe(got.length);
    last.set(stream, got.length);
  }
  return last;
}

/** A maker of temporary directories for a describe block, removed after its tests. */
function scratchDirs(prefix: string): () => string {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}

describe('lmdb store - write-ahead log recovery', () => {
  const tmp = scratchDirs('sb-lmdb-wal-');

  it.each([
    ['left as it was', (_dir: string) => {}],
    ['deleted', (dir: string) => rmSync(join(dir, 'recent'), { recursive: true, force: true })],
    [
      'overwritten with garbage',
      (dir: string) => {
        for (const f of readdirSync(join(dir, 'recent')))
          writeFileSync(join(dir, 'recent', f), Buffer.alloc(64 * 1024, 0x5a));
      },
    ],
  ])(
    'store - a process killed right after its acks loses nothing acknowledged (recent %s)',
    async (_what, damage) => {
      const dir = tmp();
      const acked = await appendThenKill(dir, 400);
      // Nothing was checkpointed: the acknowledged rows are only in the dead process's log.
      const logged = lastSeqs(segmentsIn(dir).flatMap(recordsOf));
      expect(Math.max(...logged.values())).toBeGreaterThan(0);
      damage(dir);
      const s = openLmdbStores({ path: dir, checkpointMs: 0 });
      try {
        const last = await expectGapFree(s);
        // Exactly what was logged: a row claimed in `recent` but not logged when the process died
        // was never acknowledged, and is gone.
        expect(last).toEqual(logged);
        for (const a of acked) {
          expect(a.seq).toBeLessThanOrEqual(last.get(a.stream)!);
          const found = await s.messages.findByClientMsgId('t', a.stream, a.cm);
          expect(found).toMatchObject({ seq: a.seq, body: bodyOf(a) });
        }
        // A resend after the restart is recognised, at whatever seq the writer now offers.
        const a = acked[acked.length - 1]!;
        const again = await s.messages.append({
          tenant: 't',
          stream: a.stream,
          seq: last.get(a.stream)! + 1,
          at: 1,
          clientMsgId: a.cm,
          body: { resend: true },
        });
        expect(again).toMatchObject({ duplicate: true, event: { seq: a.seq, body: bodyOf(a) } });
        // The dead process's log was replayed and deleted.
        expect(segmentsIn(dir).filter((f) => !f.includes(`/${process.pid}.`))).toEqual([]);
      } finally {
        await s.close();
      }
      // And it all is in the main tree now: a second reopen (recent wiped again) sees the same.
      const again = openLmdbStores({ path: dir, checkpointMs: 0 });
      try {
        await expectGapFree(again);
        for (const a of acked)
          expect(
            (await again.messages.read('t', a.stream, { afterSeq: a.seq - 1, limit: 1 }))[0]?.clientMsgId,
          ).toBe(a.cm);
      } finally {
        await again.close();
      }
    },
    30_000,
  );

  it('store - a torn last record is ignored and the records before it are kept', async () => {
    const dir = tmp();
    await appendThenKill(dir, 200);
    const file = segmentsIn(dir).at(-1)!;
    const records = recordsOf(file);
    expect(records.length).toBeGreaterThan(10);
    // The last batch (three rows in one record) becomes the torn end of the log: the file is cut
    // in the middle of its payload, as a crash during its write would leave it.
    const cut = records.findLastIndex((r) => r.rows.length === 3);
    expect(cut).toBeGreaterThan(0);
    truncateSync(file, records[cut]!.offset + 8 + Math.floor(records[cut]!.length / 2));
    const s = openLmdbStores({ path: dir, checkpointMs: 0 });
    try {
      const last = await expectGapFree(s);
      // Exactly the records before the cut are there: none of the batch's three rows.
      expect(last).toEqual(lastSeqs(records.slice(0, cut)));
      expect(readdirSync(join(dir, 'wal')).filter((f) => f.endsWith('.damaged'))).toEqual([]);
    } finally {
      await s.close();
    }
  }, 30_000);

  it('store - a record with a wrong checksum stops the replay of its file there', async () => {
    const dir = tmp();
    await appendThenKill(dir, 200);
    const file = segmentsIn(dir).at(-1)!;
    const records = recordsOf(file);
    expect(records.length).toBeGreaterThan(20);
    const bad = Math.floor(records.length / 2);
    const bytes = readFileSync(file);
    // Change the last byte of record `bad` (inside the message's encoded body): the record still
    // decodes, only its checksum tells.
    const at = records[bad]!.offset + 8 + records[bad]!.length - 1;
    bytes[at] = bytes[at]! === 0x78 ? 0x79 : 0x78;
    writeFileSync(file, bytes);
    const s = openLmdbStores({ path: dir, checkpointMs: 0 });
    try {
      const last = await expectGapFree(s);
      expect(last).toEqual(lastSeqs(records.slice(0, bad)));
      // The damaged file is kept aside for inspection, not replayed again.
      expect(readdirSync(join(dir, 'wal')).filter((f) => f.endsWith('.damaged'))).toHaveLength(1);
    } finally {
      await s.close();
    }
  }, 30_000);

  it('store - a live instance keeps its rows while another opener recovers a dead process', async () => {
    const dir = tmp();
    const live = openLmdbStores({ path: dir, checkpointMs: 0 });
    try {
      await live.messages.append({ tenant: 't', stream: 'live', seq: 1, at: 1, clientMsgId: 'l1', body: 1 });
      const acked = await appendThenKill(dir, 100);
      // The dead child's log (this process's live instance has one too).
      const logged = lastSeqs(
        segmentsIn(dir)
          .filter((f) => !f.includes(`/${process.pid}.`))
          .flatMap(recordsOf),
      );
      // A second instance opens while the first one is live: it replays the dead log, and must
      // not wipe `recent` (which holds the live instance's unckeckpointed row).
      const other = openLmdbStores({ path: dir, checkpointMs: 0 });
      try {
        // The dead process's rows that `recent` still held but its log did not (claimed, never
        // acknowledged) were removed; the logged ones are in the main tree.
        expect(await expectGapFree(other)).toEqual(logged);
        for (const st of [live, other]) {
          expect((await st.messages.read('t', 'live')).map((e) => e.clientMsgId)).toEqual(['l1']);
          for (const a of acked)
            expect((await st.messages.findByClientMsgId('t', a.stream, a.cm))?.seq).toBe(a.seq);
        }
        await expect(
          other.messages.append({ tenant: 't', stream: 'live', seq: 1, at: 1, body: 'x' }),
        ).rejects.toMatchObject({ code: 'SB_ERR_SEQ_CONFLICT' });
        expect(segmentsIn(dir).every((f) => f.includes(`/${process.pid}.`))).toBe(true);
      } finally {
        await other.close();
      }
    } finally {
      await live.close();
    }
  }, 30_000);
});

describe('lmdb store - checkpoints', () => {
  it('store - checkpoints retire log segments: the log does not grow under sustained appends', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-lmdb-ckpt-'));
    const s = openLmdbStores({ path: dir, checkpointMs: 20, walSegmentBytes: 8 * 1024, recentGraceMs: 100 });
    const walDir = join(dir, 'wal');
    try {
      const seen = new Set<string>();
      let most = 0;
      const body = { text: 'y'.repeat(200) };
      await Promise.all(
        Array.from({ length: 20 }, async (_, k) => {
          for (let seq = 1; seq <= 150; seq++) {
            await s.messages.append({
              tenant: 't',
              stream: `r${k}`,
              seq,
              at: seq,
              clientMsgId: `r${k}-${seq}`,
              body,
            });
            const files = readdirSync(walDir);
            for (const f of files) seen.add(f);
            most = Math.max(most, files.length);
          }
        }),
      );
      // 3,000 appends of ~250 bytes went through many 8 KiB segments, but few were ever on disk at once.
      expect(seen.size).toBeGreaterThan(50);
      expect(most).toBeLessThan(30);
      await s.messages.checkpoint();
      await new Promise((r) => setTimeout(r, 150));
      await s.messages.checkpoint();
      expect(s.messages.pendingCheckpoint()).toBe(0);
      expect(readdirSync(walDir)).toHaveLength(1);
      for (let k = 0; k < 20; k++) expect(await s.messages.lastSeq('t', `r${k}`)).toBe(150);
    } finally {
      await s.close();
    }
    // A clean close leaves no log behind, and the data is in the main tree.
    expect(readdirSync(walDir)).toEqual([]);
    const again = openLmdbStores({ path: dir });
    try {
      expect((await again.messages.read('t', 'r7', { limit: 1000 })).length).toBe(150);
    } finally {
      await again.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('lmdb store - row format', () => {
  it('store - rows are plain msgpack maps; rows an earlier version wrote with record definitions still read and deduplicate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-lmdb-rows-'));
    try {
      // An earlier version's row: encoded by the main tree's own codec (msgpack records).
      const root = open({ path: dir, maxDbs: 16 });
      const old = root.openDB<unknown, Array<string | number>>({
        name: 'messages',
        keyEncoding: 'ordered-binary',
        encoding: 'msgpack',
      });
      old.putSync(['t', 's', 1], { at: 5, cm: 'c1', body: { kind: 'message', text: 'old' } });
      expect(old.getBinary(['t', 's', 1])![0]).not.toBe(0xde);
      await root.close();

      const s = openLmdbStores({ path: dir, exclusive: true });
      try {
        const dup = await s.messages.append({
          tenant: 't',
          stream: 's',
          seq: 2,
          at: 6,
          clientMsgId: 'c1',
          body: {},
        });
        expect(dup).toMatchObject({
          duplicate: true,
          event: { seq: 1, body: { kind: 'message', text: 'old' } },
        });
        await s.messages.append({
          tenant: 't',
          stream: 's',
          seq: 2,
          at: 6,
          clientMsgId: 'c2',
          body: { text: 'new' },
        });
        await s.messages.checkpoint();
        const read = await s.messages.read('t', 's');
        expect(read.map((e) => [e.seq, e.clientMsgId, e.body])).toEqual([
          [1, 'c1', { kind: 'message', text: 'old' }],
          [2, 'c2', { text: 'new' }],
        ]);
      } finally {
        await s.close();
      }
      const root2 = open({ path: dir, maxDbs: 16 });
      const rows = root2.openDB<unknown, Array<string | number>>({
        name: 'messages',
        keyEncoding: 'ordered-binary',
      });
      // A msgpack map (map 16), no record extension.
      expect(rows.getBinary(['t', 's', 2])![0]).toBe(0xde);
      await root2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lmdb store - a quiet shared store', () => {
  it('store - a lone row leaves `recent` and the store goes on (the process must not abort)', async () => {
    // A shared instance (a process with worker threads, or a cluster node) that gets one message
    // now and then: its row is claimed in `recent`, checkpointed, then removed, leaving `recent`
    // empty, again and again. Run in a child process: a native abort there fails the test instead
    // of taking the test runner down.
    const dir = mkdtempSync(join(tmpdir(), 'sb-lmdb-quiet-'));
    const mod = new URL('./lmdb.ts', import.meta.url).href;
    const code = `
      const { openLmdbStores } = await import(${JSON.stringify(mod)});
      const s = openLmdbStores({ path: ${JSON.stringify(dir)}, checkpointMs: 20, recentGraceMs: 50 });
      if (s.messages.isExclusive()) throw new Error('expected a shared store');
      for (let i = 0; i < 4; i++) {
        await s.messages.append({ tenant: 't', stream: 's' + i, seq: 1, at: 1, clientMsgId: 'c' + i, body: { i } });
        await new Promise((r) => setTimeout(r, 250));
      }
      for (let i = 0; i < 4; i++) if ((await s.messages.lastSeq('t', 's' + i)) !== 1) throw new Error('row ' + i + ' missing');
      await s.close();
      process.stdout.write('done\\n');
    `;
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exit = await new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.on('exit', (code, signal) => resolve({ code, signal })),
      );
      expect({ ...exit, out }).toEqual({ code: 0, signal: null, out: 'done\n' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('lmdb store - log owners', () => {
  it('store - a log whose pid is alive but started at another time is a gone process’s, and is replayed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-lmdb-owner-'));
    try {
      // Log records made by a real instance, then copied under other owners' names with the
      // stream renamed: the copies hold rows that nothing else has.
      const s1 = openLmdbStores({ path: dir, checkpointMs: 0 });
      for (let i = 1; i <= 5; i++)
        await s1.messages.append({
          tenant: 't',
          stream: 'a',
          seq: i,
          at: i,
          clientMsgId: `a${i}`,
          body: { i },
        });
      const [seg] = listSegments(join(dir, 'wal'));
      const rows = readSegment(readFileSync(seg!.file)).records.flatMap((p) => decodeRows(p));
      const copy = (name: string, stream: string): string => {
        const file = join(dir, 'wal', `${name}-00000001.log`);
        const records = rows.map((r) =>
          encodeRecord([{ key: [r.key[0], stream, r.key[2]], value: r.value }]),
        );
        writeFileSync(file, Buffer.concat([WAL_MAGIC, ...records]));
        return file;
      };
      const { pid, boot, start } = seg!.owner;
      // Same pid (as a restarted container's pid 1 would have), another start time: gone.
      const reused = copy(`${pid}.1.${boot}.deadbeef`, 'reused');
      // Same pid and start time: an instance of this very process, live; its log is left alone.
      const live = copy(`${pid}.${start}.${boot}.0badf00d`, 'live');
      await s1.close();
      const s2 = openLmdbStores({ path: dir, checkpointMs: 0 });
      try {
        expect((await s2.messages.read('t', 'reused')).map((e) => e.clientMsgId)).toEqual([
          'a1',
          'a2',
          'a3',
          'a4',
          'a5',
        ]);
        expect(await s2.messages.lastSeq('t', 'live')).toBe(0);
        expect(existsSync(reused)).toBe(false);
        expect(existsSync(live)).toBe(true);
      } finally {
        await s2.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lmdb store - a failed log', () => {
  it('store - a failed log write refuses appends with SB_ERR_STORE_UNAVAILABLE; a resend elsewhere is acknowledged only once logged there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-lmdb-walfail-'));
    const a = openLmdbStores({ path: dir, checkpointMs: 0 });
    const b = openLmdbStores({ path: dir, checkpointMs: 0 });
    const ev = (seq: number, cm: string): StoredEvent => ({
      tenant: 't',
      stream: 'f',
      seq,
      at: seq,
      clientMsgId: cm,
      body: { cm },
    });
    // a's log descriptor stops taking writes (a directory's stands in for a failing disk).
    const wal = (a.messages as unknown as { wal: { fd: number } }).wal;
    const logFd = wal.fd;
    const dirFd = openSync(dir, 'r');
    try {
      await a.messages.append(ev(1, 'one'));
      wal.fd = dirFd;
      await expect(a.messages.append(ev(2, 'two'))).rejects.toMatchObject({
        code: 'SB_ERR_STORE_UNAVAILABLE',
      });
      // From now on a refuses everything, without another write.
      await expect(a.messages.append(ev(3, 'three'))).rejects.toMatchObject({
        code: 'SB_ERR_STORE_UNAVAILABLE',
      });
      // 'two' holds seq 2 in `recent` but may never have reached a disk. A resend through b is a
      // duplicate of it, answered after b logged its own copy.
      const r = await b.messages.append(ev(3, 'two'));
      expect(r).toMatchObject({ duplicate: true, event: { seq: 2, body: { cm: 'two' } } });
      const own = listSegments(join(dir, 'wal')).filter(
        (f) => f.owner.tag === (b.messages as unknown as { tag: number }).tag,
      );
      const logged = own.flatMap((f) =>
        readSegment(readFileSync(f.file)).records.flatMap((p) => decodeRows(p).map((row) => row.key)),
      );
      expect(logged).toContainEqual(['t', 'f', 2]);
    } finally {
      wal.fd = logFd;
      closeSync(dirFd);
      await b.close();
      await a.close();
    }
    // a's log is kept for the next open; b checkpointed 'two'.
    const again = openLmdbStores({ path: dir, checkpointMs: 0 });
    try {
      expect((await again.messages.read('t', 'f')).map((e) => e.clientMsgId)).toEqual(['one', 'two']);
    } finally {
      await again.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lmdb store - exclusive mode', () => {
  const tmp = scratchDirs('sb-lmdb-x-');
  const ev = (stream: string, seq: number): StoredEvent => ({
    tenant: 't',
    stream,
    seq,
    at: seq,
    clientMsgId: `${stream}-${seq}`,
    body: { n: seq },
  });

  it('store - ordered appends: a new row is placed at once; resends, taken seqs and shared stores decline, writing nothing', async () => {
    const dir = tmp();
    const x = openLmdbStores({ path: dir, exclusive: true, checkpointMs: 0 });
    try {
      // The next append of the stream goes out before the first is durable; both are kept, in order.
      const one = x.messages.appendOrdered(ev('o', 1));
      const two = x.messages.appendOrdered(ev('o', 2));
      expect(one).toBeInstanceOf(Promise);
      expect(two).toBeInstanceOf(Promise);
      expect((await one)?.duplicate).toBe(false);
      expect((await two)?.event.seq).toBe(2);
      // A resend, a seq already taken: declined (undefined), and `append` answers as always.
      expect(x.messages.appendOrdered(ev('o', 2))).toBeUndefined();
      expect(x.messages.appendOrdered({ ...ev('o', 1), clientMsgId: 'other' })).toBeUndefined();
      expect(await x.messages.lastSeq('t', 'o')).toBe(2);
      expect((await x.messages.append(ev('o', 2))).duplicate).toBe(true);
      await expect(x.messages.append({ ...ev('o', 1), clientMsgId: 'other' })).rejects.toMatchObject({
        code: 'SB_ERR_SEQ_CONFLICT',
      });
      expect((await x.messages.read('t', 'o')).map((e) => e.clientMsgId)).toEqual(['o-1', 'o-2']);
      // Bad fields are refused as by `append`.
      await expect(x.messages.appendOrdered({ ...ev('o', 3), stream: '' })).rejects.toMatchObject({
        code: 'SB_ERR_INVALID_FIELD',
      });
    } finally {
      await x.close();
    }
    const shared = openLmdbStores({ path: dir });
    try {
      expect(shared.messages.isExclusive()).toBe(false);
      expect(shared.messages.appendOrdered(ev('o', 3))).toBeUndefined();
      expect(await shared.messages.lastSeq('t', 'o')).toBe(2);
    } finally {
      await shared.close();
    }
  });

  it('store - an exclusive instance keeps every other open of the path out until it closes', async () => {
    const dir = tmp();
    const x = openLmdbStores({ path: dir, exclusive: true });
    expect(x.messages.isExclusive()).toBe(true);
    await x.messages.append(ev('s', 1));
    for (const exclusive of [false, true])
      expect(() => openLmdbStores({ path: dir, exclusive })).toThrow(
        expect.objectContaining({ code: 'SB_ERR_STORE_UNAVAILABLE' }),
      );
    // Nothing was written to `recent`: the row waited in memory and is in the main tree now.
    await x.close();
    expect(readdirSync(join(dir, 'wal')).filter((f) => f.endsWith('.exclusive'))).toEqual([]);
    const shared = openLmdbStores({ path: dir });
    try {
      expect(shared.messages.isExclusive()).toBe(false);
      expect(await shared.messages.read('t', 's')).toMatchObject([{ seq: 1, body: { n: 1 } }]);
    } finally {
      await shared.close();
    }
  });

  it('store - asked for while another instance is open, the store opens shared and both see every row', async () => {
    const dir = tmp();
    const a = openLmdbStores({ path: dir });
    const b = openLmdbStores({ path: dir, exclusive: true });
    try {
      expect(b.messages.isExclusive()).toBe(false);
      await a.messages.append(ev('s', 1));
      await b.messages.append(ev('s', 2));
      await expect(a.messages.append(ev('s', 2))).resolves.toMatchObject({ duplicate: true });
      await expect(b.messages.append({ ...ev('s', 2), clientMsgId: 'other' })).rejects.toMatchObject({
        code: 'SB_ERR_SEQ_CONFLICT',
      });
      expect((await a.messages.read('t', 's')).map((e) => e.seq)).toEqual([1, 2]);
    } finally {
      await b.close();
      await a.close();
    }
  });

  it('store - the marker of an instance that is gone is removed at the next open', async () => {
    const dir = tmp();
    await appendThenKill(dir, 100, true);
    expect(readdirSync(join(dir, 'wal')).filter((f) => f.endsWith('.exclusive'))).toHaveLength(1);
    const s = openLmdbStores({ path: dir, exclusive: true });
    try {
      expect(s.messages.isExclusive()).toBe(true);
      // Its own marker only.
      expect(
        readdirSync(join(dir, 'wal')).filter(
          (f) => f.endsWith('.exclusive') && !f.startsWith(`${process.pid}.`),
        ),
      ).toEqual([]);
    } finally {
      await s.close();
    }
  }, 30_000);

  it('store - an exclusive process killed right after its acks loses nothing acknowledged', async () => {
    const dir = tmp();
    const acked = await appendThenKill(dir, 400, true);
    const logged = lastSeqs(segmentsIn(dir).flatMap(recordsOf));
    const s = openLmdbStores({ path: dir, checkpointMs: 0, exclusive: true });
    try {
      const last = await expectGapFree(s);
      expect(last).toEqual(logged);
      for (const a of acked)
        expect(await s.messages.findByClientMsgId('t', a.stream, a.cm)).toMatchObject({
          seq: a.seq,
          body: bodyOf(a),
        });
    } finally {
      await s.close();
    }
  }, 30_000);

  it('store - rows stay readable while checkpoints move them from memory to the main tree', async () => {
    const dir = tmp();
    const s = openLmdbStores({ path: dir, checkpointMs: 2, exclusive: true });
    try {
      for (let seq = 1; seq <= 300; seq++) {
        for (const stream of ['a', 'b']) {
          await s.messages.append(ev(stream, seq));
          // Right after the ack and at any point of a checkpoint: the row, the stream's last seq,
          // and the resend recognised.
          expect(await s.messages.lastSeq('t', stream)).toBe(seq);
          const page = await s.messages.read('t', stream, { afterSeq: seq - 2 });
          expect(page.map((e) => e.seq)).toEqual(seq === 1 ? [1] : [seq - 1, seq]);
          if (seq % 37 === 0)
            await expect(
              s.messages.append({ ...ev(stream, seq + 1), clientMsgId: `${stream}-${seq}` }),
            ).resolves.toMatchObject({
              duplicate: true,
              event: { seq },
            });
        }
        if (seq % 50 === 0) await new Promise((r) => setTimeout(r, 5));
      }
      await s.messages.checkpoint();
      expect(s.messages.pendingCheckpoint()).toBe(0);
      const all = await s.messages.read('t', 'a', { limit: 1000 });
      expect(all.map((e) => e.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
      // A seq taken long ago (now only in the main tree) is still refused.
      await expect(s.messages.append({ ...ev('a', 5), clientMsgId: 'new' })).rejects.toMatchObject({
        code: 'SB_ERR_SEQ_CONFLICT',
      });
    } finally {
      await s.close();
    }
  }, 30_000);
});
