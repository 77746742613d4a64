/**
 * Domain events of entities that are not sessions (F23 kinds "agent state change", "visitor
 * change"): each owning actor is the single writer of its own ordered stream in the MessageStore,
 * next to the session streams (`agent.<id>`, `visitor.<id>`; session ids never contain a dot).
 * Session state changes are events of the session stream itself.
 */
import type { ActorContext } from '../engine/types.ts';
import type { Json, MessageStore } from '../engine/store/types.ts';
import { SbError } from '../protos/errors.ts';
import { noteForWebhooks } from './webhook-outbox.ts';

export type DomainEventBody =
  | { kind: 'agent_created'; name: string; role: string }
  | { kind: 'agent_deleted' }
  | { kind: 'agent_status'; status: string; previous: string }
  | { kind: 'agent_profile'; maxConcurrent: number; groups: string[] }
  | { kind: 'visitor_tags'; tags: string[]; added: string[]; removed: string[] }
  | { kind: 'visitor_profile'; name: string }
  | { kind: 'visitor_page'; url: string; title?: string }
  | {
      kind: 'ticket_created';
      ticketId: string;
      subject: string;
      priority: string;
      createdBy: string;
      sessionId?: string;
    }
  | { kind: 'ticket_changed'; ticketId: string; by: string; changes: Record<string, string> }
  | { kind: 'ticket_commented'; ticketId: string; by: string; text: string };

export function agentStream(agentId: string): string {
  return `agent.${agentId}`;
}

export function visitorStream(visitorId: string): string {
  return `visitor.${visitorId}`;
}

/** Appends in order; the owner actor calls it from its turns only, so seqs never race. */
export class OwnedStream {
  private lastSeq: number | undefined;
  constructor(
    private readonly tenant: string,
    private readonly stream: string,
  ) {}

  async append(ctx: ActorContext, body: DomainEventBody): Promise<number> {
    const store = ctx.stores.extra['messages'] as MessageStore | undefined;
    if (!store) throw new SbError('SB_ERR_INTERNAL', 'no message store configured');
    this.lastSeq ??= await store.lastSeq(this.tenant, this.stream);
    const seq = this.lastSeq + 1;
    await store.append({
      tenant: this.tenant,
      stream: this.stream,
      seq,
      at: ctx.clock.now(),
      body: body as unknown as Json,
    });
    this.lastSeq = seq;
    await noteForWebhooks(ctx, this.tenant, this.stream, seq, body);
    return seq;
  }
}
