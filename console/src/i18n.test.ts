import { afterEach, describe, expect, it } from 'vitest';
import { clockTime, locale, pickLocale, shortDuration, t } from './i18n.ts';

describe('i18n', () => {
  afterEach(() => {
    locale.value = 'zh-CN';
  });

  it('i18n - picks Chinese for zh preferences and when nothing is given, English otherwise', () => {
    expect(pickLocale('zh-CN')).toBe('zh-CN');
    expect(pickLocale('zh-TW')).toBe('zh-CN');
    expect(pickLocale(undefined)).toBe('zh-CN');
    expect(pickLocale('en-US')).toBe('en');
    expect(pickLocale('fr')).toBe('en');
  });

  it('i18n - looks keys up in the current locale and fills placeholders', () => {
    expect(t('visitor.queue', { n: 2 })).toBe('排队中，您前面还有 2 位');
    locale.value = 'en';
    expect(t('visitor.queue', { n: 2 })).toBe('You are in the queue: 2 ahead of you');
    expect(t('status.busy')).toBe('Busy');
  });

  it('i18n - short durations and clock times', () => {
    expect(shortDuration(4_500)).toBe('4s');
    expect(shortDuration(125_000)).toBe('2m');
    expect(shortDuration(2 * 3600_000 + 5)).toBe('2h');
    expect(clockTime(Date.UTC(2026, 0, 1, 9, 5))).toMatch(/\d{2}:\d{2}/);
  });
});
