/**
 * Sensitive words (F11): a tenant's list, matched in every message of the web and app channels.
 *
 * Matching is an Aho–Corasick automaton over code points, built once per list version, so a
 * message is scanned in one pass whatever the list size (thousands of words, Chinese and English
 * mixed). It is case- and width-insensitive: text and words are folded with NFKC (full-width
 * "ＦＲＥＥ" → "FREE", ideographic space → space) and lower-cased, one character (with its combining
 * marks) at a time, so match offsets map back to the original text and "cafe" does not match inside
 * a decomposed "café".
 *
 * Modes (one at a time): `block` refuses any message containing a word; `remind` lets an agent's
 * message through and shows the agent the tenant's reminder text.
 */
import { SbError } from '../protos/errors.ts';

export interface SensitiveConfig {
  mode: 'block' | 'remind';
  words: string[];
  /** Remind mode: the text shown to the agent. */
  reminder?: string;
}

export const SENSITIVE_LIMITS = { maxWords: 20_000, maxWordChars: 50, maxReminderChars: 500 } as const;

export const DEFAULT_REMINDER = 'This message contains a word on the sensitive-word list.';

/** Folds one code point: NFKC then lower case; may yield several code points (e.g. ligatures). */
function foldCp(cp: string): string {
  return cp.normalize('NFKC').toLowerCase();
}

/** A character with the combining marks after it ("e" + U+0301) folds as one unit ("é"). */
const CLUSTER = /\P{M}\p{M}*|\p{M}+/gu;

export function foldWord(w: string): string {
  let out = '';
  for (const m of w.matchAll(CLUSTER)) out += foldCp(m[0]);
  return out.trim();
}

interface Node {
  next: Map<number, number>;
  fail: number;
  /** Indexes of words ending here (including through fail links, filled at build). */
  out: number[];
}

export interface SensitiveMatch {
  /** The listed word, as the tenant wrote it. */
  word: string;
  /** UTF-16 offsets in the original text. */
  start: number;
  end: number;
}

export class SensitiveMatcher {
  private readonly nodes: Node[] = [{ next: new Map(), fail: 0, out: [] }];
  private readonly words: string[] = [];
  private readonly lengths: number[] = [];

  constructor(words: readonly string[]) {
    const seen = new Set<string>();
    for (const w of words) {
      const f = foldWord(w);
      if (f === '' || seen.has(f)) continue;
      seen.add(f);
      const idx = this.words.length;
      this.words.push(w);
      let n = 0;
      let len = 0;
      for (const ch of f) {
        const c = ch.codePointAt(0)!;
        let nx = this.nodes[n]!.next.get(c);
        if (nx === undefined) {
          nx = this.nodes.length;
          this.nodes.push({ next: new Map(), fail: 0, out: [] });
          this.nodes[n]!.next.set(c, nx);
        }
        n = nx;
        len++;
      }
      this.nodes[n]!.out.push(idx);
      this.lengths.push(len);
    }
    // Breadth-first fail links.
    const queue: number[] = [];
    for (const child of this.nodes[0]!.next.values()) queue.push(child);
    for (let qi = 0; qi < queue.length; qi++) {
      const u = queue[qi]!;
      const un = this.nodes[u]!;
      for (const [c, v] of un.next) {
        let f = un.fail;
        while (f !== 0 && !this.nodes[f]!.next.has(c)) f = this.nodes[f]!.fail;
        const cand = this.nodes[f]!.next.get(c);
        const vn = this.nodes[v]!;
        vn.fail = cand !== undefined && cand !== v ? cand : 0;
        vn.out.push(...this.nodes[vn.fail]!.out);
        queue.push(v);
      }
    }
  }

  get size(): number {
    return this.words.length;
  }

  /** Every occurrence, in order of where it ends. */
  find(text: string): SensitiveMatch[] {
    const out: SensitiveMatch[] = [];
    if (this.words.length === 0) return out;
    // Folded code points with the original offset each came from.
    const starts: number[] = [];
    const ends: number[] = [];
    let n = 0;
    for (const m of text.matchAll(CLUSTER)) {
      const origStart = m.index;
      const pos = origStart + m[0].length;
      for (const ch of foldCp(m[0])) {
        const c = ch.codePointAt(0)!;
        starts.push(origStart);
        ends.push(pos);
        while (n !== 0 && !this.nodes[n]!.next.has(c)) n = this.nodes[n]!.fail;
        n = this.nodes[n]!.next.get(c) ?? 0;
        for (const idx of this.nodes[n]!.out) {
          const k = starts.length - this.lengths[idx]!;
          out.push({ word: this.words[idx]!, start: starts[k]!, end: ends[ends.length - 1]! });
        }
      }
    }
    return out;
  }

  test(text: string): boolean {
    if (this.words.length === 0) return false;
    let n = 0;
    for (const m of text.matchAll(CLUSTER)) {
      for (const ch of foldCp(m[0])) {
        const c = ch.codePointAt(0)!;
        while (n !== 0 && !this.nodes[n]!.next.has(c)) n = this.nodes[n]!.fail;
        n = this.nodes[n]!.next.get(c) ?? 0;
        if (this.nodes[n]!.out.length > 0) return true;
      }
    }
    return false;
  }
}

export type SensitiveVerdict =
  | { verdict: 'pass' }
  | { verdict: 'block'; words: string[] }
  | { verdict: 'remind'; words: string[]; reminder: string };

export function checkMessage(cfg: SensitiveConfig, m: SensitiveMatcher, text: string): SensitiveVerdict {
  const found = m.find(text);
  if (found.length === 0) return { verdict: 'pass' };
  const words = [...new Set(found.map((f) => f.word))];
  return cfg.mode === 'block'
    ? { verdict: 'block', words }
    : { verdict: 'remind', words, reminder: cfg.reminder ?? DEFAULT_REMINDER };
}

function bad(path: string, problem: string): never {
  throw new SbError('SB_ERR_INVALID_FIELD', `${path}: ${problem}`);
}

/** Validates an admin's list: words trimmed, 1–50 characters, duplicates (after folding) dropped. */
export function validateSensitiveConfig(input: unknown): SensitiveConfig {
  if (!input || typeof input !== 'object' || Array.isArray(input)) bad('sensitive', 'must be an object');
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!['mode', 'words', 'reminder'].includes(k)) bad(`sensitive.${k}`, 'unknown field');
  if (o['mode'] !== 'block' && o['mode'] !== 'remind') bad('sensitive.mode', 'must be block or remind');
  const words = o['words'];
  if (!Array.isArray(words)) bad('sensitive.words', 'must be an array of strings');
  if (words.length > SENSITIVE_LIMITS.maxWords)
    bad('sensitive.words', `at most ${SENSITIVE_LIMITS.maxWords} words`);
  const seen = new Set<string>();
  const out: string[] = [];
  words.forEach((w, i) => {
    if (typeof w !== 'string') bad(`sensitive.words[${i}]`, 'must be a string');
    const t = w.trim();
    if (t.length === 0 || t.length > SENSITIVE_LIMITS.maxWordChars)
      bad(`sensitive.words[${i}]`, `must be 1–${SENSITIVE_LIMITS.maxWordChars} characters`);
    const f = foldWord(t);
    if (seen.has(f)) return;
    seen.add(f);
    out.push(t);
  });
  const cfg: SensitiveConfig = { mode: o['mode'], words: out };
  if (o['reminder'] !== undefined) {
    const r = o['reminder'];
    if (typeof r !== 'string' || r.trim() === '' || r.length > SENSITIVE_LIMITS.maxReminderChars)
      bad('sensitive.reminder', `must be 1–${SENSITIVE_LIMITS.maxReminderChars} characters`);
    cfg.reminder = r;
  }
  return cfg;
}
