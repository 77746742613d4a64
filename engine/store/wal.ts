/**
 * Write-ahead log of the embedded message store: one append-only file set per store instance,
 * written sequentially and flushed with group commit, so an append is durable after one
 * sequential write and one `fdatasync` shared with every append that arrived meanwhile.
 *
 * Layout: `<dir>/<owner>-<n>.log`, where `<owner>` names the instance (process id, process start
 * time, boot id, a random tag) and `<n>` numbers its segments. A segment starts with
 * {@link WAL_MAGIC}; then records, each `[length u32][crc32 u32][payload]` (little endian). A
 * reader stops at the first record that is cut short or whose checksum does not match: a torn
 * write at the end of the log (a crash in the middle of a write) is not an error, and nothing
 * after a damaged record is trusted.
 *
 * A record's payload is a batch of rows: `[version u8 = 1][count u32]`, then per row
 * `[tenant: u16 length + UTF-8][stream: u16 length + UTF-8][seq f64][value: u32 length + bytes]`.
 */
import {
  closeSync,
  fdatasync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writev,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

export const WAL_MAGIC = Buffer.from('SBWAL001', 'latin1');
const RECORD_HEADER = 8;
const PAYLOAD_VERSION = 1;

/** Key of a message row: tenant, stream, seq. */
export type RowKey = [tenant: string, stream: string, seq: number];

/** One row of a log record: the key of the message and its encoded value. */
export interface WalRow {
  key: RowKey;
  value: Uint8Array;
}

/**
 * Encodes one log record holding `rows` (one append, or one atomic batch): header (length,
 * checksum) and payload in one buffer. Each row's `value` is then pointed at its copy inside the
 * record, a buffer of its own that nothing else writes to (the caller may have passed a view into
 * an encoder's reused memory).
 */
export function encodeRecord(rows: WalRow[]): Buffer {
  // Upper bound: a UTF-16 code unit takes at most 3 UTF-8 bytes.
  let max = RECORD_HEADER + 5;
  for (const r of rows) max += 2 + 3 * r.key[0].length + 2 + 3 * r.key[1].length + 8 + 4 + r.value.length;
  const b = Buffer.allocUnsafe(max);
  let p = RECORD_HEADER;
  b[p] = PAYLOAD_VERSION;
  b.writeUInt32LE(rows.length, p + 1);
  p += 5;
  for (const r of rows) {
    const tl = b.write(r.key[0], p + 2, 'utf8');
    b.writeUInt16LE(tl, p);
    p += 2 + tl;
    const sl = b.write(r.key[1], p + 2, 'utf8');
    b.writeUInt16LE(sl, p);
    p += 2 + sl;
    b.writeDoubleLE(r.key[2], p);
    p += 8;
    b.writeUInt32LE(r.value.length, p);
    p += 4;
    b.set(r.value, p);
    r.value = b.subarray(p, p + r.value.length);
    p += r.value.length;
  }
  b.writeUInt32LE(p - RECORD_HEADER, 0);
  b.writeUInt32LE(crc32(b.subarray(RECORD_HEADER, p)), 4);
  return b.subarray(0, p);
}

/** Decodes a record payload; throws on a payload it does not understand. */
export function decodeRows(payload: Buffer): WalRow[] {
  if (payload[0] !== PAYLOAD_VERSION) throw new Error(`wal: unknown record version ${payload[0]}`);
  const n = payload.readUInt32LE(1);
  const rows: WalRow[] = [];
  let p = 5;
  for (let i = 0; i < n; i++) {
    const tl = payload.readUInt16LE(p);
    const tenant = payload.toString('utf8', p + 2, p + 2 + tl);
    p += 2 + tl;
    const sl = payload.readUInt16LE(p);
    const stream = payload.toString('utf8', p + 2, p + 2 + sl);
    p += 2 + sl;
    const seq = payload.readDoubleLE(p);
    p += 8;
    const vl = payload.readUInt32LE(p);
    p += 4;
    if (p + vl > payload.length) throw new Error('wal: row runs past its record');
    rows.push({ key: [tenant, stream, seq], value: payload.subarray(p, p + vl) });
    p += vl;
  }
  return rows;
}

export interface WalReadResult {
  /** Payloads of the intact records, in order. */
  records: Buffer[];
  /**
   * Why reading stopped before the end of the file, if it did. `torn`: what a crash during the
   * last write leaves (a record cut short, a zero-filled tail, or a bad checksum on the record that
   * ends the file); otherwise the file is damaged in the middle.
   */
  stoppedAt?: { offset: number; reason: string; torn: boolean };
}

/** Reads the intact records of one segment, stopping at the first torn or damaged one. */
export function readSegment(bytes: Buffer): WalReadResult {
  const records: Buffer[] = [];
  if (bytes.length < WAL_MAGIC.length) return { records };
  if (!bytes.subarray(0, WAL_MAGIC.length).equals(WAL_MAGIC))
    return { records, stoppedAt: { offset: 0, reason: 'not a log segment', torn: false } };
  let p = WAL_MAGIC.length;
  while (p < bytes.length) {
    const stop = (reason: string, torn: boolean): WalReadResult => ({
      records,
      stoppedAt: { offset: p, reason, torn },
    });
    if (p + RECORD_HEADER > bytes.length) return stop('torn header', true);
    const len = bytes.readUInt32LE(p);
    const sum = bytes.readUInt32LE(p + 4);
    if (len === 0) return stop('empty record', true);
    if (p + RECORD_HEADER + len > bytes.length) return stop('torn record', true);
    const payload = bytes.subarray(p + RECORD_HEADER, p + RECORD_HEADER + len);
    if (crc32(payload) !== sum) return stop('checksum mismatch', p + RECORD_HEADER + len === bytes.length);
    records.push(payload);
    p += RECORD_HEADER + len;
  }
  return { records };
}

// ---- Owners: who wrote a log, and is it still running? ----

/**
 * Identity of the process: pid alone is not enough (a container's main process is pid 1 after
 * every restart), so the process start time (clock ticks since boot, /proc/<pid>/stat field 22)
 * and the boot id come with it. Where /proc is missing, start and boot are 'x' and liveness falls
 * back to whether the pid exists.
 */
interface ProcessId {
  pid: number;
  start: string;
  boot: string;
}

function startTimeOf(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count from after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'latin1')
      .replace(/[^0-9a-f]/g, '')
      .slice(0, 12);
  } catch {
    return 'x';
  }
}

let self: ProcessId | undefined;
function thisProcess(): ProcessId {
  if (!self) self = { pid: process.pid, start: startTimeOf(process.pid) ?? 'x', boot: bootId() };
  return self;
}

/** A store instance: its process and a random 32-bit tag (also stamped on its rows in `recent`). */
export interface Owner extends ProcessId {
  tag: number;
}

export function newOwner(): Owner {
  return { ...thisProcess(), tag: randomBytes(4).readUInt32LE(0) };
}

export function ownerName(o: Owner): string {
  return `${o.pid}.${o.start}.${o.boot}.${o.tag.toString(16).padStart(8, '0')}`;
}

/** An owner's name (see {@link ownerName}) as a pattern: pid, start time, boot id, tag. */
const OWNER_NAME = String.raw`(\d+)\.(\d+|x)\.([0-9a-f]+|x)\.([0-9a-f]{8})`;
const SEGMENT_NAME = new RegExp(`^${OWNER_NAME}-(\\d+)\\.log$`);
const EXCLUSIVE_NAME = new RegExp(`^${OWNER_NAME}\\.exclusive$`);

/** The owner named by the first four groups of a match of {@link OWNER_NAME}. */
function ownerOfMatch(m: RegExpExecArray): Owner {
  return { pid: Number(m[1]), start: m[2]!, boot: m[3]!, tag: parseInt(m[4]!, 16) };
}

export interface SegmentFile {
  file: string;
  owner: Owner;
  name: string;
  n: number;
}

/** The log segments in `dir`, by owner and number. */
export function listSegments(dir: string): SegmentFile[] {
  const out: SegmentFile[] = [];
  for (const f of readdirSync(dir)) {
    const m = SEGMENT_NAME.exec(f);
    if (!m) continue;
    const owner = ownerOfMatch(m);
    out.push({ file: join(dir, f), owner, name: ownerName(owner), n: Number(m[5]) });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.n - b.n));
}

/**
 * Whether the process that owns a log may still be running. Any instance of this process counts
 * as live (its thread may still write); another process is live if a process with its pid and
 * start time exists in this boot.
 */
export function ownerAlive(o: Owner): boolean {
  const me = thisProcess();
  if (o.pid === me.pid && o.start === me.start && o.boot === me.boot) return true;
  if (o.boot !== 'x' && me.boot !== 'x' && o.boot !== me.boot) return false;
  if (o.start !== 'x' && me.start !== 'x') return startTimeOf(o.pid) === o.start;
  try {
    process.kill(o.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Marks the log directory as held by one instance alone (`<owner>.exclusive`); see
 * `openLmdbStores({ exclusive })`. The marker needs no flush: after a crash its owner is gone,
 * and whoever opens next removes it.
 */
export function exclusiveMarker(dir: string, o: Owner): string {
  return join(dir, `${ownerName(o)}.exclusive`);
}

/** The exclusive markers in a log directory, with their owners. */
export function listExclusive(dir: string): Array<{ file: string; owner: Owner }> {
  const out: Array<{ file: string; owner: Owner }> = [];
  for (const f of readdirSync(dir)) {
    const m = EXCLUSIVE_NAME.exec(f);
    if (!m) continue;
    out.push({ file: join(dir, f), owner: ownerOfMatch(m) });
  }
  return out;
}

/** Makes a directory entry change (a created or removed file) durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

// ---- Writer ----

interface Group {
  promise: Promise<number>;
  resolve: (segment: number) => void;
  reject: (err: Error) => void;
}

function newGroup(): Group {
  let resolve!: (segment: number) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<number>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * The log of one store instance. `append` resolves with the number of the segment that holds
 * the record once the record is on disk (`fdatasync`). One write and flush is in flight at a time;
 * records appended meanwhile go out together in the next one (group commit). After a failed
 * write or flush the log refuses every further append: what reached the disk is unknown, and the
 * data is recovered from the file by the next process that opens the store.
 */
export class WalWriter {
  private fd = -1;
  private segment = 0;
  private size = 0;
  private queue: Buffer[] = [];
  private queued = 0;
  private group: Group | undefined;
  private flushing = false;
  private scheduled = false;
  private failed: Error | undefined;
  private idleWaiters: Array<() => void> = [];
  /** Records written per segment (segments still on disk). */
  private readonly written = new Map<number, number>();

  constructor(
    private readonly dir: string,
    readonly owner: Owner,
    private readonly segmentBytes: number,
  ) {}

  /** Creates the first segment (durably: the directory entry too). */
  open(): void {
    mkdirSync(this.dir, { recursive: true });
    this.rotate();
  }

  private fileOf(n: number): string {
    return join(this.dir, `${ownerName(this.owner)}-${String(n).padStart(8, '0')}.log`);
  }

  private rotate(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.segment++;
    this.fd = openSync(this.fileOf(this.segment), 'wx');
    syncDir(this.dir);
    this.size = 0;
    this.written.set(this.segment, 0);
  }

  /** Current segment: the one the next record goes to. */
  current(): number {
    return this.segment;
  }

  /** Appends a record made by {@link encodeRecord}. */
  append(record: Buffer): Promise<number> {
    if (this.failed) return Promise.reject(this.failed);
    this.queue.push(record);
    this.queued++;
    if (!this.group) this.group = newGroup();
    const p = this.group.promise;
    // Start on the next turn when idle, so the appends of this turn share the flush.
    if (!this.flushing && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return p;
  }

  private flush(): void {
    this.scheduled = false;
    const group = this.group;
    if (!group || this.failed) return this.settleIdle();
    this.flushing = true;
    let bufs = this.queue;
    const count = this.queued;
    this.queue = [];
    this.queued = 0;
    this.group = undefined;
    let bytes = 0;
    for (const b of bufs) bytes += b.length;
    try {
      if (this.size > 0 && this.size + bytes > this.segmentBytes) this.rotate();
    } catch (err) {
      return this.fail(group, err as Error);
    }
    if (this.size === 0) {
      bufs = [WAL_MAGIC, ...bufs];
      bytes += WAL_MAGIC.length;
    }
    const seg = this.segment;
    const fd = this.fd;
    const done = (err: NodeJS.ErrnoException | null, n: number): void => {
      if (err || n !== bytes)
        return this.fail(group, err ?? new Error(`wal: short write (${n} of ${bytes})`));
      this.size += bytes;
      fdatasync(fd, (err2) => {
        if (err2) return this.fail(group, err2);
        this.written.set(seg, (this.written.get(seg) ?? 0) + count);
        this.flushing = false;
        group.resolve(seg);
        if (this.group) this.flush();
        else this.settleIdle();
      });
    };
    try {
      writev(fd, bufs, this.size, done);
    } catch (err) {
      this.fail(group, err as Error);
    }
  }

  private fail(group: Group, err: Error): void {
    this.failed = err;
    this.flushing = false;
    group.reject(err);
    this.group?.reject(err);
    this.group = undefined;
    this.queue = [];
    this.queued = 0;
    this.settleIdle();
  }

  private settleIdle(): void {
    if (this.flushing || this.scheduled || this.group) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Resolves when no record is waiting or being written. */
  idle(): Promise<void> {
    if (!this.flushing && !this.scheduled && !this.group) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Records written to `segment` so far. */
  recordsIn(segment: number): number {
    return this.written.get(segment) ?? 0;
  }

  /** Segments on disk that take no more records (all but the current one). */
  closedSegments(): number[] {
    return [...this.written.keys()].filter((s) => s !== this.segment);
  }

  /** Deletes a segment whose records are all in the main tree. */
  retire(segment: number): void {
    if (segment === this.segment) throw new Error('wal: the current segment cannot be retired');
    try {
      unlinkSync(this.fileOf(segment));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.written.delete(segment);
  }

  /** Closes the file; with `remove`, deletes every segment (all records must be in the main tree). */
  close(remove: boolean): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.failed ??= new Error('wal: closed');
    if (!remove) return;
    for (const s of this.written.keys()) {
      try {
        unlinkSync(this.fileOf(s));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    this.written.clear();
  }

  /** Whether a write or flush failed (the log takes no more records). */
  broken(): Error | undefined {
    return this.failed;
  }
}
