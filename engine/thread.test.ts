/**
 * The thread's cluster routing for sockets on other nodes: a node missing from the member list for
 * a moment (no link) keeps its sockets, so what sessions tell them waits, in order, and goes out
 * when the link is back; a node absent for longer than ENDPOINT_HOLD_MS has lost its sockets.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from './clock.ts';
import { MemoryReminderStore, MemoryStateStore } from './store/memory.ts';
import { ENDPOINT_HOLD_MS, ThreadNode } from './thread.ts';
import type { ClusterHooks } from './types.ts';

interface Sent {
  node: string;
  msg: unknown;
}

const nodes: ThreadNode[] = [];
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.drain();
});

function host(): { node: ThreadNode; clock: FakeClock; sent: Sent[]; links: Set<string> } {
  const clock = new FakeClock();
  const sent: Sent[] = [];
  const links = new Set<string>(['b']);
  const cluster: ClusterHooks = {
    nodeId: 'a',
    placeOf: () => 'local',
    sendRemote(node, envelope) {
      if (!links.has(node)) throw new Error(`no link to ${node}`);
      sent.push({ node, msg: (envelope as { msg: unknown }).msg });
    },
  };
  const node = new ThreadNode({
    thread: 0,
    workers: 0,
    shards: 16,
    clock,
    stores: { state: new MemoryStateStore(), reminders: new MemoryReminderStore(), extra: {} },
    links: new Map(),
    reminderControl: () => undefined,
    cluster,
  });
  nodes.push(node);
  return { node, clock, sent, links };
}

const socket = (node: string, name = 'conn-1') => ({ node, thread: 0, name });

describe('thread routing to sockets on other nodes', () => {
  it('cluster - tells for a node without a link wait, in order, and go out when it is back', async () => {
    const h = host();
    h.node.tell(socket('b'), 1);
    expect(h.sent.map((s) => s.msg)).toEqual([1]);
    h.links.delete('b');
    for (let i = 2; i <= 5; i++) h.node.tell(socket('b'), i);
    // Retried while the node has no link: nothing is lost, nothing goes out.
    await h.clock.advance(500);
    expect(h.sent.map((s) => s.msg)).toEqual([1]);
    h.links.add('b');
    // A tell made now goes behind those that wait.
    h.node.tell(socket('b'), 6);
    expect(h.sent.map((s) => s.msg)).toEqual([1]);
    h.node.retryHeld();
    expect(h.sent.map((s) => s.msg)).toEqual([1, 2, 3, 4, 5, 6]);
    h.node.tell(socket('b'), 7);
    expect(h.sent.map((s) => s.msg)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(Object.values(h.node.m.dropped).every((n) => n === 0)).toBe(true);
  });

  it('cluster - the wait is bounded: a node absent longer than the hold loses what waited for it', async () => {
    const h = host();
    h.links.delete('b');
    h.node.tell(socket('b'), 1);
    h.node.tell(socket('b'), 2);
    await h.clock.advance(ENDPOINT_HOLD_MS + 100);
    expect(h.node.m.dropped.held).toBe(2);
    h.links.add('b');
    h.node.tell(socket('b'), 3);
    h.node.retryHeld();
    expect(h.sent.map((s) => s.msg)).toEqual([3]);
  });

  it('cluster - endpoints gone: what waits for that node is dropped; actors that keep endpoints forget them', async () => {
    const h = host();
    const seen: string[] = [];
    class Keeper {
      readonly subs = new Set(['b', 'c']);
      onMessage(msg: unknown): void {
        seen.push(`${String(msg)}:${[...this.subs].join(',')}`);
      }
      onEndpointsGone(node: string): void {
        this.subs.delete(node);
      }
    }
    h.node.register('keeper', { create: () => new Keeper() });
    const k = { kind: 'keeper', key: 't1:k' };
    h.node.tell(k, 'first');
    await h.clock.advance(1);
    h.links.delete('b');
    h.node.tell(socket('b'), 'waits');
    h.node.endpointsGone('b');
    h.node.tell(k, 'second');
    await h.clock.advance(1);
    // The held tell is dropped at once, not after the hold.
    expect(seen).toEqual(['first:b,c', 'second:c']);
    expect(h.node.m.dropped.held).toBe(1);
    h.links.add('b');
    h.node.retryHeld();
    expect(h.sent).toEqual([]);
  });

  it('cluster - one node without a link does not hold back tells for another', async () => {
    const h = host();
    h.links.add('c');
    h.links.delete('b');
    h.node.tell(socket('b'), 'for b');
    h.node.tell(socket('c'), 'for c');
    expect(h.sent).toEqual([{ node: 'c', msg: 'for c' }]);
    h.links.add('b');
    await h.clock.advance(60);
    expect(h.sent).toEqual([
      { node: 'c', msg: 'for c' },
      { node: 'b', msg: 'for b' },
    ]);
  });
});
