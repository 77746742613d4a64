import { describe, expect, it } from 'vitest';
import {
  assertLoopback,
  chatConfig,
  checkFlags,
  consoleConfig,
  defaultCpus,
  httpBase,
  num,
  parseArgs,
  split,
} from './args.ts';
import { MessageLedger, drainTimes, failureWindows, latencyOutside } from './cluster.ts';
import { Histogram, SUB_BUCKETS, slopeOf } from './histogram.ts';
import { BENCH_TEXT, quickString } from './wire.ts';

const flags = (...argv: string[]): Map<string, string | true> => parseArgs(['chat', ...argv]).flags;

describe('bench histogram', () => {
  it('bench - histogram percentiles of a uniform range', () => {
    const h = new Histogram();
    for (let i = 1; i <= 1000; i++) h.record(i / 10); // 0.1 … 100 ms
    expect(h.count).toBe(1000);
    expect(h.percentile(50)).toBeCloseTo(50, 0);
    expect(h.percentile(99)).toBeCloseTo(99, 0);
    expect(h.percentile(100)).toBe(100);
    expect(h.max).toBe(100);
    expect(h.min).toBeCloseTo(0.1, 5);
    expect(h.mean).toBeCloseTo(50.05, 5);
  });

  it('bench - histogram relative error stays under one sub-bucket from 1 µs to an hour', () => {
    for (let ms = 0.001; ms < 3_600_000; ms *= 1.37) {
      const h = new Histogram();
      h.record(ms);
      h.record(ms * 10); // so that the reported value is the bucket edge, not the exact max
      const got = h.percentile(50);
      expect(got).toBeGreaterThanOrEqual(ms - 0.0005);
      expect((got - ms) / ms).toBeLessThanOrEqual(1 / SUB_BUCKETS + 0.001 / ms);
    }
  });

  it('bench - histogram sub-millisecond values keep microsecond precision', () => {
    const h = new Histogram();
    h.record(0.056);
    h.record(0.057);
    h.record(1);
    expect(h.percentile(33)).toBeCloseTo(0.056, 6);
    expect(h.percentile(66)).toBeCloseTo(0.057, 6);
  });

  it('bench - histogram merges exactly across processes (via JSON)', () => {
    const a = new Histogram();
    const b = new Histogram();
    const all = new Histogram();
    for (let i = 1; i <= 10_000; i++) {
      const v = (i * 7919) % 5000;
      (i % 3 ? a : b).record(v / 7);
      all.record(v / 7);
    }
    const merged = Histogram.fromJSON(JSON.parse(JSON.stringify(a.toJSON())));
    merged.merge(JSON.parse(JSON.stringify(b.toJSON())));
    expect(merged.count).toBe(all.count);
    for (const p of [0, 1, 50, 90, 99, 99.9, 100]) expect(merged.percentile(p)).toBe(all.percentile(p));
    expect(merged.max).toBe(all.max);
    expect(merged.min).toBe(all.min);
    expect(merged.mean).toBeCloseTo(all.mean, 9);
  });

  it('bench - histogram edge cases: empty, negative, huge, reset, bad input', () => {
    const h = new Histogram();
    expect(h.percentile(99)).toBe(0);
    expect(h.summary()).toEqual({ p50: 0, p95: 0, p99: 0, max: 0, count: 0 });
    h.record(-3); // clock skew between processes: counts as 0
    expect(h.percentile(50)).toBe(0);
    h.record(1e9); // beyond the range: clamped into the last bucket, exact max kept
    expect(h.percentile(100)).toBeLessThanOrEqual(1e9);
    expect(h.max).toBe(1e9);
    expect(h.toJSON().counts.length).toBe(2);
    h.reset();
    expect(h.count).toBe(0);
    expect(() => h.merge({ counts: [[1e6, 1]], max: 1, min: 1, sum: 1 })).toThrow(RangeError);
    const empty = new Histogram();
    empty.merge(new Histogram().toJSON());
    expect(empty.min).toBe(0);
  });
});

describe('bench stats', () => {
  it('bench - slopeOf fits RSS growth per connection', () => {
    expect(
      slopeOf([
        [0, 100],
        [1000, 1100],
        [2000, 2100],
        [3000, 3100],
      ]),
    ).toBeCloseTo(1, 9);
    expect(
      slopeOf([
        [1, 1],
        [2, 2],
      ]),
    ).toBeUndefined();
    expect(
      slopeOf([
        [5, 1],
        [5, 2],
        [5, 3],
      ]),
    ).toBeUndefined();
  });
});

describe('bench arguments', () => {
  it('bench - arguments: flags with values, =values and booleans', () => {
    const p = parseArgs(['chat', '--visitors', '10', '--json', '--rate=max']);
    expect(p.scenario).toBe('chat');
    expect(num(p.flags, 'visitors', 0)).toBe(10);
    expect(p.flags.get('json')).toBe(true);
    expect(p.flags.get('rate')).toBe('max');
    checkFlags(p);
    expect(parseArgs([]).scenario).toBe('help');
    expect(() => parseArgs(['chat', 'stray'])).toThrow(/unexpected argument/);
    expect(() => checkFlags(parseArgs(['chat', '--nope', '1']))).toThrow(/unknown flag/);
    expect(() => checkFlags(parseArgs(['fly']))).toThrow(/unknown scenario/);
    expect(() => num(parseArgs(['chat', '--visitors', 'x']).flags, 'visitors', 0)).toThrow();
    expect(() => num(parseArgs(['chat', '--visitors']).flags, 'visitors', 0)).toThrow();
  });

  it('bench - chat config defaults and echo', () => {
    const c = chatConfig(
      flags('--visitors', '2000', '--agents', '200', '--rate', '5000', '--duration', '60'),
      2,
    );
    expect(c).toMatchObject({
      visitors: 2000,
      agents: 200,
      rate: 5000,
      duration: 60,
      warmup: 3,
      grace: 3,
      window: 4,
      targets: ['engine'],
      procs: 1,
      serverCpus: '0',
      clientCpus: '1',
      url: undefined,
      json: false,
    });
  });

  it('bench - chat config: saturation, both targets, process count, pinning', () => {
    const c = chatConfig(
      flags('--visitors', '40000', '--agents', '400', '--rate', 'max', '--target', 'both'),
      4,
    );
    expect(c.rate).toBe('max');
    expect(c.targets).toEqual(['raw-relay', 'engine']);
    expect(c.procs).toBe(3); // ≤ 15,000 sockets per load process
    expect(c.clientCpus).toBe('1,2,3');
    expect(
      chatConfig(flags('--procs', '4', '--server-cpus', '0,1', '--client-cpus', '2,3'), 4),
    ).toMatchObject({
      procs: 4,
      serverCpus: '0,1',
      clientCpus: '2,3',
    });
    expect(defaultCpus(1)).toEqual({ server: '', client: '' });
  });

  it('bench - chat config rejects nonsense', () => {
    expect(() => chatConfig(flags('--rate', '0'), 2)).toThrow(/--rate/);
    expect(() => chatConfig(flags('--rate', 'fast'), 2)).toThrow(/--rate/);
    expect(() => chatConfig(flags('--visitors', '0'), 2)).toThrow(/--visitors/);
    expect(() => chatConfig(flags('--visitors', '5', '--agents', '6'), 2)).toThrow(/--agents/);
    expect(() => chatConfig(flags('--duration', '0'), 2)).toThrow(/--duration/);
    expect(() => chatConfig(flags('--target', 'nginx'), 2)).toThrow(/--target/);
    expect(() => chatConfig(flags('--store', 'redis'), 2)).toThrow(/--store/);
    expect(() => chatConfig(flags('--procs', '1.5'), 2)).toThrow(/--procs/);
    expect(() => chatConfig(flags('--target', 'both', '--url', 'http://127.0.0.1:1'), 2)).toThrow(/--url/);
  });

  it('bench - console config: defaults, flags and limits', () => {
    const p = (...argv: string[]): Map<string, string | true> => parseArgs(['console', ...argv]).flags;
    checkFlags(parseArgs(['console', '--sessions', '100', '--rate', '10', '--duration', '30', '--json']));
    expect(() => checkFlags(parseArgs(['console', '--visitors', '5']))).toThrow(/unknown flag/);
    expect(consoleConfig(p())).toEqual({ sessions: 100, rate: 10, duration: 30, json: false });
    expect(consoleConfig(p('--sessions', '20', '--rate', '2.5', '--duration', '5', '--json'))).toEqual({
      sessions: 20,
      rate: 2.5,
      duration: 5,
      json: true,
    });
    expect(() => consoleConfig(p('--sessions', '201'))).toThrow(/--sessions/);
    expect(() => consoleConfig(p('--sessions', '1'))).toThrow(/--sessions/);
    expect(() => consoleConfig(p('--rate', '0'))).toThrow(/--rate/);
    expect(() => consoleConfig(p('--duration', '0'))).toThrow(/--duration/);
  });

  it('bench - --url accepts loopback http and ws bases only', () => {
    expect(chatConfig(flags('--url', 'ws://127.0.0.1:8080/'), 2).url).toBe('http://127.0.0.1:8080');
    expect(httpBase('http://localhost:9')).toBe('http://localhost:9');
    expect(httpBase('wss://[::1]:9')).toBe('https://[::1]:9');
    expect(() => assertLoopback('http://10.0.0.5:8080')).toThrow(/loopback/);
    expect(() => assertLoopback('http://example.com')).toThrow(/loopback/);
    expect(() => assertLoopback('not a url')).toThrow(/not a URL/);
  });

  it('bench - split shares add up', () => {
    expect(split(10, 3)).toEqual([4, 3, 3]);
    expect(split(2, 4)).toEqual([1, 1, 0, 0]);
    expect(split(5000, 2).reduce((a, b) => a + b, 0)).toBe(5000);
  });
});

describe('bench wire helpers', () => {
  it('bench - quickString reads unescaped string fields and refuses escaped ones', () => {
    const ack = JSON.stringify({ type: 'ack', sessionId: 's1', clientMsgId: 'p0v1m2', seq: 4 });
    expect(quickString(ack, 'clientMsgId')).toBe('p0v1m2');
    expect(quickString(ack, 'nope')).toBeUndefined();
    expect(quickString(JSON.stringify({ text: 'a"b' }), 'text')).toBeUndefined();
    const m = BENCH_TEXT.exec('p1v22m333|1732480000123.456');
    expect(m?.[1]).toBe('p1v22m333');
    expect(Number(m?.[2])).toBeCloseTo(1732480000123.456, 3);
    expect(BENCH_TEXT.exec('hello')).toBeNull();
  });
});

describe('bench cluster failure windows', () => {
  // A kill at t=10 s, settled at 13 s; what was sent from 8 s on waits until 16 s, and what is
  // sent while that backlog drains (13–16 s) takes 300 ms.
  const events = [{ at: 10_000, settled: 13_000 }];
  const sent: number[] = [];
  const received: number[] = [];
  const add = (t: number, latency: number): void => {
    sent.push(t);
    received.push(t + latency);
  };
  for (let t = 0; t < 30_000; t += 10) {
    if (t >= 8_000 && t <= 13_000) add(t, 16_000 - t);
    else if (t > 13_000 && t < 16_000) add(t, 300);
    else add(t, 5);
  }
  const s = { sent, received };

  it('bench - a backlog is delivered once no message waits longer than 100 ms', () => {
    // By 16,290 the last slowed message (sent at 15,990) has arrived; from then on all is on time.
    const [d] = drainTimes(s, events);
    expect(d).toBeGreaterThanOrEqual(16_280);
    expect(d).toBeLessThanOrEqual(16_300);
    // Nothing delayed: the window ends 1 s after the settle.
    const calm = { sent, received: sent.map((t) => t + 5) };
    expect(drainTimes(calm, events)).toEqual([14_000]);
  });

  it('bench - windows run from 2 s before the event to the later of settled + 1 s and the drain', () => {
    expect(failureWindows(events)).toEqual([[8_000, 14_000]]);
    expect(failureWindows(events, [16_300])).toEqual([[8_000, 16_300]]);
    expect(failureWindows(events, [12_000])).toEqual([[8_000, 14_000]]);
  });

  it('bench - latency outside the windows leaves out what the failure delayed, and only that', () => {
    const end = drainTimes(s, events)[0]!;
    const wide = latencyOutside(s, failureWindows(events, [end]), 1_000);
    expect(wide.max).toBe(5);
    expect(wide.count).toBe(sent.filter((t) => t >= 1_000 && (t < 8_000 || t > end)).length);
    // With windows ending 1 s after the settle, the messages slowed by the drain count.
    const narrow = latencyOutside(s, failureWindows(events), 1_000);
    expect(narrow.max).toBe(300);
  });
});

describe('bench cluster message ledger', () => {
  it('bench - counts acks and deliveries once, tells duplicates and losses, grows past its first size', () => {
    const l = new MessageLedger();
    const n = 200_000; // past the initial 65,536
    for (let i = 0; i < n; i++) l.sent(i, 1000 + i);
    expect(MessageLedger.indexOf('m199999')).toBe(199_999);
    expect(MessageLedger.indexOf('x1')).toBe(-1);
    expect(MessageLedger.indexOf('m-1')).toBe(-1);
    for (let i = 0; i < n; i++) l.ack(i, i + 1);
    l.ack(5, 6); // an ack again (a resend answered as a duplicate) counts once
    expect(l.acked).toBe(n);
    for (let i = 0; i < n; i++) if (i !== 7 && i !== 150_000) expect(l.receive(i, i + 1)).toBe(0);
    expect(l.receive(3, 4)).toBe(4); // the same delivery again: same seq
    expect(l.receive(3, 99)).toBe(4); // the same message at another seq: a duplicate for the caller
    expect(l.received).toBe(n - 2);
    expect(l.lost(n)).toEqual([7, 150_000]);
    expect(l.sentAt[150_000]).toBe(151_000);
  });
});
