/**
 * The service desk as a product of the engine: loaded on every runtime thread, it opens the
 * thread's stores and registers the actor kinds.
 */
import { join } from 'node:path';
import type { KindRegistry, ProductModule, Stores } from '../engine/types.ts';
import { openLmdbStores } from '../engine/store/lmdb.ts';
import { SbError } from '../protos/errors.ts';
import { AgentActor } from './agent.ts';
import { DispatchActor } from './dispatch.ts';
import { KINDS } from './messages.ts';
import { SessionActor } from './session.ts';
import { VisitorActor } from './visitor.ts';

/** Config every thread receives (plain JSON). */
export interface DeskConfig {
  store: 'embedded';
  /** Directory of the embedded store. */
  dataDir: string;
}

export function parseDeskConfig(c: Readonly<Record<string, unknown>>): DeskConfig {
  if (c['store'] !== 'embedded')
    throw new SbError('SB_ERR_INVALID_FIELD', `unsupported store: ${String(c['store'])}`);
  if (typeof c['dataDir'] !== 'string' || c['dataDir'] === '')
    throw new SbError('SB_ERR_INVALID_FIELD', 'dataDir required');
  return { store: 'embedded', dataDir: c['dataDir'] };
}

const product: ProductModule = {
  async openStores(config): Promise<Stores> {
    const c = parseDeskConfig(config);
    const s = openLmdbStores({ path: join(c.dataDir, 'lmdb') });
    return {
      state: s.state,
      reminders: s.reminders,
      extra: { messages: s.messages },
      close: () => s.close(),
    };
  },
  registerKinds(registry: KindRegistry): void {
    registry.register(KINDS.session, { create: (id) => new SessionActor(id), idleMs: 10 * 60_000 });
    registry.register(KINDS.visitor, { create: (id) => new VisitorActor(id), idleMs: 5 * 60_000 });
    registry.register(KINDS.agent, { create: (id) => new AgentActor(id), idleMs: 60 * 60_000 });
    // One dispatcher per tenant holds the queue; keep it resident while the tenant is busy.
    registry.register(KINDS.dispatch, { create: (id) => new DispatchActor(id), idleMs: 60 * 60_000 });
  },
};

export default product;
