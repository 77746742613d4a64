import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  decodeRows,
  encodeRecord,
  listSegments,
  newOwner,
  readSegment,
  WAL_MAGIC,
  WalWriter,
} from './wal.ts';

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'sb-wal-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const row = (
  stream: string,
  seq: number,
  text: string,
): { key: [string, string, number]; value: Uint8Array } => ({
  key: ['tenant-é', stream, seq],
  value: Buffer.from(text),
});

describe('write-ahead log', () => {
  it('store - a record holds its rows exactly (batches, non-ASCII names, empty values)', () => {
    const rows = [row('s-ü', 1, 'one'), row('s-ü', 2, ''), row('流', 2 ** 40, 'x'.repeat(70_000))];
    const rec = encodeRecord(rows.map((r) => ({ ...r })));
    const { records, stoppedAt } = readSegment(Buffer.concat([WAL_MAGIC, rec]));
    expect(stoppedAt).toBeUndefined();
    const back = decodeRows(records[0]!);
    expect(back.map((r) => r.key)).toEqual(rows.map((r) => r.key));
    expect(back.map((r) => Buffer.from(r.value).toString())).toEqual(
      rows.map((r) => Buffer.from(r.value).toString()),
    );
  });

  it('store - a torn end is told apart from damage in the middle', () => {
    const recs = [1, 2, 3].map((i) => encodeRecord([row('s', i, `message ${i}`)]));
    const file = Buffer.concat([WAL_MAGIC, ...recs]);
    const cut = (n: number): Buffer => file.subarray(0, file.length - n);
    // Cut inside the last record, or inside its header.
    expect(readSegment(cut(3))).toMatchObject({ records: { length: 2 }, stoppedAt: { torn: true } });
    expect(readSegment(cut(recs[2]!.length - 4))).toMatchObject({
      records: { length: 2 },
      stoppedAt: { torn: true },
    });
    // A zero-filled tail (the file grew, its data never reached the disk).
    const zeros = Buffer.concat([WAL_MAGIC, recs[0]!, Buffer.alloc(64)]);
    expect(readSegment(zeros)).toMatchObject({ records: { length: 1 }, stoppedAt: { torn: true } });
    // A bad checksum on the record that ends the file: a torn write too.
    const lastBad = Buffer.from(file);
    lastBad[lastBad.length - 1]! ^= 1;
    expect(readSegment(lastBad)).toMatchObject({ records: { length: 2 }, stoppedAt: { torn: true } });
    // A bad checksum with records after it: damage; nothing after it is trusted.
    const midBad = Buffer.from(file);
    midBad[WAL_MAGIC.length + recs[0]!.length + 10]! ^= 1;
    expect(readSegment(midBad)).toMatchObject({
      records: { length: 1 },
      stoppedAt: { torn: false, reason: 'checksum mismatch' },
    });
    expect(readSegment(Buffer.from('not a log at all'))).toMatchObject({
      records: [],
      stoppedAt: { torn: false },
    });
  });

  it('store - appends issued together share a flush; segments rotate and retire; after a failure every append is refused', async () => {
    const dir = tmp();
    const w = new WalWriter(dir, newOwner(), 4096);
    w.open();
    const segs = await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        w.append(encodeRecord([row('s', i + 1, `m${i + 1}`.padEnd(40, '.'))])),
      ),
    );
    // 500 records of ~70 bytes went out in a few flushes (one per group), so into few segments,
    // each past its 4 KiB bound only by its last group.
    expect(new Set(segs).size).toBeLessThan(10);
    // More, one at a time: every flush carries one record, segments rotate at 4 KiB.
    for (let i = 501; i <= 700; i++) await w.append(encodeRecord([row('s', i, `m${i}`.padEnd(40, '.'))]));
    const files = listSegments(dir);
    expect(files.length).toBeGreaterThan(3);
    const seqs = files.flatMap((f) =>
      readSegment(readFileSync(f.file)).records.flatMap((p) => decodeRows(p).map((r) => r.key[2])),
    );
    expect(seqs).toEqual(Array.from({ length: 700 }, (_, i) => i + 1));
    let total = 0;
    for (const s of [...w.closedSegments(), w.current()]) total += w.recordsIn(s);
    expect(total).toBe(700);
    for (const s of w.closedSegments()) w.retire(s);
    expect(readdirSync(dir)).toHaveLength(1);
    // The writer's descriptor stops taking writes (a directory's stands in for a failing disk): the
    // write fails, and so does every later append, without another write.
    const internals = w as unknown as { fd: number };
    const logFd = internals.fd;
    const dirFd = openSync(dir, 'r');
    internals.fd = dirFd;
    try {
      await expect(w.append(encodeRecord([row('s', 701, 'x')]))).rejects.toMatchObject({ code: 'EBADF' });
      expect(w.broken()).toBeDefined();
      await expect(w.append(encodeRecord([row('s', 702, 'y')]))).rejects.toMatchObject({ code: 'EBADF' });
    } finally {
      closeSync(dirFd);
      closeSync(logFd);
    }
    writeFileSync(join(dir, 'unrelated.txt'), 'x');
    expect(listSegments(dir)).toHaveLength(1);
  });
});
