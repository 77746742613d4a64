import { describe, expect, it } from 'vitest';
import { ackFrameJson } from './frames.ts';

describe('gateway - frames', () => {
  it('gateway - an ack built by hand is exactly the JSON of the ack frame, escapes included', () => {
    for (const clientMsgId of ['c-1', 'a"b\\c', '~!@#$%^&*()']) {
      for (const r of [
        { seq: 7, at: 1_765_000_000_123, duplicate: false },
        { seq: 1, at: 0, duplicate: true },
      ]) {
        const frame = {
          type: 'ack',
          sessionId: 's_1-x',
          clientMsgId,
          seq: r.seq,
          at: r.at,
          duplicate: r.duplicate,
        };
        expect(ackFrameJson('s_1-x', clientMsgId, r)).toBe(JSON.stringify(frame));
      }
    }
  });
});
