/**
 * The signature scheme WeChat official accounts and Weibo message push share:
 * `signature = hex(sha1(sort([secret, timestamp, nonce]).join('')))`, sent in the query string with
 * `timestamp` (Unix seconds) and `nonce`. The secret is the WeChat token / the Weibo app secret.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { SbError } from '../../protos/errors.ts';

export function sha1Signature(secret: string, timestamp: string, nonce: string): string {
  // Plain code-unit sort, as the platforms' reference code does.
  return createHash('sha1').update([secret, timestamp, nonce].sort().join(''), 'utf8').digest('hex');
}

const TIMESTAMP = /^[0-9]{1,12}$/;
const SIGNATURE = /^[0-9a-fA-F]{40}$/;

/**
 * Throws SB_ERR_UNAUTHENTICATED unless `query` carries a valid signature for `secret` and a timestamp
 * within `maxAgeMs` of `now` (either way), so a captured callback cannot be replayed later.
 */
export function verifySignedQuery(
  query: URLSearchParams,
  secret: string,
  now: number,
  maxAgeMs: number,
): void {
  const signature = query.get('signature');
  const timestamp = query.get('timestamp');
  const nonce = query.get('nonce');
  if (signature === null || timestamp === null || nonce === null)
    throw new SbError('SB_ERR_UNAUTHENTICATED', 'callback without signature, timestamp or nonce');
  if (!SIGNATURE.test(signature) || !TIMESTAMP.test(timestamp) || nonce.length === 0 || nonce.length > 64)
    throw new SbError('SB_ERR_UNAUTHENTICATED', 'callback signature, timestamp or nonce malformed');
  const want = Buffer.from(sha1Signature(secret, timestamp, nonce), 'hex');
  const got = Buffer.from(signature.toLowerCase(), 'hex');
  if (!timingSafeEqual(want, got)) throw new SbError('SB_ERR_UNAUTHENTICATED', 'callback signature mismatch');
  if (Math.abs(now - Number(timestamp) * 1000) > maxAgeMs)
    throw new SbError('SB_ERR_UNAUTHENTICATED', 'callback timestamp outside the accepted window');
}

/** Builds the query a platform would send (for tests and local tools). */
export function signQuery(
  secret: string,
  timestamp: string,
  nonce: string,
  extra: Record<string, string> = {},
): URLSearchParams {
  return new URLSearchParams({
    signature: sha1Signature(secret, timestamp, nonce),
    timestamp,
    nonce,
    ...extra,
  });
}
