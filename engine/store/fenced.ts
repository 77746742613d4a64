/**
 * Fenced views of the stores for actors in cluster mode: every call first checks that the node
 * still holds the actor's shard under the epoch the actor was activated with.
 */
import type { Stores } from '../types.ts';

const STORE_TARGET = Symbol('sb.storeTarget');

/**
 * The store behind an activation's view of it (the same object outside cluster mode): for caches
 * that are kept per store rather than per activation.
 */
export function underlyingStore<T extends object>(store: T): T {
  return ((store as Record<symbol, unknown>)[STORE_TARGET] as T | undefined) ?? store;
}

/**
 * The stores as one activation sees them in cluster mode: every method call first passes `check`
 * (which throws when the node no longer holds the actor's shard); a refused call returns a rejected
 * promise, as a failed store call would.
 */
export function fencedStores(s: Stores, check: () => void): Stores {
  const wrap = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(t, p) {
        if (p === STORE_TARGET) return t;
        const v: unknown = Reflect.get(t, p, t);
        if (typeof v !== 'function' || p === 'close') return v;
        return (...args: unknown[]): unknown => {
          try {
            check();
          } catch (err) {
            return Promise.reject(err);
          }
          return (v as (...a: unknown[]) => unknown).apply(t, args);
        };
      },
    });
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s.extra)) extra[k] = typeof v === 'object' && v !== null ? wrap(v) : v;
  return { ...s, state: wrap(s.state), reminders: wrap(s.reminders), extra };
}
