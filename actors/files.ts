/**
 * Attachments (images and files in chats): bytes kept in the StateStore in chunks of
 * {@link FILE_CHUNK_BYTES}, so that both stores (LMDB, Cassandra) hold them without oversized values,
 * and a metadata record per file. Every key carries the tenant: a file id of another tenant reads
 * as not found.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { StateStore } from '../engine/store/types.ts';
import { SbError } from '../protos/errors.ts';
import type { Attachment } from '../protos/ws-v1.ts';

export const FILE_KIND = 'file';
export const FILE_CHUNK_KIND = 'filec';
export const FILE_CHUNK_BYTES = 256 * 1024;

/** Types shown inline by browsers; everything else is served as a download. */
export const INLINE_IMAGE_TYPES: ReadonlySet<string> = new Set([
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
]);

export interface FileRecord extends Attachment {
  /** Capability path to download it (signed by the gateway at upload). */
  url: string;
  sha256: string;
  chunks: number;
  uploadedBy: string;
  at: number;
}

const MIME_RE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$/;

/** A file name as shown to people: no path, no control characters, at most 200 characters. */
export function cleanFileName(raw: string | undefined): string {
  const base = (raw ?? '').split(/[\\/]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  const name = base.replace(/[\u0000-\u001f\u007f"]/g, '').trim();
  if (name === '') throw new SbError('SB_ERR_INVALID_FIELD', 'name: the file needs a name');
  return name.slice(0, 200);
}

export function cleanMime(raw: string | undefined): string {
  const m = (raw ?? '').split(';')[0]!.trim().toLowerCase();
  return MIME_RE.test(m) ? m : 'application/octet-stream';
}

export function newFileId(): string {
  return `f${Date.now().toString(36)}${randomBytes(9).toString('base64url')}`;
}

/** Stores the bytes, then the record: a record exists only for a file whose bytes are all durable. */
export async function putFile(
  state: StateStore,
  tenantId: string,
  meta: { name: string; mime: string; uploadedBy: string; at: number },
  bytes: Buffer,
  urlOf: (fileId: string) => string,
): Promise<FileRecord> {
  if (bytes.length === 0) throw new SbError('SB_ERR_INVALID_FIELD', 'the file is empty');
  const fileId = newFileId();
  const chunks = Math.ceil(bytes.length / FILE_CHUNK_BYTES);
  const writes: Array<Promise<void>> = [];
  for (let i = 0; i < chunks; i++) {
    const part = bytes.subarray(i * FILE_CHUNK_BYTES, (i + 1) * FILE_CHUNK_BYTES);
    writes.push(state.put(tenantId, FILE_CHUNK_KIND, chunkKey(fileId, i), part.toString('base64')));
  }
  await Promise.all(writes);
  const rec: FileRecord = {
    fileId,
    url: urlOf(fileId),
    name: meta.name,
    mime: meta.mime,
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    chunks,
    uploadedBy: meta.uploadedBy,
    at: meta.at,
  };
  await state.put(tenantId, FILE_KIND, fileId, rec);
  return rec;
}

export function getFileRecord(
  state: StateStore,
  tenantId: string,
  fileId: string,
): Promise<FileRecord | undefined> {
  return state.get<FileRecord>(tenantId, FILE_KIND, fileId);
}

export async function readFileBytes(state: StateStore, tenantId: string, rec: FileRecord): Promise<Buffer> {
  const parts = await Promise.all(
    Array.from({ length: rec.chunks }, (_, i) =>
      state.get<string>(tenantId, FILE_CHUNK_KIND, chunkKey(rec.fileId, i)),
    ),
  );
  if (parts.some((p) => typeof p !== 'string'))
    throw new SbError('SB_ERR_NOT_FOUND', 'the file is no longer stored');
  return Buffer.concat(parts.map((p) => Buffer.from(p as string, 'base64')));
}

function chunkKey(fileId: string, i: number): string {
  return `${fileId}:${String(i).padStart(5, '0')}`;
}
