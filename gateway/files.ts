/**
 * Attachment upload and download (images and files in chats).
 *
 *   POST /v1/files?name=<file name>   raw body, content-type = the file's type; Bearer token of a
 *                                     visitor, agent or admin → {fileId, name, mime, size, url}
 *   GET  /v1/files/:tenantId/:fileId?sig=…   the bytes (capability URL from the upload answer)
 *
 * Limits: `SB_MAX_FILE_BYTES` (10 MiB by default; larger → 413 SB_ERR_FRAME_TOO_LARGE). Only
 * PNG, JPEG, GIF and WebP are served inline; every other type (SVG and HTML included) is served as
 * a download with `nosniff`, so an upload can never run script in the console's origin.
 */
import { timingSafeEqual } from 'node:crypto';
import type { TemplatedApp } from 'uWebSockets.js';
import {
  INLINE_IMAGE_TYPES,
  cleanFileName,
  cleanMime,
  getFileRecord,
  putFile,
  readFileBytes,
} from '../actors/files.ts';
import { assertId } from '../actors/index.ts';
import type { StateStore } from '../engine/store/types.ts';
import { SbError } from '../protos/errors.ts';
import { guard, readBody, sendError, sendJson, statusLine } from './http.ts';
import type { TokenSigner } from './tokens.ts';

export interface FileRouteDeps {
  app: TemplatedApp;
  state: StateStore;
  signer: TokenSigner;
  maxFileBytes: number;
  onInternal: (e: unknown) => void;
  now: () => number;
}

export function registerFileRoutes(d: FileRouteDeps): void {
  const sig = (tenantId: string, fileId: string): string => d.signer.mac(`file:${tenantId}/${fileId}`);
  const urlOf = (tenantId: string) => (fileId: string) =>
    `/v1/files/${encodeURIComponent(tenantId)}/${fileId}?sig=${sig(tenantId, fileId)}`;

  d.app.post('/v1/files', (res, req) => {
    const g = guard(res);
    const auth = req.getHeader('authorization');
    const type = req.getHeader('content-type');
    const name = req.getQuery('name');
    const declared = Number(req.getHeader('content-length') || '0');
    if (declared > d.maxFileBytes) {
      sendError(g, new SbError('SB_ERR_FRAME_TOO_LARGE', `files are at most ${d.maxFileBytes} bytes`));
      return;
    }
    const body = readBody(g, d.maxFileBytes);
    body.catch(() => {});
    void (async () => {
      try {
        const claims = d.signer.verify(auth.startsWith('Bearer ') ? auth.slice(7) : undefined);
        // uWS decodes query values.
        const fileName = cleanFileName(name);
        const bytes = await body;
        const rec = await putFile(
          d.state,
          claims.tenantId,
          { name: fileName, mime: cleanMime(type), uploadedBy: claims.sub, at: d.now() },
          bytes,
          urlOf(claims.tenantId),
        );
        sendJson(g, 200, {
          fileId: rec.fileId,
          name: rec.name,
          mime: rec.mime,
          size: rec.size,
          url: rec.url,
        });
      } catch (err) {
        sendError(g, err, d.onInternal);
      }
    })();
  });

  d.app.get('/v1/files/:tenantId/:fileId', (res, req) => {
    const g = guard(res);
    const tenantId = req.getParameter(0) ?? '';
    const fileId = req.getParameter(1) ?? '';
    const given = req.getQuery('sig') ?? '';
    void (async () => {
      try {
        assertId(tenantId, 'tenantId');
        assertId(fileId, 'fileId');
        const want = Buffer.from(sig(tenantId, fileId));
        const got = Buffer.from(given);
        if (got.length !== want.length || !timingSafeEqual(got, want))
          throw new SbError('SB_ERR_NOT_FOUND', 'no such file');
        const rec = await getFileRecord(d.state, tenantId, fileId);
        if (!rec) throw new SbError('SB_ERR_NOT_FOUND', 'no such file');
        const bytes = await readFileBytes(d.state, tenantId, rec);
        if (g.aborted) return;
        const inline = INLINE_IMAGE_TYPES.has(rec.mime);
        g.res.cork(() => {
          g.res.writeStatus(statusLine(200));
          g.res.writeHeader('content-type', inline ? rec.mime : 'application/octet-stream');
          g.res.writeHeader(
            'content-disposition',
            `${inline ? 'inline' : 'attachment'}; filename*=UTF-8''${encodeURIComponent(rec.name)}`,
          );
          g.res.writeHeader('x-content-type-options', 'nosniff');
          g.res.writeHeader('content-security-policy', "default-src 'none'; sandbox");
          g.res.writeHeader('cache-control', 'private, max-age=31536000, immutable');
          g.res.end(bytes);
        });
        g.aborted = true;
      } catch (err) {
        sendError(g, err, d.onInternal);
      }
    })();
  });
}
