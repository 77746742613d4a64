/**
 * Platform operator routes (the deployment's owner, above tenants): organisation keys for partners
 * that serve several tenants (F22). Enabled by `SB_PLATFORM_TOKEN` (≥ 32 characters); without it
 * every route answers SB_ERR_NOT_FOUND.
 *
 *   GET    /v1/platform/org-keys            org keys without secrets
 *   POST   /v1/platform/org-keys            {name, tenants: [ids] | ["*"], scopes} → {key, record}, shown once
 *   DELETE /v1/platform/org-keys/:keyId     revoke
 *
 * Org keys call the partner API (gRPC or /v1/partner/…) with `x-sb-tenant: <tenant>`; with the
 * admin scope they can also create tenants (CreateTenant).
 */
import { timingSafeEqual } from 'node:crypto';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { ApiKeys } from '../actors/api-keys.ts';
import { SbError } from '../protos/errors.ts';
import { guard, readJsonBody, sendError, sendJson } from './http.ts';

export function registerPlatformRoutes(
  app: TemplatedApp,
  d: {
    token: string | undefined;
    keys: ApiKeys;
    now: () => number;
    maxBodyBytes: number;
    onInternal: (e: unknown) => void;
    /** Cluster status (cluster mode), for GET /v1/platform/cluster. */
    cluster?: (() => unknown) | undefined;
  },
): void {
  const check = (auth: string): void => {
    if (!d.token) throw new SbError('SB_ERR_NOT_FOUND', 'platform routes are off (SB_PLATFORM_TOKEN)');
    const got = Buffer.from(auth.startsWith('Bearer ') ? auth.slice(7) : '');
    const want = Buffer.from(d.token);
    if (got.length !== want.length || !timingSafeEqual(got, want))
      throw new SbError('SB_ERR_UNAUTHENTICATED', 'platform token required');
  };
  const route = (
    method: 'get' | 'post' | 'del',
    path: string,
    handle: (p: { params: string[]; body: () => Promise<Record<string, unknown>> }) => Promise<unknown>,
  ): void => {
    app[method](path, (res: HttpResponse, req: HttpRequest) => {
      const g = guard(res);
      const auth = req.getHeader('authorization');
      const ct = req.getHeader('content-type');
      const params = [req.getParameter(0) ?? ''];
      const bodyP = method === 'post' ? readJsonBody(g, d.maxBodyBytes, ct) : Promise.resolve({});
      bodyP.catch(() => {});
      void (async () => {
        try {
          check(auth);
          sendJson(g, 200, await handle({ params, body: () => bodyP }));
        } catch (err) {
          sendError(g, err, d.onInternal);
        }
      })();
    });
  };
  route('get', '/v1/platform/cluster', async () => d.cluster?.() ?? { mode: 'single' });

  route('get', '/v1/platform/org-keys', () => d.keys.listOrgKeys());
  route('post', '/v1/platform/org-keys', async ({ body }) => {
    const o = await body();
    for (const k of Object.keys(o))
      if (!['name', 'tenants', 'scopes'].includes(k))
        throw new SbError('SB_ERR_INVALID_FIELD', `${k}: unknown field`);
    return d.keys.createOrgKey(String(o['name'] ?? ''), o['tenants'], o['scopes'], d.now());
  });
  route('del', '/v1/platform/org-keys/:keyId', ({ params }) => d.keys.revokeOrgKey(params[0] ?? '', d.now()));
}
