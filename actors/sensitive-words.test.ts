import { describe, expect, it } from 'vitest';
import { SbError } from '../protos/errors.ts';
import { SensitiveMatcher, checkMessage, foldWord, validateSensitiveConfig } from './sensitive-words.ts';

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Reference: fold the whole text per code point and search each word naively. */
function naive(words: string[], text: string): Set<string> {
  const folded = [...text.matchAll(/\P{M}\p{M}*|\p{M}+/gu)]
    .map((c) => c[0].normalize('NFKC').toLowerCase())
    .join('');
  const out = new Set<string>();
  for (const w of words) if (foldWord(w) && folded.includes(foldWord(w))) out.add(w);
  return out;
}

describe('SensitiveMatcher', () => {
  it('finds overlapping words with offsets into the original text', () => {
    const m = new SensitiveMatcher(['he', 'hello', 'llo wo', '免费']);
    const text = 'Say HELLO World, 免费!';
    const found = m.find(text).map((f) => [f.word, text.slice(f.start, f.end)]);
    expect(found).toEqual([
      ['he', 'HE'],
      ['hello', 'HELLO'],
      ['llo wo', 'LLO Wo'],
      ['免费', '免费'],
    ]);
    expect(m.test('nothing at all')).toBe(false);
    expect(m.test('免费')).toBe(true);
  });

  it('treats a character and its combining marks as one', () => {
    const decomposed = 'cafe\u0301 au lait';
    expect(new SensitiveMatcher(['cafe']).test(decomposed)).toBe(false);
    const m = new SensitiveMatcher(['café']);
    expect(m.find(decomposed).map((f) => decomposed.slice(f.start, f.end))).toEqual(['cafe\u0301']);
    expect(m.test('CAFÉ')).toBe(true);
  });

  it('is width- and case-insensitive and handles surrogate pairs', () => {
    const m = new SensitiveMatcher(['free money', '😀x']);
    const text = '这是ＦＲＥＥ　ＭＯＮＥＹ 😀X';
    const found = m.find(text);
    expect(found.map((f) => text.slice(f.start, f.end))).toEqual(['ＦＲＥＥ　ＭＯＮＥＹ', '😀X']);
    expect(new SensitiveMatcher([]).find('anything')).toEqual([]);
  });

  it('agrees with a naive reference on random mixed-script lists (seeded)', () => {
    const rnd = prng(2026);
    const alphabet = [...'abcdeABCDE免费赠送ａｂ 😀'];
    const word = (min: number, max: number): string =>
      Array.from(
        { length: min + Math.floor(rnd() * (max - min + 1)) },
        () => alphabet[Math.floor(rnd() * alphabet.length)],
      ).join('');
    const words = Array.from({ length: 2000 }, () => word(1, 5));
    const m = new SensitiveMatcher(words);
    for (let i = 0; i < 300; i++) {
      const text = word(0, 60);
      const got = new Set(m.find(text).map((f) => f.word));
      const want = naive(words, text);
      // Words equal after folding collapse to the first one written.
      const norm = (s: Set<string>): string[] => [...new Set([...s].map(foldWord))].sort();
      expect(norm(got)).toEqual(norm(want));
      expect(m.test(text)).toBe(want.size > 0);
    }
  });

  it('builds a 10,000-word list and scans a long message', () => {
    const words = Array.from({ length: 10_000 }, (_, i) => `word${i}敏感`);
    const m = new SensitiveMatcher(words);
    expect(m.size).toBe(10_000);
    const text = 'x'.repeat(3990) + 'WORD9999敏感';
    expect(m.find(text).map((f) => f.word)).toEqual(['word9999敏感']);
  });

  it('checkMessage applies the mode', () => {
    const m = new SensitiveMatcher(['bad']);
    expect(checkMessage({ mode: 'block', words: ['bad'] }, m, 'a BAD word')).toEqual({
      verdict: 'block',
      words: ['bad'],
    });
    expect(checkMessage({ mode: 'remind', words: ['bad'], reminder: 'careful' }, m, 'bad')).toEqual({
      verdict: 'remind',
      words: ['bad'],
      reminder: 'careful',
    });
    expect(checkMessage({ mode: 'block', words: ['bad'] }, m, 'good')).toEqual({ verdict: 'pass' });
  });

  it('validates configurations with typed errors', () => {
    expect(validateSensitiveConfig({ mode: 'block', words: [' a ', 'A', 'Ａ', 'b'] }).words).toEqual([
      'a',
      'b',
    ]);
    for (const bad of [
      null,
      [],
      { mode: 'x', words: [] },
      { mode: 'block' },
      { mode: 'block', words: [1] },
      { mode: 'block', words: [''] },
      { mode: 'block', words: ['x'.repeat(51)] },
      { mode: 'block', words: [], extra: 1 },
      { mode: 'remind', words: [], reminder: '' },
      { mode: 'block', words: Array.from({ length: 20_001 }, (_, i) => `w${i}`) },
    ]) {
      expect(() => validateSensitiveConfig(bad)).toThrow(SbError);
    }
  });
});
