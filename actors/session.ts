/**
 * Session actor: the single writer of one conversation. It assigns every event its `seq`,
 * appends it durably to the MessageStore before anyone hears of it, and fans it out to the
 * connections subscribed to the session. Being one actor, it needs no locks: turns are serial.
 */
import { Later, type Actor, type ActorContext, type ActorId, type EndpointId } from '../engine/types.ts';
import type { AppendResult, IndexStore, MessageStore, StoredEvent } from '../engine/store/types.ts';
import { indexClosedSession, type HistoryEntry } from './history.ts';
import { SbError } from '../protos/errors.ts';
import type {
  Attachment,
  SessionEvent,
  SessionEventBody,
  SessionState,
  SessionSummary,
  ServerFrame,
} from '../protos/ws-v1.ts';
import { DEFAULT_LIMITS, RECALL_WINDOW_MS, STAFF_ONLY_EVENTS } from '../protos/ws-v1.ts';
import { dispatchKey, endpointKey, forgetNode, splitKey, tkey } from './ids.ts';
import {
  CHANNEL_OUT_ENDPOINT,
  KINDS,
  type ChannelOutMsg,
  type AgentMsg,
  type Caller,
  type ConnectionMsg,
  type DispatchMsg,
  type SessionMsg,
} from './messages.ts';
import { handoff as routeHandoff, route, type Channel, type RoutingDecision } from './routing-rules.ts';
import { checkMessage } from './sensitive-words.ts';
import { getFileRecord } from './files.ts';
import { UNGROUPED } from './dispatch-core.ts';
import { cachedTenantConfig, readTenantConfig, tagIds, type LiveConfig } from './tenant-config.ts';
import { noteForWebhooks } from './webhook-outbox.ts';
import { mayProduceWebhook } from './webhooks.ts';

export interface SessionState_ {
  tenantId: string;
  sessionId: string;
  visitorId: string;
  visitorName: string;
  channel: string;
  entry?: string;
  associationId?: string;
  /** WeChat OpenID / Weibo user id of the visitor. */
  externalUserId?: string;
  state: SessionState;
  agentId?: string;
  agentName?: string;
  groupId?: string;
  botId?: string;
  /** The decision that chose the bot or group (F4), shown to admins. */
  routing?: RoutingDecision;
  createdAt: number;
  assignedAt?: number;
  closedAt?: number;
  tags?: string[];
  ratingInvited?: boolean;
  rating?: { score: number; remark?: string };
  pendingTransfer?: { fromAgentId: string; toAgentId: string; expiresAt: number };
  /** Durable reminders currently set (dueAt), so a message does not rewrite them every time. */
  timers?: { inactivity?: number; noReply?: number };
  /** When and how urgently the session joined its current queue. */
  queued?: { at: number; priority: number };
  /** Seq of the agent message the visitor was last warned about (no-reply rule). */
  warnedAfterSeq?: number;
}

interface Subscriber {
  endpoint: EndpointId;
  role: Caller['role'];
  id: string;
}

/** Words a visitor can type to leave the chatbot for a human (besides the `handoff` frame). */
const HANDOFF_WORDS = /^\s*(human|agent|转人工|人工|人工客服)\s*$/i;

/** F12: history is visible for 180 days unless the tenant's retention says otherwise. */
export const DEFAULT_RETENTION_DAYS = 180;
const DAY_MS = 86_400_000;

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

/** Whether `role` may see the content of an event (visitors never see staff-only kinds). */
export function visibleTo(e: StoredEvent, role: Caller['role']): boolean {
  return role !== 'visitor' || !STAFF_ONLY_EVENTS.has((e.body as { kind?: string }).kind ?? '');
}

export function toSessionEvent(e: StoredEvent, forRole: Caller['role']): SessionEvent {
  if (!visibleTo(e, forRole))
    return { sessionId: e.stream, seq: e.seq, at: e.at, body: { kind: 'internal' } };
  let body = e.body as unknown as SessionEventBody;
  if (e.recalled && forRole === 'visitor' && body.kind === 'message') {
    body = { ...body, text: '' };
  }
  const out: SessionEvent = { sessionId: e.stream, seq: e.seq, at: e.at, body };
  if (e.recalled) out.recalled = e.recalled;
  return out;
}

/**
 * The `event` frame of a stored event as one role sees it, serialised: exactly
 * `JSON.stringify({ type: 'event', event: toSessionEvent(e, role) })`, built around the body's own
 * JSON on the common path (a visible event, not recalled) without the intermediate objects.
 */
export function eventFrameJson(e: StoredEvent, role: Caller['role']): string {
  if (e.recalled !== undefined || !visibleTo(e, role))
    return JSON.stringify({ type: 'event', event: toSessionEvent(e, role) } satisfies ServerFrame);
  return `{"type":"event","event":{"sessionId":${JSON.stringify(e.stream)},"seq":${e.seq},"at":${e.at},"body":${JSON.stringify(e.body)}}}`;
}

/** The answer to a `send`: where the message went (or, for a resend, where it had gone). */
interface SendAck {
  seq: number;
  at: number;
  duplicate: boolean;
}

function epKey(ep: EndpointId): string {
  return endpointKey(ep);
}

const MINUTE = 60_000;

export class SessionActor implements Actor {
  private s: SessionState_ | undefined;
  private lastSeq = 0;
  private readonly subs = new Map<string, Subscriber>();
  private readonly tenantId: string;
  private readonly sessionId: string;
  private lastQueuePosition = 0;
  /** Settles when the last message sent without waiting (see `sendOrdered`) is settled. */
  private ordered: Promise<void> | undefined;
  /** Tenant's history retention (F12), read at activation. */
  private retentionDays = DEFAULT_RETENTION_DAYS;
  /** Typing preview throttle (F6): last forwarded time and the text held back since. */
  private typingSentAt = 0;
  private typingHeld: string | undefined;

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
    if (this.s?.state === 'queued' && this.s.groupId !== undefined) {
      // Idempotent: the dispatcher keeps its place if it has it, and re-sends the position.
      const q = this.s.queued ?? { at: this.s.createdAt, priority: 0 };
      this.tellDispatch(ctx, {
        t: 'enqueue',
        sessionId: this.sessionId,
        groupId: this.s.groupId,
        at: q.at,
        priority: q.priority,
      });
    }
  }

  private config(ctx: ActorContext): Promise<LiveConfig> {
    return readTenantConfig(ctx.stores.state, this.tenantId, ctx.clock.now());
  }

  async onMessage(raw: unknown, ctx: ActorContext): Promise<unknown> {
    const msg = raw as SessionMsg;
    if (!this.s && msg.t !== 'create') {
      // Unknown id (a guess, another tenant's id, a typo): answer and do not stay resident.
      ctx.deactivate();
      switch (msg.t) {
        case 'unsubscribe':
        case 'assign':
        case 'queuePosition':
        case 'typingFlush':
        case 'botTurn':
        case 'transferTimeout':
        case 'inactivityCheck':
        case 'noReplyCheck':
          if (msg.t === 'assign') this.giveBack(msg.agentId, ctx);
          return undefined;
      }
      throw new SbError('SB_ERR_NOT_FOUND', 'no such session');
    }
    // Messages sent without waiting go first: what follows may read or change what they wrote.
    if (this.ordered && msg.t !== 'send') await this.untilOrdered();
    switch (msg.t) {
      case 'create':
        return this.create(msg, ctx);
      case 'summary':
        this.authorize(msg.caller);
        return this.summary(msg.caller.role);
      case 'details':
        this.authorize(msg.caller);
        if (msg.caller.role === 'visitor') throw new SbError('SB_ERR_FORBIDDEN');
        return { ...this.st };
      case 'send':
        return this.send(msg.caller, msg.clientMsgId, msg.text, ctx, msg.endpoint, msg.attachment);
      case 'subscribe':
        return this.subscribe(msg.caller, msg.endpoint, msg.lastSeq, ctx);
      case 'unsubscribe':
        this.subs.delete(epKey(msg.endpoint));
        return undefined;
      case 'typing':
        return this.typing(msg.caller, msg.text, ctx);
      case 'typingFlush':
        return this.flushTyping(ctx);
      case 'close':
        return this.close(msg.caller, msg.reason ?? 'closed', ctx);
      case 'recall':
        return this.recall(msg.caller, msg.seq, ctx);
      case 'assign':
        return this.assign(msg.agentId, msg.agentName, msg.groupId, ctx);
      case 'queuePosition':
        return this.queuePosition(msg.position, msg.changedAt, ctx);
      case 'read': {
        this.authorize(msg.caller);
        const events = await messageStoreOf(ctx).read(this.tenantId, this.sessionId, {
          afterSeq: msg.afterSeq,
          limit: msg.limit + 1,
          notBefore: this.visibleFrom(ctx),
        });
        const more = events.length > msg.limit;
        return {
          events: events.slice(0, msg.limit).map((e) => toSessionEvent(e, msg.caller.role)),
          more,
        };
      }
      case 'handoff':
        return this.handoff(msg.caller, ctx);
      case 'transfer':
        return this.transfer(msg.caller, msg.toAgentId, msg.toGroupId, ctx);
      case 'transferAnswer':
        return this.transferAnswer(msg.caller, msg.accept, ctx);
      case 'transferTimeout':
        return this.transferTimeout(msg.toAgentId, ctx);
      case 'tag':
        return this.tag(msg.caller, msg.tagId, msg.op, ctx);
      case 'note':
        return this.note(msg.caller, msg.text, ctx);
      case 'inviteRating':
        return this.inviteRating(msg.caller, ctx);
      case 'rate':
        return this.rate(msg.caller, msg.score, msg.remark, ctx);
      case 'botTurn':
        return this.botTurn(msg.text, ctx);
      case 'inactivityCheck':
        return this.autoCloseCheck('inactivity', ctx);
      case 'noReplyCheck':
        return this.autoCloseCheck('noReply', ctx);
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `session: unknown message ${(msg as { t?: unknown }).t}`);
    }
  }

  private get st(): SessionState_ {
    if (!this.s) throw new SbError('SB_ERR_NOT_FOUND', 'no such session');
    return this.s;
  }

  summary(role: Caller['role'] = 'agent'): SessionSummary {
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
    if (s.groupId !== undefined) out.groupId = s.groupId;
    if (s.botId !== undefined) out.botId = s.botId;
    if (s.rating !== undefined) out.rating = s.rating;
    if (role !== 'visitor') {
      if (s.tags?.length) out.tags = [...s.tags];
      if (s.pendingTransfer) out.pendingTransfer = { ...s.pendingTransfer };
    }
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

  private staffOnly(caller: Caller): void {
    this.authorize(caller);
    if (caller.role === 'visitor') throw new SbError('SB_ERR_FORBIDDEN', 'agents only');
  }

  /** The session's next event (at the seq after the last one written). */
  private nextEvent(body: SessionEventBody, ctx: ActorContext, clientMsgId?: string): StoredEvent {
    const ev: StoredEvent = {
      tenant: this.tenantId,
      stream: this.sessionId,
      seq: this.lastSeq + 1,
      at: ctx.clock.now(),
      body: body as unknown as StoredEvent['body'],
      ttlSec: this.retentionDays * 86_400,
    };
    if (clientMsgId !== undefined) ev.clientMsgId = clientMsgId;
    return ev;
  }

  /**
   * Appends one event at the next seq and, once it is durable, fans it out. The durable write is
   * followed by one continuation rather than an awaiting async frame: at saturation every message
   * in flight holds what its wait keeps alive.
   */
  private append(
    body: SessionEventBody,
    ctx: ActorContext,
    clientMsgId?: string,
    skip?: EndpointId,
    live?: LiveConfig,
  ): Promise<{ event: StoredEvent; duplicate: boolean }> {
    return messageStoreOf(ctx)
      .append(this.nextEvent(body, ctx, clientMsgId))
      .then(
        (res) => this.appended(res, body, ctx, skip, live),
        (err: unknown) => this.appendFailed(err, ctx),
      );
  }

  /** A durable append: the seq moves on (never back: ordered appends may be ahead), subscribers hear of it. */
  private appended(
    res: AppendResult,
    body: SessionEventBody,
    ctx: ActorContext,
    skip?: EndpointId,
    live?: LiveConfig,
  ): AppendResult | Promise<AppendResult> {
    if (res.duplicate) return res;
    if (res.event.seq > this.lastSeq) this.lastSeq = res.event.seq;
    this.fanOut(res.event, ctx, skip);
    const noted = noteForWebhooks(ctx, this.tenantId, this.sessionId, res.event.seq, body, live);
    return noted ? noted.then(() => res) : res;
  }

  /** A refused append: a seq conflict re-syncs the seq (someone else wrote here), then it is refused. */
  private async appendFailed(err: unknown, ctx: ActorContext): Promise<never> {
    if (err instanceof SbError && err.code === 'SB_ERR_SEQ_CONFLICT') {
      // Should not happen with one owner.
      this.lastSeq = await messageStoreOf(ctx).lastSeq(this.tenantId, this.sessionId);
    }
    if (err instanceof SbError) throw err;
    throw new SbError('SB_ERR_STORE_UNAVAILABLE', undefined, { cause: err });
  }

  /** Several events in one durable write (one partition, atomic), then fanned out in order. */
  private async appendAll(bodies: SessionEventBody[], ctx: ActorContext): Promise<void> {
    if (bodies.length === 1) {
      await this.append(bodies[0]!, ctx);
      return;
    }
    const at = ctx.clock.now();
    const events: StoredEvent[] = bodies.map((body, i) => ({
      tenant: this.tenantId,
      stream: this.sessionId,
      seq: this.lastSeq + 1 + i,
      at,
      body: body as unknown as StoredEvent['body'],
      ttlSec: this.retentionDays * 86_400,
    }));
    try {
      await messageStoreOf(ctx).appendBatch(events);
    } catch (err) {
      if (err instanceof SbError && err.code === 'SB_ERR_SEQ_CONFLICT') {
        this.lastSeq = await messageStoreOf(ctx).lastSeq(this.tenantId, this.sessionId);
      }
      if (err instanceof SbError) throw err;
      throw new SbError('SB_ERR_STORE_UNAVAILABLE', undefined, { cause: err });
    }
    for (const e of events) {
      this.lastSeq = e.seq;
      this.fanOut(e, ctx);
    }
    const last = events[events.length - 1]!;
    if (bodies.some((b) => mayProduceWebhook(b)))
      await noteForWebhooks(ctx, this.tenantId, this.sessionId, last.seq, { kind: 'message' });
  }

  private fanOut(e: StoredEvent, ctx: ActorContext, skip?: EndpointId): void {
    const s = this.s;
    if (s?.externalUserId !== undefined && s.associationId !== undefined) {
      const b = e.body as { kind?: string; from?: string; text?: string };
      if (b.kind === 'message' && b.from !== 'visitor' && b.text) {
        // The visitor is on WeChat/Weibo: the gateway's provider carries the reply there.
        ctx.tell(CHANNEL_OUT_ENDPOINT, {
          t: 'channelOut',
          tenantId: this.tenantId,
          sessionId: this.sessionId,
          seq: e.seq,
          channel: s.channel,
          associationId: s.associationId,
          externalUserId: s.externalUserId,
          text: b.text,
        } satisfies ChannelOutMsg);
      }
    }
    // Serialise once per role (visitors may see less than agents), not once per socket.
    let forVisitor: string | undefined;
    let forStaff: string | undefined;
    const skipKey = skip ? epKey(skip) : undefined;
    for (const [key, sub] of this.subs) {
      if (key === skipKey) continue;
      const json =
        sub.role === 'visitor'
          ? (forVisitor ??= eventFrameJson(e, 'visitor'))
          : (forStaff ??= eventFrameJson(e, sub.role));
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

  private tellDispatch(ctx: ActorContext, m: DispatchMsg): void {
    ctx.tell({ kind: KINDS.dispatch, key: dispatchKey(this.tenantId) }, m);
  }

  private tellAgent(ctx: ActorContext, agentId: string, m: AgentMsg): void {
    ctx.tell({ kind: KINDS.agent, key: tkey(this.tenantId, agentId) }, m);
  }

  /** An assignment this session cannot take: give the agent's capacity back. */
  private giveBack(agentId: string, ctx: ActorContext): void {
    this.tellDispatch(ctx, { t: 'released', agentId, sessionId: this.sessionId });
  }

  // ---- creation and routing (F4) ------------------------------------------------------------

  private async create(
    msg: Extract<SessionMsg, { t: 'create' }>,
    ctx: ActorContext,
  ): Promise<SessionSummary> {
    if (this.s) return this.summary('visitor');
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
    if (msg.associationId !== undefined) this.s.associationId = msg.associationId;
    if (msg.externalUserId !== undefined) this.s.externalUserId = msg.externalUserId;
    const created: SessionEventBody = { kind: 'created', visitorId: msg.visitorId, channel: msg.channel };
    if (msg.entry !== undefined) created.entry = msg.entry;
    if (msg.associationId !== undefined) created.associationId = msg.associationId;
    if (msg.proactive) {
      created.proactive = true;
      // F9: the agent already holds the capacity (reserved by the visitor actor).
      this.st.state = 'queued';
      await this.save(ctx);
      await this.appendAll([created], ctx);
      await this.assign(msg.proactive.agentId, msg.proactive.agentName, undefined, ctx);
      return this.summary('visitor');
    }
    const { config } = await this.config(ctx);
    const decision = route(config.routing, this.routingContext(), now);
    const routed = this.routedBody(decision);
    if (decision.target.kind === 'bot') {
      const botId = decision.target.botId;
      const botName = config.routing.bots.find((b) => b.botId === botId)?.name ?? botId;
      this.st.state = 'chatbot';
      this.st.botId = botId;
      // One durable write for the whole opening of the session.
      await Promise.all([
        this.save(ctx),
        this.appendAll(
          [
            created,
            routed,
            { kind: 'chatbot', botId, botName },
            {
              kind: 'message',
              from: 'system',
              senderId: `bot:${botId}`,
              text: `Hello, this is ${botName}. Ask me anything, or type "human" (转人工) to talk to an agent.`,
            },
          ],
          ctx,
        ),
      ]);
    } else {
      await this.enqueue(decision.target.groupId, 0, ctx, undefined, [created, routed]);
    }
    return this.summary('visitor');
  }

  private routingContext(): { channel: Channel; associationId?: string; entry?: string } {
    const s = this.st;
    const channel: Channel = s.channel === 'h5' ? 'web' : (s.channel as Channel);
    const c: { channel: Channel; associationId?: string; entry?: string } = { channel };
    if (s.associationId !== undefined) c.associationId = s.associationId;
    if (s.entry !== undefined) c.entry = s.entry;
    return c;
  }

  /** Keeps the decision on the session and returns its (staff-only) event. */
  private routedBody(d: RoutingDecision): SessionEventBody {
    this.st.routing = d;
    return {
      kind: 'routed',
      target: d.target,
      ruleId: d.ruleId,
      ruleKind: d.ruleKind,
      hours: d.hours,
      reason: d.reason,
    };
  }

  /**
   * Puts the session in a group's queue: state first, then the events (`leading` ones too, in one
   * durable write), then the dispatcher. A session found `queued` at activation enqueues itself
   * again (idempotent), so a crash between these steps cannot strand it.
   */
  private async enqueue(
    groupId: string,
    priority: number,
    ctx: ActorContext,
    releaseFrom?: string,
    leading: SessionEventBody[] = [],
  ): Promise<void> {
    const s = this.st;
    const at = ctx.clock.now();
    s.state = 'queued';
    s.groupId = groupId;
    s.queued = { at, priority };
    delete s.botId;
    const body: SessionEventBody = { kind: 'queued', group: groupId };
    if (priority > 0) body.priority = priority;
    // State and events written together: the embedded store commits them in one transaction.
    await Promise.all([this.save(ctx), this.appendAll([...leading, body], ctx)]);
    const m: DispatchMsg = { t: 'enqueue', sessionId: this.sessionId, groupId, at, priority };
    if (releaseFrom !== undefined) m.releaseFrom = releaseFrom;
    this.tellDispatch(ctx, m);
  }

  private async botSays(text: string, ctx: ActorContext): Promise<void> {
    await this.append({ kind: 'message', from: 'system', senderId: `bot:${this.st.botId ?? ''}`, text }, ctx);
  }

  /** Chatbot → human (F4): the bot's handoff group, else the next lower-priority rule's group. */
  private async handoff(caller: Caller, ctx: ActorContext): Promise<SessionSummary> {
    this.authorize(caller);
    const s = this.st;
    if (s.state !== 'chatbot') {
      if (s.state === 'closed') throw new SbError('SB_ERR_SESSION_CLOSED');
      return this.summary(caller.role);
    }
    const { config } = await this.config(ctx);
    const now = ctx.clock.now();
    const botDecision: RoutingDecision = s.routing ?? route(config.routing, this.routingContext(), now);
    const d = routeHandoff(config.routing, this.routingContext(), botDecision, now);
    const routed = this.routedBody(d);
    await this.enqueue(d.target.kind === 'group' ? d.target.groupId : UNGROUPED, 0, ctx, undefined, [routed]);
    return this.summary(caller.role);
  }

  // ---- messages ---------------------------------------------------------------------------------

  private async send(
    caller: Caller,
    clientMsgId: string,
    text: string,
    ctx: ActorContext,
    from_?: EndpointId,
    attachment?: Attachment,
  ): Promise<unknown> {
    this.authorize(caller);
    // A resend (same clientMsgId) is recognised by the store's append, which is idempotent on it:
    // no per-session id cache here (one would keep every id alive long enough to be promoted and
    // then collected in the old generation).
    if (this.st.state === 'closed') {
      // A resend of a message stored before the close still gets its ack.
      const prior = await messageStoreOf(ctx).findByClientMsgId(this.tenantId, this.sessionId, clientMsgId);
      if (prior) return { seq: prior.seq, at: prior.at, duplicate: true };
      throw new SbError('SB_ERR_SESSION_CLOSED');
    }
    if ((text.length === 0 && !attachment) || text.length > DEFAULT_LIMITS.maxTextChars) {
      throw new SbError('SB_ERR_INVALID_FIELD', `text must be 1–${DEFAULT_LIMITS.maxTextChars} characters`);
    }
    let file: (Attachment & { url: string }) | undefined;
    if (attachment) {
      // The stored record decides name, type and size; visitors attach only their own uploads.
      const rec = await getFileRecord(ctx.stores.state, this.tenantId, attachment.fileId);
      if (!rec || (caller.role === 'visitor' && rec.uploadedBy !== caller.id))
        throw new SbError('SB_ERR_INVALID_FIELD', 'attachment.fileId: no such file');
      file = { fileId: rec.fileId, name: rec.name, mime: rec.mime, size: rec.size, url: rec.url };
    }
    const from = caller.role === 'visitor' ? 'visitor' : 'agent';
    // The cached config without a promise (the common case), else read.
    const live =
      cachedTenantConfig(ctx.stores.state, this.tenantId, ctx.clock.now()) ?? (await this.config(ctx));
    // F11 applies to the web and app channels.
    const checked =
      live.matcher.size > 0 && ['web', 'h5', 'app'].includes(this.st.channel)
        ? checkMessage(live.config.sensitive, live.matcher, text)
        : ({ verdict: 'pass' } as const);
    if (checked.verdict === 'block') {
      // A resend of a message stored before the list changed is still a duplicate, not a refusal.
      const prior = await messageStoreOf(ctx).findByClientMsgId(this.tenantId, this.sessionId, clientMsgId);
      if (prior) return { seq: prior.seq, at: prior.at, duplicate: true };
      throw new SbError('SB_ERR_SENSITIVE_WORD');
    }
    const body: SessionEventBody = {
      kind: 'message',
      from,
      senderId: caller.id,
      text,
      clientMsgId,
      ...(file ? { attachment: file } : {}),
    };
    const ordered = this.sendOrdered(body, ctx, clientMsgId, from_, live, from, checked);
    if (ordered) return ordered;
    // Returned, not awaited: this frame ends here; `sent` continues once the write is durable.
    return this.append(body, ctx, clientMsgId, from_, live).then((res) =>
      this.sent(res, from, live, checked, ctx),
    );
  }

  /**
   * A message whose turn ends before its write is durable, so the session's next message need not
   * wait for it (a burst of messages shares log flushes instead of taking one each): when the store
   * places the row at once (`MessageStore.appendOrdered`) and nothing after the write needs a turn
   * of its own (no reminder to arm). Its ack, fan-out and follow-ups come in order once durable;
   * turns other than messages wait for them first (`untilOrdered`). Undefined when it cannot go
   * this way.
   */
  private sendOrdered(
    body: SessionEventBody,
    ctx: ActorContext,
    clientMsgId: string,
    skip: EndpointId | undefined,
    live: LiveConfig,
    from: 'visitor' | 'agent',
    checked: ReturnType<typeof checkMessage> | { verdict: 'pass' },
  ): Later | undefined {
    const store = messageStoreOf(ctx);
    if (!store.appendOrdered || this.wouldArm(from, live)) return undefined;
    const ev = this.nextEvent(body, ctx, clientMsgId);
    const placed = store.appendOrdered(ev);
    if (!placed) return undefined;
    this.lastSeq = ev.seq;
    const answer = placed
      .then(
        (res) => this.appended(res, body, ctx, skip, live),
        (err: unknown) => this.appendFailed(err, ctx),
      )
      .then((res) => this.sent(res, from, live, checked, ctx));
    this.ordered = answer.then(
      () => undefined,
      () => undefined,
    );
    return new Later(answer);
  }

  /** Waits until every message sent without waiting (see `sendOrdered`) is settled. */
  private async untilOrdered(): Promise<void> {
    while (this.ordered) {
      const last = this.ordered;
      await last;
      if (this.ordered === last) this.ordered = undefined;
    }
  }

  /** After a message's durable append: the sensitive-word reminder, the bot or the reminders, the ack. */
  private sent(
    res: { event: StoredEvent; duplicate: boolean },
    from: 'visitor' | 'agent',
    live: LiveConfig,
    checked: ReturnType<typeof checkMessage> | { verdict: 'pass' },
    ctx: ActorContext,
  ): SendAck | Promise<SendAck> {
    const ack: SendAck = { seq: res.event.seq, at: res.event.at, duplicate: res.duplicate };
    if (!res.duplicate) {
      if (checked.verdict === 'remind' && from === 'agent') {
        this.pushAll(
          {
            type: 'notice',
            sessionId: this.sessionId,
            kind: 'sensitive',
            text: checked.reminder,
            words: checked.words,
          },
          ctx,
          ['agent', 'admin'],
        );
      }
      const after = this.afterMessage(from, res.event, live, ctx);
      if (after) return after.then(() => ack);
    }
    return ack;
  }

  /** Chatbot turn and the durable auto-close reminders (F5), armed lazily. */
  private afterMessage(
    from: 'visitor' | 'agent',
    e: StoredEvent,
    live: LiveConfig,
    ctx: ActorContext,
  ): Promise<void> | undefined {
    const s = this.st;
    if (s.state === 'chatbot' && from === 'visitor') {
      // The bot answers in its own turn, so the visitor's ack goes out first.
      ctx.tell(ctx.self, {
        t: 'botTurn',
        text: (e.body as { text?: string }).text ?? '',
      } satisfies SessionMsg);
      return undefined;
    }
    // Most messages arm nothing (the reminders are armed already, or off): no promise then.
    return this.wouldArm(from, live) ? this.armReminders(from, e, live.config.settings, ctx) : undefined;
  }

  /** Whether a message from `from` now would arm an auto-close reminder (F5). */
  private wouldArm(from: 'visitor' | 'agent', live: LiveConfig): boolean {
    const s = this.st;
    if (s.state !== 'in_progress') return false;
    const set = live.config.settings;
    return (
      (set.autoCloseInactiveMin > 0 && s.timers?.inactivity === undefined) ||
      (set.visitorNoReply.afterMin > 0 && from === 'agent' && s.timers?.noReply === undefined)
    );
  }

  private async armReminders(
    from: 'visitor' | 'agent',
    e: StoredEvent,
    set: LiveConfig['config']['settings'],
    ctx: ActorContext,
  ): Promise<void> {
    const s = this.st;
    const timers = (s.timers ??= {});
    let changed = false;
    if (set.autoCloseInactiveMin > 0 && timers.inactivity === undefined) {
      timers.inactivity = e.at + set.autoCloseInactiveMin * MINUTE;
      await ctx.setReminder('inactivity', timers.inactivity, { t: 'inactivityCheck' } satisfies SessionMsg);
      changed = true;
    }
    const nr = set.visitorNoReply;
    if (nr.afterMin > 0 && from === 'agent' && timers.noReply === undefined) {
      timers.noReply = e.at + (nr.afterMin - nr.warnBeforeMin) * MINUTE;
      await ctx.setReminder('noReply', timers.noReply, { t: 'noReplyCheck' } satisfies SessionMsg);
      changed = true;
    }
    if (changed) await this.save(ctx);
  }

  private async botTurn(text: string, ctx: ActorContext): Promise<void> {
    const s = this.st;
    if (s.state !== 'chatbot') return;
    if (HANDOFF_WORDS.test(text)) {
      await this.handoff(
        { role: 'visitor', tenantId: s.tenantId, id: s.visitorId, name: s.visitorName },
        ctx,
      );
    } else {
      await this.botSays(
        'Sorry, I have no answer for that yet. Type "human" (转人工) to reach an agent.',
        ctx,
      );
    }
  }

  /** Last message times, read from the store (reminders may fire after a restart). */
  private async lastMessages(
    ctx: ActorContext,
  ): Promise<{ any?: StoredEvent; visitor?: StoredEvent; agent?: StoredEvent }> {
    const out: { any?: StoredEvent; visitor?: StoredEvent; agent?: StoredEvent } = {};
    let before = this.lastSeq + 1;
    for (let pages = 0; pages < 10 && before > 1 && !(out.visitor && out.agent); pages++) {
      const evs = await messageStoreOf(ctx).read(this.tenantId, this.sessionId, {
        beforeSeq: before,
        limit: 100,
        direction: 'backward',
      });
      if (evs.length === 0) break;
      for (const e of evs) {
        const b = e.body as { kind?: string; from?: string };
        if (b.kind !== 'message') continue;
        out.any ??= e;
        if (b.from === 'visitor') out.visitor ??= e;
        if (b.from === 'agent') out.agent ??= e;
      }
      before = evs[evs.length - 1]!.seq;
    }
    return out;
  }

  private systemCaller(): Caller {
    return { role: 'admin', tenantId: this.tenantId, id: 'system', name: 'system' };
  }

  /**
   * Both auto-close rules (F5) in one place: when a reminder fires (possibly long after, on a
   * restarted node) the rule whose deadline passed first decides the close reason; otherwise the
   * warning is sent when due and the reminder is set again for the next deadline.
   */
  private async autoCloseCheck(which: 'inactivity' | 'noReply', ctx: ActorContext): Promise<void> {
    const s = this.st;
    const timers = (s.timers ??= {});
    delete timers[which];
    const { config } = await this.config(ctx);
    const min = config.settings.autoCloseInactiveMin;
    const nr = config.settings.visitorNoReply;
    if (s.state !== 'in_progress') {
      await this.save(ctx);
      return;
    }
    const last = await this.lastMessages(ctx);
    const now = ctx.clock.now();
    const inactiveAt =
      min > 0 ? Math.max(last.any?.at ?? 0, s.assignedAt ?? s.createdAt) + min * MINUTE : Infinity;
    // The no-reply rule runs while the agent spoke last and the visitor has not answered.
    const waiting = nr.afterMin > 0 && last.agent && !(last.visitor && last.visitor.seq > last.agent.seq);
    const noReplyAt = waiting ? last.agent!.at + nr.afterMin * MINUTE : Infinity;
    if (now >= Math.min(inactiveAt, noReplyAt)) {
      await this.close(
        this.systemCaller(),
        noReplyAt <= inactiveAt ? 'visitor_no_reply' : 'inactive',
        ctx,
        'system',
      );
      return;
    }
    if (which === 'noReply' && waiting) {
      const warnAt = noReplyAt - nr.warnBeforeMin * MINUTE;
      if (now >= warnAt && nr.warnBeforeMin > 0 && s.warnedAfterSeq !== last.agent!.seq) {
        s.warnedAfterSeq = last.agent!.seq;
        await this.append({ kind: 'message', from: 'system', senderId: 'system', text: nr.warning }, ctx);
      }
      timers.noReply = now >= warnAt ? noReplyAt : warnAt;
      await ctx.setReminder('noReply', timers.noReply, { t: 'noReplyCheck' } satisfies SessionMsg);
    }
    if (which === 'inactivity' && inactiveAt !== Infinity) {
      timers.inactivity = inactiveAt;
      await ctx.setReminder('inactivity', inactiveAt, { t: 'inactivityCheck' } satisfies SessionMsg);
    }
    await this.save(ctx);
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
    if (this.st.state !== 'closed')
      this.subs.set(epKey(endpoint), { endpoint, role: caller.role, id: caller.id });
    if (this.st.state === 'queued' && caller.role === 'visitor' && this.lastQueuePosition > 0) {
      ctx.tell(endpoint, {
        t: 'frame',
        frame: { type: 'queue', sessionId: this.sessionId, position: this.lastQueuePosition },
      } satisfies ConnectionMsg);
    }
    return this.summary(caller.role);
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

  // ---- typing preview (F6) ---------------------------------------------------------------------

  private async typing(caller: Caller, text: string | undefined, ctx: ActorContext): Promise<void> {
    this.authorize(caller);
    if (this.st.state === 'closed') return;
    if (caller.role !== 'visitor') {
      // Agents' typing shows as a state, without text.
      this.pushAll({ type: 'typing', sessionId: this.sessionId, from: 'agent' }, ctx, ['visitor']);
      return;
    }
    const { config } = await this.config(ctx);
    const throttle = config.settings.typingThrottleMs;
    const now = ctx.clock.now();
    this.typingHeld = (text ?? '').slice(0, DEFAULT_LIMITS.maxTextChars);
    if (now - this.typingSentAt >= throttle) this.flushTyping(ctx);
    else
      ctx.setTimer('typing', throttle - (now - this.typingSentAt), { t: 'typingFlush' } satisfies SessionMsg);
  }

  /** Forwards the latest draft: intermediate keystrokes inside the throttle window are dropped. */
  private flushTyping(ctx: ActorContext): void {
    if (this.typingHeld === undefined || !this.s || this.s.state === 'closed') return;
    const text = this.typingHeld;
    this.typingHeld = undefined;
    this.typingSentAt = ctx.clock.now();
    const frame: ServerFrame =
      text === ''
        ? { type: 'typing', sessionId: this.sessionId, from: 'visitor' }
        : { type: 'typing', sessionId: this.sessionId, from: 'visitor', text };
    this.pushAll(frame, ctx, ['agent', 'admin']);
  }

  // ---- close --------------------------------------------------------------------------------------

  private async close(
    caller: Caller,
    reason: string,
    ctx: ActorContext,
    byOverride?: 'system',
  ): Promise<SessionSummary> {
    this.authorize(caller);
    const s = this.st;
    if (s.state === 'closed') return this.summary(caller.role);
    if (caller.role !== 'visitor' && byOverride === undefined && s.state === 'in_progress') {
      const { config } = await this.config(ctx);
      if (config.settings.forceTagOnClose && !(s.tags?.length ?? 0)) throw new SbError('SB_ERR_TAG_REQUIRED');
    }
    const wasQueued = s.state === 'queued';
    const pending = s.pendingTransfer;
    s.state = 'closed';
    s.closedAt = ctx.clock.now();
    delete s.pendingTransfer;
    await this.save(ctx);
    const by = byOverride ?? (caller.role === 'visitor' ? 'visitor' : 'agent');
    await this.append({ kind: 'closed', by, reason: reason.slice(0, 200) }, ctx);
    await this.index(ctx);
    if (wasQueued) this.tellDispatch(ctx, { t: 'dequeue', sessionId: this.sessionId });
    if (pending) {
      await ctx.cancelReminder('transfer');
      this.tellAgent(ctx, pending.toAgentId, { t: 'transferWithdrawn', sessionId: this.sessionId });
    }
    if (s.timers?.inactivity !== undefined) await ctx.cancelReminder('inactivity');
    if (s.timers?.noReply !== undefined) await ctx.cancelReminder('noReply');
    if (s.agentId !== undefined) {
      this.giveBack(s.agentId, ctx);
      this.tellAgent(ctx, s.agentId, { t: 'sessionClosed', sessionId: this.sessionId });
    }
    ctx.tell(
      { kind: KINDS.visitor, key: tkey(this.tenantId, s.visitorId) },
      { t: 'sessionClosed', sessionId: this.sessionId },
    );
    this.subs.clear();
    return this.summary(caller.role);
  }

  private async index(ctx: ActorContext): Promise<void> {
    const s = this.st;
    if (s.closedAt === undefined) return;
    const closed = await messageStoreOf(ctx).read(this.tenantId, this.sessionId, {
      beforeSeq: this.lastSeq + 1,
      limit: 50,
      direction: 'backward',
    });
    const closedEv = closed.find((e) => (e.body as { kind?: string }).kind === 'closed');
    const entry: HistoryEntry = {
      sessionId: s.sessionId,
      visitorId: s.visitorId,
      visitorName: s.visitorName,
      channel: s.channel,
      createdAt: s.createdAt,
      closedAt: s.closedAt,
      closedBy: (closedEv?.body as { by?: string } | undefined)?.by ?? 'agent',
      tags: [...(s.tags ?? [])],
      lastSeq: this.lastSeq,
    };
    if (s.agentId !== undefined) entry.agentId = s.agentId;
    if (s.agentName !== undefined) entry.agentName = s.agentName;
    if (s.groupId !== undefined) entry.groupId = s.groupId;
    if (s.rating !== undefined) entry.rating = s.rating;
    await indexClosedSession(indexStoreOf(ctx), this.tenantId, entry);
  }

  // ---- assignment and transfer (F2, F3, F5) -----------------------------------------------------

  private async assign(
    agentId: string,
    agentName: string,
    groupId: string | undefined,
    ctx: ActorContext,
  ): Promise<boolean> {
    const s = this.st;
    if (s.state !== 'queued') {
      // Closed (or already served) while the dispatcher was choosing: give the capacity back.
      if (s.agentId !== agentId) this.giveBack(agentId, ctx);
      return false;
    }
    s.state = 'in_progress';
    s.agentId = agentId;
    s.agentName = agentName;
    delete s.queued;
    if (groupId !== undefined) s.groupId = groupId;
    s.assignedAt = ctx.clock.now();
    await Promise.all([this.save(ctx), this.append({ kind: 'assigned', agentId, agentName }, ctx)]);
    this.lastQueuePosition = 0;
    this.tellAgent(ctx, agentId, { t: 'sessionAssigned', session: this.summary('agent') });
    const live = await this.config(ctx);
    if (live.config.settings.autoCloseInactiveMin > 0 && s.timers?.inactivity === undefined) {
      (s.timers ??= {}).inactivity = s.assignedAt + live.config.settings.autoCloseInactiveMin * MINUTE;
      await ctx.setReminder('inactivity', s.timers.inactivity, { t: 'inactivityCheck' } satisfies SessionMsg);
      await this.save(ctx);
    }
    return true;
  }

  private async transfer(
    caller: Caller,
    toAgentId: string | undefined,
    toGroupId: string | undefined,
    ctx: ActorContext,
  ): Promise<SessionSummary> {
    this.staffOnly(caller);
    const s = this.st;
    if (s.state !== 'in_progress' || s.agentId === undefined)
      throw new SbError('SB_ERR_INVALID_STATE', 'only a session in progress can be transferred');
    if (s.pendingTransfer) throw new SbError('SB_ERR_TRANSFER_PENDING');
    if ((toAgentId === undefined) === (toGroupId === undefined))
      throw new SbError('SB_ERR_INVALID_FIELD', 'exactly one of toAgentId and toGroupId');
    const from = s.agentId;
    const now = ctx.clock.now();
    if (toGroupId !== undefined) {
      const { config } = await this.config(ctx);
      if (toGroupId !== UNGROUPED && !config.routing.groups.some((g) => g.groupId === toGroupId))
        throw new SbError('SB_ERR_NOT_FOUND', `no skill group ${toGroupId}`);
      await this.append({ kind: 'transfer_requested', fromAgentId: from, toGroupId }, ctx);
      await this.append({ kind: 'transferred', fromAgentId: from, toGroupId }, ctx);
      this.dropAgentSubs(from);
      delete s.agentId;
      delete s.agentName;
      delete s.assignedAt;
      this.tellAgent(ctx, from, { t: 'sessionReleased', sessionId: this.sessionId });
      // Transfers go ahead of new arrivals in the group's queue.
      await this.enqueue(toGroupId, 1, ctx, from);
      return this.summary(caller.role);
    }
    if (toAgentId === from)
      throw new SbError('SB_ERR_INVALID_FIELD', 'the session is already with this agent');
    const { config } = await this.config(ctx);
    const expiresAt = now + config.settings.transferTimeoutSec * 1000;
    s.pendingTransfer = { fromAgentId: from, toAgentId: toAgentId!, expiresAt };
    await this.save(ctx);
    await ctx.setReminder('transfer', expiresAt, {
      t: 'transferTimeout',
      toAgentId: toAgentId!,
    } satisfies SessionMsg);
    await this.append(
      { kind: 'transfer_requested', fromAgentId: from, toAgentId: toAgentId!, expiresAt },
      ctx,
    );
    this.tellAgent(ctx, toAgentId!, {
      t: 'transferOffer',
      session: this.summary('agent'),
      fromAgentId: from,
      expiresAt,
    });
    return this.summary(caller.role);
  }

  private async transferAnswer(caller: Caller, accept: boolean, ctx: ActorContext): Promise<SessionSummary> {
    const s = this.st;
    const p = s.pendingTransfer;
    if (caller.tenantId !== this.tenantId) throw new SbError('SB_ERR_NOT_FOUND', 'no such session');
    if (!p || p.toAgentId !== caller.id || caller.role === 'visitor')
      throw new SbError('SB_ERR_INVALID_STATE', 'no transfer of this session waits for you');
    if (!accept) {
      await this.endTransfer('declined', ctx);
      return this.summary('agent');
    }
    const ok = await ctx.ask<boolean>({ kind: KINDS.dispatch, key: dispatchKey(this.tenantId) }, {
      t: 'reserve',
      agentId: caller.id,
      sessionId: this.sessionId,
      requireOnline: false,
      releaseFrom: p.fromAgentId,
    } satisfies DispatchMsg);
    if (!ok) throw new SbError('SB_ERR_AGENT_UNAVAILABLE', 'you are at your maximum of concurrent sessions');
    delete s.pendingTransfer;
    await ctx.cancelReminder('transfer');
    const from = p.fromAgentId;
    s.agentId = caller.id;
    s.agentName = caller.name;
    s.assignedAt = ctx.clock.now();
    await this.save(ctx);
    await this.append({ kind: 'transferred', fromAgentId: from, toAgentId: caller.id }, ctx);
    this.dropAgentSubs(from);
    await this.append({ kind: 'assigned', agentId: caller.id, agentName: caller.name }, ctx);
    this.tellAgent(ctx, from, { t: 'sessionReleased', sessionId: this.sessionId });
    this.tellAgent(ctx, caller.id, { t: 'sessionAssigned', session: this.summary('agent') });
    return this.summary('agent');
  }

  private async transferTimeout(toAgentId: string, ctx: ActorContext): Promise<void> {
    const p = this.st.pendingTransfer;
    if (!p || p.toAgentId !== toAgentId) return;
    if (ctx.clock.now() < p.expiresAt) {
      await ctx.setReminder('transfer', p.expiresAt, {
        t: 'transferTimeout',
        toAgentId,
      } satisfies SessionMsg);
      return;
    }
    await this.endTransfer('timeout', ctx);
  }

  /** The offer ends without a transfer; the session stays with its agent. */
  private async endTransfer(reason: 'declined' | 'timeout', ctx: ActorContext): Promise<void> {
    const p = this.st.pendingTransfer!;
    delete this.st.pendingTransfer;
    await this.save(ctx);
    if (reason === 'declined') await ctx.cancelReminder('transfer');
    await this.append({ kind: 'transfer_declined', toAgentId: p.toAgentId, reason }, ctx);
    this.tellAgent(ctx, p.toAgentId, { t: 'transferWithdrawn', sessionId: this.sessionId });
  }

  /** The previous agent's sockets stop receiving the session's events. */
  private dropAgentSubs(agentId: string): void {
    for (const [k, sub] of this.subs) if (sub.role === 'agent' && sub.id === agentId) this.subs.delete(k);
  }

  // ---- tags, notes, rating (F5) --------------------------------------------------------------------

  private async tag(
    caller: Caller,
    tagId: string,
    op: 'add' | 'remove',
    ctx: ActorContext,
  ): Promise<SessionSummary> {
    this.staffOnly(caller);
    const s = this.st;
    const tags = (s.tags ??= []);
    if (op === 'add') {
      const { config } = await this.config(ctx);
      if (!tagIds(config.tags).has(tagId)) throw new SbError('SB_ERR_NOT_FOUND', `no session tag ${tagId}`);
      if (tags.includes(tagId)) return this.summary(caller.role);
      if (tags.length >= 20) throw new SbError('SB_ERR_INVALID_FIELD', 'at most 20 tags per session');
      tags.push(tagId);
    } else {
      const i = tags.indexOf(tagId);
      if (i < 0) return this.summary(caller.role);
      tags.splice(i, 1);
    }
    await this.save(ctx);
    await this.append({ kind: op === 'add' ? 'tag_added' : 'tag_removed', tagId, by: caller.id }, ctx);
    if (s.state === 'closed') await this.index(ctx);
    return this.summary(caller.role);
  }

  private async note(caller: Caller, text: string, ctx: ActorContext): Promise<{ seq: number }> {
    this.staffOnly(caller);
    if (text.trim().length === 0 || text.length > 2000)
      throw new SbError('SB_ERR_INVALID_FIELD', 'note must be 1–2000 characters');
    const r = await this.append({ kind: 'note', text, by: caller.id }, ctx);
    return { seq: r.event.seq };
  }

  private async inviteRating(caller: Caller, ctx: ActorContext): Promise<SessionSummary> {
    this.staffOnly(caller);
    const s = this.st;
    if (s.rating) throw new SbError('SB_ERR_ALREADY_RATED');
    if (s.state !== 'in_progress' && s.state !== 'closed')
      throw new SbError('SB_ERR_INVALID_STATE', 'no agent has served this session yet');
    s.ratingInvited = true;
    await this.save(ctx);
    await this.append({ kind: 'rating_invited', by: caller.id }, ctx);
    return this.summary(caller.role);
  }

  /** Once per session, 1–5 with an optional remark; after an invitation or once the chat is closed. */
  private async rate(
    caller: Caller,
    score: number,
    remark: string | undefined,
    ctx: ActorContext,
  ): Promise<SessionSummary> {
    this.authorize(caller);
    if (caller.role !== 'visitor') throw new SbError('SB_ERR_FORBIDDEN', 'only the visitor rates a session');
    const s = this.st;
    if (s.rating) throw new SbError('SB_ERR_ALREADY_RATED');
    if (!s.ratingInvited && !(s.state === 'closed' && s.agentId !== undefined))
      throw new SbError('SB_ERR_INVALID_STATE', 'the session can be rated once invited or after it closed');
    if (!Number.isInteger(score) || score < 1 || score > 5)
      throw new SbError('SB_ERR_INVALID_FIELD', 'score must be an integer 1–5');
    if (remark !== undefined && remark.length > 500)
      throw new SbError('SB_ERR_INVALID_FIELD', 'remark must be at most 500 characters');
    s.rating = remark ? { score, remark } : { score };
    await this.save(ctx);
    const body: SessionEventBody = { kind: 'rated', score };
    if (remark) body.remark = remark;
    await this.append(body, ctx);
    if (s.state === 'closed') await this.index(ctx);
    return this.summary(caller.role);
  }

  private queuePosition(position: number, changedAt: number | undefined, ctx: ActorContext): void {
    if (!this.s || this.s.state !== 'queued' || position === this.lastQueuePosition) return;
    this.lastQueuePosition = position;
    const f: ServerFrame = { type: 'queue', sessionId: this.sessionId, position };
    if (changedAt !== undefined) f.changedAt = changedAt;
    this.pushAll(f, ctx, ['visitor']);
  }

  /** The sockets of a node that is gone cannot follow this session any more. */
  onEndpointsGone(node: string): void {
    forgetNode(this.subs, node, (sub) => sub.endpoint);
  }

  async onDeactivate(ctx: ActorContext): Promise<void> {
    await this.untilOrdered();
    for (const sub of this.subs.values()) {
      ctx.tell(sub.endpoint, { t: 'unsubscribed', sessionId: this.sessionId } satisfies ConnectionMsg);
    }
    this.subs.clear();
  }
}
