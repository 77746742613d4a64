/**
 * Admin and staff HTTP API (F1–F5, F9, F11): tenant configuration sections, members, the live
 * dispatcher view, session details, visitors on the site and proactive chat. Every route takes a
 * Bearer token; every body is validated (unknown fields and bad values → SB_ERR_INVALID_FIELD);
 * every read and write is scoped to the caller's tenant.
 *
 * Routes (documented in docs/ADMIN-API.md):
 *   GET    /v1/admin/config                  whole configuration (admin)
 *   PUT    /v1/admin/config/:section         replace one section: routing | settings | associations | tags | sensitive
 *   GET    /v1/admin/tenant                  tenant record (admin)
 *   PATCH  /v1/admin/tenant                  name, retentionDays (admin)
 *   GET    /v1/admin/members                 members without password hashes (admin)
 *   POST   /v1/admin/members                 create a member (admin)
 *   PATCH  /v1/admin/members/:memberId       change name, role, cap, groups, password (admin)
 *   DELETE /v1/admin/members/:memberId       remove a member (admin)
 *   GET    /v1/agents                        colleagues with status and load, for transfers (staff)
 *   GET    /v1/admin/dispatch                queues per skill group and every agent's load (admin)
 *   GET    /v1/queue                         per skill group: waiting sessions and since when (staff)
 *   GET    /v1/admin/api-keys                partner API keys without secrets (admin)
 *   POST   /v1/admin/api-keys                {name, scopes}: a new key, shown once (admin)
 *   DELETE /v1/admin/api-keys/:keyId         revoke a key (admin)
 *   GET    /v1/admin/webhooks/dead-letters   events that exhausted their delivery attempts (admin)
 *   POST   /v1/admin/webhooks/dead-letters/redeliver   {key}: one attempt now (admin)
 *   GET    /v1/admin/webhooks/stats          delivered / failed attempts / dead-lettered (admin)
 *   GET    /v1/admin/reports                 statistics / custom report: from, to, metrics, dimensions, granularity (admin, F18/F19)
 *   GET    /v1/admin/reports/sessions        the sessions behind one report row: same + key (JSON array), basis, limit (admin)
 *   GET    /v1/config/public                 tag tree, skill groups, team quick replies (staff: for the console)
 *   GET    /v1/me/quick-replies              the caller's personal quick replies (staff)
 *   PUT    /v1/me/quick-replies              replace them: {quickReplies: [{id, title, text, category?}]} (staff)
 *   GET    /v1/sessions/:sessionId           session details incl. the routing decision (staff)
 *   GET    /v1/sessions/:sessionId/crm-url   the CRM iframe URL for this session (staff, F24)
 *   POST   /v1/tickets                       create a ticket, optionally from a session (staff, F25)
 *   GET    /v1/visitor/availability          {available, agentsOnline}: is anyone working now (visitor)
 *   POST   /v1/visitor/offline-message       {contact?, text}: leave a message as a ticket (visitor)
 *   GET    /v1/tickets                       tickets: agents their own, admins all (cursor paging)
 *   GET    /v1/tickets/:ticketId             one ticket with transcript and comments
 *   PATCH  /v1/tickets/:ticketId             status (workflow), priority, assignee
 *   POST   /v1/tickets/:ticketId/comments    add a comment
 *   GET    /v1/visitors/online               web visitors on the site now (staff)
 *   GET    /v1/visitors/:visitorId           visitor profile: tags, browsing trail, sessions (staff)
 *   POST   /v1/visitors/:visitorId/tags      add/remove visitor tags (staff)
 *   POST   /v1/visitors/:visitorId/invite    start a proactive chat (staff)
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Runtime } from '../engine/types.ts';
import {
  CONFIG_SECTIONS,
  MAX_CONCURRENT,
  MAX_QUICK_REPLIES,
  configKey,
  validateQuickReplies,
  type QuickReply,
  type ConfigSection,
  type DeskConfig,
  type TenantConfigMsg,
} from '../actors/tenant-config.ts';
import {
  Directory,
  KINDS,
  assertId,
  hashPassword,
  tkey,
  type AgentMsg,
  type Caller,
  type DispatchMsg,
  type DispatchSnapshot,
  type MemberRecord,
  type PresenceMsg,
  type SessionMsg,
  type VisitorMsg,
} from '../actors/index.ts';
import { dispatchKey } from '../actors/ids.ts';
import { UNGROUPED } from '../actors/dispatch-core.ts';
import { OUTBOX_KIND, outboxKey, type OutboxMsg } from '../actors/webhook-outbox.ts';
import { SbError } from '../protos/errors.ts';
import {
  ANALYTICS_KIND,
  analyticsKey,
  parseReportSpec,
  type AnalyticsMsg,
  type Basis,
} from '../analytics/index.ts';
import type { ApiKeys } from '../actors/api-keys.ts';
import { crmUrl } from '../actors/crm.ts';
import {
  TICKET_KIND,
  listTickets,
  newTicketId,
  type ExternalTicketSystem,
  type Ticket,
  type TicketMsg,
  type TicketPriority,
  type TicketStatus,
} from '../actors/tickets.ts';
import type { IndexStore } from '../engine/store/types.ts';
import { guard, readBody, sendError, sendJson, type Guarded } from './http.ts';
import type { TokenSigner } from './tokens.ts';

export interface AdminDeps {
  app: TemplatedApp;
  runtime: Runtime;
  dir: Directory;
  apiKeys: ApiKeys;
  /** Mirrors tickets to an external ticket system when configured. */
  ticketSystem?: ExternalTicketSystem | undefined;
  signer: TokenSigner;
  maxBodyBytes: number;
  onInternal: (e: unknown) => void;
  now: () => number;
}

type Handler = (ctx: {
  caller: Caller;
  params: string[];
  query: (name: string) => string | undefined;
  body: () => Promise<unknown>;
}) => Promise<unknown>;

function bad(msg: string): never {
  throw new SbError('SB_ERR_INVALID_FIELD', msg);
}

function objectBody(v: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) bad('body must be a JSON object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!allowed.includes(k)) bad(`${k}: unknown field`);
  return o;
}

export function publicMember(m: MemberRecord): Omit<MemberRecord, 'passwordHash'> {
  const { passwordHash: _hidden, ...rest } = m;
  return rest;
}

export function registerAdminRoutes(d: AdminDeps): void {
  const { app, runtime, dir } = d;

  const route = (
    method: 'get' | 'post' | 'put' | 'patch' | 'del',
    path: string,
    nParams: number,
    roles: ReadonlyArray<Caller['role']>,
    handle: Handler,
  ): void => {
    app[method](path, (res: HttpResponse, req: HttpRequest) => {
      const g: Guarded = guard(res);
      const auth = req.getHeader('authorization');
      const ct = req.getHeader('content-type');
      const params: string[] = [];
      for (let i = 0; i < nParams; i++) params.push(req.getParameter(i) ?? '');
      const q = new URLSearchParams(req.getQuery() ?? '');
      const hasBody = method !== 'get' && method !== 'del';
      // The body must be read (onData registered) before any await.
      const bodyP: Promise<Buffer> | undefined = hasBody ? readBody(g, d.maxBodyBytes) : undefined;
      bodyP?.catch(() => {});
      void (async () => {
        try {
          const claims = d.signer.verify(auth.startsWith('Bearer ') ? auth.slice(7) : undefined);
          if (!roles.includes(claims.role))
            throw new SbError('SB_ERR_FORBIDDEN', 'not allowed for this role');
          const caller: Caller = {
            role: claims.role,
            tenantId: claims.tenantId,
            id: claims.sub,
            name: claims.name,
          };
          const out = await handle({
            caller,
            params,
            query: (n) => q.get(n) ?? undefined,
            body: async () => {
              if (!ct.toLowerCase().startsWith('application/json'))
                throw new SbError('SB_ERR_INVALID_FIELD', 'content-type must be application/json');
              const buf = await bodyP!;
              try {
                return JSON.parse(buf.toString('utf8')) as unknown;
              } catch {
                throw new SbError('SB_ERR_BAD_FRAME', 'body is not valid JSON');
              }
            },
          });
          sendJson(g, 200, out ?? { ok: true });
        } catch (err) {
          sendError(g, err, d.onInternal);
        }
      })();
    });
  };

  const cfgActor = (tenantId: string): { kind: string; key: string } => ({
    kind: KINDS.tenantConfig,
    key: configKey(tenantId),
  });
  const getConfig = (tenantId: string): Promise<DeskConfig> =>
    runtime.ask<DeskConfig>(cfgActor(tenantId), { t: 'get' } satisfies TenantConfigMsg);

  const ADMIN = ['admin'] as const;
  const STAFF = ['admin', 'agent'] as const;

  // ---- configuration ------------------------------------------------------------------------------
  route('get', '/v1/admin/config', 0, ADMIN, ({ caller }) => getConfig(caller.tenantId));

  route('put', '/v1/admin/config/:section', 1, ADMIN, async ({ caller, params, body }) => {
    const section = params[0] as ConfigSection;
    if (!(CONFIG_SECTIONS as readonly string[]).includes(section))
      throw new SbError('SB_ERR_NOT_FOUND', `no configuration section ${section}`);
    const value = await body();
    return runtime.ask<DeskConfig>(cfgActor(caller.tenantId), {
      t: 'update',
      section,
      value,
      now: d.now(),
    } satisfies TenantConfigMsg);
  });

  route('get', '/v1/config/public', 0, STAFF, async ({ caller }) => {
    const c = await getConfig(caller.tenantId);
    return {
      version: c.version,
      tags: c.tags,
      groups: [{ groupId: UNGROUPED, name: 'Ungrouped' }, ...c.routing.groups],
      settings: {
        forceTagOnClose: c.settings.forceTagOnClose,
        transferTimeoutSec: c.settings.transferTimeoutSec,
      },
      quickReplies: c.quickReplies,
      crm: c.crm.urlTemplate !== '',
    };
  });

  // Personal canned responses, one list per member (the team's are the `quickReplies` section).
  route('get', '/v1/me/quick-replies', 0, STAFF, async ({ caller }) => ({
    quickReplies: (await runtime.stores.state.get<QuickReply[]>(caller.tenantId, 'qr', caller.id)) ?? [],
  }));

  route('put', '/v1/me/quick-replies', 0, STAFF, async ({ caller, body }) => {
    const o = objectBody(await body(), ['quickReplies']);
    const list = validateQuickReplies(o['quickReplies'], MAX_QUICK_REPLIES.personal);
    await runtime.stores.state.put(caller.tenantId, 'qr', caller.id, list);
    return { quickReplies: list };
  });

  route('get', '/v1/admin/tenant', 0, ADMIN, async ({ caller }) => {
    const t = await dir.getTenant(caller.tenantId);
    if (!t) throw new SbError('SB_ERR_NOT_FOUND', 'no such tenant');
    return t;
  });

  route('patch', '/v1/admin/tenant', 0, ADMIN, async ({ caller, body }) => {
    const o = objectBody(await body(), ['name', 'retentionDays']);
    const t = await dir.getTenant(caller.tenantId);
    if (!t) throw new SbError('SB_ERR_NOT_FOUND', 'no such tenant');
    if (o['name'] !== undefined) {
      if (typeof o['name'] !== 'string' || o['name'].trim() === '' || o['name'].length > 100)
        bad('name: 1–100 characters');
      t.name = o['name'];
    }
    if (o['retentionDays'] !== undefined) {
      const r = o['retentionDays'];
      if (typeof r !== 'number' || !Number.isInteger(r) || r < 1 || r > 3650)
        bad('retentionDays: integer 1–3650');
      t.retentionDays = r;
    }
    await dir.putTenant(t);
    return t;
  });

  // ---- members ---------------------------------------------------------------------------------------
  const checkMemberFields = async (
    tenantId: string,
    o: Record<string, unknown>,
    m: Partial<MemberRecord>,
  ): Promise<void> => {
    const cfg = await getConfig(tenantId);
    if (o['name'] !== undefined) {
      if (typeof o['name'] !== 'string' || o['name'].trim() === '' || o['name'].length > 64)
        bad('name: 1–64 characters');
      m.name = o['name'].trim();
    }
    if (o['role'] !== undefined) {
      if (o['role'] !== 'agent' && o['role'] !== 'admin') bad('role must be agent or admin');
      m.role = o['role'];
    }
    if (o['maxConcurrent'] !== undefined) {
      const cap = cfg.settings.upgraded ? MAX_CONCURRENT.upgraded : MAX_CONCURRENT.standard;
      const v = o['maxConcurrent'];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > cap)
        bad(
          `maxConcurrent: integer 0–${cap}${cfg.settings.upgraded ? '' : ' (200 with the tenant upgrade)'}`,
        );
      m.maxConcurrent = v;
    }
    if (o['groups'] !== undefined) {
      const gs = o['groups'];
      if (!Array.isArray(gs) || gs.length > 50) bad('groups: an array of at most 50 group ids');
      const known = new Set([UNGROUPED, ...cfg.routing.groups.map((g) => g.groupId)]);
      for (const g of gs)
        if (typeof g !== 'string' || !known.has(g)) bad(`groups: unknown skill group ${String(g)}`);
      m.groups = [...new Set(gs as string[])];
    }
    if (o['password'] !== undefined) {
      const p = o['password'];
      if (typeof p !== 'string' || p.length < 8 || p.length > 256) bad('password: 8–256 characters');
      m.passwordHash = await hashPassword(p);
    }
  };

  const tellProfile = (m: MemberRecord): void => {
    runtime.tell({ kind: KINDS.agent, key: tkey(m.tenantId, m.memberId) }, {
      t: 'profile',
      name: m.name,
      maxConcurrent: m.maxConcurrent,
      groups: m.groups ?? [],
    } satisfies AgentMsg);
  };

  route('get', '/v1/admin/members', 0, ADMIN, async ({ caller }) =>
    (await dir.listMembers(caller.tenantId)).map(publicMember),
  );

  route('post', '/v1/admin/members', 0, ADMIN, async ({ caller, body }) => {
    const o = objectBody(await body(), [
      'memberId',
      'email',
      'name',
      'role',
      'maxConcurrent',
      'groups',
      'password',
    ]);
    const memberId = assertId(o['memberId'], 'memberId');
    if (await dir.getMember(caller.tenantId, memberId))
      throw new SbError('SB_ERR_INVALID_FIELD', 'memberId exists');
    const email = o['email'];
    if (typeof email !== 'string' || !/^[^\s@]{1,64}@[^\s@]{1,189}$/.test(email))
      bad('email: not an email address');
    for (const f of ['name', 'password'] as const) if (o[f] === undefined) bad(`${f}: required`);
    const tenant = await dir.getTenant(caller.tenantId);
    const m: Partial<MemberRecord> = {
      tenantId: caller.tenantId,
      memberId,
      email,
      role: 'agent',
      maxConcurrent: tenant?.defaultMaxConcurrent ?? 10,
      groups: [],
      createdAt: d.now(),
    };
    await checkMemberFields(caller.tenantId, o, m);
    await dir.putMember(m as MemberRecord);
    runtime.tell({ kind: KINDS.agent, key: tkey(caller.tenantId, memberId) }, {
      t: 'created',
      name: m.name!,
      role: m.role!,
    } satisfies AgentMsg);
    tellProfile(m as MemberRecord);
    return publicMember(m as MemberRecord);
  });

  route('patch', '/v1/admin/members/:memberId', 1, ADMIN, async ({ caller, params, body }) => {
    const memberId = assertId(params[0], 'memberId');
    const o = objectBody(await body(), ['name', 'role', 'maxConcurrent', 'groups', 'password']);
    const m = await dir.getMember(caller.tenantId, memberId);
    if (!m) throw new SbError('SB_ERR_NOT_FOUND', 'no such member');
    await checkMemberFields(caller.tenantId, o, m);
    await dir.putMember(m);
    tellProfile(m);
    return publicMember(m);
  });

  route('del', '/v1/admin/members/:memberId', 1, ADMIN, async ({ caller, params }) => {
    const memberId = assertId(params[0], 'memberId');
    if (memberId === caller.id) throw new SbError('SB_ERR_FORBIDDEN', 'admins cannot delete themselves');
    if (!(await dir.deleteMember(caller.tenantId, memberId)))
      throw new SbError('SB_ERR_NOT_FOUND', 'no such member');
    runtime.tell({ kind: KINDS.agent, key: tkey(caller.tenantId, memberId) }, {
      t: 'deleted',
    } satisfies AgentMsg);
    return { deleted: memberId };
  });

  // ---- partner API keys (F22) ------------------------------------------------------------------------
  route('get', '/v1/admin/api-keys', 0, ADMIN, ({ caller }) => d.apiKeys.list(caller.tenantId));
  route('post', '/v1/admin/api-keys', 0, ADMIN, async ({ caller, body }) => {
    const o = objectBody(await body(), ['name', 'scopes']);
    return d.apiKeys.create(caller.tenantId, String(o['name'] ?? ''), o['scopes'], d.now());
  });
  route('del', '/v1/admin/api-keys/:keyId', 1, ADMIN, ({ caller, params }) =>
    d.apiKeys.revoke(caller.tenantId, params[0] ?? '', d.now()),
  );

  // ---- webhooks (F23) ----------------------------------------------------------------------------------
  const outbox = (tenantId: string): { kind: string; key: string } => ({
    kind: OUTBOX_KIND,
    key: outboxKey(tenantId),
  });
  route('get', '/v1/admin/webhooks/dead-letters', 0, ADMIN, ({ caller, query }) => {
    const limit = Number(query('limit') ?? '100');
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) bad('limit must be 1–1000');
    return runtime.ask(outbox(caller.tenantId), { t: 'deadLetters', limit } satisfies OutboxMsg);
  });
  route('post', '/v1/admin/webhooks/dead-letters/redeliver', 0, ADMIN, async ({ caller, body }) => {
    const o = objectBody(await body(), ['key']);
    if (typeof o['key'] !== 'string' || o['key'].length > 400) bad('key: a dead letter key');
    return runtime.ask(outbox(caller.tenantId), { t: 'redeliver', key: o['key'] } satisfies OutboxMsg, {
      timeoutMs: 30_000,
    });
  });
  route('get', '/v1/admin/webhooks/stats', 0, ADMIN, ({ caller }) =>
    runtime.ask(outbox(caller.tenantId), { t: 'stats' } satisfies OutboxMsg),
  );

  const stats = (tenantId: string): { kind: string; key: string } => ({
    kind: ANALYTICS_KIND,
    key: analyticsKey(tenantId),
  });
  const reportSpec = (query: (n: string) => string | undefined): ReturnType<typeof parseReportSpec> =>
    parseReportSpec(
      {
        from: query('from'),
        to: query('to'),
        metrics: query('metrics'),
        dimensions: query('dimensions'),
        granularity: query('granularity'),
      },
      d.now(),
    );
  route('get', '/v1/admin/reports', 0, ADMIN, ({ caller, query }) =>
    runtime.ask(stats(caller.tenantId), { t: 'report', spec: reportSpec(query) } satisfies AnalyticsMsg, {
      timeoutMs: 60_000,
    }),
  );
  route('get', '/v1/admin/reports/sessions', 0, ADMIN, ({ caller, query }) => {
    const spec = reportSpec(query);
    let key: unknown;
    try {
      key = JSON.parse(query('key') ?? '[]');
    } catch {
      bad('key must be a JSON array of strings');
    }
    if (!Array.isArray(key) || !key.every((k) => typeof k === 'string'))
      bad('key must be a JSON array of strings');
    const basis = query('basis') ?? 'accepted';
    if (basis !== 'created' && basis !== 'accepted') bad('basis: created or accepted');
    const limit = Number(query('limit') ?? '50');
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) bad('limit must be 1–500');
    return runtime.ask(
      stats(caller.tenantId),
      { t: 'drill', spec, key: key as string[], basis: basis as Basis, limit } satisfies AnalyticsMsg,
      { timeoutMs: 60_000 },
    );
  });

  // Colleagues and their availability, for transfers (no session ids).
  route('get', '/v1/agents', 0, STAFF, async ({ caller }) => {
    const snap = await runtime.ask<DispatchSnapshot>(
      { kind: KINDS.dispatch, key: dispatchKey(caller.tenantId) },
      { t: 'snapshot' } satisfies DispatchMsg,
    );
    const live = new Map(snap.agents.map((a) => [a.agentId, a]));
    return (await dir.listMembers(caller.tenantId)).map((m) => {
      const a = live.get(m.memberId);
      return {
        agentId: m.memberId,
        name: m.name,
        role: m.role,
        groups: m.groups ?? [],
        status: a?.connected ? a.status : 'offline',
        active: a?.active ?? 0,
        max: a?.max ?? m.maxConcurrent,
      };
    });
  });

  route('get', '/v1/admin/dispatch', 0, ADMIN, ({ caller }) =>
    runtime.ask({ kind: KINDS.dispatch, key: dispatchKey(caller.tenantId) }, {
      t: 'snapshot',
    } satisfies DispatchMsg),
  );

  // The queues as agents see them: per skill group, who waits and since when (no agent loads).
  route('get', '/v1/queue', 0, STAFF, async ({ caller }) => {
    const [snap, cfg] = await Promise.all([
      runtime.ask<DispatchSnapshot>({ kind: KINDS.dispatch, key: dispatchKey(caller.tenantId) }, {
        t: 'snapshot',
      } satisfies DispatchMsg),
      getConfig(caller.tenantId),
    ]);
    const names = new Map<string, string>([
      [UNGROUPED, 'Ungrouped'],
      ...cfg.routing.groups.map((g) => [g.groupId, g.name] as [string, string]),
    ]);
    const ids = new Set([...names.keys(), ...Object.keys(snap.waiting)]);
    return {
      groups: [...ids].map((groupId) => ({
        groupId,
        name: names.get(groupId) ?? groupId,
        waiting: snap.waiting[groupId] ?? [],
      })),
    };
  });

  // ---- sessions and visitors (staff) ----------------------------------------------------------------
  route('get', '/v1/sessions/:sessionId', 1, STAFF, ({ caller, params }) => {
    const sessionId = assertId(params[0], 'sessionId');
    return runtime.ask({ kind: KINDS.session, key: tkey(caller.tenantId, sessionId) }, {
      t: 'details',
      caller,
    } satisfies SessionMsg);
  });

  route('get', '/v1/sessions/:sessionId/crm-url', 1, STAFF, async ({ caller, params }) => {
    const sessionId = assertId(params[0], 'sessionId');
    // The session actor checks that an agent is a participant.
    const s = await runtime.ask<{ visitorId: string; visitorName: string; channel: string }>(
      { kind: KINDS.session, key: tkey(caller.tenantId, sessionId) },
      { t: 'details', caller } satisfies SessionMsg,
    );
    const cfg = await getConfig(caller.tenantId);
    const me = await dir.getMember(caller.tenantId, caller.id);
    const url = crmUrl(
      cfg.crm,
      {
        tenantId: caller.tenantId,
        sessionId,
        visitorId: s.visitorId,
        visitorName: s.visitorName,
        channel: s.channel,
        agentId: caller.id,
        agentName: me?.name ?? caller.name,
        agentEmail: me?.email ?? '',
      },
      d.now(),
    );
    return { url: url ?? null };
  });

  // ---- tickets (F25) -------------------------------------------------------------------------------------
  const ticket = (tenantId: string, ticketId: string): { kind: string; key: string } => ({
    kind: TICKET_KIND,
    key: tkey(tenantId, ticketId),
  });
  /**
   * Mirrors a change to the external ticket system, in order per ticket (creation first); a failure
   * is logged and never fails the call. Entries leave the map when the ticket closes.
   */
  const mirrors = new Map<string, { chain: Promise<void>; externalId: string | undefined }>();
  const mirror = (t: Ticket): void => {
    const ext = d.ticketSystem;
    if (!ext) return;
    let m = mirrors.get(t.ticketId);
    if (!m) mirrors.set(t.ticketId, (m = { chain: Promise.resolve(), externalId: t.externalId }));
    const entry = m;
    entry.chain = entry.chain
      .then(async () => {
        if (entry.externalId === undefined) {
          entry.externalId = await ext.create(t);
          await runtime.ask(ticket(t.tenantId, t.ticketId), {
            t: 'external',
            externalId: entry.externalId,
          } satisfies TicketMsg);
        } else await ext.update({ ...t, externalId: entry.externalId });
        if (t.status === 'closed') mirrors.delete(t.ticketId);
      })
      .catch((err: unknown) => d.onInternal(err));
  };
  route('post', '/v1/tickets', 0, STAFF, async ({ caller, body }) => {
    const o = objectBody(await body(), ['subject', 'description', 'priority', 'sessionId', 'assigneeId']);
    const m: TicketMsg = {
      t: 'create',
      caller,
      subject: o['subject'] as string,
      description: (o['description'] as string | undefined) ?? '',
      priority: ((o['priority'] as string | undefined) ?? 'normal') as TicketPriority,
    };
    if (o['sessionId'] !== undefined) m.sessionId = assertId(o['sessionId'], 'sessionId');
    if (o['assigneeId'] !== undefined) m.assigneeId = assertId(o['assigneeId'], 'assigneeId');
    const t = await runtime.ask<Ticket>(ticket(caller.tenantId, newTicketId(d.now())), m);
    mirror(t);
    return t;
  });
  // ---- visitors: who is working, and offline messages (留言) ------------------------------------------
  route('get', '/v1/visitor/availability', 0, ['visitor'], async ({ caller }) => {
    const snap = await runtime.ask<DispatchSnapshot>(
      { kind: KINDS.dispatch, key: dispatchKey(caller.tenantId) },
      { t: 'snapshot' } satisfies DispatchMsg,
    );
    const online = snap.agents.filter((a) => a.connected && a.status === 'online').length;
    return { available: online > 0, agentsOnline: online };
  });

  route('post', '/v1/visitor/offline-message', 0, ['visitor'], async ({ caller, body }) => {
    const o = objectBody(await body(), ['contact', 'text']);
    const text = o['text'];
    if (typeof text !== 'string' || text.trim() === '' || text.length > 2000) bad('text: 1–2000 characters');
    const contact = o['contact'] ?? '';
    if (typeof contact !== 'string' || contact.length > 200) bad('contact: at most 200 characters');
    const t = await runtime.ask<Ticket>(ticket(caller.tenantId, newTicketId(d.now())), {
      t: 'create',
      caller,
      subject: `${caller.name}: ${text.trim().split('\n')[0]!.slice(0, 80)}`,
      description: text,
      priority: 'normal',
      offline: { contact },
    } satisfies TicketMsg);
    mirror(t);
    return { ticketId: t.ticketId, createdAt: t.createdAt };
  });

  route('get', '/v1/tickets', 0, STAFF, ({ caller, query }) => {
    const limit = Number(query('limit') ?? '50');
    if (!Number.isInteger(limit) || limit < 1 || limit > 200) bad('limit must be 1–200');
    const cursor = query('cursor');
    if (cursor !== undefined && cursor.length > 200) bad('cursor too long');
    return listTickets(runtime.stores.extra['index'] as IndexStore, caller, {
      limit,
      ...(cursor ? { after: cursor } : {}),
    });
  });
  route('get', '/v1/tickets/:ticketId', 1, STAFF, ({ caller, params }) =>
    runtime.ask(ticket(caller.tenantId, assertId(params[0], 'ticketId')), {
      t: 'get',
      caller,
    } satisfies TicketMsg),
  );
  route('patch', '/v1/tickets/:ticketId', 1, STAFF, async ({ caller, params, body }) => {
    const o = objectBody(await body(), ['status', 'priority', 'assigneeId']);
    const m: TicketMsg = { t: 'update', caller };
    if (o['status'] !== undefined) m.status = o['status'] as TicketStatus;
    if (o['priority'] !== undefined) m.priority = o['priority'] as TicketPriority;
    if (o['assigneeId'] !== undefined) m.assigneeId = assertId(o['assigneeId'], 'assigneeId');
    const t = await runtime.ask<Ticket>(ticket(caller.tenantId, assertId(params[0], 'ticketId')), m);
    mirror(t);
    return t;
  });
  route('post', '/v1/tickets/:ticketId/comments', 1, STAFF, async ({ caller, params, body }) => {
    const o = objectBody(await body(), ['text']);
    const t = await runtime.ask<Ticket>(ticket(caller.tenantId, assertId(params[0], 'ticketId')), {
      t: 'comment',
      caller,
      text: o['text'] as string,
    } satisfies TicketMsg);
    mirror(t);
    return t;
  });

  route('get', '/v1/visitors/online', 0, STAFF, ({ caller, query }) => {
    const raw = query('limit') ?? '100';
    const limit = Number(raw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) bad('limit must be 1–1000');
    return runtime.ask({ kind: KINDS.presence, key: tkey(caller.tenantId, 'presence') }, {
      t: 'list',
      limit,
    } satisfies PresenceMsg);
  });

  route('get', '/v1/visitors/:visitorId', 1, STAFF, ({ caller, params }) => {
    const visitorId = assertId(params[0], 'visitorId');
    return runtime.ask({ kind: KINDS.visitor, key: tkey(caller.tenantId, visitorId) }, {
      t: 'profile',
      caller,
    } satisfies VisitorMsg);
  });

  route('post', '/v1/visitors/:visitorId/tags', 1, STAFF, async ({ caller, params, body }) => {
    const visitorId = assertId(params[0], 'visitorId');
    const o = objectBody(await body(), ['add', 'remove']);
    const list = (v: unknown, f: string): string[] | undefined => {
      if (v === undefined) return undefined;
      if (!Array.isArray(v) || v.length > 50 || v.some((x) => typeof x !== 'string'))
        bad(`${f}: an array of at most 50 strings`);
      return v as string[];
    };
    const m: VisitorMsg = { t: 'tags', caller };
    const add = list(o['add'], 'add');
    const remove = list(o['remove'], 'remove');
    if (add) m.add = add;
    if (remove) m.remove = remove;
    return runtime.ask({ kind: KINDS.visitor, key: tkey(caller.tenantId, visitorId) }, m);
  });

  route('post', '/v1/visitors/:visitorId/invite', 1, STAFF, ({ caller, params }) => {
    const visitorId = assertId(params[0], 'visitorId');
    return runtime.ask({ kind: KINDS.visitor, key: tkey(caller.tenantId, visitorId) }, {
      t: 'invite',
      caller,
    } satisfies VisitorMsg);
  });
}
