import { describe, expect, it } from 'vitest';
import type { ClientFrame, ServerFrame, SessionEvent } from '../../../protos/ws-v1.ts';
import { RealtimeClient, type SocketLike } from './client.ts';

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: ClientFrame[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {}
  send(data: string): void {
    this.sent.push(JSON.parse(data) as ClientFrame);
  }
  close(code = 1000, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  serverOpen(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  push(f: ServerFrame): void {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
}

const welcome = (sessions: string[] = []): ServerFrame => ({
  type: 'welcome',
  protocol: 1,
  role: 'visitor',
  tenantId: 'demo',
  id: 'v1',
  name: 'V',
  limits: {
    maxFrameBytes: 1,
    maxTextChars: 1,
    framesPerSecond: 1,
    maxBackpressureBytes: 1,
    idleTimeoutSec: 1,
    resumePageSize: 1,
  },
  sessions: sessions.map((sessionId) => ({
    sessionId,
    tenantId: 'demo',
    visitorId: 'v1',
    visitorName: 'V',
    channel: 'web',
    state: 'in_progress',
    createdAt: 0,
    lastSeq: 0,
  })),
});

const msg = (sessionId: string, seq: number, text: string): SessionEvent => ({
  sessionId,
  seq,
  at: seq,
  body: { kind: 'message', from: 'agent', senderId: 'a', text },
});

function setup(): {
  client: RealtimeClient;
  sockets: FakeSocket[];
  timers: Array<{ fn: () => void; ms: number }>;
} {
  const sockets: FakeSocket[] = [];
  const timers: Array<{ fn: () => void; ms: number }> = [];
  const client = new RealtimeClient({
    url: 'ws://x/v1/ws/visitor',
    token: 't',
    socketFactory: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    random: () => 0.5,
    setTimer: (fn, ms) => {
      timers.push({ fn, ms });
      return timers.length;
    },
    clearTimer: () => {},
    typingThrottleMs: 0,
  });
  return { client, sockets, timers };
}

describe('realtime client', () => {
  it('client - resumes every session from the last seq seen and drops duplicate events', () => {
    const { client, sockets, timers } = setup();
    const events: number[] = [];
    client.on('event', (e) => events.push(e.seq));
    client.connect();
    sockets[0]!.serverOpen();
    sockets[0]!.push(welcome(['s1']));
    expect(sockets[0]!.sent).toEqual([{ type: 'resume', sessionId: 's1', lastSeq: 0 }]);
    sockets[0]!.push({
      type: 'events',
      sessionId: 's1',
      events: [msg('s1', 1, 'a'), msg('s1', 2, 'b')],
      more: false,
    });
    sockets[0]!.push({ type: 'event', event: msg('s1', 3, 'c') });
    sockets[0]!.close(1006);
    expect(client.state).toBe('reconnecting');
    timers.shift()!.fn();
    sockets[1]!.serverOpen();
    sockets[1]!.push(welcome(['s1']));
    expect(sockets[1]!.sent).toContainEqual({ type: 'resume', sessionId: 's1', lastSeq: 3 });
    // Overlapping replay: seq 3 again, then 4.
    sockets[1]!.push({
      type: 'events',
      sessionId: 's1',
      events: [msg('s1', 3, 'c'), msg('s1', 4, 'd')],
      more: false,
    });
    expect(events).toEqual([1, 2, 3, 4]);
    expect(client.state).toBe('open');
  });

  it('client - unacknowledged messages are resent with the same clientMsgId until acked', () => {
    const { client, sockets, timers } = setup();
    client.connect();
    sockets[0]!.serverOpen();
    sockets[0]!.push(welcome(['s1']));
    const p = client.sendMessage('s1', 'hello');
    const first = sockets[0]!.sent.find((f) => f.type === 'send');
    expect(first).toMatchObject({ clientMsgId: p.clientMsgId, text: 'hello' });
    sockets[0]!.close(1006);
    timers.shift()!.fn();
    sockets[1]!.serverOpen();
    sockets[1]!.push(welcome(['s1']));
    const resent = sockets[1]!.sent.filter((f) => f.type === 'send');
    expect(resent).toEqual([{ type: 'send', sessionId: 's1', clientMsgId: p.clientMsgId, text: 'hello' }]);
    const acks: string[] = [];
    client.on('ack', (a) => acks.push(a.clientMsgId));
    sockets[1]!.push({
      type: 'ack',
      sessionId: 's1',
      clientMsgId: p.clientMsgId,
      seq: 5,
      at: 0,
      duplicate: true,
    });
    expect(acks).toEqual([p.clientMsgId]);
    expect(client.unacked).toEqual([]);
  });

  it('client - reconnects with growing, jittered, capped backoff and stops on final close codes', () => {
    const { client, sockets, timers } = setup();
    client.connect();
    for (let i = 0; i < 8; i++) {
      sockets[i]!.close(1006);
      timers[i]!.fn();
    }
    const delays = timers.map((t) => t.ms);
    expect(delays[0]).toBe(500);
    expect(delays[1]).toBe(1000);
    expect(delays[2]).toBe(2000);
    expect(Math.max(...delays)).toBeLessThanOrEqual(15_000);
    sockets[8]!.close(4001, 'SB_ERR_UNAUTHENTICATED');
    expect(client.state).toBe('closed');
    expect(timers).toHaveLength(8);
  });

  it('client - a refused message stops being resent; a store outage keeps it pending', () => {
    const { client, sockets } = setup();
    client.connect();
    sockets[0]!.serverOpen();
    sockets[0]!.push(welcome(['s1']));
    const a = client.sendMessage('s1', 'a');
    const b = client.sendMessage('s1', 'b');
    sockets[0]!.push({ type: 'error', code: 'SB_ERR_SESSION_CLOSED', message: '', ref: a.clientMsgId });
    sockets[0]!.push({ type: 'error', code: 'SB_ERR_STORE_UNAVAILABLE', message: '', ref: b.clientMsgId });
    expect(client.unacked.map((p) => p.clientMsgId)).toEqual([b.clientMsgId]);
  });
});

describe('realtime client typing', () => {
  it('client - typing is throttled but the latest draft always goes out', () => {
    const sockets: FakeSocket[] = [];
    const timers: Array<{ fn: () => void; ms: number }> = [];
    const client = new RealtimeClient({
      url: 'ws://x',
      token: 't',
      socketFactory: (url) => {
        const s = new FakeSocket(url);
        sockets.push(s);
        return s;
      },
      setTimer: (fn, ms) => timers.push({ fn, ms }),
      clearTimer: () => {},
      typingThrottleMs: 400,
    });
    client.connect();
    sockets[0]!.serverOpen();
    sockets[0]!.push(welcome());
    client.typing('s1', 'h');
    client.typing('s1', 'he');
    client.typing('s1', 'hel');
    const typed = (): ClientFrame[] => sockets[0]!.sent.filter((f) => f.type === 'typing');
    expect(typed()).toEqual([{ type: 'typing', sessionId: 's1', text: 'h' }]);
    expect(timers).toHaveLength(1);
    timers[0]!.fn();
    expect(typed()).toEqual([
      { type: 'typing', sessionId: 's1', text: 'h' },
      { type: 'typing', sessionId: 's1', text: 'hel' },
    ]);
  });
});

describe('realtime client acks', () => {
  it('client - an ack advances the session position (own messages are not echoed as events)', () => {
    const { client, sockets } = setup();
    client.connect();
    sockets[0]!.serverOpen();
    sockets[0]!.push(welcome(['s1']));
    const p = client.sendMessage('s1', 'mine');
    sockets[0]!.push({
      type: 'ack',
      sessionId: 's1',
      clientMsgId: p.clientMsgId,
      seq: 7,
      at: 0,
      duplicate: false,
    });
    expect(client.seqOf('s1')).toBe(7);
    const seen: number[] = [];
    client.on('event', (e) => seen.push(e.seq));
    sockets[0]!.push({ type: 'event', event: msg('s1', 7, 'mine') });
    sockets[0]!.push({ type: 'event', event: msg('s1', 8, 'reply') });
    expect(seen).toEqual([8]);
  });
});
