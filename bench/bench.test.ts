import { describe, expect, it } from 'vitest';
import { checkFlags, num, parseArgs } from './args.ts';
import { Histogram } from './histogram.ts';

describe('bench harness', () => {
  it('bench - histogram percentiles and merge', () => {
    const a = new Histogram();
    const b = new Histogram();
    for (let i = 1; i <= 100; i++) (i % 2 ? a : b).record(i);
    a.merge(b.toJSON());
    expect(a.count).toBe(100);
    expect(a.percentile(50)).toBeCloseTo(50, 1);
    expect(a.percentile(99)).toBeCloseTo(99, 1);
    const s = a.summary();
    expect(s.max).toBe(100);
    const big = new Histogram();
    big.record(5000);
    big.record(1);
    expect(big.percentile(100)).toBe(5000);
  });

  it('bench - arguments', () => {
    const p = parseArgs(['chat', '--visitors', '10', '--json', '--rate=max']);
    expect(p.scenario).toBe('chat');
    expect(num(p.flags, 'visitors', 0)).toBe(10);
    expect(p.flags.get('json')).toBe(true);
    expect(p.flags.get('rate')).toBe('max');
    checkFlags(p);
    expect(() => checkFlags(parseArgs(['chat', '--nope', '1']))).toThrow(/unknown flag/);
    expect(() => checkFlags(parseArgs(['fly']))).toThrow(/unknown scenario/);
    expect(() => num(parseArgs(['chat', '--visitors', 'x']).flags, 'visitors', 0)).toThrow();
  });
});
