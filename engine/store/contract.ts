/**
 * Store contract suites: every implementation of the storage seams (embedded LMDB, Cassandra)
 * runs these same tests. A factory gives a fresh, empty store; `reopen` (when given) returns a new
 * handle on the same data, to prove durability across restarts.
 */
import { describe, expect, it } from 'vitest';
import type { IndexStore, MessageStore, ReminderStore, StateStore, StoredEvent } from './types.ts';

export interface Harness<S> {
  store: S;
  reopen?: () => Promise<S>;
  cleanup: () => Promise<void>;
}

export type Factory<S> = () => Promise<Harness<S>>;

function ev(tenant: string, stream: string, seq: number, text: string, clientMsgId?: string): StoredEvent {
  const e: StoredEvent = {
    tenant,
    stream,
    seq,
    at: 1_700_000_000_000 + seq,
    body: { kind: 'message', text },
  };
  if (clientMsgId !== undefined) e.clientMsgId = clientMsgId;
  return e;
}

async function withStore<S>(factory: Factory<S>, fn: (h: Harness<S>) => Promise<void>): Promise<void> {
  const h = await factory();
  try {
    await fn(h);
  } finally {
    await h.cleanup();
  }
}

export function describeMessageStoreContract(name: string, factory: Factory<MessageStore>): void {
  describe(`${name} MessageStore contract`, () => {
    it('store - appends and reads forward and backward with paging', async () => {
      await withStore(factory, async ({ store }) => {
        for (let i = 1; i <= 25; i++) await store.append(ev('t1', 's1', i, `m${i}`, `c${i}`));
        expect(await store.lastSeq('t1', 's1')).toBe(25);
        const first = await store.read('t1', 's1', { afterSeq: 0, limit: 10 });
        expect(first.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        const next = await store.read('t1', 's1', { afterSeq: 10, limit: 10 });
        expect(next[0]!.seq).toBe(11);
        const last = await store.read('t1', 's1', { direction: 'backward', limit: 5 });
        expect(last.map((e) => e.seq)).toEqual([25, 24, 23, 22, 21]);
        const before = await store.read('t1', 's1', { beforeSeq: 21, limit: 3 });
        expect(before.map((e) => e.seq)).toEqual([20, 19, 18]);
        expect(await store.read('t1', 's1', { afterSeq: 25 })).toEqual([]);
        expect(first[0]).toMatchObject({
          tenant: 't1',
          stream: 's1',
          seq: 1,
          clientMsgId: 'c1',
          body: { text: 'm1' },
        });
        expect(await store.lastSeq('t1', 'empty')).toBe(0);
      });
    });

    it('store - limits are clamped to 1..1000', async () => {
      await withStore(factory, async ({ store }) => {
        const batch = Array.from({ length: 1100 }, (_, i) => ev('t1', 'big', i + 1, `m${i + 1}`));
        await store.appendBatch(batch);
        expect((await store.read('t1', 'big', { limit: 5000 })).length).toBe(1000);
        expect((await store.read('t1', 'big', { limit: 0 })).length).toBe(1);
      });
    });

    it('store - a repeated clientMsgId returns the first event and writes nothing', async () => {
      await withStore(factory, async ({ store }) => {
        const a = await store.append(ev('t1', 's', 1, 'hello', 'same'));
        expect(a.duplicate).toBe(false);
        const b = await store.append(ev('t1', 's', 2, 'hello again', 'same'));
        expect(b.duplicate).toBe(true);
        expect(b.event).toMatchObject({ seq: 1, body: { text: 'hello' } });
        expect(await store.lastSeq('t1', 's')).toBe(1);
        expect(await store.findByClientMsgId('t1', 's', 'same')).toMatchObject({ seq: 1 });
        expect(await store.findByClientMsgId('t1', 's', 'other')).toBeUndefined();
      });
    });

    it('store - concurrent appends of one clientMsgId store exactly one event', async () => {
      await withStore(factory, async ({ store }) => {
        const rs = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) => store.append(ev('t1', 'c', 1 + i, 'x', 'dup'))),
        );
        const stored = await store.read('t1', 'c', { limit: 100 });
        expect(stored).toHaveLength(1);
        const fresh = rs.filter((r) => r.status === 'fulfilled' && !r.value.duplicate);
        expect(fresh).toHaveLength(1);
      });
    });

    it('store - a taken seq is refused with SB_ERR_SEQ_CONFLICT', async () => {
      await withStore(factory, async ({ store }) => {
        await store.append(ev('t1', 's', 1, 'one', 'a'));
        await expect(store.append(ev('t1', 's', 1, 'other', 'b'))).rejects.toMatchObject({
          code: 'SB_ERR_SEQ_CONFLICT',
        });
        await expect(store.append(ev('t1', 's', 1, 'other'))).rejects.toMatchObject({
          code: 'SB_ERR_SEQ_CONFLICT',
        });
        expect((await store.read('t1', 's'))[0]!.body).toEqual({ kind: 'message', text: 'one' });
      });
    });

    it('store - bad input is refused with SB_ERR_INVALID_FIELD', async () => {
      await withStore(factory, async ({ store }) => {
        await expect(store.append(ev('', 's', 1, 'x'))).rejects.toMatchObject({
          code: 'SB_ERR_INVALID_FIELD',
        });
        await expect(store.append(ev('t1', '', 1, 'x'))).rejects.toMatchObject({
          code: 'SB_ERR_INVALID_FIELD',
        });
        await expect(store.append(ev('t1', 's', 0, 'x'))).rejects.toMatchObject({
          code: 'SB_ERR_INVALID_FIELD',
        });
        await expect(store.append(ev('t1', 's', 1.5, 'x'))).rejects.toMatchObject({
          code: 'SB_ERR_INVALID_FIELD',
        });
      });
    });

    it('store - tenants never see each other’s streams', async () => {
      await withStore(factory, async ({ store }) => {
        await store.append(ev('tenantA', 'shared-id', 1, 'secret of A', 'x'));
        await store.append(ev('tenantB', 'shared-id', 1, 'data of B', 'x'));
        const a = await store.read('tenantA', 'shared-id');
        const b = await store.read('tenantB', 'shared-id');
        expect(a.map((e) => e.body)).toEqual([{ kind: 'message', text: 'secret of A' }]);
        expect(b.map((e) => e.body)).toEqual([{ kind: 'message', text: 'data of B' }]);
        expect(await store.read('tenantC', 'shared-id')).toEqual([]);
        expect((await store.findByClientMsgId('tenantB', 'shared-id', 'x'))!.body).toEqual({
          kind: 'message',
          text: 'data of B',
        });
        expect(await store.findByClientMsgId('tenantC', 'shared-id', 'x')).toBeUndefined();
        // A prefix of another tenant's id must not match either.
        await store.append(ev('ten', 'antA', 1, 'prefix trap'));
        expect((await store.read('tenantA', 'shared-id')).length).toBe(1);
      });
    });

    it('store - retention: TTL drops events, the visible window hides older ones, seq never goes back', async () => {
      await withStore(factory, async ({ store }) => {
        const now = Date.now();
        // Long enough that a loaded machine still reads it back before it expires.
        const old: StoredEvent = { ...ev('t1', 'ret', 1, 'short-lived', 'x1'), ttlSec: 4 };
        await store.append(old);
        await store.append({ ...ev('t1', 'ret', 2, 'kept'), at: now - 10_000 });
        await store.append({ ...ev('t1', 'ret', 3, 'recent'), at: now });
        expect((await store.read('t1', 'ret')).map((e) => e.seq)).toEqual([1, 2, 3]);
        // Visible window: only events at or after notBefore, and the page fills past the hidden ones.
        expect(
          (await store.read('t1', 'ret', { notBefore: now - 1000, limit: 1 })).map((e) => e.seq),
        ).toEqual([3]);
        expect(
          (await store.read('t1', 'ret', { direction: 'backward', notBefore: now - 60_000 })).map(
            (e) => e.seq,
          ),
        ).toEqual([3, 2]);
        // Expired after its TTL (polled: the test does not depend on the machine's speed).
        const expiredBy = Date.now() + 15_000;
        let seqs = (await store.read('t1', 'ret')).map((e) => e.seq);
        while (seqs.length === 3 && Date.now() < expiredBy) {
          await new Promise((r) => setTimeout(r, 250));
          seqs = (await store.read('t1', 'ret')).map((e) => e.seq);
        }
        expect(seqs).toEqual([2, 3]);
        expect(await store.lastSeq('t1', 'ret')).toBe(3);
      });
    });

    it('store - recall marks the event and keeps its content', async () => {
      await withStore(factory, async ({ store }) => {
        await store.append(ev('t1', 's', 1, 'oops', 'r'));
        await store.markRecalled('t1', 's', 1, 'agent1', 1_700_000_100_000);
        const [e] = await store.read('t1', 's');
        expect(e).toMatchObject({
          body: { text: 'oops' },
          recalled: { at: 1_700_000_100_000, by: 'agent1' },
        });
        await expect(store.markRecalled('t1', 's', 9, 'agent1', 1)).rejects.toMatchObject({
          code: 'SB_ERR_NOT_FOUND',
        });
      });
    });

    it('store - appends issued together (large and small bodies, with and without ids) are each stored exactly', async () => {
      await withStore(factory, async ({ store, reopen }) => {
        const text = (s: number): string => (s % 3 === 0 ? `big${s}-`.padEnd(6000, 'x') : `small ${s}`);
        const first = await Promise.all(
          Array.from({ length: 30 }, (_, s) =>
            store.append(ev('t1', `g${s}`, 1, text(s), s % 2 === 0 ? `id${s}` : undefined)),
          ),
        );
        expect(first.every((r) => !r.duplicate)).toBe(true);
        // Second round in one tick: resends of the even streams' ids are duplicates, the rest new.
        const second = await Promise.all(
          Array.from({ length: 30 }, (_, s) =>
            s % 2 === 0
              ? store.append(ev('t1', `g${s}`, 2, 'resend', `id${s}`))
              : store.append(ev('t1', `g${s}`, 2, `second ${s}`)),
          ),
        );
        second.forEach((r, s) => {
          expect(r.duplicate).toBe(s % 2 === 0);
          expect(r.event.seq).toBe(s % 2 === 0 ? 1 : 2);
        });
        const check = async (st: MessageStore): Promise<void> => {
          for (let s = 0; s < 30; s++) {
            const got = await st.read('t1', `g${s}`, { limit: 10 });
            const texts = got.map((e) => (e.body as { text: string }).text);
            expect(texts).toEqual(s % 2 === 0 ? [text(s)] : [text(s), `second ${s}`]);
          }
        };
        await check(store);
        if (reopen) await check(await reopen());
      });
    });

    it('store - many parallel appends over many streams are all durable and gap-free', async () => {
      await withStore(factory, async ({ store, reopen }) => {
        const streams = 50;
        const per = 20;
        const jobs: Array<Promise<unknown>> = [];
        for (let s = 0; s < streams; s++) {
          jobs.push(
            (async () => {
              for (let i = 1; i <= per; i++) await store.append(ev('t1', `p${s}`, i, `m${i}`, `c${i}`));
            })(),
          );
        }
        await Promise.all(jobs);
        const check = async (st: MessageStore): Promise<void> => {
          for (let s = 0; s < streams; s++) {
            const got = await st.read('t1', `p${s}`, { limit: 1000 });
            expect(got.map((e) => e.seq)).toEqual(Array.from({ length: per }, (_, i) => i + 1));
          }
        };
        await check(store);
        if (reopen) await check(await reopen());
      });
    });
  });
}

export function describeStateStoreContract(name: string, factory: Factory<StateStore>): void {
  describe(`${name} StateStore contract`, () => {
    it('store - put, get, overwrite, delete', async () => {
      await withStore(factory, async ({ store }) => {
        expect(await store.get('t1', 'agent', 'a1')).toBeUndefined();
        await store.put('t1', 'agent', 'a1', { status: 'online', n: 1 });
        expect(await store.get('t1', 'agent', 'a1')).toEqual({ status: 'online', n: 1 });
        await store.put('t1', 'agent', 'a1', { status: 'away' });
        expect(await store.get('t1', 'agent', 'a1')).toEqual({ status: 'away' });
        await store.delete('t1', 'agent', 'a1');
        expect(await store.get('t1', 'agent', 'a1')).toBeUndefined();
      });
    });

    it('store - list by kind and prefix, ordered, limited, per tenant', async () => {
      await withStore(factory, async ({ store }) => {
        for (const k of ['b2', 'a1', 'b1', 'c1']) await store.put('t1', 'member', k, { k });
        await store.put('t1', 'other', 'a0', { k: 'x' });
        await store.put('t2', 'member', 'a9', { k: 'leak' });
        expect((await store.list('t1', 'member')).map((r) => r.key)).toEqual(['a1', 'b1', 'b2', 'c1']);
        expect((await store.list('t1', 'member', { prefix: 'b' })).map((r) => r.key)).toEqual(['b1', 'b2']);
        expect((await store.list('t1', 'member', { limit: 2 })).map((r) => r.key)).toEqual(['a1', 'b1']);
        expect((await store.list('t2', 'member')).map((r) => r.value)).toEqual([{ k: 'leak' }]);
        expect(await store.get('t2', 'member', 'a1')).toBeUndefined();
      });
    });

    it('store - state survives reopening', async () => {
      await withStore(factory, async ({ store, reopen }) => {
        await store.put('t1', 'session', 's1', { state: 'queued', list: [1, 2, 3] });
        if (!reopen) return;
        const again = await reopen();
        expect(await again.get('t1', 'session', 's1')).toEqual({ state: 'queued', list: [1, 2, 3] });
      });
    });
  });
}

export function describeReminderStoreContract(name: string, factory: Factory<ReminderStore>): void {
  describe(`${name} ReminderStore contract`, () => {
    const r = (name: string, dueAt: number, key = 't1:a'): Parameters<ReminderStore['upsert']>[0] => ({
      tenant: 't1',
      kind: 'session',
      key,
      name,
      dueAt,
      msg: { t: name },
    });

    it('store - due returns reminders by due time, oldest first, up to the limit', async () => {
      await withStore(factory, async ({ store }) => {
        await store.upsert(r('c', 3000));
        await store.upsert(r('a', 1000));
        await store.upsert(r('b', 2000));
        await store.upsert(r('z', 9000));
        expect((await store.due(3000, 10)).map((x) => x.name)).toEqual(['a', 'b', 'c']);
        expect((await store.due(3000, 2)).map((x) => x.name)).toEqual(['a', 'b']);
        expect((await store.due(500, 10)).length).toBe(0);
        expect((await store.due(3000, 10))[0]).toMatchObject({
          tenant: 't1',
          kind: 'session',
          key: 't1:a',
          msg: { t: 'a' },
        });
      });
    });

    it('store - upsert replaces the due time of the same name; remove deletes', async () => {
      await withStore(factory, async ({ store, reopen }) => {
        await store.upsert(r('x', 1000));
        await store.upsert(r('x', 5000));
        expect(await store.due(2000, 10)).toEqual([]);
        expect((await store.due(5000, 10)).map((x) => x.dueAt)).toEqual([5000]);
        await store.upsert(r('y', 4000, 't1:b'));
        await store.remove('t1', 'session', 't1:a', 'x');
        expect((await store.due(10_000, 10)).map((x) => x.name)).toEqual(['y']);
        if (reopen) expect((await (await reopen()).due(10_000, 10)).map((x) => x.name)).toEqual(['y']);
      });
    });
  });
}

export function describeIndexStoreContract(name: string, factory: Factory<IndexStore>): void {
  describe(`${name} IndexStore contract`, () => {
    it('store - index entries page in order both ways with cursors, per tenant and partition', async () => {
      await withStore(factory, async ({ store }) => {
        for (const k of ['b', 'd', 'a', 'c', 'e']) await store.put('t1', 'day:2026-11-24', k, { k });
        await store.put('t1', 'day:2026-11-25', 'a', { k: 'other day' });
        await store.put('t2', 'day:2026-11-24', 'a', { k: 'other tenant' });
        const keys = async (o: { after?: string; reverse?: boolean; limit?: number }): Promise<string[]> =>
          (await store.range('t1', 'day:2026-11-24', o)).map((e) => e.sortKey);
        expect(await keys({})).toEqual(['a', 'b', 'c', 'd', 'e']);
        expect(await keys({ limit: 2 })).toEqual(['a', 'b']);
        expect(await keys({ after: 'b', limit: 2 })).toEqual(['c', 'd']);
        expect(await keys({ reverse: true, limit: 2 })).toEqual(['e', 'd']);
        expect(await keys({ reverse: true, after: 'd', limit: 10 })).toEqual(['c', 'b', 'a']);
        expect((await store.range('t2', 'day:2026-11-24')).map((e) => e.value)).toEqual([
          { k: 'other tenant' },
        ]);
        await store.put('t1', 'day:2026-11-24', 'c', { k: 'replaced' });
        await store.delete('t1', 'day:2026-11-24', 'a');
        const all = await store.range('t1', 'day:2026-11-24');
        expect(all.map((e) => e.sortKey)).toEqual(['b', 'c', 'd', 'e']);
        expect(all[1]!.value).toEqual({ k: 'replaced' });
      });
    });
  });
}
