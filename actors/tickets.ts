/**
 * Tickets (F25): follow-up work created from a session. One actor per ticket (`ticket/<t>:<id>`) is
 * its single writer; every change is an event of the ticket's own stream (`ticket.<id>`), so webhooks
 * (`ticket.created`, `ticket.changed`, `ticket.commented`) and the partner feed see them in order.
 *
 * Workflow: open → pending | solved | closed; pending → open | solved | closed; solved → open
 * (reopened) | closed; closed is final. Agents see tickets they created or are assigned; admins see
 * all of their tenant. The transcript of the session (up to 500 events) is attached at creation.
 * An external ticket system plugs in through {@link ExternalTicketSystem}: the gateway mirrors each
 * change to it and records the external id.
 */
import type { Actor, ActorContext, ActorId } from '../engine/types.ts';
import type { IndexStore, MessageStore } from '../engine/store/types.ts';
import { SbError } from '../protos/errors.ts';
import type { SessionSummary } from '../protos/ws-v1.ts';
import { OwnedStream } from './domain-events.ts';
import { isValidId, newId, splitKey, tkey } from './ids.ts';
import { KINDS, type Caller, type SessionMsg } from './messages.ts';

export const TICKET_KIND = 'ticket';
export const TICKET_STATUSES = ['open', 'pending', 'solved', 'closed'] as const;
export type TicketStatus = (typeof TICKET_STATUSES)[number];
export const TICKET_PRIORITIES = ['low', 'normal', 'high', 'urgent'] as const;
export type TicketPriority = (typeof TICKET_PRIORITIES)[number];

const NEXT: Record<TicketStatus, TicketStatus[]> = {
  open: ['pending', 'solved', 'closed'],
  pending: ['open', 'solved', 'closed'],
  solved: ['open', 'closed'],
  closed: [],
};

export interface Ticket {
  ticketId: string;
  tenantId: string;
  subject: string;
  description: string;
  priority: TicketPriority;
  status: TicketStatus;
  createdBy: string;
  assigneeId?: string;
  sessionId?: string;
  transcript?: Array<{ seq: number; at: number; from: string; text: string }>;
  comments: Array<{ by: string; text: string; at: number }>;
  externalId?: string;
  /** `offline`: a message a visitor left while nobody was working (留言). */
  source?: 'offline';
  /** Offline messages: who left it and how to reach them. */
  visitor?: { visitorId: string; name: string; contact: string };
  createdAt: number;
  updatedAt: number;
}

export type TicketMsg =
  | {
      t: 'create';
      caller: Caller;
      subject: string;
      description: string;
      priority: TicketPriority;
      sessionId?: string;
      assigneeId?: string;
      /** A visitor's offline message: the only ticket a visitor may create. */
      offline?: { contact: string };
    }
  | { t: 'get'; caller: Caller }
  | { t: 'update'; caller: Caller; status?: TicketStatus; priority?: TicketPriority; assigneeId?: string }
  | { t: 'comment'; caller: Caller; text: string }
  | { t: 'external'; externalId: string };

export function ticketStream(ticketId: string): string {
  return `ticket.${ticketId}`;
}

function indexStoreOf(ctx: ActorContext): IndexStore {
  return ctx.stores.extra['index'] as IndexStore;
}

/** Index entries: every ticket of the tenant, and per agent (creator and assignee), newest first. */
export async function listTickets(
  index: IndexStore,
  caller: Caller,
  opts: { limit: number; after?: string },
): Promise<{
  tickets: Array<Pick<Ticket, 'ticketId' | 'subject' | 'status' | 'priority' | 'assigneeId' | 'createdAt'>>;
  nextCursor?: string;
}> {
  const partition = caller.role === 'admin' ? 'tickets' : `tickets-agent:${caller.id}`;
  const rows = await index.range(caller.tenantId, partition, {
    reverse: true,
    limit: opts.limit + 1,
    ...(opts.after ? { after: opts.after } : {}),
  });
  const page = rows.slice(0, opts.limit);
  const out: { tickets: never[]; nextCursor?: string } = { tickets: page.map((r) => r.value) as never[] };
  if (rows.length > opts.limit) out.nextCursor = page[page.length - 1]!.sortKey;
  return out;
}

export class TicketActor implements Actor {
  private t: Ticket | undefined;
  private readonly tenantId: string;
  private readonly ticketId: string;
  private readonly events: OwnedStream;

  constructor(readonly id: ActorId) {
    const k = splitKey(id.key);
    this.tenantId = k.tenantId;
    this.ticketId = k.id;
    this.events = new OwnedStream(this.tenantId, ticketStream(this.ticketId));
  }

  async onActivate(ctx: ActorContext): Promise<void> {
    this.t = await ctx.loadState<Ticket>();
  }

  async onMessage(raw: unknown, ctx: ActorContext): Promise<unknown> {
    const msg = raw as TicketMsg;
    if (msg.t === 'create') return this.create(msg, ctx);
    const t = this.t;
    if (!t) {
      ctx.deactivate();
      throw new SbError('SB_ERR_NOT_FOUND', 'no such ticket');
    }
    switch (msg.t) {
      case 'get':
        this.authorize(msg.caller);
        return t;
      case 'update':
        return this.update(msg, ctx);
      case 'comment': {
        this.authorize(msg.caller);
        if (t.status === 'closed') throw new SbError('SB_ERR_INVALID_STATE', 'the ticket is closed');
        if (typeof msg.text !== 'string' || msg.text.trim() === '' || msg.text.length > 4000)
          throw new SbError('SB_ERR_INVALID_FIELD', 'comment: 1–4000 characters');
        if (t.comments.length >= 500) throw new SbError('SB_ERR_INVALID_FIELD', 'at most 500 comments');
        const at = ctx.clock.now();
        t.comments.push({ by: msg.caller.id, text: msg.text, at });
        t.updatedAt = at;
        await this.persist(ctx);
        await this.events.append(ctx, {
          kind: 'ticket_commented',
          ticketId: t.ticketId,
          by: msg.caller.id,
          text: msg.text,
        });
        return t;
      }
      case 'external':
        t.externalId = msg.externalId;
        await ctx.saveState(t);
        return t;
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `ticket: unknown message ${(msg as { t?: unknown }).t}`);
    }
  }

  private authorize(caller: Caller): void {
    const t = this.t!;
    if (caller.tenantId !== t.tenantId) throw new SbError('SB_ERR_NOT_FOUND', 'no such ticket');
    if (caller.role === 'admin') return;
    if (caller.role === 'agent' && (caller.id === t.createdBy || caller.id === t.assigneeId)) return;
    throw new SbError('SB_ERR_FORBIDDEN', 'not your ticket');
  }

  private async create(msg: Extract<TicketMsg, { t: 'create' }>, ctx: ActorContext): Promise<Ticket> {
    if (this.t) throw new SbError('SB_ERR_INVALID_STATE', 'ticket exists');
    if (msg.caller.role === 'visitor' && (!msg.offline || msg.sessionId || msg.assigneeId))
      throw new SbError('SB_ERR_FORBIDDEN');
    if (msg.offline && (typeof msg.offline.contact !== 'string' || msg.offline.contact.length > 200))
      throw new SbError('SB_ERR_INVALID_FIELD', 'contact: at most 200 characters');
    if (typeof msg.subject !== 'string' || msg.subject.trim() === '' || msg.subject.length > 200)
      throw new SbError('SB_ERR_INVALID_FIELD', 'subject: 1–200 characters');
    if (typeof msg.description !== 'string' || msg.description.length > 10_000)
      throw new SbError('SB_ERR_INVALID_FIELD', 'description: at most 10,000 characters');
    if (!(TICKET_PRIORITIES as readonly unknown[]).includes(msg.priority))
      throw new SbError('SB_ERR_INVALID_FIELD', `priority: ${TICKET_PRIORITIES.join(', ')}`);
    if (msg.assigneeId !== undefined && !isValidId(msg.assigneeId))
      throw new SbError('SB_ERR_INVALID_FIELD', 'assigneeId');
    const now = ctx.clock.now();
    const t: Ticket = {
      ticketId: this.ticketId,
      tenantId: this.tenantId,
      subject: msg.subject.trim(),
      description: msg.description,
      priority: msg.priority,
      status: 'open',
      createdBy: msg.caller.id,
      comments: [],
      createdAt: now,
      updatedAt: now,
    };
    if (msg.assigneeId !== undefined) t.assigneeId = msg.assigneeId;
    if (msg.offline) {
      t.source = 'offline';
      t.visitor = { visitorId: msg.caller.id, name: msg.caller.name, contact: msg.offline.contact.trim() };
    }
    if (msg.sessionId !== undefined) {
      // The caller must be allowed to read the session; its transcript is attached.
      await ctx.ask<SessionSummary>({ kind: KINDS.session, key: tkey(this.tenantId, msg.sessionId) }, {
        t: 'summary',
        caller: msg.caller,
      } satisfies SessionMsg);
      const store = ctx.stores.extra['messages'] as MessageStore;
      const evs = await store.read(this.tenantId, msg.sessionId, { afterSeq: 0, limit: 500 });
      t.sessionId = msg.sessionId;
      t.transcript = evs
        .filter((e) => (e.body as { kind?: string }).kind === 'message')
        .map((e) => {
          const b = e.body as { from?: string; text?: string };
          return { seq: e.seq, at: e.at, from: b.from ?? '', text: b.text ?? '' };
        });
    }
    this.t = t;
    await this.persist(ctx);
    await this.events.append(ctx, {
      kind: 'ticket_created',
      ticketId: t.ticketId,
      subject: t.subject,
      priority: t.priority,
      createdBy: t.createdBy,
      ...(t.sessionId ? { sessionId: t.sessionId } : {}),
    });
    return t;
  }

  private async update(msg: Extract<TicketMsg, { t: 'update' }>, ctx: ActorContext): Promise<Ticket> {
    this.authorize(msg.caller);
    const t = this.t!;
    const changes: Record<string, string> = {};
    if (msg.status !== undefined && msg.status !== t.status) {
      if (!(TICKET_STATUSES as readonly unknown[]).includes(msg.status))
        throw new SbError('SB_ERR_INVALID_FIELD', `status: ${TICKET_STATUSES.join(', ')}`);
      if (!NEXT[t.status].includes(msg.status))
        throw new SbError('SB_ERR_INVALID_STATE', `a ${t.status} ticket cannot become ${msg.status}`);
      changes['status'] = msg.status;
      t.status = msg.status;
    }
    if (msg.priority !== undefined && msg.priority !== t.priority) {
      if (!(TICKET_PRIORITIES as readonly unknown[]).includes(msg.priority))
        throw new SbError('SB_ERR_INVALID_FIELD', `priority: ${TICKET_PRIORITIES.join(', ')}`);
      changes['priority'] = msg.priority;
      t.priority = msg.priority;
    }
    let formerAssignee: string | undefined;
    if (msg.assigneeId !== undefined && msg.assigneeId !== t.assigneeId) {
      if (!isValidId(msg.assigneeId)) throw new SbError('SB_ERR_INVALID_FIELD', 'assigneeId');
      changes['assigneeId'] = msg.assigneeId;
      formerAssignee = t.assigneeId;
      t.assigneeId = msg.assigneeId;
    }
    if (Object.keys(changes).length === 0) return t;
    t.updatedAt = ctx.clock.now();
    await this.persist(ctx);
    // The previous assignee's list no longer shows it (unless they created it).
    if (formerAssignee !== undefined && formerAssignee !== t.createdBy)
      await indexStoreOf(ctx).delete(this.tenantId, `tickets-agent:${formerAssignee}`, this.sortKey());
    await this.events.append(ctx, {
      kind: 'ticket_changed',
      ticketId: t.ticketId,
      by: msg.caller.id,
      changes,
    });
    return t;
  }

  private sortKey(): string {
    return `${String(this.t!.createdAt).padStart(15, '0')}:${this.t!.ticketId}`;
  }

  /** State plus the index entries (tenant-wide and per involved agent). */
  private async persist(ctx: ActorContext): Promise<void> {
    const t = this.t!;
    await ctx.saveState(t);
    const sortKey = this.sortKey();
    const entry = {
      ticketId: t.ticketId,
      subject: t.subject,
      status: t.status,
      priority: t.priority,
      createdAt: t.createdAt,
      ...(t.assigneeId ? { assigneeId: t.assigneeId } : {}),
      ...(t.source ? { source: t.source } : {}),
    };
    const index = indexStoreOf(ctx);
    const agents = new Set([...(t.source ? [] : [t.createdBy]), ...(t.assigneeId ? [t.assigneeId] : [])]);
    await Promise.all([
      index.put(this.tenantId, 'tickets', sortKey, entry),
      ...[...agents].map((a) => index.put(this.tenantId, `tickets-agent:${a}`, sortKey, entry)),
    ]);
  }
}

export function newTicketId(now: number): string {
  return newId(now);
}

/** An external ticket system (Zendesk-like): the gateway mirrors every change to it. */
export interface ExternalTicketSystem {
  /** Returns the external id of the new ticket. */
  create(t: Ticket): Promise<string>;
  update(t: Ticket): Promise<void>;
}
