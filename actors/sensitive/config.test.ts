import { describe, expect, it } from 'vitest';
import { SbError } from '../../protos/errors.ts';
import {
  DEFAULT_REMINDER,
  SensitiveMatcher,
  checkMessage,
  matcherFor,
  sensitiveWordError,
  validateSensitiveConfig,
  type SensitiveConfig,
} from './index.ts';

function invalid(input: unknown): string {
  try {
    validateSensitiveConfig(input);
  } catch (e) {
    expect(e).toBeInstanceOf(SbError);
    expect((e as SbError).code).toBe('SB_ERR_INVALID_FIELD');
    return (e as SbError).message;
  }
  throw new Error('expected SB_ERR_INVALID_FIELD');
}

describe('validateSensitiveConfig', () => {
  it('accepts a valid config, trims words and drops folded duplicates', () => {
    expect(
      validateSensitiveConfig({
        mode: 'remind',
        words: [' Spam ', 'SPAM', 'ｓｐａｍ', '发票', '发票 '],
        reminder: ' careful ',
      }),
    ).toEqual({ mode: 'remind', words: ['Spam', '发票'], reminder: 'careful' });
    expect(validateSensitiveConfig({ mode: 'block', words: [] })).toEqual({ mode: 'block', words: [] });
  });

  it('rejects bad shapes with the path', () => {
    expect(invalid(null)).toMatch(/^sensitive: /);
    expect(invalid([])).toMatch(/^sensitive: /);
    expect(invalid({ mode: 'block', words: [], extra: 1 })).toMatch(/^sensitive\.extra: unknown field/);
    expect(invalid({ mode: 'mask', words: [] })).toMatch(/^sensitive\.mode: /);
    expect(invalid({ mode: 'block' })).toMatch(/^sensitive\.words: /);
    expect(invalid({ mode: 'block', words: 'spam' })).toMatch(/^sensitive\.words: /);
    expect(invalid({ mode: 'block', words: ['ok', 3] })).toMatch(/^sensitive\.words\[1\]: must be a string/);
    expect(invalid({ mode: 'block', words: ['ok', '   '] })).toMatch(/^sensitive\.words\[1\]: /);
    expect(invalid({ mode: 'remind', words: [], reminder: 5 })).toMatch(/^sensitive\.reminder: /);
    expect(invalid({ mode: 'remind', words: [], reminder: '  ' })).toMatch(/^sensitive\.reminder: /);
  });

  it('enforces the limits', () => {
    const many = Array.from({ length: 20_001 }, (_, i) => `w${i}`);
    expect(invalid({ mode: 'block', words: many })).toMatch(/at most 20000 words/);
    expect(validateSensitiveConfig({ mode: 'block', words: many.slice(1) }).words).toHaveLength(20_000);
    // 50 characters are counted in code points: 50 emoji are fine, 51 letters are not.
    expect(validateSensitiveConfig({ mode: 'block', words: ['😀'.repeat(50)] }).words).toHaveLength(1);
    expect(invalid({ mode: 'block', words: ['x'.repeat(51)] })).toMatch(/^sensitive\.words\[0\]: /);
    expect(
      validateSensitiveConfig({ mode: 'remind', words: [], reminder: '提'.repeat(500) }).reminder,
    ).toHaveLength(500);
    expect(invalid({ mode: 'remind', words: [], reminder: 'x'.repeat(501) })).toMatch(/^sensitive\.reminder/);
  });
});

describe('checkMessage', () => {
  const block: SensitiveConfig = { mode: 'block', words: ['spam', '发票', 'spammer'] };
  const remind: SensitiveConfig = { mode: 'remind', words: ['refund'], reminder: 'Mind the refund policy.' };

  it('passes clean messages and empty lists', () => {
    expect(checkMessage(block, matcherFor(block), 'hello there')).toEqual({ verdict: 'pass' });
    const none: SensitiveConfig = { mode: 'block', words: [] };
    expect(checkMessage(none, matcherFor(none), 'spam')).toEqual({ verdict: 'pass' });
  });

  it('blocks, listing each word once in order of appearance', () => {
    expect(checkMessage(block, matcherFor(block), '开发票 SPAMMER spam')).toEqual({
      verdict: 'block',
      words: ['发票', 'spam', 'spammer'],
    });
  });

  it('blocks visitors and agents alike', () => {
    expect(checkMessage(block, matcherFor(block), 'spam', 'visitor').verdict).toBe('block');
  });

  it('reminds agents with the configured text, ignores visitors in remind mode', () => {
    expect(checkMessage(remind, matcherFor(remind), 'Your REFUND is on its way')).toEqual({
      verdict: 'remind',
      words: ['refund'],
      reminder: 'Mind the refund policy.',
    });
    expect(checkMessage(remind, matcherFor(remind), 'refund please', 'visitor')).toEqual({ verdict: 'pass' });
    const noText: SensitiveConfig = { mode: 'remind', words: ['refund'] };
    expect(checkMessage(noText, new SensitiveMatcher(noText.words), 'refund')).toEqual({
      verdict: 'remind',
      words: ['refund'],
      reminder: DEFAULT_REMINDER,
    });
  });

  it('matcherFor builds once per config object', () => {
    expect(matcherFor(block)).toBe(matcherFor(block));
    expect(matcherFor({ ...block })).not.toBe(matcherFor(block));
  });

  it('sensitiveWordError is typed and only names words when asked', () => {
    const hidden = sensitiveWordError(['spam']);
    expect(hidden.code).toBe('SB_ERR_SENSITIVE_WORD');
    expect(hidden.message).not.toContain('spam');
    expect(sensitiveWordError(['spam', '发票'], { reveal: true }).message).toContain('spam, 发票');
  });
});
