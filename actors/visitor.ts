/**
 * Visitor actor: remembers the visitor's open session so that a reload or a second tab joins the
 * same conversation instead of starting another one; keeps the visitor's profile (tags, browsing
 * trail, past sessions); knows its live sockets, so it can report presence (F9) and deliver a
 * proactive invitation from an agent.
 */
import type { Actor, ActorContext, ActorId, EndpointId } from '../engine/types.ts';
import { SbError } from '../protos/errors.ts';
import type { DeviceInfo, SessionSummary } from '../protos/ws-v1.ts';
import { OwnedStream, visitorStream } from './domain-events.ts';
import { dispatchKey, endpointKey, forgetNode, newId, splitKey, tkey } from './ids.ts';
import {
  KINDS,
  type Caller,
  type ConnectionMsg,
  type DispatchMsg,
  type PresenceMsg,
  type SessionMsg,
  type VisitorMsg,
  type VisitorProfile,
} from './messages.ts';

export const TRAIL_LENGTH = 20;
export const MAX_VISITOR_TAGS = 50;

interface VisitorState {
  name?: string;
  openSessionId?: string;
  tags?: string[];
  trail?: VisitorProfile['trail'];
  /** Most recent first, at most 50. */
  sessions?: string[];
  device?: DeviceInfo;
}

export class VisitorActor implements Actor {
  private st: VisitorState = {};
  private readonly tenantId: string;
  private readonly visitorId: string;
  private readonly endpoints = new Map<string, EndpointId>();
  private readonly events: OwnedStream;

  constructor(id: ActorId) {
    const k = splitKey(id.key);
    this.tenantId = k.tenantId;
    this.visitorId = k.id;
    this.events = new OwnedStream(this.tenantId, visitorStream(this.visitorId));
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
        const create: SessionMsg = {
          t: 'create',
          visitorId: this.visitorId,
          visitorName: msg.caller.name,
          channel: msg.channel,
        };
        if (msg.entry !== undefined) create.entry = msg.entry;
        if (msg.associationId !== undefined) create.associationId = msg.associationId;
        if (msg.externalUserId !== undefined) create.externalUserId = msg.externalUserId;
        return this.createSession(create, ctx);
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
      case 'connected': {
        this.check(msg.caller);
        this.endpoints.set(endpointKey(msg.endpoint), msg.endpoint);
        if (
          msg.device &&
          (msg.device.ip !== this.st.device?.ip || msg.device.userAgent !== this.st.device?.userAgent)
        ) {
          // A new address or browser replaces the web details; what an app reported stays until it reports again.
          const { ip, userAgent, ...app } = this.st.device ?? {};
          void ip;
          void userAgent;
          this.st.device = { ...app, ...msg.device };
          if (this.st.name === msg.caller.name) await ctx.saveState(this.st);
        }
        if (this.st.name !== msg.caller.name) {
          const first = this.st.name === undefined;
          this.st.name = msg.caller.name;
          await ctx.saveState(this.st);
          if (!first) await this.events.append(ctx, { kind: 'visitor_profile', name: msg.caller.name });
        }
        this.presence(ctx);
        return undefined;
      }
      case 'disconnected':
        this.endpoints.delete(endpointKey(msg.endpoint));
        if (this.endpoints.size === 0) this.left(ctx);
        return undefined;
      case 'page': {
        this.check(msg.caller);
        const trail = (this.st.trail ??= []);
        const top = trail[0];
        if (top && top.url === msg.url && top.title === msg.title) {
          // The same page reported again (the window reconnected): presence only, no new trail entry.
          this.presence(ctx);
          return undefined;
        }
        const item: VisitorProfile['trail'][number] = { url: msg.url, at: ctx.clock.now() };
        if (msg.title !== undefined) item.title = msg.title;
        trail.unshift(item);
        trail.length = Math.min(trail.length, TRAIL_LENGTH);
        await ctx.saveState(this.st);
        const ev: { kind: 'visitor_page'; url: string; title?: string } = {
          kind: 'visitor_page',
          url: msg.url,
        };
        if (msg.title !== undefined) ev.title = msg.title;
        await this.events.append(ctx, ev);
        this.presence(ctx);
        return undefined;
      }
      case 'device':
        this.check(msg.caller);
        this.st.device = { ...this.st.device, ...msg.device };
        await ctx.saveState(this.st);
        return undefined;
      case 'invite':
        return this.invite(msg.caller, ctx);
      case 'profile':
        this.staff(msg.caller);
        return this.profile();
      case 'tags': {
        this.staff(msg.caller);
        const before = new Set(this.st.tags ?? []);
        const tags = new Set(before);
        for (const t of msg.remove ?? []) tags.delete(t);
        for (const t of msg.add ?? []) {
          if (typeof t !== 'string' || t.trim().length === 0 || t.length > 30)
            throw new SbError('SB_ERR_INVALID_FIELD', 'visitor tags are 1–30 characters');
          tags.add(t.trim());
        }
        if (tags.size > MAX_VISITOR_TAGS)
          throw new SbError('SB_ERR_INVALID_FIELD', `at most ${MAX_VISITOR_TAGS} tags per visitor`);
        this.st.tags = [...tags];
        await ctx.saveState(this.st);
        const added = this.st.tags.filter((t) => !before.has(t));
        const removed = [...before].filter((t) => !tags.has(t));
        if (added.length || removed.length)
          await this.events.append(ctx, { kind: 'visitor_tags', tags: this.st.tags, added, removed });
        return this.profile();
      }
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `visitor: unknown message ${(msg as { t?: unknown }).t}`);
    }
  }

  private presence(ctx: ActorContext): void {
    const last = this.st.trail?.[0];
    const m: PresenceMsg = {
      t: 'online',
      visitorId: this.visitorId,
      name: this.st.name ?? this.visitorId,
      at: ctx.clock.now(),
    };
    if (last) {
      m.url = last.url;
      if (last.title !== undefined) m.title = last.title;
    }
    ctx.tell({ kind: KINDS.presence, key: tkey(this.tenantId, 'presence') }, m);
  }

  private profile(): VisitorProfile {
    const p: VisitorProfile = {
      visitorId: this.visitorId,
      name: this.st.name ?? this.visitorId,
      tags: [...(this.st.tags ?? [])],
      trail: [...(this.st.trail ?? [])],
      online: this.endpoints.size > 0,
      sessions: [...(this.st.sessions ?? [])],
    };
    if (this.st.openSessionId !== undefined) p.openSessionId = this.st.openSessionId;
    if (this.st.device) p.device = { ...this.st.device };
    return p;
  }

  private async createSession(
    create: Extract<SessionMsg, { t: 'create' }>,
    ctx: ActorContext,
  ): Promise<SessionSummary> {
    const sessionId = newId(ctx.clock.now());
    // Remember the id before creating, so a crash in between cannot orphan a created session.
    this.st.openSessionId = sessionId;
    const past = (this.st.sessions ??= []);
    past.unshift(sessionId);
    past.length = Math.min(past.length, 50);
    await ctx.saveState(this.st);
    return ctx.ask<SessionSummary>({ kind: KINDS.session, key: tkey(this.tenantId, sessionId) }, create);
  }

  /** F9: an agent starts a chat with this visitor, who must be on the site and not already chatting. */
  private async invite(caller: Caller, ctx: ActorContext): Promise<SessionSummary> {
    this.staff(caller);
    if (this.endpoints.size === 0)
      throw new SbError('SB_ERR_INVALID_STATE', 'the visitor is not on the site');
    const visitorCaller: Caller = {
      role: 'visitor',
      tenantId: this.tenantId,
      id: this.visitorId,
      name: this.st.name ?? this.visitorId,
    };
    if (await this.current(visitorCaller, ctx))
      throw new SbError('SB_ERR_INVALID_STATE', 'the visitor already has an open session');
    const sessionId = newId(ctx.clock.now());
    const ok = await ctx.ask<boolean>({ kind: KINDS.dispatch, key: dispatchKey(this.tenantId) }, {
      t: 'reserve',
      agentId: caller.id,
      sessionId,
      requireOnline: false,
    } satisfies DispatchMsg);
    if (!ok)
      throw new SbError(
        'SB_ERR_AGENT_UNAVAILABLE',
        'you are offline or at your maximum of concurrent sessions',
      );
    this.st.openSessionId = sessionId;
    const past = (this.st.sessions ??= []);
    past.unshift(sessionId);
    past.length = Math.min(past.length, 50);
    await ctx.saveState(this.st);
    let s: SessionSummary;
    try {
      s = await ctx.ask<SessionSummary>({ kind: KINDS.session, key: tkey(this.tenantId, sessionId) }, {
        t: 'create',
        visitorId: this.visitorId,
        visitorName: visitorCaller.name,
        channel: 'web',
        proactive: { agentId: caller.id, agentName: caller.name },
      } satisfies SessionMsg);
    } catch (err) {
      ctx.tell({ kind: KINDS.dispatch, key: dispatchKey(this.tenantId) }, {
        t: 'released',
        agentId: caller.id,
        sessionId,
      } satisfies DispatchMsg);
      throw err;
    }
    for (const ep of this.endpoints.values()) {
      ctx.tell(ep, { t: 'frame', frame: { type: 'invited', session: s } } satisfies ConnectionMsg);
    }
    return s;
  }

  /** The visitor's sockets on a node that is gone are closed: as if they had disconnected. */
  onEndpointsGone(node: string, ctx: ActorContext): void {
    if (forgetNode(this.endpoints, node, (ep) => ep) && this.endpoints.size === 0) this.left(ctx);
  }

  /** The visitor's last socket went away: off the tenant's list of visitors on the site. */
  private left(ctx: ActorContext): void {
    ctx.tell({ kind: KINDS.presence, key: tkey(this.tenantId, 'presence') }, {
      t: 'offline',
      visitorId: this.visitorId,
    } satisfies PresenceMsg);
  }

  /** The connections registered here are forgotten with this activation: they register again. */
  onDeactivate(ctx: ActorContext): void {
    for (const ep of this.endpoints.values()) ctx.tell(ep, { t: 'reset' } satisfies ConnectionMsg);
    this.endpoints.clear();
  }

  private check(caller: Caller): void {
    if (caller.tenantId !== this.tenantId || caller.role !== 'visitor' || caller.id !== this.visitorId) {
      throw new SbError('SB_ERR_FORBIDDEN');
    }
  }

  private staff(caller: Caller): void {
    if (caller.tenantId !== this.tenantId) throw new SbError('SB_ERR_NOT_FOUND', 'no such visitor');
    if (caller.role === 'visitor') throw new SbError('SB_ERR_FORBIDDEN');
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
