/**
 * Bearer tokens: `base64url(JSON claims).base64url(HMAC-SHA256)`. Stateless, so any gateway
 * thread or node can check them; short-lived (see ServerConfig.tokenTtlSec).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Role } from '../protos/ws-v1.ts';
import { SbError } from '../protos/errors.ts';

export interface Claims {
  role: Role;
  tenantId: string;
  /** Visitor id or member id. */
  sub: string;
  name: string;
  /** Expiry, ms epoch. */
  exp: number;
}

const MAX_TOKEN_CHARS = 2048;

export class TokenSigner {
  constructor(private readonly secret: string) {}

  sign(c: Claims): string {
    const body = Buffer.from(JSON.stringify(c)).toString('base64url');
    return `${body}.${this.mac(body)}`;
  }

  /** Returns the claims or throws SB_ERR_UNAUTHENTICATED (malformed, forged or expired). */
  verify(token: unknown, now: number = Date.now()): Claims {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS)
      throw unauth('missing or oversized token');
    const dot = token.indexOf('.');
    if (dot <= 0) throw unauth('malformed token');
    const body = token.slice(0, dot);
    const mac = Buffer.from(token.slice(dot + 1), 'base64url');
    const want = Buffer.from(this.mac(body), 'base64url');
    if (mac.length !== want.length || !timingSafeEqual(mac, want)) throw unauth('bad token signature');
    let c: unknown;
    try {
      c = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      throw unauth('malformed token');
    }
    if (!isClaims(c)) throw unauth('malformed token claims');
    if (c.exp <= now) throw unauth('token expired');
    return c;
  }

  /** A MAC under the server's secret for capability URLs (e.g. attachment links). */
  mac(body: string): string {
    return createHmac('sha256', this.secret).update(body).digest('base64url');
  }
}

function unauth(msg: string): SbError {
  return new SbError('SB_ERR_UNAUTHENTICATED', msg);
}

function isClaims(x: unknown): x is Claims {
  if (!x || typeof x !== 'object') return false;
  const c = x as Record<string, unknown>;
  return (
    (c['role'] === 'visitor' || c['role'] === 'agent' || c['role'] === 'admin') &&
    typeof c['tenantId'] === 'string' &&
    typeof c['sub'] === 'string' &&
    typeof c['name'] === 'string' &&
    typeof c['exp'] === 'number'
  );
}
