/**
 * Small helpers over uWebSockets.js HTTP responses: bounded JSON bodies, typed error answers,
 * and the abort bookkeeping uWS requires before any asynchronous work.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import type { HttpResponse } from 'uWebSockets.js';
import { ERRORS, SbError, toSbError } from '../protos/errors.ts';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function statusLine(code: number): string {
  return `${code} ${STATUS_TEXT[code] ?? 'Status'}`;
}

/** Tracks whether the client went away; uWS forbids touching an aborted response. */
export interface Guarded {
  res: HttpResponse;
  aborted: boolean;
}

export function guard(res: HttpResponse): Guarded {
  const g: Guarded = { res, aborted: false };
  res.onAborted(() => {
    g.aborted = true;
  });
  return g;
}

export function sendJson(
  g: Guarded,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (g.aborted) return;
  g.res.cork(() => {
    g.res.writeStatus(statusLine(status));
    g.res.writeHeader('content-type', 'application/json; charset=utf-8');
    g.res.writeHeader('cache-control', 'no-store');
    for (const [k, v] of Object.entries(headers)) g.res.writeHeader(k, v);
    g.res.end(JSON.stringify(body));
  });
  g.aborted = true;
}

export function sendError(g: Guarded, err: unknown, onInternal?: (e: unknown) => void): void {
  const e = toSbError(err);
  if (e.code === 'SB_ERR_INTERNAL') onInternal?.(err);
  sendJson(g, ERRORS[e.code].http, { error: { code: e.code, message: e.message } });
}

/** Reads the whole body up to `limit` bytes; rejects with SB_ERR_FRAME_TOO_LARGE beyond it. */
export function readBody(g: Guarded, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    g.res.onData((chunk, isLast) => {
      if (failed) return;
      size += chunk.byteLength;
      if (size > limit) {
        failed = true;
        reject(new SbError('SB_ERR_FRAME_TOO_LARGE', `request body larger than ${limit} bytes`));
        return;
      }
      // uWS reuses the chunk's memory after this callback: copy it.
      chunks.push(Buffer.from(chunk.slice(0)));
      if (isLast) resolve(Buffer.concat(chunks));
    });
  });
}

export async function readJsonBody(
  g: Guarded,
  limit: number,
  contentType: string,
): Promise<Record<string, unknown>> {
  if (!contentType.toLowerCase().startsWith('application/json')) {
    throw new SbError('SB_ERR_INVALID_FIELD', 'content-type must be application/json');
  }
  const buf = await readBody(g, limit);
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new SbError('SB_ERR_BAD_FRAME', 'body is not valid JSON');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new SbError('SB_ERR_BAD_FRAME', 'body must be a JSON object');
  return v as Record<string, unknown>;
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

export interface StaticFile {
  body: Buffer;
  type: string;
  /** Hashed asset names are immutable; HTML is revalidated. */
  cache: string;
}

/** Loads the built console into memory (it is small) keyed by URL path. Missing dir → empty map. */
export function loadStatic(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (d: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const name of entries) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else {
        const url = '/' + relative(dir, p).split(sep).join('/');
        const ext = extname(name);
        files.set(url, {
          body: readFileSync(p),
          type: MIME[ext] ?? 'application/octet-stream',
          cache: url.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
        });
      }
    }
  };
  walk(dir);
  const index = files.get('/index.html');
  if (index) files.set('/', index);
  return files;
}
