/**
 * The partner REST API (F22) for web integrators: the same operations as the gRPC partner API,
 * run through the very same handlers in-process (authentication by API key, scopes, validation,
 * deadlines, typed errors), with JSON in and out and SB_ERR codes mapped to HTTP statuses.
 *
 *   GET    /v1/partner/tenant                     read
 *   PATCH  /v1/partner/tenant                     admin   {name?, retentionDays?}
 *   GET    /v1/partner/agents                     read
 *   POST   /v1/partner/sessions                   write   {visitorId, visitorName?, entry?, channel?}
 *   GET    /v1/partner/sessions/:sessionId        read
 *   POST   /v1/partner/sessions/:sessionId/messages  write {visitorId, clientMsgId, text}
 *   POST   /v1/partner/sessions/:sessionId/close  write
 *   GET    /v1/partner/sessions/:sessionId/events read    ?afterSeq=&limit=
 *   GET    /v1/partner/events                     read    ?afterCursor=&limit= (the tenant feed, paged)
 *
 * Authorization: `Bearer sbk_…` (a tenant key from /v1/admin/api-keys), or `Bearer sbo_…` (an
 * organisation key from /v1/platform/org-keys) with `x-sb-tenant: <tenant id>`.
 */
import * as grpc from '@grpc/grpc-js';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { MessageStore } from '../engine/store/types.ts';
import { hasScope } from '../actors/api-keys.ts';
import { readTenantConfig } from '../actors/tenant-config.ts';
import { FEED_STREAM } from '../actors/webhook-outbox.ts';
import type { WebhookPayload } from '../actors/webhooks.ts';
import { isErrorCode, SbError } from '../protos/errors.ts';
import { partnerService, type GrpcDeps } from './grpc.ts';
import { guard, readBody, sendError, sendJson } from './http.ts';

type Handler = (call: unknown, cb: (err: grpc.ServiceError | null, res?: unknown) => void) => void;

export function registerPartnerRest(app: TemplatedApp, d: GrpcDeps, maxBodyBytes: number): void {
  const svc = partnerService(d) as unknown as Record<string, Handler>;

  /** Runs one gRPC handler with a request built from the HTTP call. */
  const invoke = (method: string, auth: string, tenant: string, request: unknown): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const metadata = new grpc.Metadata();
      if (auth) metadata.set('authorization', auth);
      if (tenant) metadata.set('x-sb-tenant', tenant);
      const call = { request, metadata, getDeadline: () => Date.now() + 30_000 };
      svc[method]!(call, (err, res) => {
        if (!err) return resolve(res);
        const code = err.metadata?.get('sb-error-code')[0];
        const message = err.details.replace(/^SB_ERR_[A-Z_]+: /, '');
        reject(isErrorCode(code) ? new SbError(code, message) : err);
      });
    });

  const route = (
    method: 'get' | 'post' | 'patch',
    path: string,
    build: (p: { params: string[]; query: URLSearchParams; body: Record<string, unknown> }) => {
      op: string;
      request: unknown;
    },
  ): void => {
    app[method](path, (res: HttpResponse, req: HttpRequest) => {
      const g = guard(res);
      const auth = req.getHeader('authorization');
      const tenant = req.getHeader('x-sb-tenant');
      const ct = req.getHeader('content-type');
      const params: string[] = [];
      for (let i = 0; i < 3; i++) params.push(req.getParameter(i) ?? '');
      const query = new URLSearchParams(req.getQuery() ?? '');
      const bodyP = method === 'get' ? Promise.resolve(Buffer.alloc(0)) : readBody(g, maxBodyBytes);
      bodyP.catch(() => {});
      void (async () => {
        try {
          let body: Record<string, unknown> = {};
          const raw = await bodyP;
          if (raw.byteLength > 0) {
            if (!ct.toLowerCase().startsWith('application/json'))
              throw new SbError('SB_ERR_INVALID_FIELD', 'content-type must be application/json');
            let v: unknown;
            try {
              v = JSON.parse(raw.toString('utf8'));
            } catch {
              throw new SbError('SB_ERR_BAD_FRAME', 'body is not valid JSON');
            }
            if (!v || typeof v !== 'object' || Array.isArray(v))
              throw new SbError('SB_ERR_BAD_FRAME', 'body must be a JSON object');
            body = v as Record<string, unknown>;
          }
          const { op, request } = build({ params, query, body });
          sendJson(g, 200, await invoke(op, auth, tenant, request));
        } catch (err) {
          sendError(g, err, (e) => d.log.error('partner REST: internal error', e));
        }
      })();
    });
  };

  const str = (b: Record<string, unknown>, k: string): string => {
    const v = b[k];
    if (v === undefined) return '';
    if (typeof v !== 'string') throw new SbError('SB_ERR_INVALID_FIELD', `${k} must be a string`);
    return v;
  };
  const int = (v: string | null | unknown, k: string): number => {
    if (v === null || v === undefined || v === '') return 0;
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new SbError('SB_ERR_INVALID_FIELD', `${k} must be an integer`);
    return n;
  };
  const only = (b: Record<string, unknown>, keys: string[]): Record<string, unknown> => {
    for (const k of Object.keys(b))
      if (!keys.includes(k)) throw new SbError('SB_ERR_INVALID_FIELD', `${k}: unknown field`);
    return b;
  };

  route('get', '/v1/partner/tenant', () => ({ op: 'getTenant', request: {} }));
  route('patch', '/v1/partner/tenant', ({ body }) => {
    only(body, ['name', 'retentionDays']);
    return {
      op: 'updateTenant',
      request: { name: str(body, 'name'), retentionDays: int(body['retentionDays'], 'retentionDays') },
    };
  });
  route('get', '/v1/partner/agents', () => ({ op: 'listAgents', request: {} }));
  route('post', '/v1/partner/sessions', ({ body }) => {
    only(body, ['visitorId', 'visitorName', 'entry', 'channel']);
    return {
      op: 'openSession',
      request: {
        visitorId: str(body, 'visitorId'),
        visitorName: str(body, 'visitorName'),
        entry: str(body, 'entry'),
        channel: str(body, 'channel'),
      },
    };
  });
  route('get', '/v1/partner/sessions/:sessionId', ({ params }) => ({
    op: 'getSession',
    request: { sessionId: params[0] },
  }));
  route('post', '/v1/partner/sessions/:sessionId/messages', ({ params, body }) => {
    only(body, ['visitorId', 'clientMsgId', 'text']);
    return {
      op: 'sendMessage',
      request: {
        sessionId: params[0],
        visitorId: str(body, 'visitorId'),
        clientMsgId: str(body, 'clientMsgId'),
        text: str(body, 'text'),
      },
    };
  });
  route('post', '/v1/partner/sessions/:sessionId/close', ({ params }) => ({
    op: 'closeSession',
    request: { sessionId: params[0] },
  }));
  route('get', '/v1/partner/sessions/:sessionId/events', ({ params, query }) => ({
    op: 'listEvents',
    request: {
      sessionId: params[0],
      afterSeq: int(query.get('afterSeq'), 'afterSeq'),
      limit: int(query.get('limit'), 'limit'),
    },
  }));

  // The feed, paged (the REST form of SubscribeEvents).
  app.get('/v1/partner/events', (res, req) => {
    const g = guard(res);
    const auth = req.getHeader('authorization');
    const tenant = req.getHeader('x-sb-tenant');
    const query = new URLSearchParams(req.getQuery() ?? '');
    void (async () => {
      try {
        const key = await d.keys.authenticate(
          auth.startsWith('Bearer ') ? auth.slice(7) : undefined,
          tenant || undefined,
        );
        if (!hasScope(key.scopes, 'read'))
          throw new SbError('SB_ERR_FORBIDDEN', 'this key lacks the read scope');
        const { config } = await readTenantConfig(d.runtime.stores.state, key.tenantId, d.now());
        if (!config.webhooks.feed)
          throw new SbError('SB_ERR_INVALID_STATE', 'the event feed is off for this tenant (webhooks.feed)');
        const after = int(query.get('afterCursor'), 'afterCursor');
        const limit = int(query.get('limit'), 'limit') || 100;
        if (after < 0 || limit < 1 || limit > 1000)
          throw new SbError('SB_ERR_INVALID_FIELD', 'afterCursor ≥ 0, limit 1–1000');
        const store = d.runtime.stores.extra['messages'] as MessageStore;
        const rows = await store.read(key.tenantId, FEED_STREAM, { afterSeq: after, limit });
        sendJson(g, 200, {
          events: rows.map((e) => {
            const p = e.body as unknown as WebhookPayload;
            return { cursor: e.seq, id: p.id, kind: p.kind, occurredAt: p.occurredAt, data: p.data };
          }),
          nextCursor: rows.length ? rows[rows.length - 1]!.seq : after,
        });
      } catch (err) {
        sendError(g, err, (e) => d.log.error('partner REST: internal error', e));
      }
    })();
  });
}
