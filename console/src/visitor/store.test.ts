import { describe, expect, it } from 'vitest';
import type { SessionEvent } from '../../../protos/ws-v1.ts';
import { AGENT_TYPING_MS, createVisitorStore } from './store.ts';

function fakeTimers(): {
  set: (fn: () => void, ms: number) => number;
  clear: (h: unknown) => void;
  fire: () => void;
  pending: () => number;
} {
  const timers = new Map<number, { fn: () => void; ms: number }>();
  let id = 0;
  return {
    set: (fn, ms) => {
      timers.set(++id, { fn, ms });
      return id;
    },
    clear: (h) => void timers.delete(h as number),
    fire: () => {
      for (const [k, t] of [...timers]) {
        timers.delete(k);
        t.fn();
      }
    },
    pending: () => timers.size,
  };
}

const ev = (seq: number, body: SessionEvent['body'], extra: Partial<SessionEvent> = {}): SessionEvent => ({
  sessionId: 's1',
  seq,
  at: seq * 1000,
  body,
  ...extra,
});

describe('visitor store', () => {
  it('visitor store - rating: invited, then rated once (by event or by the answer)', () => {
    const s = createVisitorStore(fakeTimers());
    s.adopt('s1');
    expect(s.state.ratingInvited).toBe(false);
    s.applyEvent(ev(4, { kind: 'internal' }));
    s.applyEvent(ev(5, { kind: 'rating_invited', by: 'agent1' }));
    expect(s.state.ratingInvited).toBe(true);
    s.applyEvent(ev(6, { kind: 'rated', score: 4 }));
    expect(s.state.rated).toBe(4);
    s.adopt('s2');
    expect([s.state.ratingInvited, s.state.rated]).toEqual([false, undefined]);
    s.applyFrame({
      type: 'session',
      session: {
        sessionId: 's2',
        tenantId: 'demo',
        visitorId: 'v',
        visitorName: 'V',
        channel: 'web',
        state: 'closed',
        createdAt: 0,
        lastSeq: 9,
        rating: { score: 5 },
      },
    });
    expect(s.state.rated).toBe(5);
  });

  it('visitor store - queue position, then the agent, then the end', () => {
    const s = createVisitorStore(fakeTimers());
    s.adopt('s1');
    expect(s.status()).toEqual({ key: 'visitor.connecting' });
    s.applyFrame({ type: 'queue', sessionId: 's1', position: 3 });
    expect(s.status()).toEqual({ key: 'visitor.queue', vars: { n: 2 } });
    s.applyFrame({ type: 'queue', sessionId: 'other', position: 9 });
    s.applyFrame({ type: 'queue', sessionId: 's1', position: 1 });
    expect(s.status()).toEqual({ key: 'visitor.queueNext' });
    s.applyEvent(ev(3, { kind: 'assigned', agentId: 'a1', agentName: 'Ann' }));
    expect(s.state.queue).toBe(0);
    expect(s.status()).toEqual({ key: 'visitor.assigned', vars: { name: 'Ann' } });
    s.applyEvent(ev(9, { kind: 'closed', by: 'agent', reason: 'agent' }));
    expect(s.status()).toEqual({ key: 'visitor.closed' });
    expect(s.state.lines.map((l) => l.notice?.key)).toEqual(['visitor.assigned', 'visitor.closed']);
  });

  it('visitor store - own messages go pending → sent once, or failed; events of other sessions are ignored', () => {
    const s = createVisitorStore(fakeTimers());
    s.adopt('s1');
    s.addPending({ sessionId: 's1', clientMsgId: 'c1', text: 'hi', sentAt: 1 });
    s.addPending({ sessionId: 's1', clientMsgId: 'c2', text: 'again', sentAt: 2 });
    s.addPending({ sessionId: 's1', clientMsgId: 'c3', text: 'late', sentAt: 3 });
    s.acked({ clientMsgId: 'c1', seq: 4 });
    s.applyEvent(
      ev(5, { kind: 'message', from: 'visitor', senderId: 'v', text: 'again', clientMsgId: 'c2' }),
    );
    s.failed('c3');
    s.applyEvent({ ...ev(6, { kind: 'message', from: 'agent', senderId: 'a', text: 'x' }), sessionId: 's0' });
    expect(s.state.lines.map((l) => [l.text, l.delivery, l.seq])).toEqual([
      ['hi', 'sent', 4],
      ['again', 'sent', 5],
      ['late', 'failed', undefined],
    ]);
    s.remove('c3');
    expect(s.state.lines).toHaveLength(2);
  });

  it('visitor store - the typing indicator lasts a few seconds and ends with the agent message', () => {
    const timers = fakeTimers();
    const s = createVisitorStore(timers);
    s.adopt('s1');
    s.applyFrame({ type: 'typing', sessionId: 's1', from: 'agent' });
    s.applyFrame({ type: 'typing', sessionId: 's1', from: 'agent' });
    expect(s.state.agentTyping).toBe(true);
    expect(timers.pending()).toBe(1);
    timers.fire();
    expect(s.state.agentTyping).toBe(false);
    s.applyFrame({ type: 'typing', sessionId: 's1', from: 'agent' });
    s.applyEvent(ev(4, { kind: 'message', from: 'agent', senderId: 'a', text: 'Hello' }));
    expect(s.state.agentTyping).toBe(false);
    expect(timers.pending()).toBe(0);
    expect(AGENT_TYPING_MS).toBeGreaterThan(1000);
  });

  it('visitor store - recalled messages lose their text, live or replayed; a new session starts empty', () => {
    const s = createVisitorStore(fakeTimers());
    s.adopt('s1');
    s.applyEvent(ev(4, { kind: 'message', from: 'agent', senderId: 'a', text: 'wrong price' }));
    s.applyEvent(ev(5, { kind: 'recalled', targetSeq: 4, by: 'a' }));
    s.applyEvent(
      ev(6, { kind: 'message', from: 'agent', senderId: 'a', text: '' }, { recalled: { at: 7, by: 'a' } }),
    );
    expect(s.state.lines.map((l) => [l.text, l.recalled])).toEqual([
      ['', true],
      ['', true],
    ]);
    s.applyEvent(ev(8, { kind: 'closed', by: 'agent', reason: 'agent' }));
    s.adopt('s2');
    expect(s.state).toMatchObject({ sessionId: 's2', closed: false, agentName: '', lines: [] });
  });
});
