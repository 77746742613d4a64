/**
 * A tenant's sensitive-word settings (F11) and the per-message check.
 *
 * One mode at a time (reference manual §1.9, web and app channels only):
 * - `block`: any message containing a listed word is refused — {@link sensitiveWordError} is the typed
 *   error to send back to the sender (SB_ERR_SENSITIVE_WORD, HTTP 422);
 * - `remind`: an agent's message containing a listed word is delivered, and the agent is shown the
 *   tenant's reminder text. Visitors' messages are not checked in this mode.
 */
import { SbError } from '../../protos/errors.ts';
import { SensitiveMatcher, foldForMatching } from './matcher.ts';

export interface SensitiveConfig {
  mode: 'block' | 'remind';
  /** Trimmed, 1–50 code points each, no two equal after folding; first spelling kept. */
  words: string[];
  /** Remind mode: text shown to the agent; {@link DEFAULT_REMINDER} when absent. */
  reminder?: string;
}

export const SENSITIVE_LIMITS = { maxWords: 20_000, maxWordChars: 50, maxReminderChars: 500 } as const;

export const DEFAULT_REMINDER = 'Your message contains a word on the sensitive-word list.';

export type SensitiveVerdict =
  | { verdict: 'pass' }
  | { verdict: 'block'; words: string[] }
  | { verdict: 'remind'; words: string[]; reminder: string };

function bad(path: string, problem: string): never {
  throw new SbError('SB_ERR_INVALID_FIELD', `${path}: ${problem}`);
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * Validates an admin's settings. Unknown fields, a wrong mode, more than 20 000 words, a word that is
 * not 1–50 characters (code points) after trimming, or a reminder that is empty or longer than 500
 * characters → SB_ERR_INVALID_FIELD with the path (`sensitive.words[3]: …`). Duplicates after folding
 * (case, full-width) are dropped, keeping the first.
 */
export function validateSensitiveConfig(input: unknown, path = 'sensitive'): SensitiveConfig {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) bad(path, 'must be an object');
  const o = input as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k !== 'mode' && k !== 'words' && k !== 'reminder') bad(`${path}.${k}`, 'unknown field');
  }
  const mode = o['mode'];
  if (mode !== 'block' && mode !== 'remind') bad(`${path}.mode`, 'must be "block" or "remind"');
  const raw = o['words'];
  if (!Array.isArray(raw)) bad(`${path}.words`, 'must be an array of strings');
  if (raw.length > SENSITIVE_LIMITS.maxWords)
    bad(`${path}.words`, `at most ${SENSITIVE_LIMITS.maxWords} words`);
  const seen = new Set<string>();
  const words: string[] = [];
  raw.forEach((w: unknown, i) => {
    const p = `${path}.words[${i}]`;
    if (typeof w !== 'string') bad(p, 'must be a string');
    const t = w.trim();
    const n = codePoints(t);
    if (n < 1 || n > SENSITIVE_LIMITS.maxWordChars)
      bad(p, `must be 1–${SENSITIVE_LIMITS.maxWordChars} characters after trimming`);
    const folded = foldForMatching(t);
    if (folded === '') bad(p, 'has no matchable characters');
    if (seen.has(folded)) return;
    seen.add(folded);
    words.push(t);
  });
  const cfg: SensitiveConfig = { mode, words };
  const r = o['reminder'];
  if (r !== undefined) {
    if (typeof r !== 'string') bad(`${path}.reminder`, 'must be a string');
    const t = r.trim();
    if (t === '' || codePoints(t) > SENSITIVE_LIMITS.maxReminderChars)
      bad(`${path}.reminder`, `must be 1–${SENSITIVE_LIMITS.maxReminderChars} characters`);
    cfg.reminder = t;
  }
  return cfg;
}

/**
 * Checks one message. `sender` defaults to `'agent'`; in remind mode only agents' messages are checked.
 * `words` lists each matched word once, in order of first occurrence.
 */
export function checkMessage(
  cfg: SensitiveConfig,
  matcher: SensitiveMatcher,
  text: string,
  sender: 'agent' | 'visitor' = 'agent',
): SensitiveVerdict {
  if (matcher.size === 0) return { verdict: 'pass' };
  if (cfg.mode === 'remind' && sender !== 'agent') return { verdict: 'pass' };
  const found = matcher.find(text);
  if (found.length === 0) return { verdict: 'pass' };
  const words = [...new Set(found.map((m) => m.word))];
  return cfg.mode === 'block'
    ? { verdict: 'block', words }
    : { verdict: 'remind', words, reminder: cfg.reminder ?? DEFAULT_REMINDER };
}

/**
 * The error for a blocked message. By default it does not name the words (so the list cannot be probed
 * word by word); `reveal: true` appends them, e.g. for an agent.
 */
export function sensitiveWordError(words: readonly string[], opts: { reveal?: boolean } = {}): SbError {
  if (!opts.reveal || words.length === 0) return new SbError('SB_ERR_SENSITIVE_WORD');
  return new SbError(
    'SB_ERR_SENSITIVE_WORD',
    `The message contains sensitive words and was not sent: ${words.join(', ')}`,
  );
}

const cache = new WeakMap<SensitiveConfig, SensitiveMatcher>();

/** The matcher of a config object, built once per object (configs are replaced, not mutated). */
export function matcherFor(cfg: SensitiveConfig): SensitiveMatcher {
  let m = cache.get(cfg);
  if (m === undefined) {
    m = new SensitiveMatcher(cfg.words);
    cache.set(cfg, m);
  }
  return m;
}
