import { describe, expect, it } from 'vitest';
import type { ClientFrame, ServerFrame, SessionEvent } from '../../../protos/ws-v1.ts';
import { RealtimeClient, type RealtimeOptions, type SocketLike } from './client.ts';

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
  /** The server accepts the connection and greets (the welcome frame). */
  accept(sessions: string[] = []): void {
    this.readyState = 1;
    this.onopen?.({});
    this.push(welcome(sessions));
  }
  push(f: ServerFrame): void {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  ofType<T extends ClientFrame['type']>(type: T): Array<Extract<ClientFrame, { type: T }>> {
    return this.sent.filter((f): f is Extract<ClientFrame, { type: T }> => f.type === type);
  }
}

/** Timers under test control: `advance(ms)` runs what falls due, in order. */
class FakeClock {
  t = 1_000_000;
  private timers: Array<{ id: number; at: number; fn: () => void }> = [];
  private ids = 0;
  /** Delays asked for, in order (to check the backoff). */
  readonly delays: number[] = [];
  set = (fn: () => void, ms: number): number => {
    const id = ++this.ids;
    this.timers.push({ id, at: this.t + ms, fn });
    this.delays.push(ms);
    return id;
  };
  clear = (h: unknown): void => {
    this.timers = this.timers.filter((x) => x.id !== h);
  };
  now = (): number => this.t;
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fn();
    }
    this.t = end;
  }
}

const welcome = (sessions: string[]): ServerFrame => ({
  type: 'welcome',
  protocol: 1,
  role: 'visitor',
  tenantId: 'demo',
  id: 'v1',
  name: 'V',
  limits: {
    maxFrameBytes: 16384,
    maxTextChars: 4000,
    framesPerSecond: 50,
    maxBackpressureBytes: 1 << 20,
    idleTimeoutSec: 60,
    resumePageSize: 500,
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

const msg = (sessionId: string, seq: number, text: string, clientMsgId?: string): SessionEvent => ({
  sessionId,
  seq,
  at: seq,
  body: { kind: 'message', from: 'agent', senderId: 'a', text, ...(clientMsgId ? { clientMsgId } : {}) },
});

function setup(opts: Partial<RealtimeOptions> = {}): {
  client: RealtimeClient;
  sockets: FakeSocket[];
  clock: FakeClock;
  last: () => FakeSocket;
} {
  const sockets: FakeSocket[] = [];
  const clock = new FakeClock();
  const client = new RealtimeClient({
    url: 'ws://x/v1/ws/visitor',
    token: 't',
    socketFactory: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    random: () => 0.5,
    now: clock.now,
    setTimer: clock.set,
    clearTimer: clock.clear,
    pingIntervalMs: 0,
    ...opts,
  });
  return { client, sockets, clock, last: () => sockets[sockets.length - 1]! };
}

/** Lets the client's token promise settle before the socket is created. */
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

describe('realtime client - resume', () => {
  it('client - resumes every session from the last seq seen and drops duplicate events', async () => {
    const { client, sockets, clock, last } = setup();
    const events: string[] = [];
    const states: string[] = [];
    client.on('event', (e) => events.push(`${e.sessionId}#${e.seq}`));
    client.on('state', (s) => states.push(s));
    client.connect();
    await tick();
    last().accept(['s1', 's2']);
    expect(last().ofType('resume')).toEqual([
      { type: 'resume', sessionId: 's1', lastSeq: 0 },
      { type: 'resume', sessionId: 's2', lastSeq: 0 },
    ]);
    last().push({
      type: 'events',
      sessionId: 's1',
      events: [msg('s1', 1, 'a'), msg('s1', 2, 'b')],
      more: false,
    });
    last().push({ type: 'events', sessionId: 's2', events: [msg('s2', 1, 'x')], more: false });
    last().push({ type: 'event', event: msg('s1', 3, 'c') });
    last().close(1006);
    expect(client.state).toBe('reconnecting');
    clock.advance(500);
    await tick();
    expect(sockets).toHaveLength(2);
    expect(sockets[1]!.url).toBe('ws://x/v1/ws/visitor?token=t');
    last().accept(['s1', 's2']);
    expect(last().ofType('resume')).toEqual([
      { type: 'resume', sessionId: 's1', lastSeq: 3 },
      { type: 'resume', sessionId: 's2', lastSeq: 1 },
    ]);
    // An overlapping replay (seq 3 again) and a live event racing it (4 twice).
    last().push({
      type: 'events',
      sessionId: 's1',
      events: [msg('s1', 3, 'c'), msg('s1', 4, 'd')],
      more: false,
    });
    last().push({ type: 'event', event: msg('s1', 4, 'd') });
    expect(events).toEqual(['s1#1', 's1#2', 's2#1', 's1#3', 's1#4']);
    expect(states).toEqual(['connecting', 'open', 'reconnecting', 'open']);
  });

  it('client - a session released by a transfer is not resumed after a reconnect', async () => {
    const { client, clock, last } = setup();
    client.connect();
    await tick();
    last().accept(['s1', 's2']);
    last().push({ type: 'released', sessionId: 's2', reason: 'transferred' });
    last().close(1006);
    clock.advance(500);
    await tick();
    last().accept(['s1']);
    expect(last().ofType('resume')).toEqual([{ type: 'resume', sessionId: 's1', lastSeq: 0 }]);
  });

  it('client - replay pages with more: true are followed to the end; silence asks again from the last seq', async () => {
    const { client, clock, last } = setup({ pageTimeoutMs: 5000 });
    const synced: number[] = [];
    const seen: number[] = [];
    client.on('synced', (s) => synced.push(s.lastSeq));
    client.on('event', (e) => seen.push(e.seq));
    client.track('s1', 10);
    client.connect();
    await tick();
    last().accept([]);
    expect(last().ofType('resume')).toEqual([{ type: 'resume', sessionId: 's1', lastSeq: 10 }]);
    last().push({
      type: 'events',
      sessionId: 's1',
      events: [msg('s1', 11, 'a'), msg('s1', 12, 'b')],
      more: true,
    });
    expect(synced).toEqual([]);
    clock.advance(4000);
    last().push({ type: 'events', sessionId: 's1', events: [msg('s1', 13, 'c')], more: true });
    clock.advance(4000);
    // Still within the page timeout after the second page: no second resume yet.
    expect(last().ofType('resume')).toHaveLength(1);
    clock.advance(1000);
    expect(last().ofType('resume')).toEqual([
      { type: 'resume', sessionId: 's1', lastSeq: 10 },
      { type: 'resume', sessionId: 's1', lastSeq: 13 },
    ]);
    last().push({
      type: 'events',
      sessionId: 's1',
      events: [msg('s1', 13, 'c'), msg('s1', 14, 'd')],
      more: false,
    });
    expect(seen).toEqual([11, 12, 13, 14]);
    expect(synced).toEqual([14]);
    clock.advance(60_000);
    expect(last().ofType('resume')).toHaveLength(2);
  });

  it('client - an ack that overtakes replayed events does not skip them; the own message is not reported twice', async () => {
    const { client, sockets, clock, last } = setup();
    const seen: number[] = [];
    client.on('event', (e) => seen.push(e.seq));
    client.connect();
    await tick();
    last().accept(['s1']);
    last().push({ type: 'events', sessionId: 's1', events: [msg('s1', 1, 'a')], more: false });
    const p = client.sendMessage('s1', 'mine');
    last().close(1006);
    clock.advance(500);
    await tick();
    sockets[1]!.accept(['s1']);
    // The resend is acked (seq 5) before the replay of 2–5 arrives.
    last().push({ type: 'ack', sessionId: 's1', clientMsgId: p.clientMsgId, seq: 5, at: 5, duplicate: true });
    expect(client.seqOf('s1')).toBe(1);
    last().push({
      type: 'events',
      sessionId: 's1',
      events: [msg('s1', 2, 'b'), msg('s1', 3, 'c'), msg('s1', 4, 'd'), msg('s1', 5, 'mine', p.clientMsgId)],
      more: false,
    });
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(client.seqOf('s1')).toBe(5);
    // A contiguous ack advances at once, and the later event with that seq is dropped.
    const q = client.sendMessage('s1', 'again');
    last().push({
      type: 'ack',
      sessionId: 's1',
      clientMsgId: q.clientMsgId,
      seq: 6,
      at: 6,
      duplicate: false,
    });
    expect(client.seqOf('s1')).toBe(6);
    last().push({ type: 'event', event: msg('s1', 6, 'again', q.clientMsgId) });
    last().push({ type: 'event', event: msg('s1', 7, 'reply') });
    expect(seen).toEqual([1, 2, 3, 4, 7]);
  });
});

describe('realtime client - sending', () => {
  it('client - unacknowledged messages are resent with the same clientMsgId after each reconnect until acked', async () => {
    const { client, sockets, clock, last } = setup();
    const acks: Array<{ id: string; duplicate: boolean }> = [];
    client.on('ack', (a) => acks.push({ id: a.clientMsgId, duplicate: a.duplicate }));
    client.connect();
    await tick();
    last().accept(['s1']);
    const p = client.sendMessage('s1', 'hello');
    const q = client.sendMessage('s1', 'world');
    expect(p.clientMsgId).not.toBe(q.clientMsgId);
    expect(
      last()
        .ofType('send')
        .map((f) => f.clientMsgId),
    ).toEqual([p.clientMsgId, q.clientMsgId]);
    // Two drops in a row; the first socket never acked, the second acks only `hello`.
    last().close(1006);
    clock.advance(500);
    await tick();
    last().accept(['s1']);
    last().push({ type: 'ack', sessionId: 's1', clientMsgId: p.clientMsgId, seq: 1, at: 1, duplicate: true });
    last().close(1006);
    clock.advance(500);
    await tick();
    last().accept(['s1']);
    expect(sockets).toHaveLength(3);
    expect(sockets[1]!.ofType('send')).toEqual([
      { type: 'send', sessionId: 's1', clientMsgId: p.clientMsgId, text: 'hello' },
      { type: 'send', sessionId: 's1', clientMsgId: q.clientMsgId, text: 'world' },
    ]);
    expect(sockets[2]!.ofType('send')).toEqual([
      { type: 'send', sessionId: 's1', clientMsgId: q.clientMsgId, text: 'world' },
    ]);
    last().push({
      type: 'ack',
      sessionId: 's1',
      clientMsgId: q.clientMsgId,
      seq: 2,
      at: 2,
      duplicate: false,
    });
    // A late duplicate ack is not reported twice.
    last().push({ type: 'ack', sessionId: 's1', clientMsgId: q.clientMsgId, seq: 2, at: 2, duplicate: true });
    expect(acks).toEqual([
      { id: p.clientMsgId, duplicate: true },
      { id: q.clientMsgId, duplicate: false },
    ]);
    expect(client.unacked).toEqual([]);
    expect(client.seqOf('s1')).toBe(2);
  });

  it('client - a message written while offline goes out once the connection is back', async () => {
    const { client, clock, last } = setup();
    client.connect();
    await tick();
    last().accept(['s1']);
    last().close(1006);
    const p = client.sendMessage('s1', 'offline');
    expect(last().ofType('send')).toEqual([]);
    clock.advance(500);
    await tick();
    last().accept(['s1']);
    expect(last().ofType('send')).toEqual([
      { type: 'send', sessionId: 's1', clientMsgId: p.clientMsgId, text: 'offline' },
    ]);
    // Resume goes before the resend, so the replay comes first.
    expect(last().sent.map((f) => f.type)).toEqual(['resume', 'send']);
  });

  it('client - a transient refusal is retried with the same id; a final refusal is reported and dropped', async () => {
    const { client, clock, last } = setup({ retryMs: 2000 });
    const failed: string[] = [];
    client.on('failed', (f) => failed.push(`${f.message.text}:${f.code}`));
    client.connect();
    await tick();
    last().accept(['s1']);
    const a = client.sendMessage('s1', 'a');
    const b = client.sendMessage('s1', 'b');
    last().push({ type: 'error', code: 'SB_ERR_SESSION_CLOSED', message: 'closed', ref: a.clientMsgId });
    last().push({ type: 'error', code: 'SB_ERR_STORE_UNAVAILABLE', message: 'later', ref: b.clientMsgId });
    expect(failed).toEqual(['a:SB_ERR_SESSION_CLOSED']);
    expect(client.unacked.map((p) => p.clientMsgId)).toEqual([b.clientMsgId]);
    clock.advance(1999);
    expect(last().ofType('send')).toHaveLength(2);
    clock.advance(1);
    expect(
      last()
        .ofType('send')
        .map((f) => f.clientMsgId),
    ).toEqual([a.clientMsgId, b.clientMsgId, b.clientMsgId]);
  });
});

describe('realtime client - connection', () => {
  it('client - reconnects with growing, jittered, capped backoff, reset by a welcome', async () => {
    const { client, clock, last } = setup({ backoffMs: 500, maxBackoffMs: 15_000 });
    client.connect();
    for (let i = 0; i < 8; i++) {
      await tick();
      last().close(1006);
      clock.advance(clock.delays[clock.delays.length - 1]!);
    }
    expect(clock.delays).toEqual([500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
    await tick();
    last().accept([]);
    last().close(1006);
    expect(clock.delays[clock.delays.length - 1]).toBe(500);
  });

  it('client - jitter spreads the delay by ±30 %', async () => {
    for (const [r, expected] of [
      [0, 350],
      [1, 650],
    ] as const) {
      const { client, clock, last } = setup({ random: () => r });
      client.connect();
      await tick();
      last().close(1006);
      expect(clock.delays).toEqual([expected]);
    }
  });

  it('client - stops for good on 4001/4003 and on close(); the token function runs per attempt', async () => {
    let n = 0;
    const { client, sockets, clock, last } = setup({ token: async () => `tok${++n}` });
    const ended: number[] = [];
    client.on('ended', (e) => ended.push(e.code));
    client.connect();
    await tick();
    last().close(1006);
    clock.advance(500);
    await tick();
    expect(sockets.map((s) => s.url)).toEqual([
      'ws://x/v1/ws/visitor?token=tok1',
      'ws://x/v1/ws/visitor?token=tok2',
    ]);
    last().close(4003, 'replaced');
    expect(client.state).toBe('closed');
    expect(ended).toEqual([4003]);
    clock.advance(60_000);
    await tick();
    expect(sockets).toHaveLength(2);

    const other = setup();
    other.client.connect();
    await tick();
    other.last().accept([]);
    other.client.close();
    expect(other.client.state).toBe('closed');
    other.clock.advance(60_000);
    await tick();
    expect(other.sockets).toHaveLength(1);
  });

  it('client - pings while open and drops a socket that went silent', async () => {
    const { client, sockets, clock, last } = setup({ pingIntervalMs: 20_000, pongTimeoutMs: 10_000 });
    client.connect();
    await tick();
    last().accept([]);
    clock.advance(20_000);
    expect(last().ofType('ping')).toHaveLength(1);
    last().push({ type: 'pong', at: 0 });
    clock.advance(20_000);
    expect(last().ofType('ping')).toHaveLength(2);
    // No answer any more: the network died without a close.
    clock.advance(20_000);
    expect(client.state).toBe('reconnecting');
    clock.advance(500);
    await tick();
    expect(sockets).toHaveLength(2);
  });

  it('client - reconnectNow skips the remaining backoff', async () => {
    const { client, sockets, last } = setup();
    client.connect();
    await tick();
    last().close(1006);
    client.reconnectNow();
    await tick();
    expect(sockets).toHaveLength(2);
  });
});

describe('realtime client - typing', () => {
  it('client - typing is throttled but the latest draft always goes out', async () => {
    const { client, clock, last } = setup({ typingThrottleMs: 400 });
    client.connect();
    await tick();
    last().accept([]);
    client.typing('s1', 'h');
    client.typing('s1', 'he');
    client.typing('s1', 'hel');
    expect(last().ofType('typing')).toEqual([{ type: 'typing', sessionId: 's1', text: 'h' }]);
    clock.advance(400);
    expect(last().ofType('typing')).toEqual([
      { type: 'typing', sessionId: 's1', text: 'h' },
      { type: 'typing', sessionId: 's1', text: 'hel' },
    ]);
    clock.advance(1000);
    expect(last().ofType('typing')).toHaveLength(2);
  });

  it('client - sending a message drops the draft still waiting in the throttle', async () => {
    const { client, clock, last } = setup({ typingThrottleMs: 400 });
    client.connect();
    await tick();
    last().accept(['s1']);
    client.typing('s1', 'h');
    client.typing('s1', 'hello');
    client.sendMessage('s1', 'hello');
    clock.advance(1000);
    expect(last().ofType('typing')).toEqual([{ type: 'typing', sessionId: 's1', text: 'h' }]);
  });
});

describe('realtime client - watching and attachments', () => {
  it('client - follow() replays a session from a seq, keeps it across reconnects, untrack() stops', async () => {
    const { client, clock, last } = setup();
    const seen: number[] = [];
    client.on('event', (e) => seen.push(e.seq));
    client.connect();
    await tick();
    last().accept([]);
    expect(client.follow('w1', 5)).toBe(true);
    expect(client.follow('w1', 0)).toBe(false);
    expect(last().ofType('resume')).toEqual([{ type: 'resume', sessionId: 'w1', lastSeq: 5 }]);
    last().push({
      type: 'events',
      sessionId: 'w1',
      events: [msg('w1', 5, 'old'), msg('w1', 6, 'new')],
      more: false,
    });
    expect(seen).toEqual([6]);
    last().close(1006);
    clock.advance(500);
    await tick();
    last().accept([]);
    expect(last().ofType('resume')).toEqual([{ type: 'resume', sessionId: 'w1', lastSeq: 6 }]);
    client.untrack('w1');
    last().close(1006);
    clock.advance(2000);
    await tick();
    last().accept([]);
    expect(last().ofType('resume')).toEqual([]);
  });

  it('client - a message with an attachment is resent with it and without the download path', async () => {
    const { client, clock, last } = setup();
    client.connect();
    await tick();
    last().accept(['s1']);
    const p = client.sendMessage('s1', '', {
      fileId: 'f1',
      name: 'a.png',
      mime: 'image/png',
      size: 3,
      url: '/x',
    });
    expect(last().ofType('send')).toEqual([
      {
        type: 'send',
        sessionId: 's1',
        clientMsgId: p.clientMsgId,
        text: '',
        attachment: { fileId: 'f1', name: 'a.png', mime: 'image/png', size: 3 },
      },
    ]);
    last().close(1006);
    clock.advance(500);
    await tick();
    last().accept(['s1']);
    expect(last().ofType('send')[0]?.attachment?.fileId).toBe('f1');
  });
});
