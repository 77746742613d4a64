import { describe, expect, it } from 'vitest';
import type { SessionEvent, SessionSummary } from '../../../protos/ws-v1.ts';
import { createAgentStore } from './store.ts';

const summary = (sessionId: string, state: SessionSummary['state'] = 'in_progress'): SessionSummary => ({
  sessionId,
  tenantId: 'demo',
  visitorId: 'v',
  visitorName: 'Visitor',
  channel: 'web',
  state,
  createdAt: 0,
  lastSeq: 3,
});

const visitorMsg = (sessionId: string, seq: number, text: string, at = seq * 1000): SessionEvent => ({
  sessionId,
  seq,
  at,
  body: { kind: 'message', from: 'visitor', senderId: 'v', text },
});

describe('agent store', () => {
  it('store - transfer offers, refused actions and sensitive-word reminders', () => {
    const s = createAgentStore();
    s.applyFrame({ type: 'assigned', session: summary('a') });
    s.applyFrame({ type: 'transferOffer', session: summary('b'), fromAgentId: 'agent2', expiresAt: 99 });
    s.applyFrame({ type: 'transferOffer', session: summary('b'), fromAgentId: 'agent2', expiresAt: 120 });
    expect(s.state.offers.map((o) => [o.session.sessionId, o.expiresAt])).toEqual([['b', 120]]);
    s.applyFrame({ type: 'assigned', session: summary('b') });
    expect(s.state.offers).toEqual([]);
    s.applyFrame({ type: 'transferOffer', session: summary('c'), fromAgentId: 'agent2', expiresAt: 1 });
    s.answered('c');
    expect(s.state.offers).toEqual([]);
    s.applyFrame({ type: 'error', code: 'SB_ERR_TAG_REQUIRED', message: 'x' });
    expect(s.state.error?.code).toBe('SB_ERR_TAG_REQUIRED');
    s.applyFrame({ type: 'notice', sessionId: 'a', kind: 'sensitive', text: 'careful', words: ['x'] });
    expect(s.state.sessions['a']!.lines.at(-1)!.notice).toEqual({ kind: 'sensitive', text: 'careful' });
  });

  it('store - a session transferred away leaves the workspace', () => {
    const s = createAgentStore();
    s.applyFrame({ type: 'assigned', session: summary('a') });
    s.applyFrame({ type: 'assigned', session: summary('b') });
    s.select('b');
    s.applyFrame({ type: 'released', sessionId: 'b', reason: 'transferred' });
    expect(s.state.order).toEqual(['a']);
    expect(s.state.sessions['b']).toBeUndefined();
    expect(s.state.selected).toBe('a');
  });

  it('store - counts unread messages of sessions not in view, clears on select', () => {
    const s = createAgentStore();
    s.applyFrame({ type: 'assigned', session: summary('a') });
    s.applyFrame({ type: 'assigned', session: summary('b') });
    expect(s.state.selected).toBe('a');
    expect(s.state.order).toEqual(['b', 'a']);
    s.applyEvent(visitorMsg('b', 4, 'hi'));
    s.applyEvent(visitorMsg('b', 5, 'anyone?'));
    s.applyEvent(visitorMsg('a', 4, 'yo'));
    expect(s.state.sessions['b']!.unread).toBe(2);
    expect(s.state.sessions['a']!.unread).toBe(0);
    expect(s.totalUnread.value).toBe(2);
    s.select('b');
    expect(s.state.sessions['b']!.unread).toBe(0);
    expect(s.totalUnread.value).toBe(0);
  });

  it('store - own messages go pending → sent without duplicating, or to failed', () => {
    const s = createAgentStore();
    s.applyFrame({ type: 'assigned', session: summary('a') });
    s.addPending({ sessionId: 'a', clientMsgId: 'c1', text: 'hello', sentAt: 1 });
    s.addPending({ sessionId: 'a', clientMsgId: 'c2', text: 'again', sentAt: 2 });
    s.addPending({ sessionId: 'a', clientMsgId: 'c3', text: 'late', sentAt: 3 });
    const lines = s.state.sessions['a']!.lines;
    expect(lines.map((l) => l.delivery)).toEqual(['pending', 'pending', 'pending']);
    s.acked({ clientMsgId: 'c1', seq: 5, at: 10 });
    // c2 arrives as an event (sent from another tab of the same agent, or replayed).
    s.applyEvent({
      sessionId: 'a',
      seq: 6,
      at: 11,
      body: { kind: 'message', from: 'agent', senderId: 'me', text: 'again', clientMsgId: 'c2' },
    });
    s.failed('c3');
    expect(lines).toHaveLength(3);
    expect(lines.map((l) => [l.seq, l.delivery, l.at])).toEqual([
      [5, 'sent', 10],
      [6, 'sent', 11],
      [undefined, 'failed', 3],
    ]);
  });

  it('store - waiting time runs from the first unanswered visitor message until the agent replies', () => {
    const s = createAgentStore();
    s.applyFrame({ type: 'assigned', session: summary('a') });
    const v = s.state.sessions['a']!;
    expect(v.waitingSince).toBeUndefined();
    s.applyEvent(visitorMsg('a', 4, 'hello', 1000));
    s.applyEvent(visitorMsg('a', 5, 'hello?', 5000));
    expect(v.waitingSince).toBe(1000);
    s.addPending({ sessionId: 'a', clientMsgId: 'c1', text: 'hi', sentAt: 6000 });
    expect(v.waitingSince).toBeUndefined();
    s.applyEvent(visitorMsg('a', 7, 'thanks', 9000));
    expect(v.waitingSince).toBe(9000);
  });

  it('store - typing previews, recalls, assignment and close notices apply; closed sessions can be dismissed', () => {
    const s = createAgentStore();
    s.applyFrame({ type: 'assigned', session: summary('a') });
    s.applyFrame({ type: 'assigned', session: summary('b') });
    s.applyEvent({
      sessionId: 'a',
      seq: 3,
      at: 1,
      body: { kind: 'assigned', agentId: 'x', agentName: 'Ann' },
    });
    s.addPending({ sessionId: 'a', clientMsgId: 'c1', text: 'price: 10', sentAt: 1 });
    s.acked({ clientMsgId: 'c1', seq: 5, at: 2 });
    s.applyFrame({ type: 'typing', sessionId: 'a', from: 'visitor', text: 'I need' });
    expect(s.state.sessions['a']!.preview).toBe('I need');
    s.applyEvent(visitorMsg('a', 6, 'I need help'));
    expect(s.state.sessions['a']!.preview).toBe('');
    s.applyEvent({ sessionId: 'a', seq: 7, at: 3, body: { kind: 'recalled', targetSeq: 5, by: 'x' } });
    const lines = s.state.sessions['a']!.lines;
    expect(lines.find((l) => l.seq === 5)!.recalled).toBe(true);
    expect(lines[0]!.notice).toEqual({ kind: 'assigned', name: 'Ann' });

    expect(s.state.selected).toBe('a');
    s.dismiss('a');
    expect(s.state.order).toEqual(['b', 'a']);
    s.applyEvent({
      sessionId: 'a',
      seq: 8,
      at: 4,
      body: { kind: 'closed', by: 'visitor', reason: 'visitor' },
    });
    expect(s.state.sessions['a']!.closed).toBe(true);
    expect(lines[lines.length - 1]!.notice).toEqual({ kind: 'closed' });
    s.dismiss('a');
    expect(s.state.order).toEqual(['b']);
    expect(s.state.selected).toBe('b');
  });

  it('store - a welcome after reconnecting updates known sessions instead of adding them twice', () => {
    const s = createAgentStore();
    s.applyFrame({ type: 'assigned', session: summary('a') });
    s.applyEvent(visitorMsg('a', 4, 'hi'));
    s.applyFrame({
      type: 'welcome',
      protocol: 1,
      role: 'agent',
      tenantId: 'demo',
      id: 'a1',
      name: 'Ann',
      status: 'busy',
      limits: {
        maxFrameBytes: 1,
        maxTextChars: 1,
        framesPerSecond: 1,
        maxBackpressureBytes: 1,
        idleTimeoutSec: 1,
        resumePageSize: 1,
      },
      sessions: [{ ...summary('a'), lastSeq: 9 }],
    });
    expect(s.state.order).toEqual(['a']);
    expect(s.state.status).toBe('busy');
    expect(s.state.sessions['a']!.lines).toHaveLength(1);
    expect(s.state.sessions['a']!.summary.lastSeq).toBe(9);
  });
});
