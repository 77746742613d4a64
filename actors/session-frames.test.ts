import { describe, expect, it } from 'vitest';
import type { StoredEvent } from '../engine/index.ts';
import { eventFrameJson, toSessionEvent } from './session.ts';

const base: StoredEvent = {
  tenant: 't1',
  stream: 's_1',
  seq: 42,
  at: 1_765_000_000_123,
  clientMsgId: 'c-1',
  body: {
    kind: 'message',
    from: 'visitor',
    senderId: 'v1',
    text: 'say "hi" \\ 你好 \u2028',
    clientMsgId: 'c-1',
  },
};

describe('session - event frames', () => {
  const cases: Array<[string, StoredEvent]> = [
    ['a message', base],
    ['a recalled message', { ...base, recalled: { at: 5, by: 'a1' } }],
    ['a staff-only event', { ...base, body: { kind: 'note', text: 'internal', authorId: 'a1' } }],
    [
      'a body with nested values',
      { ...base, body: { kind: 'closed', reason: 'agent', tags: ['x', 'y'], n: 1.5 } },
    ],
  ];
  for (const [name, e] of cases)
    it(`session - ${name} serialises as JSON.stringify of its session event, for every role`, () => {
      for (const role of ['visitor', 'agent', 'admin'] as const) {
        const json = eventFrameJson(e, role);
        expect(json).toBe(JSON.stringify({ type: 'event', event: toSessionEvent(e, role) }));
        expect(JSON.parse(json)).toEqual({ type: 'event', event: toSessionEvent(e, role) });
      }
    });
});
