import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ERRORS, SbError, toSbError } from './errors.ts';
import { CLOSE_CODES } from './ws-v1.ts';

const protocolDoc = readFileSync(new URL('../docs/PROTOCOL.md', import.meta.url), 'utf8');

describe('error table', () => {
  it('errors - every code is documented in docs/PROTOCOL.md with its HTTP status', () => {
    const rows = protocolDoc.split('\n').map((l) => l.split('|').map((c) => c.trim()));
    for (const code of ERROR_CODES) {
      const row = rows.find((cells) => cells[1] === `\`${code}\``);
      expect(row, `${code} missing from docs/PROTOCOL.md`).toBeDefined();
      expect(row![2]).toBe(String(ERRORS[code].http));
    }
  });

  it('errors - every close code used by an error is a documented protocol close code', () => {
    const known = new Set<number>(Object.values(CLOSE_CODES));
    for (const code of ERROR_CODES) {
      const close = ERRORS[code].close;
      if (close !== 0) {
        expect(known.has(close), code).toBe(true);
        expect(protocolDoc).toMatch(new RegExp(`\\|\\s*${close}\\s*\\|`));
      }
    }
  });

  it('errors - codes survive a plain-object round trip (as across worker threads)', () => {
    const e = toSbError(JSON.parse(JSON.stringify(new SbError('SB_ERR_TIMEOUT', 'late'))));
    expect(e).toBeInstanceOf(SbError);
    expect(e.code).toBe('SB_ERR_TIMEOUT');
    expect(e.message).toBe('late');
    expect(toSbError(new Error('boom')).code).toBe('SB_ERR_INTERNAL');
  });
});
