import { describe, expect, it } from 'vitest';
import { SensitiveMatcher, foldForMatching, type SensitiveMatch } from './matcher.ts';

function spans(m: SensitiveMatcher, text: string): Array<[string, string]> {
  return m.find(text).map((x) => [x.word, text.slice(x.start, x.end)]);
}

describe('SensitiveMatcher', () => {
  it('finds nothing with an empty list or empty text', () => {
    const empty = new SensitiveMatcher([]);
    expect(empty.size).toBe(0);
    expect(empty.find('anything at all')).toEqual([]);
    expect(empty.test('anything')).toBe(false);
    expect(new SensitiveMatcher(['x']).find('')).toEqual([]);
  });

  it('reports overlapping and nested words with original offsets', () => {
    const m = new SensitiveMatcher(['he', 'hello', 'ell', 'lo']);
    expect(m.find('say hello!')).toEqual([
      { word: 'he', start: 4, end: 6 },
      { word: 'hello', start: 4, end: 9 },
      { word: 'ell', start: 5, end: 8 },
      { word: 'lo', start: 7, end: 9 },
    ]);
    expect(m.test('say hello!')).toBe(true);
    expect(m.test('help')).toBe(true);
    expect(m.test('hxlxo')).toBe(false);
  });

  it('finds words inside longer text and repeated occurrences', () => {
    const m = new SensitiveMatcher(['ab']);
    expect(m.find('xxabyyabab').map((x) => x.start)).toEqual([2, 6, 8]);
  });

  it('uses fail links across branches (classic he/she/his/hers)', () => {
    const m = new SensitiveMatcher(['he', 'she', 'his', 'hers']);
    expect(spans(m, 'ushers')).toEqual([
      ['she', 'she'],
      ['he', 'he'],
      ['hers', 'hers'],
    ]);
  });

  it('is case-insensitive and width-insensitive, offsets in the original text', () => {
    const m = new SensitiveMatcher(['free money', '发票']);
    const text = 'Get ＦＲＥＥ　ＭＯＮＥＹ now, 开发票';
    const found = m.find(text);
    expect(found).toHaveLength(2);
    expect(text.slice(found[0]!.start, found[0]!.end)).toBe('ＦＲＥＥ　ＭＯＮＥＹ');
    expect(found[0]!.word).toBe('free money');
    expect(text.slice(found[1]!.start, found[1]!.end)).toBe('发票');
    // Words given in upper case / full width match plain text too.
    expect(new SensitiveMatcher(['ＷｅＣｈａｔ']).test('add me on wechat')).toBe(true);
  });

  it('reports the word as given, first spelling wins among duplicates', () => {
    const m = new SensitiveMatcher(['Spam', 'SPAM', 'ｓｐａｍ', ' spam ']);
    expect(m.size).toBe(1);
    expect(m.find('no spam please')).toEqual([{ word: 'Spam', start: 3, end: 7 }]);
  });

  it('ignores words that fold to nothing', () => {
    const m = new SensitiveMatcher(['', '   ', '\u3000']);
    expect(m.size).toBe(0);
    expect(m.test('   ')).toBe(false);
  });

  it('handles emoji and surrogate pairs', () => {
    const m = new SensitiveMatcher(['😀', 'a😀b', '𠮷野家']);
    const text = 'x😀 a😀b 𠮷野家!';
    expect(spans(m, text)).toEqual([
      ['😀', '😀'],
      ['a😀b', 'a😀b'],
      ['😀', '😀'],
      ['𠮷野家', '𠮷野家'],
    ]);
    // A different emoji that shares the high surrogate does not match.
    expect(m.test('😁')).toBe(false);
  });

  it('matches decomposed and composed accents alike, but not the bare letter inside them', () => {
    const m = new SensitiveMatcher(['café']); // composed é
    const decomposed = 'un cafe\u0301 noir';
    const found = m.find(decomposed);
    expect(found).toHaveLength(1);
    expect(decomposed.slice(found[0]!.start, found[0]!.end)).toBe('cafe\u0301');
    expect(new SensitiveMatcher(['cafe']).test('un café')).toBe(false);
    expect(new SensitiveMatcher(['cafe\u0301']).test('un CAFÉ')).toBe(true);
  });

  it('widens a match inside a unit that folds to several characters to the whole unit', () => {
    const m = new SensitiveMatcher(['fi', 'kg']);
    const text = 'ﬁne 5㎏';
    expect(spans(m, text)).toEqual([
      ['fi', 'ﬁ'],
      ['kg', '㎏'],
    ]);
    expect(new SensitiveMatcher(['f']).find('ﬁ')).toEqual([{ word: 'f', start: 0, end: 1 }]);
  });

  it('folds case per code point (İ, Σ/ς)', () => {
    expect(new SensitiveMatcher(['σοφία']).test('ΣΟΦΊΑ')).toBe(true);
    expect(new SensitiveMatcher(['λόγος']).test('ΛΌΓΟΣ')).toBe(true);
    const m = new SensitiveMatcher(['i̇stanbul']); // i + combining dot, what İ lower-cases to
    expect(spans(m, 'İSTANBUL')).toEqual([['i̇stanbul', 'İSTANBUL']]);
  });

  it('foldForMatching folds width, case and trims', () => {
    expect(foldForMatching('  ＡＢＣ　')).toBe('abc');
    expect(foldForMatching('ΣΟΦΟΣ')).toBe('σοφοσ');
  });

  it('builds 10 000 words and scans a 4000-character text', () => {
    const rnd = mulberry32(7);
    const words: string[] = [];
    for (let i = 0; i < 10_000; i++) words.push(randomWord(rnd, 2, 8, WIDE));
    const m = new SensitiveMatcher(words);
    expect(m.size).toBeGreaterThan(9_000);
    let text = '';
    while (text.length < 4000)
      text += rnd() < 0.05 ? words[Math.floor(rnd() * words.length)]! : pick(rnd, WIDE);
    const found = m.find(text);
    expect(found.length).toBeGreaterThan(0);
    for (const f of found) expect(foldForMatching(text.slice(f.start, f.end))).toBe(foldForMatching(f.word));
    expect(m.test(text)).toBe(true);
  });
});

// ---- randomized comparison with a naive reference --------------------------------------------------------

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rnd: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)]!;
}

/** Small alphabet: many overlaps, every folding rule exercised. */
const NARROW = [
  'a',
  'b',
  'A',
  'B',
  'ａ',
  'Ｂ',
  '中',
  '文',
  '😀',
  '😁',
  'e\u0301',
  'é',
  'e',
  'ﬁ',
  'f',
  'i',
  'Σ',
  'ς',
  'σ',
  ' ',
  '　',
];

/** Wider alphabet: realistic lists (ASCII letters, a block of common Chinese, digits, some emoji). */
const WIDE: string[] = [];
for (let c = 0x61; c <= 0x7a; c++) WIDE.push(String.fromCodePoint(c), String.fromCodePoint(c - 32));
for (let c = 0x4e00; c < 0x4e00 + 200; c++) WIDE.push(String.fromCodePoint(c));
for (let c = 0x30; c <= 0x39; c++) WIDE.push(String.fromCodePoint(c), String.fromCodePoint(c + 0xfee0));
WIDE.push('😀', '🎉', '𠮷');

function randomWord(rnd: () => number, min: number, max: number, alphabet: readonly string[]): string {
  const n = min + Math.floor(rnd() * (max - min + 1));
  let s = '';
  for (let i = 0; i < n; i++) s += pick(rnd, alphabet);
  return s;
}

/** Independent folding: no fast paths; marks attach to the preceding code point. */
function naiveFold(text: string): Array<{ cp: number; start: number; end: number }> {
  const cps: Array<{ s: string; at: number }> = [];
  let at = 0;
  for (const s of text) {
    cps.push({ s, at });
    at += s.length;
  }
  const out: Array<{ cp: number; start: number; end: number }> = [];
  for (let i = 0; i < cps.length;) {
    let j = i + 1;
    while (j < cps.length && /^[\p{M}\u1160-\u11ff]$/u.test(cps[j]!.s)) j++;
    const unit = cps
      .slice(i, j)
      .map((x) => x.s)
      .join('');
    const start = cps[i]!.at;
    const end = start + unit.length;
    for (const ch of unit.normalize('NFKC').toLowerCase().replaceAll('ς', 'σ'))
      out.push({ cp: ch.codePointAt(0)!, start, end });
    i = j;
  }
  return out;
}

function naiveFind(words: readonly string[], text: string): SensitiveMatch[] {
  const t = naiveFold(text);
  const seen = new Set<string>();
  const out: SensitiveMatch[] = [];
  for (const w of words) {
    const key = naiveFold(w)
      .map((x) => String.fromCodePoint(x.cp))
      .join('')
      .trim();
    if (key === '' || seen.has(key)) continue;
    seen.add(key);
    const pat = [...key].map((c) => c.codePointAt(0)!);
    for (let p = 0; p + pat.length <= t.length; p++) {
      let ok = true;
      for (let k = 0; k < pat.length && ok; k++) ok = t[p + k]!.cp === pat[k];
      if (ok) out.push({ word: w, start: t[p]!.start, end: t[p + pat.length - 1]!.end });
    }
  }
  return out.sort((a, b) => a.start - b.start || a.end - b.end || (a.word < b.word ? -1 : 1));
}

function canonical(ms: SensitiveMatch[]): SensitiveMatch[] {
  return [...ms].sort((a, b) => a.start - b.start || a.end - b.end || (a.word < b.word ? -1 : 1));
}

describe('SensitiveMatcher against a naive search', () => {
  it('agrees on a small alphabet (many overlaps and folding cases)', () => {
    const rnd = mulberry32(20240611);
    for (let round = 0; round < 40; round++) {
      const words: string[] = [];
      const nWords = 1 + Math.floor(rnd() * 300);
      for (let i = 0; i < nWords; i++) words.push(randomWord(rnd, 1, 5, NARROW));
      const m = new SensitiveMatcher(words);
      for (let k = 0; k < 5; k++) {
        const text = randomWord(rnd, 0, 120, NARROW);
        const want = naiveFind(words, text);
        expect(canonical(m.find(text)), `round ${round}, text ${JSON.stringify(text)}`).toEqual(want);
        expect(m.test(text)).toBe(want.length > 0);
      }
    }
  });

  it('agrees with thousands of mixed-script words', () => {
    const rnd = mulberry32(99);
    for (let round = 0; round < 4; round++) {
      const words: string[] = [];
      for (let i = 0; i < 3000; i++) words.push(randomWord(rnd, 1, 6, WIDE));
      const m = new SensitiveMatcher(words);
      for (let k = 0; k < 5; k++) {
        let text = '';
        while (text.length < 600)
          text += rnd() < 0.1 ? pick(rnd, words).toUpperCase() : randomWord(rnd, 1, 3, [...WIDE, ' ', '，']);
        const want = naiveFind(words, text);
        expect(want.length).toBeGreaterThan(0);
        expect(canonical(m.find(text))).toEqual(want);
        expect(m.test(text)).toBe(true);
      }
    }
  });
});
