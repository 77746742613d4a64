/**
 * Statistics and custom reports (F18, F19) over session facts: up to 90 days, up to 10 metrics and
 * up to 2 dimensions. A metric counts a session by its creation time or by its acceptance time
 * (its *basis*, as the reference product defines them). Averages pool the underlying values (the
 * average response time of a group is over all its responses, not an average of averages). Every
 * row names how many sessions are behind it; {@link drillDown} lists them.
 */
import { SbError } from '../protos/errors.ts';
import type { SessionFacts } from './facts.ts';

export const MAX_REPORT_DAYS = 90;
export const MAX_REPORT_METRICS = 10;
export const MAX_REPORT_DIMENSIONS = 2;

export type Basis = 'created' | 'accepted';

interface MetricDef {
  basis: Basis;
  label: { en: string; zh: string };
  /** How values of a group combine. */
  agg: 'avg' | 'max' | 'sum' | 'distinct';
  /** The values one session contributes (sum and count for pooled averages). */
  take: (f: SessionFacts) => { sum: number; n: number; max?: number; key?: string } | undefined;
}

const one = (v: number | undefined): { sum: number; n: number; max: number } | undefined =>
  v === undefined ? undefined : { sum: v, n: 1, max: v };

export const METRICS = {
  queue_time_avg: {
    basis: 'created',
    label: { en: 'Queue time avg (ms)', zh: '排队时长平均值' },
    agg: 'avg',
    take: (f) => one(f.queueMs),
  },
  queue_time_max: {
    basis: 'created',
    label: { en: 'Queue time max (ms)', zh: '排队时长最大值' },
    agg: 'max',
    take: (f) => one(f.queueMs),
  },
  queue_count: {
    basis: 'created',
    label: { en: 'Times queued', zh: '排队总次数' },
    agg: 'sum',
    take: (f) => ({ sum: f.queueCount, n: 1 }),
  },
  unique_visitors: {
    basis: 'created',
    label: { en: 'Unique visitors', zh: '独立访客总数' },
    agg: 'distinct',
    take: (f) => ({ sum: 0, n: 1, key: f.visitorId }),
  },
  satisfaction_avg: {
    basis: 'accepted',
    label: { en: 'Satisfaction avg', zh: '满意度评分平均值' },
    agg: 'avg',
    take: (f) => one(f.satisfaction),
  },
  sessions: {
    basis: 'accepted',
    label: { en: 'Sessions', zh: '会话总数' },
    agg: 'sum',
    take: () => ({ sum: 1, n: 1 }),
  },
  messages: {
    basis: 'accepted',
    label: { en: 'Messages', zh: '消息总数' },
    agg: 'sum',
    take: (f) => ({ sum: f.messages, n: 1 }),
  },
  duration_avg: {
    basis: 'accepted',
    label: { en: 'Session duration avg (ms)', zh: '会话时长平均值' },
    agg: 'avg',
    take: (f) => one(f.durationMs),
  },
  duration_max: {
    basis: 'accepted',
    label: { en: 'Session duration max (ms)', zh: '会话时长最大值' },
    agg: 'max',
    take: (f) => one(f.durationMs),
  },
  first_response_avg: {
    basis: 'accepted',
    label: { en: 'First response avg (ms)', zh: '首次响应时长平均值' },
    agg: 'avg',
    take: (f) => one(f.firstResponseMs),
  },
  first_response_max: {
    basis: 'accepted',
    label: { en: 'First response max (ms)', zh: '首次响应时长最大值' },
    agg: 'max',
    take: (f) => one(f.firstResponseMs),
  },
  response_avg: {
    basis: 'accepted',
    label: { en: 'Response time avg (ms)', zh: '响应时长平均值' },
    agg: 'avg',
    take: (f) =>
      f.responses === 0
        ? undefined
        : {
            sum: f.responseSumMs,
            n: f.responses,
            ...(f.responseMaxMs !== undefined ? { max: f.responseMaxMs } : {}),
          },
  },
  response_max: {
    basis: 'accepted',
    label: { en: 'Response time max (ms)', zh: '响应时长最大值' },
    agg: 'max',
    take: (f) => one(f.responseMaxMs),
  },
} satisfies Record<string, MetricDef>;

export type MetricId = keyof typeof METRICS;

export const DIMENSIONS = {
  agent: { en: 'Agent', zh: '客服' },
  visitor_tag: { en: 'Visitor tag', zh: '访客标签' },
  channel: { en: 'Channel type', zh: '渠道类型' },
  association: { en: 'Association', zh: '关联' },
  session_type: { en: 'Session type', zh: '会话类型' },
  validity: { en: 'Session validity', zh: '会话有效类型' },
  time: { en: 'Time', zh: '时间粒度' },
} as const;

export type DimensionId = keyof typeof DIMENSIONS;
export type Granularity = 'hour' | 'day' | 'week' | 'month';

export interface ReportSpec {
  /** Inclusive UTC days, YYYY-MM-DD. */
  from: string;
  to: string;
  metrics: MetricId[];
  dimensions: DimensionId[];
  /** For the `time` dimension; default day. */
  granularity: Granularity;
}

export interface ReportRow {
  /** One value per dimension, in the spec's order ('' when the session has none, e.g. no agent). */
  key: string[];
  /** Per metric: the value, or null when no session of the group has one (e.g. nobody rated). */
  values: Partial<Record<MetricId, number | null>>;
  /** Sessions behind the row, per basis. */
  sessions: Partial<Record<Basis, number>>;
}

export interface Report {
  spec: ReportSpec;
  rows: ReportRow[];
  totals: ReportRow;
}

const DAY_MS = 86_400_000;
const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

function bad(msg: string): never {
  throw new SbError('SB_ERR_INVALID_FIELD', msg);
}

export function parseDay(s: string, field: string): number {
  if (!DAY_RE.test(s) || Number.isNaN(Date.parse(`${s}T00:00:00Z`)))
    bad(`${field} must be a date YYYY-MM-DD`);
  return Date.parse(`${s}T00:00:00Z`);
}

export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** UTC days from..to inclusive. */
export function daysOf(spec: Pick<ReportSpec, 'from' | 'to'>): string[] {
  const out: string[] = [];
  for (let d = parseDay(spec.from, 'from'); d <= parseDay(spec.to, 'to'); d += DAY_MS) out.push(dayOf(d));
  return out;
}

/** Validates a spec from untrusted input (a query string or a body). */
export function parseReportSpec(
  raw: { from?: unknown; to?: unknown; metrics?: unknown; dimensions?: unknown; granularity?: unknown },
  now: number,
): ReportSpec {
  const str = (v: unknown, f: string): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string') bad(`${f} must be a string`);
    return v;
  };
  const list = (v: unknown, f: string): string[] => {
    if (v === undefined || v === '') return [];
    if (typeof v === 'string')
      return v
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x !== '');
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    return bad(`${f} must be a list of names`);
  };
  const to = str(raw.to, 'to') ?? dayOf(now);
  const toMs = parseDay(to, 'to');
  const from = str(raw.from, 'from') ?? dayOf(toMs - 6 * DAY_MS);
  const fromMs = parseDay(from, 'from');
  if (fromMs > toMs) bad('from is after to');
  if ((toMs - fromMs) / DAY_MS + 1 > MAX_REPORT_DAYS) bad(`a report covers at most ${MAX_REPORT_DAYS} days`);
  const metrics = list(raw.metrics, 'metrics');
  if (metrics.length === 0) bad('metrics: at least one');
  if (metrics.length > MAX_REPORT_METRICS) bad(`metrics: at most ${MAX_REPORT_METRICS}`);
  for (const m of metrics) if (!(m in METRICS)) bad(`metrics: unknown metric ${m}`);
  if (new Set(metrics).size !== metrics.length) bad('metrics: listed twice');
  const dimensions = list(raw.dimensions, 'dimensions');
  if (dimensions.length > MAX_REPORT_DIMENSIONS) bad(`dimensions: at most ${MAX_REPORT_DIMENSIONS}`);
  for (const d of dimensions) if (!(d in DIMENSIONS)) bad(`dimensions: unknown dimension ${d}`);
  if (new Set(dimensions).size !== dimensions.length) bad('dimensions: listed twice');
  const g = str(raw.granularity, 'granularity') ?? 'day';
  if (g !== 'hour' && g !== 'day' && g !== 'week' && g !== 'month')
    bad('granularity: hour, day, week or month');
  return {
    from,
    to,
    metrics: metrics as MetricId[],
    dimensions: dimensions as DimensionId[],
    granularity: g,
  };
}

/** The time a fact counts at for a basis (undefined: not counted, e.g. never accepted). */
export function basisTime(f: SessionFacts, basis: Basis): number | undefined {
  return basis === 'created' ? f.createdAt : f.acceptedAt;
}

function timeBucket(ms: number, g: Granularity): string {
  const iso = new Date(ms).toISOString();
  if (g === 'hour') return `${iso.slice(0, 13)}:00`;
  if (g === 'day') return iso.slice(0, 10);
  if (g === 'month') return iso.slice(0, 7);
  // ISO week starts on Monday: the bucket is named by its Monday.
  const d = new Date(Date.parse(iso.slice(0, 10)));
  const back = (d.getUTCDay() + 6) % 7;
  return dayOf(d.getTime() - back * DAY_MS);
}

/** The dimension values of a fact (a visitor with two tags is in two groups; none → ''). */
function dimensionValues(f: SessionFacts, d: DimensionId, at: number, g: Granularity): string[] {
  switch (d) {
    case 'agent':
      return [f.agentId ?? ''];
    case 'visitor_tag':
      return f.visitorTags.length ? f.visitorTags : [''];
    case 'channel':
      return [f.channel];
    case 'association':
      return [f.associationId ?? ''];
    case 'session_type':
      return [f.type];
    case 'validity':
      return [f.valid ? 'valid' : 'invalid'];
    case 'time':
      return [timeBucket(at, g)];
  }
}

function keysOf(f: SessionFacts, spec: ReportSpec, at: number): string[][] {
  let keys: string[][] = [[]];
  for (const d of spec.dimensions) {
    const vs = dimensionValues(f, d, at, spec.granularity);
    keys = keys.flatMap((k) => vs.map((v) => [...k, v]));
  }
  return keys;
}

interface Acc {
  sum: number;
  n: number;
  max: number | undefined;
  keys: Set<string> | undefined;
}

class Group {
  readonly acc = new Map<MetricId, Acc>();
  readonly sessions: Record<Basis, number> = { created: 0, accepted: 0 };
  constructor(readonly key: string[]) {}

  add(f: SessionFacts, basis: Basis, metrics: readonly MetricId[]): void {
    this.sessions[basis]++;
    for (const m of metrics) {
      const def: MetricDef = METRICS[m];
      if (def.basis !== basis) continue;
      const v = def.take(f);
      if (!v) continue;
      let a = this.acc.get(m);
      if (!a) this.acc.set(m, (a = { sum: 0, n: 0, max: undefined, keys: undefined }));
      a.sum += v.sum;
      a.n += v.n;
      if (v.max !== undefined) a.max = Math.max(a.max ?? v.max, v.max);
      if (v.key !== undefined) (a.keys ??= new Set()).add(v.key);
    }
  }

  row(metrics: readonly MetricId[]): ReportRow {
    const values: ReportRow['values'] = {};
    for (const m of metrics) {
      const def: MetricDef = METRICS[m];
      const a = this.acc.get(m);
      if (def.agg === 'sum') values[m] = a?.sum ?? 0;
      else if (def.agg === 'distinct') values[m] = a?.keys?.size ?? 0;
      else if (!a || a.n === 0) values[m] = null;
      else values[m] = def.agg === 'avg' ? Math.round((a.sum / a.n) * 100) / 100 : (a.max ?? null);
    }
    const sessions: ReportRow['sessions'] = {};
    for (const b of ['created', 'accepted'] as const)
      if (metrics.some((m) => METRICS[m].basis === b)) sessions[b] = this.sessions[b];
    return { key: this.key, values, sessions };
  }
}

/**
 * Runs a report over facts. `facts` yields each session once per basis it may count for (the
 * caller reads them by basis day); facts outside the spec's days for a basis are ignored.
 */
export function runReport(spec: ReportSpec, facts: Iterable<{ basis: Basis; fact: SessionFacts }>): Report {
  const fromMs = parseDay(spec.from, 'from');
  const endMs = parseDay(spec.to, 'to') + DAY_MS;
  const groups = new Map<string, Group>();
  const total = new Group([]);
  for (const { basis, fact } of facts) {
    const at = basisTime(fact, basis);
    if (at === undefined || at < fromMs || at >= endMs) continue;
    total.add(fact, basis, spec.metrics);
    for (const key of keysOf(fact, spec, at)) {
      const id = JSON.stringify(key);
      let g = groups.get(id);
      if (!g) groups.set(id, (g = new Group(key)));
      g.add(fact, basis, spec.metrics);
    }
  }
  const rows = [...groups.values()]
    .map((g) => g.row(spec.metrics))
    .sort((a, b) => (a.key.join('\u0000') < b.key.join('\u0000') ? -1 : 1));
  return { spec, rows, totals: total.row(spec.metrics) };
}

/** Sessions behind one row of a report and one basis: ids, newest first, at most `limit`. */
export function drillDown(
  spec: ReportSpec,
  key: readonly string[],
  basis: Basis,
  facts: Iterable<{ basis: Basis; fact: SessionFacts }>,
  limit: number,
): SessionFacts[] {
  if (key.length !== spec.dimensions.length) bad('key: one value per dimension');
  const fromMs = parseDay(spec.from, 'from');
  const endMs = parseDay(spec.to, 'to') + DAY_MS;
  const want = JSON.stringify(key);
  const out: SessionFacts[] = [];
  for (const { basis: b, fact } of facts) {
    if (b !== basis) continue;
    const at = basisTime(fact, basis);
    if (at === undefined || at < fromMs || at >= endMs) continue;
    if (keysOf(fact, spec, at).some((k) => JSON.stringify(k) === want)) out.push(fact);
  }
  out.sort((a, b) => (basisTime(b, basis) ?? 0) - (basisTime(a, basis) ?? 0));
  return out.slice(0, limit);
}
