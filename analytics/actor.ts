/**
 * The statistics actor of a tenant (`analytics/<tenant>:stats`): folds every closed session into
 * facts (analytics/facts.ts) and answers reports (analytics/report.ts) from them. It works off
 * the message path: nothing in a chat waits for it.
 *
 * Its input is the history index the sessions already write when they close (`closed:<day>`,
 * sorted by close time). A durable cursor (the close time reached) says how far it got; each
 * catch-up reads again from five minutes before the cursor, because a session that closed a moment
 * earlier than another may finish writing its index entry later. A session seen again with the
 * same last seq is skipped; one with more events (a rating after the close re-indexes it) is folded
 * again within that window. Facts go to the index store, by the day of each basis:
 * `an-created:<day>` and `an-accepted:<day>`, keyed by session id (a re-fold replaces).
 *
 * Every report and drill-down first catches up, so answers include every session closed before
 * the request. While someone looks at reports a timer keeps catching up in the background.
 */
import type { Actor, ActorContext, ActorId } from '../engine/types.ts';
import type { IndexStore, MessageStore, StoredEvent } from '../engine/store/types.ts';
import { SbError } from '../protos/errors.ts';
import { KINDS, splitKey, tkey, type Caller, type VisitorMsg, type VisitorProfile } from '../actors/index.ts';
import type { HistoryEntry } from '../actors/history.ts';
import { foldSession, type SessionFacts } from './facts.ts';
import {
  basisTime,
  dayOf,
  daysOf,
  drillDown,
  METRICS,
  runReport,
  type Basis,
  type Report,
  type ReportSpec,
} from './report.ts';

export const ANALYTICS_KIND = 'analytics';
const CURSOR_KIND = 'ancursor';
const DAY_MS = 86_400_000;
/** Late index writes are looked for this far behind the cursor. */
export const REINDEX_WINDOW_MS = 5 * 60_000;
/** Sessions folded per turn; a longer backlog continues in the next turns. */
export const INGEST_PER_TURN = 2000;
/** Background catch-up while reports are being looked at. */
const TICK_MS = 5000;
const KEEP_TICKING_MS = 30 * 60_000;

export function analyticsKey(tenantId: string): string {
  return tkey(tenantId, 'stats');
}

export type AnalyticsMsg =
  | { t: 'report'; spec: ReportSpec }
  | { t: 'drill'; spec: ReportSpec; key: string[]; basis: Basis; limit: number }
  | { t: 'tick' }
  | { t: 'ingest' };

export interface ReportAnswer extends Report {
  /** Close time up to which sessions are included (ms epoch). */
  upTo: number;
  /** False while a backlog is still being folded (the numbers will grow). */
  complete: boolean;
}

export interface DrillAnswer {
  sessions: SessionFacts[];
  upTo: number;
  complete: boolean;
}

function pad(ms: number): string {
  return String(ms).padStart(15, '0');
}

export class AnalyticsActor implements Actor {
  private readonly tenantId: string;
  private cursorAt: number | undefined;
  /** Sessions folded inside the re-read window: id → last seq folded and close time. */
  private readonly recent = new Map<string, { lastSeq: number; closedAt: number }>();
  private complete = false;
  private lastQueryAt = 0;
  private ticking = false;

  constructor(readonly id: ActorId) {
    this.tenantId = splitKey(id.key).tenantId;
  }

  async onMessage(raw: unknown, ctx: ActorContext): Promise<unknown> {
    const msg = raw as AnalyticsMsg;
    switch (msg.t) {
      case 'report': {
        await this.queried(ctx);
        const report = runReport(msg.spec, await this.facts(msg.spec, this.bases(msg.spec), ctx));
        return { ...report, upTo: this.cursorAt ?? 0, complete: this.complete } satisfies ReportAnswer;
      }
      case 'drill': {
        await this.queried(ctx);
        const sessions = drillDown(
          msg.spec,
          msg.key,
          msg.basis,
          await this.facts(msg.spec, [msg.basis], ctx),
          msg.limit,
        );
        return { sessions, upTo: this.cursorAt ?? 0, complete: this.complete } satisfies DrillAnswer;
      }
      case 'tick':
        if (ctx.clock.now() - this.lastQueryAt > KEEP_TICKING_MS) {
          ctx.cancelTimer('tick');
          this.ticking = false;
          return undefined;
        }
        await this.ingest(ctx);
        return undefined;
      case 'ingest':
        await this.ingest(ctx);
        return undefined;
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `analytics: unknown message ${(msg as { t?: unknown }).t}`);
    }
  }

  private async queried(ctx: ActorContext): Promise<void> {
    this.lastQueryAt = ctx.clock.now();
    if (!this.ticking) {
      this.ticking = true;
      ctx.setInterval('tick', TICK_MS, { t: 'tick' } satisfies AnalyticsMsg);
    }
    await this.ingest(ctx);
  }

  private bases(spec: ReportSpec): Basis[] {
    const b = new Set<Basis>();
    for (const m of spec.metrics) b.add(METRICS[m].basis);
    return [...b];
  }

  private async facts(
    spec: ReportSpec,
    bases: readonly Basis[],
    ctx: ActorContext,
  ): Promise<Array<{ basis: Basis; fact: SessionFacts }>> {
    const index = ctx.stores.extra['index'] as IndexStore;
    const out: Array<{ basis: Basis; fact: SessionFacts }> = [];
    for (const basis of bases) {
      for (const day of daysOf(spec)) {
        let after: string | undefined;
        for (;;) {
          const page = await index.range(this.tenantId, `an-${basis}:${day}`, {
            limit: 1000,
            ...(after !== undefined ? { after } : {}),
          });
          for (const r of page) out.push({ basis, fact: r.value as SessionFacts });
          if (page.length < 1000) break;
          after = page[page.length - 1]!.sortKey;
        }
      }
    }
    return out;
  }

  /** Folds closed sessions after the cursor, at most {@link INGEST_PER_TURN} in this turn. */
  private async ingest(ctx: ActorContext): Promise<void> {
    const index = ctx.stores.extra['index'] as IndexStore;
    const now = ctx.clock.now();
    if (this.cursorAt === undefined) {
      const saved = await ctx.stores.state.get<{ at: number }>(this.tenantId, CURSOR_KIND, 'closed');
      // First run: the history of the longest report range.
      this.cursorAt = saved?.at ?? now - 91 * DAY_MS;
    }
    const start = this.cursorAt - REINDEX_WINDOW_MS;
    let reached = this.cursorAt;
    let budget = INGEST_PER_TURN;
    let done = true;
    outer: for (let d = Date.parse(`${dayOf(start)}T00:00:00Z`); d <= now; d += DAY_MS) {
      const day = dayOf(d);
      let after: string | undefined = d <= start ? pad(start) : undefined;
      for (;;) {
        const page = await index.range(this.tenantId, `closed:${day}`, {
          limit: 500,
          ...(after !== undefined ? { after } : {}),
        });
        for (const r of page) {
          const e = r.value as HistoryEntry;
          after = r.sortKey;
          const seen = this.recent.get(e.sessionId);
          if (!seen || seen.lastSeq < e.lastSeq) {
            if (budget-- <= 0) {
              done = false;
              break outer;
            }
            await this.foldOne(e, ctx);
            this.recent.set(e.sessionId, { lastSeq: e.lastSeq, closedAt: e.closedAt });
          }
          reached = Math.max(reached, e.closedAt);
        }
        if (page.length < 500) break;
      }
    }
    if (reached !== this.cursorAt) {
      this.cursorAt = reached;
      await ctx.stores.state.put(this.tenantId, CURSOR_KIND, 'closed', { at: reached });
    }
    for (const [id, s] of this.recent) if (s.closedAt < reached - REINDEX_WINDOW_MS) this.recent.delete(id);
    this.complete = done;
    if (!done) ctx.tell(ctx.self, { t: 'ingest' } satisfies AnalyticsMsg);
  }

  private async foldOne(e: HistoryEntry, ctx: ActorContext): Promise<void> {
    const store = ctx.stores.extra['messages'] as MessageStore;
    const index = ctx.stores.extra['index'] as IndexStore;
    const events: StoredEvent[] = [];
    let after = 0;
    for (;;) {
      const page = await store.read(this.tenantId, e.sessionId, { afterSeq: after, limit: 1000 });
      events.push(...page);
      if (page.length < 1000) break;
      after = page[page.length - 1]!.seq;
    }
    const fact = foldSession(e.sessionId, events, await this.visitorTags(e.visitorId, ctx));
    if (!fact) return;
    const writes: Array<Promise<void>> = [];
    for (const basis of ['created', 'accepted'] as const) {
      const at = basisTime(fact, basis);
      if (at !== undefined)
        writes.push(index.put(this.tenantId, `an-${basis}:${dayOf(at)}`, fact.sessionId, fact));
    }
    await Promise.all(writes);
  }

  /** The visitor's tags now (dimension "visitor tag"); none when the visitor cannot be asked. */
  private async visitorTags(visitorId: string, ctx: ActorContext): Promise<string[]> {
    const caller: Caller = { role: 'admin', tenantId: this.tenantId, id: 'analytics', name: 'analytics' };
    try {
      const p = await ctx.ask<VisitorProfile>(
        { kind: KINDS.visitor, key: tkey(this.tenantId, visitorId) },
        { t: 'profile', caller } satisfies VisitorMsg,
        { timeoutMs: 5000 },
      );
      return p.tags;
    } catch {
      return [];
    }
  }
}
