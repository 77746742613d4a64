import { describe, expect, it } from 'vitest';
import { SbError } from '../protos/errors.ts';
import { crmUrl, validateCrmConfig, verifyCrmUrl, type CrmPlaceholder } from './crm.ts';

const values = (over: Partial<Record<CrmPlaceholder, string>> = {}): Record<CrmPlaceholder, string> => ({
  tenantId: 'demo',
  sessionId: '01M8ABC',
  visitorId: 'v1',
  visitorName: 'Ada',
  channel: 'web',
  agentId: 'agent1',
  agentName: 'Agent 1',
  agentEmail: 'agent1@demo.test',
  ...over,
});

describe('CRM URL (F24)', () => {
  it('substitutes and URL-encodes every identifier', () => {
    const cfg = validateCrmConfig({
      urlTemplate:
        'https://crm.example.com/customer?v={visitorId}&n={visitorName}&a={agentId}&e={agentEmail}&t={tenantId}#s={sessionId}',
    });
    const url = crmUrl(cfg, values({ visitorName: '张三 & <b>"x"</b>' }), 0)!;
    const u = new URL(url);
    expect(u.host).toBe('crm.example.com');
    expect(u.searchParams.get('n')).toBe('张三 & <b>"x"</b>');
    expect(u.searchParams.get('e')).toBe('agent1@demo.test');
    expect(u.hash).toBe('#s=01M8ABC');
  });

  it('hostile values cannot add parameters, change the path or the host', () => {
    const cfg = validateCrmConfig({
      urlTemplate: 'https://crm.example.com/c/{visitorId}?name={visitorName}',
    });
    for (const evil of [
      'x&admin=1',
      'x#frag',
      '../../admin',
      'x?y=1',
      '//evil.example.com',
      '\u0000\r\nSet-Cookie: a=b',
      'javascript:alert(1)',
      '%2e%2e%2f',
    ]) {
      const u = new URL(crmUrl(cfg, values({ visitorId: evil, visitorName: evil }), 0)!);
      expect(u.host).toBe('crm.example.com');
      expect([...u.searchParams.keys()]).toEqual(['name']);
      expect(u.searchParams.get('name')).toBe(evil);
      expect(u.pathname.startsWith('/c/')).toBe(true);
      expect(u.pathname.split('/')).toHaveLength(3);
      expect(u.hash).toBe('');
    }
  });

  it('signs so the CRM can trust the identifiers', () => {
    const secret = 'crm-signing-secret-123';
    const cfg = validateCrmConfig({
      urlTemplate: 'https://crm.example.com/?v={visitorId}&a={agentId}',
      signingSecret: secret,
    });
    const now = Date.parse('2026-11-25T10:00:00Z');
    const url = crmUrl(cfg, values(), now)!;
    expect(verifyCrmUrl(url, secret, now)).toBe(true);
    expect(verifyCrmUrl(url, 'another-secret-456789', now)).toBe(false);
    expect(verifyCrmUrl(url.replace('v=v1', 'v=v2'), secret, now)).toBe(false);
    expect(verifyCrmUrl(url, secret, now + 10 * 60_000)).toBe(false);
  });

  it('refuses bad templates', () => {
    for (const bad of [
      { urlTemplate: 'http://crm.example.com/{visitorId}' },
      { urlTemplate: 'javascript:alert({visitorId})' },
      { urlTemplate: 'https://{visitorName}.example.com/' },
      { urlTemplate: 'https://crm.example.com/{password}' },
      { urlTemplate: 'https://user:pw@crm.example.com/' },
      { urlTemplate: 'https://crm.example.com/', signingSecret: 'short' },
      { urlTemplate: 'https://crm.example.com/', extra: 1 },
      { urlTemplate: 'not a url {visitorId}' },
    ])
      expect(() => validateCrmConfig(bad), JSON.stringify(bad)).toThrow(SbError);
    expect(crmUrl(validateCrmConfig({}), values(), 0)).toBeUndefined();
  });
});
