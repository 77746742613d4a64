/**
 * Presence: one actor per tenant lists the web visitors on the site now (F8 live list, F9
 * proactive chat). Visitor actors report their first socket and their last one going away;
 * nothing here is persisted — after a restart, visitors are online again when they reconnect.
 * In a cluster the list moves with the actor: on deactivation it sends what it knows to its next
 * activation (on whatever node serves the shard then), in chunks through its own mailbox; after a
 * crash the gateways register their visitors' sockets again, which reports them here anew.
 */
import type { Actor, ActorContext, ActorId } from '../engine/types.ts';
import { SbError } from '../protos/errors.ts';
import { splitKey } from './ids.ts';
import type { OnlineVisitor, PresenceMsg } from './messages.ts';

/** Beyond this many visitors online, the oldest entries are dropped from the list (memory bound). */
export const MAX_ONLINE = 100_000;
/** Visitors per `restore` message when the list moves to the next activation. */
const RESTORE_CHUNK = 1_000;

export class PresenceActor implements Actor {
  private online = new Map<string, OnlineVisitor>();
  /** Visitors reported gone by this activation: a `restore` from the previous one must not revive them. */
  private readonly left = new Set<string>();
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
        if (this.left.size >= MAX_ONLINE) this.left.clear();
        this.left.add(msg.visitorId);
        return undefined;
      case 'restore': {
        // Older than anything this activation heard itself: restored entries go first (oldest).
        const merged = new Map<string, OnlineVisitor>();
        for (const v of msg.visitors)
          if (!this.online.has(v.visitorId) && !this.left.has(v.visitorId)) merged.set(v.visitorId, v);
        for (const [id, v] of this.online) merged.set(id, v);
        while (merged.size > MAX_ONLINE) merged.delete(merged.keys().next().value!);
        this.online = merged;
        return undefined;
      }
      case 'list': {
        // Most recently active first.
        const all = [...this.online.values()];
        return { total: all.length, visitors: all.reverse().slice(0, msg.limit) };
      }
      default:
        throw new SbError('SB_ERR_UNKNOWN_TYPE', `presence: unknown message ${(msg as { t?: unknown }).t}`);
    }
  }

  /** The list goes to the next activation of this actor, wherever it runs. */
  onDeactivate(ctx: ActorContext): void {
    const all = [...this.online.values()];
    for (let i = 0; i < all.length; i += RESTORE_CHUNK) {
      try {
        ctx.tell(this.id, { t: 'restore', visitors: all.slice(i, i + RESTORE_CHUNK) } satisfies PresenceMsg);
      } catch {
        // The whole process is shutting down: visitors report again when they reconnect.
        return;
      }
    }
  }
}
