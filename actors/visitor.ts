/**
 * Visitor actor: remembers the visitor's open session so that a reload or a second tab joins
 * the same conversation instead of starting another one.
 */
import type { Actor, ActorContext, ActorId } from '../engine/types.ts';
import { SbError } from '../protos/errors.ts';
import type { SessionSummary } from '../protos/ws-v1.ts';
import { newId, splitKey, tkey } from './ids.ts';
import { KINDS, type Caller, type SessionMsg, type VisitorMsg } from './messages.ts';

interface VisitorState {
  openSessionId?: string;
}

export class VisitorActor implements Actor {
  private st: VisitorState = {};
  private readonly tenantId: string;
  private readonly visitorId: string;

  constructor(id: ActorId) {
    const k = splitKey(id.key);
    this.tenantId = k.tenantId;
    this.visitorId = k.id;
  }

  async onActivate(ctx: ActorContext): Promise<void> {
    this.st = (await ctx.loadState<VisitorState>()) ?? {};
  }

  async onMessage(raw: unknown, ctx: ActorContext): Promise<unknown> {
    const msg = raw as VisitorMsg;
    switch (msg.t) {
      case 'open': {
        this.check(msg.caller);
        const current = await this.current(msg.caller, ctx);
        if (current) return current;
        const sessionId = newId(ctx.clock.now());
        const create: SessionMsg = {
          t: 'create',
          visitorId: this.visitorId,
          visitorName: msg.caller.name,
          channel: msg.channel,
        };
        if (msg.entry !== undefined) create.entry = msg.entry;
        // Remember the id before creating, so a crash in between cannot orphan a created session.
        this.st.openSessionId = sessionId;
        await ctx.saveState(this.st);
        return ctx.ask<SessionSummary>({ kind: KINDS.session, key: tkey(this.tenantId, sessionId) }, create);
      }
      case 'current':
        this.check(msg.caller);
        return this.current(msg.caller, ctx);
      case 'sessionClosed':
        if (this.st.openSessionId === msg.sessionId) {
          delete this.st.openSessionId;
          await ctx.saveState(this.st);
        }
        return undefined;
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `visitor: unknown message ${(msg as { t?: unknown }).t}`);
    }
  }

  private check(caller: Caller): void {
    if (caller.tenantId !== this.tenantId || caller.role !== 'visitor' || caller.id !== this.visitorId) {
      throw new SbError('SB_ERR_FORBIDDEN');
    }
  }

  private async current(caller: Caller, ctx: ActorContext): Promise<SessionSummary | undefined> {
    const sid = this.st.openSessionId;
    if (sid === undefined) return undefined;
    try {
      const s = await ctx.ask<SessionSummary>(
        { kind: KINDS.session, key: tkey(this.tenantId, sid) },
        { t: 'summary', caller },
      );
      if (s.state !== 'closed') return s;
    } catch (err) {
      if (!(err instanceof SbError) || err.code !== 'SB_ERR_NOT_FOUND') throw err;
    }
    delete this.st.openSessionId;
    await ctx.saveState(this.st);
    return undefined;
  }
}
