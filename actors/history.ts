/**
 * History search (F5): closed sessions by date range, channel, agent, tag and visitor.
 *
 * When a session closes, its summary goes into three index partitions of the tenant:
 * - `closed:<day>`                 every closed session of that UTC day
 * - `closed-agent:<agent>:<day>`   the ones an agent served (agents search only these)
 * - `closed-visitor:<visitor>`     a visitor's past sessions
 * sorted by close time, so a search walks days newest first and pages with an opaque cursor.
 */
import type { IndexStore } from '../engine/store/types.ts';
import { SbError } from '../protos/errors.ts';
import type { Caller } from './messages.ts';

export interface HistoryEntry {
  sessionId: string;
  visitorId: string;
  visitorName: string;
  channel: string;
  agentId?: string;
  agentName?: string;
  createdAt: number;
  closedAt: number;
  closedBy: string;
  tags: string[];
  lastSeq: number;
  /** Skill group that served the session. */
  groupId?: string;
  rating?: { score: number; remark?: string };
}

export interface HistoryQuery {
  /** Inclusive UTC days, YYYY-MM-DD. Default: the last 7 days. At most 90 days. */
  from?: string;
  to?: string;
  channel?: string;
  agentId?: string;
  visitorId?: string;
  tag?: string;
  /** 1–100, default 20. */
  limit?: number;
  cursor?: string;
}

export interface HistoryPage {
  sessions: HistoryEntry[];
  /** Pass back as `cursor` for the next page; absent on the last page. */
  nextCursor?: string;
}

const DAY_MS = 86_400_000;
export const MAX_RANGE_DAYS = 90;
const SCAN_PAGE = 200;

export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function sortKey(e: HistoryEntry): string {
  return `${String(e.closedAt).padStart(15, '0')}:${e.sessionId}`;
}

export async function indexClosedSession(index: IndexStore, tenant: string, e: HistoryEntry): Promise<void> {
  const day = dayOf(e.closedAt);
  const k = sortKey(e);
  const writes = [
    index.put(tenant, `closed:${day}`, k, e),
    index.put(tenant, `closed-visitor:${e.visitorId}`, k, e),
  ];
  if (e.agentId !== undefined) writes.push(index.put(tenant, `closed-agent:${e.agentId}:${day}`, k, e));
  await Promise.all(writes);
}

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;

function parseDay(s: string, field: string): number {
  if (!DAY_RE.test(s) || Number.isNaN(Date.parse(`${s}T00:00:00Z`))) {
    throw new SbError('SB_ERR_INVALID_FIELD', `${field} must be a date YYYY-MM-DD`);
  }
  return Date.parse(`${s}T00:00:00Z`);
}

interface Cursor {
  /** Partition being read. */
  p: string;
  /** Last sort key returned. */
  k: string;
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

function decodeCursor(s: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as Cursor;
    if (typeof c.p === 'string' && typeof c.k === 'string') return c;
  } catch {
    // fall through
  }
  throw new SbError('SB_ERR_INVALID_FIELD', 'cursor is not valid');
}

/**
 * Runs a search for `caller`: admins see the whole tenant, agents only sessions they served,
 * visitors nothing. Every partition read is scoped by the caller's tenant.
 */
export async function searchHistory(
  index: IndexStore,
  caller: Caller,
  q: HistoryQuery,
  now: number,
): Promise<HistoryPage> {
  if (caller.role === 'visitor')
    throw new SbError('SB_ERR_FORBIDDEN', 'history search is for agents and admins');
  const limit = q.limit ?? 20;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new SbError('SB_ERR_INVALID_FIELD', 'limit must be 1–100');
  const toMs = q.to !== undefined ? parseDay(q.to, 'to') : parseDay(dayOf(now), 'to');
  const fromMs = q.from !== undefined ? parseDay(q.from, 'from') : toMs - 6 * DAY_MS;
  if (fromMs > toMs) throw new SbError('SB_ERR_INVALID_FIELD', 'from is after to');
  if ((toMs - fromMs) / DAY_MS + 1 > MAX_RANGE_DAYS) {
    throw new SbError('SB_ERR_INVALID_FIELD', `a search covers at most ${MAX_RANGE_DAYS} days`);
  }
  let agentFilter = q.agentId;
  if (caller.role === 'agent') {
    if (agentFilter !== undefined && agentFilter !== caller.id) {
      throw new SbError('SB_ERR_FORBIDDEN', 'agents search only their own sessions');
    }
    agentFilter = caller.id;
  }
  // Partitions newest first.
  const partitions: string[] = [];
  if (q.visitorId !== undefined) partitions.push(`closed-visitor:${q.visitorId}`);
  else {
    for (let d = toMs; d >= fromMs; d -= DAY_MS) {
      const day = dayOf(d);
      partitions.push(agentFilter !== undefined ? `closed-agent:${agentFilter}:${day}` : `closed:${day}`);
    }
  }
  const endOfTo = toMs + DAY_MS;
  const matches = (e: HistoryEntry): boolean =>
    e.closedAt >= fromMs &&
    e.closedAt < endOfTo &&
    (q.channel === undefined || e.channel === q.channel) &&
    (agentFilter === undefined || e.agentId === agentFilter) &&
    (q.tag === undefined || e.tags.includes(q.tag));

  let start = 0;
  let after: string | undefined;
  if (q.cursor !== undefined) {
    const c = decodeCursor(q.cursor);
    start = partitions.indexOf(c.p);
    if (start < 0) throw new SbError('SB_ERR_INVALID_FIELD', 'cursor does not belong to this search');
    after = c.k;
  }
  const out: HistoryEntry[] = [];
  let last: Cursor | undefined;
  for (let i = start; i < partitions.length; i++) {
    const p = partitions[i]!;
    let cursor = i === start ? after : undefined;
    for (;;) {
      const page = await index.range(caller.tenantId, p, {
        reverse: true,
        limit: SCAN_PAGE,
        ...(cursor !== undefined ? { after: cursor } : {}),
      });
      for (const row of page) {
        cursor = row.sortKey;
        const e = row.value as HistoryEntry;
        if (!matches(e)) continue;
        out.push(e);
        last = { p, k: row.sortKey };
        if (out.length === limit) return { sessions: out, nextCursor: encodeCursor(last) };
      }
      if (page.length < SCAN_PAGE) break;
    }
  }
  return { sessions: out };
}
