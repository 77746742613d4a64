/**
 * The service desk as a product of the engine: loaded on every runtime thread, it opens the
 * thread's stores and registers the actor kinds.
 */
import { join } from 'node:path';
import type { KindRegistry, ProductModule, Stores } from '../engine/types.ts';
import { openCassandraStores, type CassandraOptions } from '../engine/store/cassandra.ts';
import { openLmdbStores } from '../engine/store/lmdb.ts';
import { SbError } from '../protos/errors.ts';
import { AgentActor } from './agent.ts';
import { DispatchActor } from './dispatch.ts';
import { KINDS } from './messages.ts';
import { SessionActor } from './session.ts';
import { VisitorActor } from './visitor.ts';
import { PresenceActor } from './presence.ts';
import { TenantConfigActor } from './tenant-config.ts';
import { TICKET_KIND, TicketActor } from './tickets.ts';
import { DEFAULT_DELIVERY, OUTBOX_KIND, WebhookOutboxActor, type DeliveryPolicy } from './webhook-outbox.ts';

/** Webhook delivery settings from the runtime config (`webhooks`), over the defaults. */
export function deliveryPolicyOf(config: Readonly<Record<string, unknown>>): DeliveryPolicy {
  const w = (config['webhooks'] ?? {}) as Partial<DeliveryPolicy>;
  return { ...DEFAULT_DELIVERY, ...w };
}

/** Config every thread receives (plain JSON). */
export type DeskConfig =
  | {
      store: 'embedded';
      /** Directory of the embedded store. */
      dataDir: string;
      /** Every actor of the process runs on one thread: the store is opened for it alone. */
      exclusive?: boolean;
    }
  | { store: 'cassandra'; cassandra: CassandraOptions };

export function parseDeskConfig(c: Readonly<Record<string, unknown>>): DeskConfig {
  if (c['store'] === 'embedded') {
    if (typeof c['dataDir'] !== 'string' || c['dataDir'] === '') {
      throw new SbError('SB_ERR_INVALID_FIELD', 'dataDir required');
    }
    return { store: 'embedded', dataDir: c['dataDir'], exclusive: c['exclusive'] === true };
  }
  if (c['store'] === 'cassandra') {
    const o = c['cassandra'] as CassandraOptions | undefined;
    if (!o || !Array.isArray(o.contactPoints) || typeof o.keyspace !== 'string') {
      throw new SbError('SB_ERR_INVALID_FIELD', 'cassandra options required');
    }
    return { store: 'cassandra', cassandra: o };
  }
  throw new SbError('SB_ERR_INVALID_FIELD', `unsupported store: ${String(c['store'])}`);
}

const product: ProductModule = {
  async openStores(config): Promise<Stores> {
    const c = parseDeskConfig(config);
    // Never a silent fallback: a configured Cassandra that does not answer fails the start.
    const s =
      c.store === 'embedded'
        ? openLmdbStores({ path: join(c.dataDir, 'lmdb'), exclusive: c.exclusive === true })
        : await openCassandraStores(c.cassandra);
    return {
      state: s.state,
      reminders: s.reminders,
      extra: { messages: s.messages, index: s.index },
      close: () => s.close(),
    };
  },
  registerKinds(registry: KindRegistry, config: Readonly<Record<string, unknown>>): void {
    const delivery = deliveryPolicyOf(config);
    registry.register(KINDS.session, { create: (id) => new SessionActor(id), idleMs: 10 * 60_000 });
    registry.register(KINDS.visitor, { create: (id) => new VisitorActor(id), idleMs: 5 * 60_000 });
    registry.register(KINDS.agent, { create: (id) => new AgentActor(id), idleMs: 60 * 60_000 });
    // One dispatcher per tenant holds the queue; keep it resident while the tenant is busy.
    registry.register(KINDS.dispatch, { create: (id) => new DispatchActor(id), idleMs: 60 * 60_000 });
    registry.register(KINDS.tenantConfig, {
      create: (id) => new TenantConfigActor(id, { allowLoopbackHttp: delivery.allowLoopbackHttp }),
      idleMs: 10 * 60_000,
    });
    registry.register(TICKET_KIND, { create: (id) => new TicketActor(id), idleMs: 10 * 60_000 });
    // The outbox keeps retry timers and pumps in memory: collect it only after a long quiet time.
    registry.register(OUTBOX_KIND, {
      create: (id) => new WebhookOutboxActor(id, delivery),
      idleMs: 60 * 60_000,
    });
    // Presence lives in memory only: it must not be collected while visitors are on the site.
    registry.register(KINDS.presence, { create: (id) => new PresenceActor(id), idleMs: 24 * 60 * 60_000 });
  },
};

export default product;
