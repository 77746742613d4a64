import { describe, expect, it } from 'vitest';
import type { SessionSummary } from '../../../protos/ws-v1.ts';
import { createAgentStore } from './store.ts';

const summary = (sessionId: string): SessionSummary => ({
  sessionId,
  tenantId: 'demo',
  visitorId: 'v',
  visitorName: 'Visitor',
  channel: 'web',
  state: 'in_progress',
  createdAt: 0,
  lastSeq: 3,
});

describe('agent store', () => {
  it('store - counts unread messages of sessions not in view, clears on select', () => {
    const s = createAgentStore();
    s.applyFrame({ type: 'assigned', session: summary('a') });
    s.applyFrame({ type: 'assigned', session: summary('b') });
    expect(s.state.selected).toBe('a');
    s.applyEvent({
      sessionId: 'b',
      seq: 4,
      at: 1,
      body: { kind: 'message', from: 'visitor', senderId: 'v', text: 'hi' },
    });
    s.applyEvent({
      sessionId: 'a',
      seq: 4,
      at: 1,
      body: { kind: 'message', from: 'visitor', senderId: 'v', text: 'yo' },
    });
    expect(s.state.sessions['b']!.unread).toBe(1);
    expect(s.state.sessions['a']!.unread).toBe(0);
    s.select('b');
    expect(s.state.sessions['b']!.unread).toBe(0);
  });

  it('store - own messages go from pending to stored without duplicating; previews and recalls apply', () => {
    const s = createAgentStore();
    s.applyFrame({ type: 'assigned', session: summary('a') });
    s.addPending({ sessionId: 'a', clientMsgId: 'c1', text: 'hello', sentAt: 1 });
    s.applyEvent({
      sessionId: 'a',
      seq: 5,
      at: 2,
      body: { kind: 'message', from: 'agent', senderId: 'me', text: 'hello', clientMsgId: 'c1' },
    });
    const lines = s.state.sessions['a']!.lines;
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ pending: false, seq: 5 });
    s.applyFrame({ type: 'typing', sessionId: 'a', from: 'visitor', text: 'I need' });
    expect(s.state.sessions['a']!.preview).toBe('I need');
    s.applyEvent({ sessionId: 'a', seq: 6, at: 3, body: { kind: 'recalled', targetSeq: 5, by: 'me' } });
    expect(lines[0]!.recalled).toBe(true);
    s.applyEvent({
      sessionId: 'a',
      seq: 7,
      at: 4,
      body: { kind: 'closed', by: 'visitor', reason: 'visitor' },
    });
    expect(s.state.sessions['a']!.closed).toBe(true);
  });
});
