/**
 * A small product for engine tests: actor kinds that echo, record, sleep, throw, forward and set
 * timers, over memory stores (or LMDB when `lmdbPath` is configured, to test restarts).
 */
import { SbError } from '../../protos/errors.ts';
import { openLmdbStores } from '../store/lmdb.ts';
import { MemoryReminderStore, MemoryStateStore } from '../store/memory.ts';
import { Later, type Actor, type ActorContext, type ProductModule, type Stores } from '../types.ts';

export type TestMsg =
  | { t: 'echo'; v: unknown }
  | { t: 'record'; v: unknown }
  /** Waits `ms`, then records (a turn that is in the middle of something when its node stalls). */
  | { t: 'slowRecord'; ms: number; v: unknown }
  | { t: 'get' }
  | { t: 'sleep'; ms: number; v: unknown }
  | { t: 'boom'; typed?: boolean }
  | { t: 'forward'; to: { kind: string; key: string }; v: unknown }
  | { t: 'toEndpoint'; to: { thread: number; name: string }; v: unknown }
  | { t: 'timer'; name: string; ms: number; v: unknown }
  | { t: 'interval'; name: string; ms: number; v: unknown }
  | { t: 'cancel'; name: string }
  | { t: 'reminder'; name: string; dueAt: number; v: unknown }
  | { t: 'fired'; v: unknown }
  | { t: 'whoami' }
  | { t: 'stats' }
  /** Records now, answers `ms` later (or fails, with `fail`) without holding up the next turn. */
  | { t: 'later'; ms: number; v: unknown; fail?: boolean };

/** Shared across activations on one thread, to observe concurrency and lifecycle. */
export const probe = { running: 0, maxRunning: 0, activations: 0, deactivations: 0, errors: 0 };

class TestActor implements Actor {
  private log: unknown[] = [];
  async onActivate(ctx: ActorContext): Promise<void> {
    probe.activations++;
    this.log = (await ctx.loadState<unknown[]>()) ?? [];
  }
  onDeactivate(): void {
    probe.deactivations++;
  }
  onError(): void {
    probe.errors++;
  }
  async onMessage(raw: unknown, ctx: ActorContext): Promise<unknown> {
    const m = raw as TestMsg;
    switch (m.t) {
      case 'echo':
        return m.v;
      case 'record':
      case 'fired':
        this.log.push(m.v);
        await ctx.saveState(this.log);
        return this.log.length;
      case 'slowRecord':
        await new Promise((r) => setTimeout(r, m.ms));
        this.log.push(m.v);
        await ctx.saveState(this.log);
        return this.log.length;
      case 'get':
        return this.log;
      case 'later':
        this.log.push(m.v);
        return new Later(
          new Promise((resolve, reject) =>
            setTimeout(
              () => (m.fail ? reject(new SbError('SB_ERR_FORBIDDEN', 'later')) : resolve(m.v)),
              m.ms,
            ),
          ),
        );
      case 'sleep': {
        probe.running++;
        probe.maxRunning = Math.max(probe.maxRunning, probe.running);
        await new Promise((r) => setTimeout(r, m.ms));
        probe.running--;
        this.log.push(m.v);
        return m.v;
      }
      case 'boom':
        if (m.typed) throw new SbError('SB_ERR_FORBIDDEN', 'typed boom');
        throw new Error('plain boom');
      case 'forward':
        ctx.tell(m.to, { t: 'record', v: m.v });
        return undefined;
      case 'toEndpoint':
        ctx.tell(m.to, { from: ctx.self.key, thread: ctx.thread, v: m.v });
        return undefined;
      case 'timer':
        ctx.setTimer(m.name, m.ms, { t: 'fired', v: m.v });
        return undefined;
      case 'interval':
        ctx.setInterval(m.name, m.ms, { t: 'fired', v: m.v });
        return undefined;
      case 'cancel':
        ctx.cancelTimer(m.name);
        await ctx.cancelReminder(m.name);
        return undefined;
      case 'reminder':
        await ctx.setReminder(m.name, m.dueAt, { t: 'fired', v: m.v });
        return undefined;
      case 'whoami':
        return ctx.thread;
      case 'stats':
        return { ...probe };
    }
  }
}

const shared = new Map<string, Stores>();

const product: ProductModule = {
  async openStores(config): Promise<Stores> {
    if (typeof config['lmdbPath'] === 'string') {
      const s = openLmdbStores({ path: config['lmdbPath'] });
      return {
        state: s.state,
        reminders: s.reminders,
        extra: { messages: s.messages },
        close: () => s.close(),
      };
    }
    // Memory stores shared by id within a thread, so a second runtime can see the first one's data.
    const id = String(config['storeId'] ?? 'default');
    let s = shared.get(id);
    if (!s) {
      s = {
        state: new MemoryStateStore(),
        reminders: new MemoryReminderStore(),
        extra: {},
        close: async () => {},
      };
      shared.set(id, s);
    }
    return s;
  },
  registerKinds(registry, config) {
    const mailboxSize = typeof config['mailboxSize'] === 'number' ? config['mailboxSize'] : undefined;
    const idleMs = typeof config['idleMs'] === 'number' ? config['idleMs'] : undefined;
    registry.register('test', {
      create: () => new TestActor(),
      ...(mailboxSize !== undefined ? { mailboxSize } : {}),
      ...(idleMs !== undefined ? { idleMs } : {}),
    });
  },
};

export default product;
