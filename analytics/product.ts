/**
 * The whole product as the runtime loads it on every thread: the service desk (actors/product.ts)
 * plus the analytics actors.
 */
import type { ProductModule } from '../engine/types.ts';
import desk from '../actors/product.ts';
import { ANALYTICS_KIND, AnalyticsActor } from './actor.ts';

const product: ProductModule = {
  openStores: (config) => desk.openStores(config),
  registerKinds(registry, config): void {
    desk.registerKinds(registry, config);
    registry.register(ANALYTICS_KIND, { create: (id) => new AnalyticsActor(id), idleMs: 60 * 60_000 });
  },
};

export default product;
