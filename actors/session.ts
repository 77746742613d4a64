/**
 * Session actor: the single writer of one conversation. It assigns every event its `seq`,
 * appends it durably to the MessageStore before anyone hears of it, and fans it out to the
 * connections subscribed to the session. Being one actor, it needs no locks: turns are serial.
 */
import type { Actor, ActorContext, ActorId, EndpointId } from '../engine/types.ts';
import type { IndexStore, MessageStore, StoredEvent } from '../engine/store/types.ts';
import { indexClosedSession, type HistoryEntry } from './history.ts';
import { SbError } from '../protos/errors.ts';
import type {
  SessionEvent,
  SessionEventBody,
  SessionState,
  SessionSummary,
  ServerFrame,
} from '../protos/ws-v1.ts';
import { DEFAULT_LIMITS, RECALL_WINDOW_MS } from '../protos/ws-v1.ts';
import { dispatchKey, splitKey, tkey } from './ids.ts';
import { KINDS, type Caller, type ConnectionMsg, type SessionMsg } from './messages.ts';

export interface SessionState_ {
  tenantId: string;
  sessionId: string;
  visitorId: string;
  visitorName: string;
  channel: string;
  entry?: string;
  state: SessionState;
  agentId?: string;
  agentName?: string;
  createdAt: number;
  assignedAt?: number;
  closedAt?: number;
}

interface Subscriber {
  endpoint: EndpointId;
  role: Caller['role'];
}

/** F12: history is visible for 180 days unless the tenant's retention says otherwise. */
export const DEFAULT_RETENTION_DAYS = 180;
const DAY_MS = 86_400_000;

/** Recent clientMsgIds kept in memory; older ones are found through the store's index. */
const RECENT_IDS = 256;

export function messageStoreOf(ctx: ActorContext): MessageStore {
  const s = ctx.stores.extra['messages'];
  if (!s) throw new SbError('SB_ERR_INTERNAL', 'no message store configured');
  return s as MessageStore;
}

export function indexStoreOf(ctx: ActorContext): IndexStore {
  const s = ctx.stores.extra['index'];
  if (!s) throw new SbError('SB_ERR_INTERNAL', 'no index store configured');
  return s as IndexStore;
}

export function toSessionEvent(e: StoredEvent, forRole: Caller['role']): SessionEvent {
  let body = e.body as unknown as SessionEventBody;
  if (e.recalled && forRole === 'visitor' && body.kind === 'message') {
    body = { ...body, text: '' };
  }
  const out: SessionEvent = { sessionId: e.stream, seq: e.seq, at: e.at, body };
  if (e.recalled) out.recalled = e.recalled;
  return out;
}

function epKey(ep: EndpointId): string {
  return `${ep.thread}/${ep.name}`;
}

export class SessionActor implements Actor {
  private s: SessionState_ | undefined;
  private lastSeq = 0;
  private readonly subs = new Map<string, Subscriber>();
  private readonly recentIds = new Map<string, number>();
  private readonly tenantId: string;
  private readonly sessionId: string;
  private lastQueuePosition = 0;
  /** Tenant's history retention (F12), read at activation. */
  private retentionDays = DEFAULT_RETENTION_DAYS;

  /** Events older than this (ms epoch) are not served, even if still stored. */
  private visibleFrom(ctx: ActorContext): number {
    return ctx.clock.now() - this.retentionDays * DAY_MS;
  }

  constructor(readonly id: ActorId) {
    const k = splitKey(id.key);
    this.tenantId = k.tenantId;
    this.sessionId = k.id;
  }

  async onActivate(ctx: ActorContext): Promise<void> {
    const tenant = await ctx.stores.state.get<{ retentionDays?: number }>(
      this.tenantId,
      'tenant',
      this.tenantId,
    );
    this.retentionDays = tenant?.retentionDays ?? DEFAULT_RETENTION_DAYS;
    this.s = await ctx.loadState<SessionState_>();
    this.lastSeq = await messageStoreOf(ctx).lastSeq(this.tenantId, this.sessionId);
    if (this.s?.state === 'queued') {
      ctx.tell(
        { kind: KINDS.dispatch, key: dispatchKey(this.tenantId) },
        { t: 'refreshPosition', sessionId: this.sessionId },
      );
    }
  }

  async onMessage(raw: unknown, ctx: ActorContext): Promise<unknown> {
    const msg = raw as SessionMsg;
    if (!this.s && msg.t !== 'create') {
      // Unknown id (a guess, another tenant's id, a typo): answer and do not stay resident.
      ctx.deactivate();
      if (msg.t === 'unsubscribe' || msg.t === 'assign' || msg.t === 'queuePosition') return undefined;
      throw new SbError('SB_ERR_NOT_FOUND', 'no such session');
    }
    switch (msg.t) {
      case 'create':
        return this.create(msg, ctx);
      case 'summary':
        this.authorize(msg.caller);
        return this.summary();
      case 'send':
        return this.send(msg.caller, msg.clientMsgId, msg.text, ctx, msg.endpoint);
      case 'subscribe':
        return this.subscribe(msg.caller, msg.endpoint, msg.lastSeq, ctx);
      case 'unsubscribe':
        this.subs.delete(epKey(msg.endpoint));
        return undefined;
      case 'typing':
        return this.typing(msg.caller, msg.text, ctx);
      case 'close':
        return this.close(msg.caller, msg.reason ?? 'closed', ctx);
      case 'recall':
        return this.recall(msg.caller, msg.seq, ctx);
      case 'assign':
        return this.assign(msg.agentId, msg.agentName, ctx);
      case 'queuePosition':
        return this.queuePosition(msg.position, ctx);
      case 'read': {
        this.authorize(msg.caller);
        const events = await messageStoreOf(ctx).read(this.tenantId, this.sessionId, {
          afterSeq: msg.afterSeq,
          limit: msg.limit + 1,
          notBefore: this.visibleFrom(ctx),
        });
        const more = events.length > msg.limit;
        return { events: events.slice(0, msg.limit).map((e) => toSessionEvent(e, msg.caller.role)), more };
      }
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `session: unknown message ${(msg as { t?: unknown }).t}`);
    }
  }

  private get st(): SessionState_ {
    if (!this.s) throw new SbError('SB_ERR_NOT_FOUND', 'no such session');
    return this.s;
  }

  summary(): SessionSummary {
    const s = this.st;
    const out: SessionSummary = {
      sessionId: s.sessionId,
      tenantId: s.tenantId,
      visitorId: s.visitorId,
      visitorName: s.visitorName,
      channel: s.channel,
      state: s.state,
      createdAt: s.createdAt,
      lastSeq: this.lastSeq,
    };
    if (s.agentId !== undefined) out.agentId = s.agentId;
    if (s.assignedAt !== undefined) out.assignedAt = s.assignedAt;
    return out;
  }

  /** Visitors see their own session; agents the sessions assigned to them; admins all of their tenant. */
  private authorize(caller: Caller): void {
    const s = this.st;
    if (caller.tenantId !== s.tenantId) throw new SbError('SB_ERR_NOT_FOUND', 'no such session');
    if (caller.role === 'admin') return;
    if (caller.role === 'visitor' && caller.id === s.visitorId) return;
    if (caller.role === 'agent' && caller.id === s.agentId) return;
    throw new SbError('SB_ERR_FORBIDDEN', 'not a participant of this session');
  }

  private async append(
    body: SessionEventBody,
    ctx: ActorContext,
    clientMsgId?: string,
    skip?: EndpointId,
  ): Promise<{ event: StoredEvent; duplicate: boolean }> {
    const ev: StoredEvent = {
      tenant: this.tenantId,
      stream: this.sessionId,
      seq: this.lastSeq + 1,
      at: ctx.clock.now(),
      body: body as unknown as StoredEvent['body'],
      ttlSec: this.retentionDays * 86_400,
    };
    if (clientMsgId !== undefined) ev.clientMsgId = clientMsgId;
    let res;
    try {
      res = await messageStoreOf(ctx).append(ev);
    } catch (err) {
      if (err instanceof SbError && err.code === 'SB_ERR_SEQ_CONFLICT') {
        // Someone else wrote here (should not happen with one owner); re-sync and refuse this write.
        this.lastSeq = await messageStoreOf(ctx).lastSeq(this.tenantId, this.sessionId);
      }
      if (err instanceof SbError) throw err;
      throw new SbError('SB_ERR_STORE_UNAVAILABLE', undefined, { cause: err });
    }
    if (!res.duplicate) {
      this.lastSeq = res.event.seq;
      this.fanOut(res.event, ctx, skip);
    }
    return res;
  }

  private fanOut(e: StoredEvent, ctx: ActorContext, skip?: EndpointId): void {
    // Serialise once per role (visitors may see less than agents), not once per socket.
    let forVisitor: string | undefined;
    let forStaff: string | undefined;
    const skipKey = skip ? epKey(skip) : undefined;
    for (const [key, sub] of this.subs) {
      if (key === skipKey) continue;
      let json: string;
      if (sub.role === 'visitor') {
        json = forVisitor ??= JSON.stringify({
          type: 'event',
          event: toSessionEvent(e, 'visitor'),
        } satisfies ServerFrame);
      } else {
        json = forStaff ??= JSON.stringify({
          type: 'event',
          event: toSessionEvent(e, sub.role),
        } satisfies ServerFrame);
      }
      ctx.tell(sub.endpoint, { t: 'event', sessionId: e.stream, seq: e.seq, json } satisfies ConnectionMsg);
    }
  }

  private pushAll(frame: ServerFrame, ctx: ActorContext, roles?: ReadonlyArray<Caller['role']>): void {
    for (const sub of this.subs.values()) {
      if (roles && !roles.includes(sub.role)) continue;
      ctx.tell(sub.endpoint, { t: 'frame', frame } satisfies ConnectionMsg);
    }
  }

  private async save(ctx: ActorContext): Promise<void> {
    await ctx.saveState(this.st);
  }

  private async create(
    msg: Extract<SessionMsg, { t: 'create' }>,
    ctx: ActorContext,
  ): Promise<SessionSummary> {
    if (this.s) return this.summary();
    const now = ctx.clock.now();
    this.s = {
      tenantId: this.tenantId,
      sessionId: this.sessionId,
      visitorId: msg.visitorId,
      visitorName: msg.visitorName,
      channel: msg.channel,
      state: 'created',
      createdAt: now,
    };
    if (msg.entry !== undefined) this.s.entry = msg.entry;
    await this.save(ctx);
    const created: SessionEventBody = { kind: 'created', visitorId: msg.visitorId, channel: msg.channel };
    if (msg.entry !== undefined) created.entry = msg.entry;
    await this.append(created, ctx);
    // Routing seam: full routing rules (chatbots, skill groups, working hours) decide the target here.
    this.st.state = 'queued';
    await this.save(ctx);
    await this.append({ kind: 'queued', group: 'default' }, ctx);
    ctx.tell(
      { kind: KINDS.dispatch, key: dispatchKey(this.tenantId) },
      { t: 'enqueue', sessionId: this.sessionId, at: now },
    );
    return this.summary();
  }

  private async send(
    caller: Caller,
    clientMsgId: string,
    text: string,
    ctx: ActorContext,
    from_?: EndpointId,
  ): Promise<unknown> {
    this.authorize(caller);
    const known = this.recentIds.get(clientMsgId);
    if (known !== undefined) {
      const [e] = await messageStoreOf(ctx).read(this.tenantId, this.sessionId, {
        afterSeq: known - 1,
        limit: 1,
      });
      if (e) return { seq: e.seq, at: e.at, duplicate: true };
    }
    if (this.st.state === 'closed') {
      // A resend of a message stored before the close still gets its ack.
      const prior = await messageStoreOf(ctx).findByClientMsgId(this.tenantId, this.sessionId, clientMsgId);
      if (prior) return { seq: prior.seq, at: prior.at, duplicate: true };
      throw new SbError('SB_ERR_SESSION_CLOSED');
    }
    if (text.length === 0 || text.length > DEFAULT_LIMITS.maxTextChars) {
      throw new SbError('SB_ERR_INVALID_FIELD', `text must be 1–${DEFAULT_LIMITS.maxTextChars} characters`);
    }
    const from = caller.role === 'visitor' ? 'visitor' : 'agent';
    const res = await this.append(
      { kind: 'message', from, senderId: caller.id, text, clientMsgId },
      ctx,
      clientMsgId,
      from_,
    );
    this.recentIds.set(clientMsgId, res.event.seq);
    if (this.recentIds.size > RECENT_IDS) {
      const first = this.recentIds.keys().next();
      if (!first.done) this.recentIds.delete(first.value);
    }
    return { seq: res.event.seq, at: res.event.at, duplicate: res.duplicate };
  }

  private async subscribe(
    caller: Caller,
    endpoint: EndpointId,
    lastSeq: number,
    ctx: ActorContext,
  ): Promise<SessionSummary> {
    this.authorize(caller);
    if (lastSeq > this.lastSeq) {
      throw new SbError('SB_ERR_BAD_SEQ', `lastSeq ${lastSeq} is ahead of the session (${this.lastSeq})`);
    }
    // Replay first, then register: this turn is not interleaved with appends, so the live stream
    // continues exactly after the replayed page — no gap, no duplicate.
    const store = messageStoreOf(ctx);
    let after = lastSeq;
    const page = DEFAULT_LIMITS.resumePageSize;
    const notBefore = this.visibleFrom(ctx);
    let lastFrameMore = true;
    while (after < this.lastSeq) {
      const events = await store.read(this.tenantId, this.sessionId, {
        afterSeq: after,
        limit: page,
        notBefore,
      });
      if (events.length === 0) break;
      after = events[events.length - 1]!.seq;
      lastFrameMore = after < this.lastSeq;
      const frame: ServerFrame = {
        type: 'events',
        sessionId: this.sessionId,
        events: events.map((e) => toSessionEvent(e, caller.role)),
        more: lastFrameMore,
      };
      ctx.tell(endpoint, { t: 'frame', frame } satisfies ConnectionMsg);
    }
    // Always end the replay with a page that says `more: false` (possibly empty).
    if (lastFrameMore) {
      ctx.tell(endpoint, {
        t: 'frame',
        frame: { type: 'events', sessionId: this.sessionId, events: [], more: false },
      } satisfies ConnectionMsg);
    }
    if (this.st.state !== 'closed') this.subs.set(epKey(endpoint), { endpoint, role: caller.role });
    if (this.st.state === 'queued' && caller.role === 'visitor' && this.lastQueuePosition > 0) {
      ctx.tell(endpoint, {
        t: 'frame',
        frame: { type: 'queue', sessionId: this.sessionId, position: this.lastQueuePosition },
      } satisfies ConnectionMsg);
    }
    return this.summary();
  }

  /**
   * F10: an agent recalls an own message within the window. The message is marked in the store
   * (auditors still read it) and a `recalled` event with its own seq tells every participant —
   * live and on replay — so the visitor's window removes it.
   */
  private async recall(caller: Caller, seq: number, ctx: ActorContext): Promise<{ seq: number }> {
    this.authorize(caller);
    if (caller.role === 'visitor') throw new SbError('SB_ERR_FORBIDDEN', 'visitors cannot recall messages');
    const store = messageStoreOf(ctx);
    const [target] = await store.read(this.tenantId, this.sessionId, { afterSeq: seq - 1, limit: 1 });
    const body = target?.body as unknown as SessionEventBody | undefined;
    if (!target || target.seq !== seq || body?.kind !== 'message')
      throw new SbError('SB_ERR_NOT_FOUND', `no message ${seq}`);
    if (body.from !== 'agent' || body.senderId !== caller.id) {
      throw new SbError('SB_ERR_FORBIDDEN', 'only the sender can recall a message');
    }
    if (target.recalled) return { seq: target.seq };
    const now = ctx.clock.now();
    if (now - target.at > RECALL_WINDOW_MS) throw new SbError('SB_ERR_RECALL_EXPIRED');
    await store.markRecalled(this.tenantId, this.sessionId, seq, caller.id, now);
    const res = await this.append({ kind: 'recalled', targetSeq: seq, by: caller.id }, ctx);
    return { seq: res.event.seq };
  }

  private typing(caller: Caller, text: string | undefined, ctx: ActorContext): void {
    this.authorize(caller);
    if (this.st.state === 'closed') return;
    const from = caller.role === 'visitor' ? 'visitor' : 'agent';
    // Visitors' draft text is a preview for agents only; agents' typing shows as a state, no text.
    const frame: ServerFrame =
      from === 'visitor' && text !== undefined
        ? {
            type: 'typing',
            sessionId: this.sessionId,
            from,
            text: text.slice(0, DEFAULT_LIMITS.maxTextChars),
          }
        : { type: 'typing', sessionId: this.sessionId, from };
    this.pushAll(frame, ctx, from === 'visitor' ? ['agent', 'admin'] : ['visitor']);
  }

  private async close(caller: Caller, reason: string, ctx: ActorContext): Promise<SessionSummary> {
    this.authorize(caller);
    const s = this.st;
    if (s.state === 'closed') return this.summary();
    const wasQueued = s.state === 'queued';
    s.state = 'closed';
    s.closedAt = ctx.clock.now();
    await this.save(ctx);
    const by = caller.role === 'visitor' ? 'visitor' : 'agent';
    await this.append({ kind: 'closed', by, reason: reason.slice(0, 200) }, ctx);
    const entry: HistoryEntry = {
      sessionId: s.sessionId,
      visitorId: s.visitorId,
      visitorName: s.visitorName,
      channel: s.channel,
      createdAt: s.createdAt,
      closedAt: s.closedAt,
      closedBy: by,
      tags: [],
      lastSeq: this.lastSeq,
    };
    if (s.agentId !== undefined) entry.agentId = s.agentId;
    if (s.agentName !== undefined) entry.agentName = s.agentName;
    await indexClosedSession(indexStoreOf(ctx), this.tenantId, entry);
    if (wasQueued)
      ctx.tell(
        { kind: KINDS.dispatch, key: dispatchKey(this.tenantId) },
        { t: 'dequeue', sessionId: this.sessionId },
      );
    if (s.agentId !== undefined) {
      ctx.tell(
        { kind: KINDS.dispatch, key: dispatchKey(this.tenantId) },
        { t: 'released', agentId: s.agentId, sessionId: this.sessionId },
      );
      ctx.tell(
        { kind: KINDS.agent, key: tkey(this.tenantId, s.agentId) },
        { t: 'sessionClosed', sessionId: this.sessionId },
      );
    }
    ctx.tell(
      { kind: KINDS.visitor, key: tkey(this.tenantId, s.visitorId) },
      { t: 'sessionClosed', sessionId: this.sessionId },
    );
    this.subs.clear();
    return this.summary();
  }

  private async assign(agentId: string, agentName: string, ctx: ActorContext): Promise<boolean> {
    const s = this.st;
    if (s.state !== 'queued') {
      // Closed while the dispatcher was choosing: give the capacity back.
      ctx.tell(
        { kind: KINDS.dispatch, key: dispatchKey(this.tenantId) },
        { t: 'released', agentId, sessionId: this.sessionId },
      );
      return false;
    }
    s.state = 'in_progress';
    s.agentId = agentId;
    s.agentName = agentName;
    s.assignedAt = ctx.clock.now();
    await this.save(ctx);
    await this.append({ kind: 'assigned', agentId, agentName }, ctx);
    this.lastQueuePosition = 0;
    ctx.tell(
      { kind: KINDS.agent, key: tkey(this.tenantId, agentId) },
      { t: 'sessionAssigned', session: this.summary() },
    );
    return true;
  }

  private queuePosition(position: number, ctx: ActorContext): void {
    if (!this.s || this.s.state !== 'queued' || position === this.lastQueuePosition) return;
    this.lastQueuePosition = position;
    this.pushAll({ type: 'queue', sessionId: this.sessionId, position }, ctx, ['visitor']);
  }

  onDeactivate(ctx: ActorContext): void {
    for (const sub of this.subs.values()) {
      ctx.tell(sub.endpoint, { t: 'unsubscribed', sessionId: this.sessionId } satisfies ConnectionMsg);
    }
    this.subs.clear();
  }
}
