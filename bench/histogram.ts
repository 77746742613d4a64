/**
 * Latency histogram: 10 µs buckets up to 2 s, exact values above (rare). Mergeable across processes
 * by sending `toJSON()` over IPC.
 */
const BUCKET_US = 10;
const BUCKETS = 200_000;

export interface HistogramJSON {
  counts: Array<[number, number]>;
  over: number[];
  max: number;
}

export class Histogram {
  private readonly counts = new Uint32Array(BUCKETS);
  private over: number[] = [];
  private n = 0;
  private maxMs = 0;

  /** Records a value in milliseconds. */
  record(ms: number): void {
    const v = ms < 0 ? 0 : ms;
    this.n++;
    if (v > this.maxMs) this.maxMs = v;
    const b = Math.floor((v * 1000) / BUCKET_US);
    if (b < BUCKETS) this.counts[b]!++;
    else this.over.push(v);
  }

  get count(): number {
    return this.n;
  }

  /** Value (ms) at percentile p in [0, 100]. */
  percentile(p: number): number {
    if (this.n === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return ((i + 1) * BUCKET_US) / 1000;
    }
    const sorted = [...this.over].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, rank - seen - 1)] ?? this.maxMs;
  }

  summary(): { p50: number; p95: number; p99: number; max: number; count: number } {
    const r = (x: number): number => Math.round(x * 100) / 100;
    return {
      p50: r(this.percentile(50)),
      p95: r(this.percentile(95)),
      p99: r(this.percentile(99)),
      max: r(this.maxMs),
      count: this.n,
    };
  }

  toJSON(): HistogramJSON {
    const counts: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]) counts.push([i, this.counts[i]!]);
    return { counts, over: this.over, max: this.maxMs };
  }

  merge(h: HistogramJSON): void {
    for (const [i, c] of h.counts) {
      this.counts[i]! += c;
      this.n += c;
    }
    for (const v of h.over) {
      this.over.push(v);
      this.n++;
    }
    if (h.max > this.maxMs) this.maxMs = h.max;
  }
}
