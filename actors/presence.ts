/**
 * Presence: one actor per tenant lists the web visitors on the site now (F8 live list, F9
 * proactive chat). Visitor actors report their first socket and their last one going away;
 * nothing here is persisted — after a restart, visitors are online again when they reconnect.
 */
import type { Actor, ActorContext, ActorId } from '../engine/types.ts';
import { SbError } from '../protos/errors.ts';
import { splitKey } from './ids.ts';
import type { OnlineVisitor, PresenceMsg } from './messages.ts';

/** Beyond this many visitors online, the oldest entries are dropped from the list (memory bound). */
export const MAX_ONLINE = 100_000;

export class PresenceActor implements Actor {
  private readonly online = new Map<string, OnlineVisitor>();
  constructor(readonly id: ActorId) {
    splitKey(id.key);
  }

  onMessage(raw: unknown, _ctx: ActorContext): unknown {
    const msg = raw as PresenceMsg;
    switch (msg.t) {
      case 'online': {
        const prev = this.online.get(msg.visitorId);
        const v: OnlineVisitor = { visitorId: msg.visitorId, name: msg.name, since: prev?.since ?? msg.at };
        if (msg.url !== undefined) v.url = msg.url;
        if (msg.title !== undefined) v.title = msg.title;
        this.online.delete(msg.visitorId);
        this.online.set(msg.visitorId, v);
        if (this.online.size > MAX_ONLINE) {
          const oldest = this.online.keys().next();
          if (!oldest.done) this.online.delete(oldest.value);
        }
        return undefined;
      }
      case 'offline':
        this.online.delete(msg.visitorId);
        return undefined;
      case 'list': {
        // Most recently active first.
        const all = [...this.online.values()];
        return { total: all.length, visitors: all.reverse().slice(0, msg.limit) };
      }
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `presence: unknown message ${(msg as { t?: unknown }).t}`);
    }
  }
}
