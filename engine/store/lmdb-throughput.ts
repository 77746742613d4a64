/**
 * Throughput self-check for the embedded LMDB message store (not a test):
 *   node --import tsx engine/store/lmdb-throughput.ts [--seconds 5] [--concurrency 256] [--streams 1000]
 * Prints acknowledged (durable) appends per second and the latency of "last 50" reads.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openLmdbStores } from './lmdb.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) ? v : def;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 5);
  const concurrency = arg('concurrency', 256);
  const streams = arg('streams', 1000);
  const dir = mkdtempSync(join(process.env['SB_TP_DIR'] ?? tmpdir(), 'sb-lmdb-tp-'));
  const stores = openLmdbStores({ path: dir });
  const store = stores.messages;
  const next = new Array<number>(streams).fill(1);
  const text = 'Hello, I would like to know where my order is. It was due yesterday. Order 123456.';
  let acked = 0;
  const appendLat: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  // Each client owns the streams i ≡ c (mod concurrency), so seqs never collide; it appends to them
  // round-robin and waits for each durable ack before its next append.
  const clients = Array.from({ length: concurrency }, async (_, c) => {
    const own: number[] = [];
    for (let s = c; s < streams; s += concurrency) own.push(s);
    if (own.length === 0) return;
    let i = 0;
    while (performance.now() < deadline) {
      const s = own[i++ % own.length]!;
      const seq = next[s]!;
      const started = performance.now();
      await store.append({
        tenant: 'tenant-1',
        stream: `stream-${s}`,
        seq,
        at: Date.now(),
        clientMsgId: `c-${s}-${seq}`,
        body: { kind: 'message', from: 'visitor', text },
      });
      if ((acked & 15) === 0) appendLat.push(performance.now() - started);
      next[s] = seq + 1;
      acked++;
    }
  });
  await Promise.all(clients);
  const elapsed = (performance.now() - t0) / 1000;
  appendLat.sort((a, b) => a - b);
  console.log(
    `appends: ${acked} acknowledged in ${elapsed.toFixed(2)} s = ${Math.round(acked / elapsed)} appends/s ` +
      `(concurrency ${concurrency}, ${streams} streams; ack latency p50 ${pct(appendLat, 50).toFixed(2)} ms, ` +
      `p99 ${pct(appendLat, 99).toFixed(2)} ms)`,
  );

  // Last-50 reads (what a reconnecting client asks for), one at a time on an idle store.
  const readLat: number[] = [];
  const reads = arg('reads', 20_000);
  let events = 0;
  for (let r = 0; r < reads; r++) {
    const s = Math.floor(Math.random() * streams);
    const started = performance.now();
    const got = await store.read('tenant-1', `stream-${s}`, { direction: 'backward', limit: 50 });
    readLat.push(performance.now() - started);
    events += got.length;
  }
  readLat.sort((a, b) => a - b);
  console.log(
    `last-50 reads: ${reads} (avg ${(events / reads).toFixed(1)} events), p50 ${pct(readLat, 50).toFixed(3)} ms, ` +
      `p99 ${pct(readLat, 99).toFixed(3)} ms, max ${readLat[readLat.length - 1]!.toFixed(3)} ms`,
  );
  await stores.close();
  rmSync(dir, { recursive: true, force: true });
}

await main();
