import { describe, expect, it } from 'vitest';
import { SbError } from '../../protos/errors.ts';
import { ChannelSendError, FakeProvider, type ChannelProvider } from './index.ts';

describe('FakeProvider', () => {
  it('records sends', async () => {
    const p: ChannelProvider = new FakeProvider('weibo');
    await p.sendText('acc', 'user', 'hello');
    await p.sendImage('acc', 'user', 'https://example.com/a.png');
    expect((p as FakeProvider).sent).toEqual([
      { op: 'text', associationId: 'acc', externalUserId: 'user', text: 'hello' },
      { op: 'image', associationId: 'acc', externalUserId: 'user', mediaUrl: 'https://example.com/a.png' },
    ]);
    expect(p.channel).toBe('weibo');
  });

  it('fails the next n calls with a typed, retryable error, then recovers', async () => {
    const p = new FakeProvider().failNext(2);
    for (let i = 0; i < 2; i++) {
      const err = await p.sendText('acc', 'user', 'x').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ChannelSendError);
      expect(err).toBeInstanceOf(SbError);
      expect(err).toMatchObject({ reason: 'unavailable', retryable: true, code: 'SB_ERR_TIMEOUT' });
    }
    await p.sendText('acc', 'user', 'x');
    expect(p.sent).toHaveLength(1);
    expect(p.attempts).toHaveLength(3);
  });

  it('permanent failures are not retryable; failAlways until recover', async () => {
    const p = new FakeProvider().failAlways('window_closed');
    await expect(p.sendText('a', 'u', 'x')).rejects.toMatchObject({
      reason: 'window_closed',
      retryable: false,
      code: 'SB_ERR_INVALID_STATE',
    });
    await expect(p.sendText('a', 'u', 'x')).rejects.toBeInstanceOf(ChannelSendError);
    p.recover();
    await p.sendText('a', 'u', 'x');
    expect(p.sent).toHaveLength(1);
  });

  it('a caller-side retry loop works against it', async () => {
    const p = new FakeProvider().failNext(1, 'rate_limited').failNext(1, 'unavailable');
    let tries = 0;
    for (;;) {
      tries++;
      try {
        await p.sendText('a', 'u', 'x');
        break;
      } catch (e) {
        if (!(e instanceof ChannelSendError) || !e.retryable || tries >= 5) throw e;
      }
    }
    expect(tries).toBe(3);
  });

  it('maps every failure reason to an existing error code', () => {
    expect(new ChannelSendError('rejected', 'x', { providerCode: '45047' })).toMatchObject({
      code: 'SB_ERR_INVALID_FIELD',
      providerCode: '45047',
      retryable: false,
    });
    expect(new ChannelSendError('unauthorized', 'x').code).toBe('SB_ERR_INTERNAL');
    expect(new ChannelSendError('rate_limited', 'x').code).toBe('SB_ERR_RATE_LIMITED');
  });
});
