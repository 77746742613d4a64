/**
 * Latency histogram in the style of HdrHistogram: log-linear buckets over microseconds. Values are
 * grouped by power of two ("magnitude"); each magnitude is split into {@link SUB_BUCKETS} equal
 * sub-buckets, so every recorded value is kept with a relative error below 1 / SUB_BUCKETS (< 0.8 %)
 * from 1 µs up to {@link MAX_MS}, in a fixed table of 3,328 slots. Values above the range are clamped
 * into the last bucket (the exact maximum is kept separately).
 *
 * Histograms from several processes merge exactly: `toJSON()` is a sparse list of non-empty
 * buckets, small enough to send over IPC every second.
 */

/** Sub-buckets per power of two; 128 bounds the relative error of a reported value to 1/128. */
export const SUB_BUCKETS = 128;
/** Largest value kept at full precision, ms (about 1.2 hours). */
export const MAX_MS = 2 ** 32 / 1000;

const SUB_BITS = Math.log2(SUB_BUCKETS);
const MAGNITUDES = 32 - SUB_BITS + 1;
const SLOTS = MAGNITUDES * SUB_BUCKETS;
const MAX_US = 2 ** 32 - 1;

/** Bucket index of a value in µs (integer ≥ 0). */
function indexOf(us: number): number {
  if (us < SUB_BUCKETS) return us;
  // Magnitude m ≥ 1 covers [SUB_BUCKETS·2^(m-1), SUB_BUCKETS·2^m) with buckets 2^(m-1) µs wide.
  const m = 32 - Math.clz32(us) - SUB_BITS;
  const sub = us >>> (m - 1);
  return m * SUB_BUCKETS + (sub - SUB_BUCKETS);
}

/** Highest µs value that lands in bucket `i` (percentiles report the bucket's upper edge). */
function upperUs(i: number): number {
  if (i < SUB_BUCKETS) return i;
  const m = Math.floor(i / SUB_BUCKETS);
  const sub = (i % SUB_BUCKETS) + SUB_BUCKETS;
  return (sub + 1) * 2 ** (m - 1) - 1;
}

/** Wire form of a histogram: sparse `[bucket, count]` pairs plus the exact extremes. */
export interface HistogramJSON {
  counts: Array<[number, number]>;
  max: number;
  min: number;
  sum: number;
}

export interface HistogramSummary {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  count: number;
}

export class Histogram {
  private readonly counts = new Float64Array(SLOTS);
  private n = 0;
  private maxMs = 0;
  private minMs = Infinity;
  private sumMs = 0;

  /** Records a value in milliseconds (negative values, from clock skew, count as 0). */
  record(ms: number): void {
    const v = ms > 0 ? ms : 0;
    const us = Math.min(MAX_US, Math.round(v * 1000));
    this.counts[indexOf(us)]!++;
    this.n++;
    this.sumMs += v;
    if (v > this.maxMs) this.maxMs = v;
    if (v < this.minMs) this.minMs = v;
  }

  get count(): number {
    return this.n;
  }

  get max(): number {
    return this.maxMs;
  }

  get min(): number {
    return this.n === 0 ? 0 : this.minMs;
  }

  get mean(): number {
    return this.n === 0 ? 0 : this.sumMs / this.n;
  }

  /**
   * Value (ms) at percentile `p` in [0, 100]: the upper edge of the bucket holding the value of
   * that rank, capped by the exact maximum, so it never reports less than the true value by more
   * than the bucket width and never more than the largest value seen.
   */
  percentile(p: number): number {
    if (this.n === 0) return 0;
    const rank = Math.max(1, Math.ceil((Math.min(100, Math.max(0, p)) / 100) * this.n));
    let seen = 0;
    for (let i = 0; i < SLOTS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.maxMs, upperUs(i) / 1000);
    }
    return this.maxMs;
  }

  summary(): HistogramSummary {
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
    for (let i = 0; i < SLOTS; i++) if (this.counts[i]) counts.push([i, this.counts[i]!]);
    return { counts, max: this.maxMs, min: this.min, sum: this.sumMs };
  }

  static fromJSON(h: HistogramJSON): Histogram {
    const out = new Histogram();
    out.merge(h);
    return out;
  }

  /** Adds another histogram (this process's or one received over IPC) into this one. */
  merge(h: HistogramJSON): void {
    for (const [i, c] of h.counts) {
      if (!Number.isInteger(i) || i < 0 || i >= SLOTS) throw new RangeError(`bad bucket ${i}`);
      this.counts[i]! += c;
      this.n += c;
    }
    if (h.counts.length > 0) {
      if (h.max > this.maxMs) this.maxMs = h.max;
      if (h.min < this.minMs) this.minMs = h.min;
      this.sumMs += h.sum;
    }
  }

  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.maxMs = 0;
    this.minMs = Infinity;
    this.sumMs = 0;
  }
}

/** Least-squares slope y/x, undefined with fewer than 3 points or no spread in x. */
export function slopeOf(points: Array<[number, number]>): number | undefined {
  if (points.length < 3) return undefined;
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  return sxx === 0 ? undefined : sxy / sxx;
}
