/**
 * `history` scenario: drives a MessageStore (embedded LMDB or a real Cassandra the harness starts)
 * directly — sustained acknowledged appends from many concurrent writers over many sessions, then
 * the two reads a desk does all day: the last 50 messages of a session, and a history page.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCassandraStores } from '../engine/store/cassandra.ts';
import { openLmdbStores } from '../engine/store/lmdb.ts';
import type { IndexStore, MessageStore } from '../engine/store/types.ts';
import { ensureCassandra, stopCassandra } from '../scripts/services.ts';
import { Histogram } from './histogram.ts';

export interface HistoryOptions {
  store: 'embedded' | 'cassandra';
  durationS: number;
  /** Concurrent writers, each appending to its own sessions in turn. */
  concurrency: number;
  sessions: number;
  reads: number;
  log: (s: string) => void;
}

export interface HistoryResult {
  scenario: 'history';
  store: string;
  duration_s: number;
  concurrency: number;
  sessions: number;
  writes: number;
  writes_per_s: number;
  write_errors: number;
  write_ack_ms: ReturnType<Histogram['summary']>;
  read_last50_ms: ReturnType<Histogram['summary']>;
  history_page_ms: ReturnType<Histogram['summary']>;
}

const CASSANDRA_PORT = 19044;

export async function runHistory(o: HistoryOptions): Promise<HistoryResult> {
  let messages: MessageStore;
  let index: IndexStore;
  let close: () => Promise<void>;
  let dir: string | undefined;
  if (o.store === 'embedded') {
    dir = mkdtempSync(join(tmpdir(), 'sb-hist-'));
    const s = openLmdbStores({ path: dir });
    messages = s.messages;
    index = s.index;
    close = () => s.close();
  } else {
    o.log('[bench] starting Cassandra…');
    await ensureCassandra({ port: CASSANDRA_PORT, storagePort: 17002, wipe: true });
    const s = await openCassandraStores({
      contactPoints: ['127.0.0.1'],
      port: CASSANDRA_PORT,
      localDataCenter: 'datacenter1',
      keyspace: 'sb_bench',
    });
    messages = s.messages;
    index = s.index;
    close = async () => {
      await s.close();
      await stopCassandra({ port: CASSANDRA_PORT, wipe: true });
    };
  }
  try {
    const tenant = 'bench';
    const seqs = new Int32Array(o.sessions);
    const ack = new Histogram();
    let writes = 0;
    let errors = 0;
    let nextSession = 0;
    const start = performance.now();
    const stopAt = start + o.durationS * 1000;
    let lastLog = start;
    let lastWrites = 0;
    const body = { kind: 'message', from: 'visitor', senderId: 'v', text: 'x'.repeat(120) };
    const writer = async (w: number): Promise<void> => {
      let n = 0;
      while (performance.now() < stopAt) {
        const s = nextSession++ % o.sessions;
        const seq = ++seqs[s]!;
        const t0 = performance.now();
        try {
          await messages.append({
            tenant,
            stream: `s${s}`,
            seq,
            at: Date.now(),
            clientMsgId: `w${w}-${n++}`,
            body,
          });
          ack.record(performance.now() - t0);
          writes++;
        } catch {
          errors++;
          seqs[s]!--;
        }
        const now = performance.now();
        if (w === 0 && now - lastLog >= 1000) {
          o.log(
            `[bench] ${((now - start) / 1000).toFixed(0).padStart(3)}s writes=${writes} rate=${(((writes - lastWrites) * 1000) / (now - lastLog)).toFixed(0)}/s ack p99=${ack.percentile(99).toFixed(2)}ms errors=${errors}`,
          );
          lastLog = now;
          lastWrites = writes;
        }
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, (_, w) => writer(w)));
    const elapsed = (performance.now() - start) / 1000;

    // A history list to page through: one index partition of closed sessions.
    for (let i = 0; i < 500; i++) {
      await index.put(
        tenant,
        'closed:2026-11-24',
        `${String(1_700_000_000_000 + i).padStart(15, '0')}:s${i}`,
        { sessionId: `s${i}` },
      );
    }
    o.log(`[bench] reading: ${o.reads} × last 50 messages, ${o.reads} × history page`);
    const last50 = new Histogram();
    const page = new Histogram();
    for (let i = 0; i < o.reads; i++) {
      const s = Math.floor(Math.random() * o.sessions);
      let t0 = performance.now();
      await messages.read(tenant, `s${s}`, { direction: 'backward', limit: 50 });
      last50.record(performance.now() - t0);
      t0 = performance.now();
      await index.range(tenant, 'closed:2026-11-24', { reverse: true, limit: 20 });
      page.record(performance.now() - t0);
    }
    return {
      scenario: 'history',
      store: o.store,
      duration_s: Math.round(elapsed * 10) / 10,
      concurrency: o.concurrency,
      sessions: o.sessions,
      writes,
      writes_per_s: Math.round(writes / elapsed),
      write_errors: errors,
      write_ack_ms: ack.summary(),
      read_last50_ms: last50.summary(),
      history_page_ms: page.summary(),
    };
  } finally {
    await close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}
