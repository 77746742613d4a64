/**
 * HTTP calls of the console (Bearer token of the signed-in member or visitor). Errors arrive as
 * {@link ApiError} with the server's typed code (`SB_ERR_…`) so screens can say what went wrong.
 */
import type { Attachment } from '../../protos/ws-v1.ts';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function apiCall<T>(token: string, method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: { authorization: `Bearer ${token}` } };
  if (body !== undefined) {
    init.headers = { ...init.headers, 'content-type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  let r: Response;
  try {
    r = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'SB_ERR_NETWORK', 'the server cannot be reached');
  }
  const text = await r.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!r.ok) {
    const e = (parsed as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(r.status, e?.code ?? `HTTP_${r.status}`, e?.message ?? r.statusText);
  }
  return parsed as T;
}

export type UploadedFile = Attachment & { url: string };

/** Uploads one file (image or any other type) for sending in a chat. */
export async function uploadFile(token: string, file: File): Promise<UploadedFile> {
  let r: Response;
  try {
    r = await fetch(`/v1/files?name=${encodeURIComponent(file.name || 'file')}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': file.type || 'application/octet-stream',
      },
      body: file,
    });
  } catch {
    throw new ApiError(0, 'SB_ERR_NETWORK', 'the server cannot be reached');
  }
  const body = (await r.json().catch(() => ({}))) as UploadedFile & {
    error?: { code: string; message: string };
  };
  if (!r.ok) throw new ApiError(r.status, body.error?.code ?? `HTTP_${r.status}`, body.error?.message ?? '');
  return body;
}

/** Human size: 980 B, 12.5 KB, 3.1 MB. */
export function fileSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function isImage(mime: string): boolean {
  return ['image/png', 'image/jpeg', 'image/gif', 'image/webp'].includes(mime);
}

const ID_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** Creation time of a session id (its first 10 characters are the ms time in Crockford base 32). */
export function idTime(id: string): number | undefined {
  if (!/^[0-9A-HJKMNP-TV-Z]{26}$/.test(id)) return undefined;
  let t = 0;
  for (const ch of id.slice(0, 10)) t = t * 32 + ID_ALPHABET.indexOf(ch);
  return t;
}
