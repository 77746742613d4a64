/** Pieces the adapters share: options, body size, the echostr challenge, field checks. */
import { SbError } from '../../protos/errors.ts';
import {
  DEFAULT_MAX_AGE_MS,
  DEFAULT_MAX_BODY_BYTES,
  type AdapterOptions,
  type ChannelRequest,
  type ChannelResponse,
} from './types.ts';

export interface ResolvedOptions {
  maxAgeMs: number;
  maxBodyBytes: number;
  now: () => number;
  accountId: string | undefined;
}

export function resolveOptions(secretName: string, secret: unknown, o: AdapterOptions): ResolvedOptions {
  if (typeof secret !== 'string' || secret.length === 0 || secret.length > 256)
    throw new SbError('SB_ERR_INVALID_FIELD', `${secretName} must be a non-empty string`);
  const maxAgeMs = o.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  const maxBodyBytes = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isFinite(maxAgeMs) || maxAgeMs < 0)
    throw new SbError('SB_ERR_INVALID_FIELD', 'maxAgeMs must be a non-negative number');
  if (!Number.isInteger(maxBodyBytes) || maxBodyBytes <= 0)
    throw new SbError('SB_ERR_INVALID_FIELD', 'maxBodyBytes must be a positive integer');
  return { maxAgeMs, maxBodyBytes, now: o.now ?? Date.now, accountId: o.accountId };
}

export function methodOf(req: ChannelRequest): 'GET' | 'POST' {
  const m = req.method.toUpperCase();
  if (m !== 'GET' && m !== 'POST') throw new SbError('SB_ERR_INVALID_FIELD', 'method must be GET or POST');
  return m;
}

export function checkBodySize(req: ChannelRequest, max: number): void {
  if (req.body.byteLength > max)
    throw new SbError('SB_ERR_FRAME_TOO_LARGE', `callback body larger than ${max} bytes`);
}

const ECHOSTR = /^[\x21-\x7e]{1,256}$/;

/** URL verification: answer `echostr` verbatim (printable ASCII only, so nothing odd is reflected). */
export function echoChallenge(req: ChannelRequest): ChannelResponse {
  const echostr = req.query.get('echostr');
  if (echostr === null || !ECHOSTR.test(echostr))
    throw new SbError('SB_ERR_INVALID_FIELD', 'echostr missing or not printable ASCII (≤ 256)');
  return { status: 200, contentType: 'text/plain; charset=utf-8', body: echostr };
}

export const PLAIN_SUCCESS: ChannelResponse = Object.freeze({
  status: 200,
  contentType: 'text/plain; charset=utf-8',
  body: 'success',
});

/** Ids from the platform (OpenID, gh_ id, uid, MsgId): printable ASCII without spaces, ≤ 128. */
const PLATFORM_ID = /^[\x21-\x7e]{1,128}$/;

export function platformId(v: string | undefined, field: string): string {
  if (v === undefined || !PLATFORM_ID.test(v))
    throw new SbError('SB_ERR_INVALID_FIELD', `${field} missing or not a platform id`);
  return v;
}

export const MAX_TEXT_CHARS = 4096;

export function boundedText(v: string | undefined, field: string, max = MAX_TEXT_CHARS): string {
  if (v === undefined || v.length === 0) throw new SbError('SB_ERR_INVALID_FIELD', `${field} missing`);
  if (v.length > max) throw new SbError('SB_ERR_INVALID_FIELD', `${field} longer than ${max} characters`);
  return v;
}

export function checkAccount(expected: string | undefined, got: string): void {
  if (expected !== undefined && expected !== got)
    throw new SbError('SB_ERR_FORBIDDEN', 'message addressed to another account than this callback URL');
}

/** Only http(s) URLs are kept as media URLs. */
export function mediaUrl(v: string | undefined, field: string): string {
  const s = boundedText(v, field, 2048);
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new SbError('SB_ERR_INVALID_FIELD', `${field} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new SbError('SB_ERR_INVALID_FIELD', `${field} must be an http(s) URL`);
  return s;
}
