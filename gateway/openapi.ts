/**
 * OpenAPI 3.1 description of every HTTP route of the gateway, served at GET /v1/openapi.json. A
 * test compares it with the routes the server actually registers (both directions). WebSocket
 * endpoints are described in docs/PROTOCOL.md instead.
 */
type Json = Record<string, unknown>;

const ERROR = { $ref: '#/components/schemas/Error' };
const OBJ: Json = { type: 'object' };
const STR: Json = { type: 'string' };
const INT: Json = { type: 'integer' };

function param(name: string, where: 'path' | 'query', schema: Json = STR, required = where === 'path'): Json {
  return { name, in: where, required, schema };
}

interface Op {
  summary: string;
  /** member: login token (agents/admins); apiKey: partner key; visitor token is a member-like bearer. */
  auth: 'member' | 'admin' | 'apiKey' | 'platform' | 'none';
  tag: string;
  params?: Json[];
  body?: Json;
  response?: Json;
}

function op(o: Op): Json {
  const out: Json = {
    summary: o.summary,
    tags: [o.tag],
    responses: {
      '200': { description: 'OK', content: { 'application/json': { schema: o.response ?? OBJ } } },
      default: {
        description: 'Typed error (docs/PROTOCOL.md §3)',
        content: { 'application/json': { schema: ERROR } },
      },
    },
  };
  if (o.auth === 'member' || o.auth === 'admin') out['security'] = [{ memberToken: [] }];
  if (o.auth === 'apiKey') out['security'] = [{ apiKey: [] }];
  if (o.auth === 'platform') out['security'] = [{ platformToken: [] }];
  if (o.auth === 'none') out['security'] = [];
  if (o.params) out['parameters'] = o.params;
  if (o.body) out['requestBody'] = { required: true, content: { 'application/json': { schema: o.body } } };
  return out;
}

const sessionId = param('sessionId', 'path');
const visitorId = param('visitorId', 'path');

export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'Switchboard HTTP API',
    version: '1',
    description:
      'Member (agent/admin) routes take a login token; partner routes take an API key (sbk_…); errors are {error: {code, message}} with the SB_ERR codes of docs/PROTOCOL.md.',
  },
  components: {
    securitySchemes: {
      memberToken: {
        type: 'http',
        scheme: 'bearer',
        description: 'Token from POST /v1/auth/login (or a visitor token)',
      },
      apiKey: {
        type: 'http',
        scheme: 'bearer',
        description:
          'Partner API key sbk_<tenant>.<id>.<secret>, or an org key sbo_<id>.<secret> with the x-sb-tenant header',
      },
      platformToken: { type: 'http', scheme: 'bearer', description: 'SB_PLATFORM_TOKEN of the deployment' },
    },
    schemas: {
      Error: {
        type: 'object',
        required: ['error'],
        properties: { error: { type: 'object', properties: { code: STR, message: STR } } },
      },
    },
  },
  paths: {
    '/v1/auth/login': {
      post: op({
        summary: 'Agent/admin login (email + password)',
        auth: 'none',
        tag: 'auth',
        body: { type: 'object', properties: { email: STR, password: STR } },
      }),
    },
    '/v1/visitor/token': {
      post: op({
        summary: 'Visitor token for the chat window',
        auth: 'none',
        tag: 'auth',
        body: { type: 'object', properties: { tenantId: STR, visitorId: STR, name: STR } },
      }),
    },
    '/v1/sessions/{sessionId}/events': {
      get: op({
        summary: "Page of a session's events",
        auth: 'member',
        tag: 'sessions',
        params: [sessionId, param('afterSeq', 'query', INT), param('limit', 'query', INT)],
      }),
    },
    '/v1/sessions/{sessionId}': {
      get: op({
        summary: 'Session details with the routing decision',
        auth: 'member',
        tag: 'sessions',
        params: [sessionId],
      }),
    },
    '/v1/sessions/{sessionId}/crm-url': {
      get: op({
        summary: 'CRM iframe URL for the session (F24)',
        auth: 'member',
        tag: 'sessions',
        params: [sessionId],
      }),
    },
    '/v1/history/sessions': {
      get: op({
        summary: 'Closed sessions by date, channel, agent, tag, visitor (cursor paging)',
        auth: 'member',
        tag: 'history',
        params: ['from', 'to', 'channel', 'agentId', 'visitorId', 'tag', 'cursor']
          .map((n) => param(n, 'query'))
          .concat([param('limit', 'query', INT)]),
      }),
    },
    '/v1/config/public': {
      get: op({ summary: 'Tag tree, skill groups and console settings', auth: 'member', tag: 'config' }),
    },
    '/v1/admin/config': {
      get: op({ summary: 'Whole tenant configuration', auth: 'admin', tag: 'admin' }),
    },
    '/v1/admin/config/{section}': {
      put: op({
        summary: 'Replace one configuration section',
        auth: 'admin',
        tag: 'admin',
        params: [
          param('section', 'path', {
            type: 'string',
            enum: ['routing', 'settings', 'associations', 'tags', 'sensitive', 'webhooks', 'crm'],
          }),
        ],
        body: {},
      }),
    },
    '/v1/admin/tenant': {
      get: op({ summary: 'Tenant record', auth: 'admin', tag: 'admin' }),
      patch: op({
        summary: 'Rename; history retention in days',
        auth: 'admin',
        tag: 'admin',
        body: { type: 'object', properties: { name: STR, retentionDays: INT } },
      }),
    },
    '/v1/admin/members': {
      get: op({ summary: 'Members (no password hashes)', auth: 'admin', tag: 'admin' }),
      post: op({ summary: 'Create a member', auth: 'admin', tag: 'admin', body: OBJ }),
    },
    '/v1/admin/members/{memberId}': {
      patch: op({
        summary: 'Change name, role, cap, groups, password',
        auth: 'admin',
        tag: 'admin',
        params: [param('memberId', 'path')],
        body: OBJ,
      }),
      delete: op({
        summary: 'Remove a member',
        auth: 'admin',
        tag: 'admin',
        params: [param('memberId', 'path')],
      }),
    },
    '/v1/admin/api-keys': {
      get: op({ summary: 'Partner API keys (no secrets)', auth: 'admin', tag: 'admin' }),
      post: op({
        summary: 'Create a partner API key (shown once)',
        auth: 'admin',
        tag: 'admin',
        body: { type: 'object', properties: { name: STR, scopes: { type: 'array', items: STR } } },
      }),
    },
    '/v1/admin/api-keys/{keyId}': {
      delete: op({
        summary: 'Revoke a partner API key',
        auth: 'admin',
        tag: 'admin',
        params: [param('keyId', 'path')],
      }),
    },
    '/v1/admin/webhooks/dead-letters': {
      get: op({
        summary: 'Webhook events that used all their attempts',
        auth: 'admin',
        tag: 'webhooks',
        params: [param('limit', 'query', INT)],
      }),
    },
    '/v1/admin/webhooks/dead-letters/redeliver': {
      post: op({
        summary: 'Deliver a dead letter once more',
        auth: 'admin',
        tag: 'webhooks',
        body: { type: 'object', properties: { key: STR } },
      }),
    },
    '/v1/admin/webhooks/stats': {
      get: op({ summary: 'Webhook delivery counters', auth: 'admin', tag: 'webhooks' }),
    },
    '/v1/admin/reports': {
      get: op({
        summary:
          'Statistics / custom report over closed sessions: from, to (YYYY-MM-DD, ≤ 90 days), metrics (≤ 10, comma-separated), dimensions (≤ 2), granularity (hour|day|week|month)',
        auth: 'admin',
        tag: 'admin',
      }),
    },
    '/v1/admin/reports/sessions': {
      get: op({
        summary:
          'The sessions behind one report row: the report parameters plus key (JSON array), basis, limit',
        auth: 'admin',
        tag: 'admin',
      }),
    },
    '/v1/agents': {
      get: op({ summary: 'Colleagues with status and load (for transfers)', auth: 'member', tag: 'agents' }),
    },
    '/v1/admin/dispatch': {
      get: op({ summary: "Skill-group queues and every agent's load", auth: 'admin', tag: 'admin' }),
    },
    '/v1/tickets': {
      post: op({
        summary: 'Create a ticket, optionally from a session (transcript attached)',
        auth: 'member',
        tag: 'tickets',
        body: {
          type: 'object',
          properties: { subject: STR, description: STR, priority: STR, sessionId: STR, assigneeId: STR },
        },
      }),
      get: op({
        summary: 'Tickets (agents: their own; admins: all)',
        auth: 'member',
        tag: 'tickets',
        params: [param('limit', 'query', INT), param('cursor', 'query')],
      }),
    },
    '/v1/tickets/{ticketId}': {
      get: op({ summary: 'One ticket', auth: 'member', tag: 'tickets', params: [param('ticketId', 'path')] }),
      patch: op({
        summary: 'Status (open → pending/solved/closed …), priority, assignee',
        auth: 'member',
        tag: 'tickets',
        params: [param('ticketId', 'path')],
        body: { type: 'object', properties: { status: STR, priority: STR, assigneeId: STR } },
      }),
    },
    '/v1/tickets/{ticketId}/comments': {
      post: op({
        summary: 'Comment on a ticket',
        auth: 'member',
        tag: 'tickets',
        params: [param('ticketId', 'path')],
        body: { type: 'object', properties: { text: STR } },
      }),
    },
    '/v1/files': {
      post: op({
        summary:
          'Upload an image or file (raw body, content-type = its type, at most SB_MAX_FILE_BYTES); answers {fileId, name, mime, size, url}',
        auth: 'member',
        tag: 'files',
        params: [param('name', 'query', STR, true)],
      }),
    },
    '/v1/files/{tenantId}/{fileId}': {
      get: op({
        summary: 'Download an attachment by its capability URL (sig from the upload answer)',
        auth: 'none',
        tag: 'files',
        params: [param('tenantId', 'path'), param('fileId', 'path'), param('sig', 'query', STR, true)],
      }),
    },
    '/v1/me/quick-replies': {
      get: op({ summary: "The caller's personal quick replies", auth: 'member', tag: 'console' }),
      put: op({
        summary: 'Replace the personal quick replies (at most 200)',
        auth: 'member',
        tag: 'console',
        body: { type: 'object', properties: { quickReplies: { type: 'array', items: OBJ } } },
      }),
    },
    '/v1/visitor/availability': {
      get: op({
        summary: 'Visitor token: whether an agent is online now ({available, agentsOnline})',
        auth: 'member',
        tag: 'visitors',
      }),
    },
    '/v1/visitor/offline-message': {
      post: op({
        summary: 'Visitor token: leave a message while nobody is working; it becomes a ticket',
        auth: 'member',
        tag: 'visitors',
        body: { type: 'object', required: ['text'], properties: { contact: STR, text: STR } },
      }),
    },
    '/v1/platform/cluster': {
      get: op({
        summary:
          'Cluster status: members, shard placement, this node’s shards and epochs, handoffs in progress, link backlogs',
        auth: 'platform',
        tag: 'platform',
      }),
    },
    '/v1/queue': {
      get: op({
        summary: 'Per skill group: the sessions waiting and since when',
        auth: 'member',
        tag: 'console',
      }),
    },
    '/v1/visitors/online': {
      get: op({
        summary: 'Web visitors on the site now',
        auth: 'member',
        tag: 'visitors',
        params: [param('limit', 'query', INT)],
      }),
    },
    '/v1/visitors/{visitorId}': {
      get: op({
        summary: 'Visitor profile: tags, trail, sessions',
        auth: 'member',
        tag: 'visitors',
        params: [visitorId],
      }),
    },
    '/v1/visitors/{visitorId}/tags': {
      post: op({
        summary: 'Add/remove visitor tags',
        auth: 'member',
        tag: 'visitors',
        params: [visitorId],
        body: OBJ,
      }),
    },
    '/v1/visitors/{visitorId}/invite': {
      post: op({ summary: 'Start a proactive chat', auth: 'member', tag: 'visitors', params: [visitorId] }),
    },
    '/v1/channels/{channel}/{tenantId}/{associationId}': {
      get: op({
        summary: 'WeChat/Weibo URL verification (signature, timestamp, nonce, echostr)',
        auth: 'none',
        tag: 'channels',
        params: [
          param('channel', 'path'),
          param('tenantId', 'path'),
          param('associationId', 'path'),
          ...['signature', 'timestamp', 'nonce', 'echostr'].map((n) => param(n, 'query')),
        ],
      }),
      post: op({
        summary: 'WeChat (XML) / Weibo (JSON) message callback, signed in the query',
        auth: 'none',
        tag: 'channels',
        params: [
          param('channel', 'path'),
          param('tenantId', 'path'),
          param('associationId', 'path'),
          ...['signature', 'timestamp', 'nonce'].map((n) => param(n, 'query')),
        ],
      }),
    },
    '/v1/partner/tenant': {
      get: op({ summary: 'Tenant (scope read)', auth: 'apiKey', tag: 'partner' }),
      patch: op({
        summary: 'Update the tenant (scope admin)',
        auth: 'apiKey',
        tag: 'partner',
        body: { type: 'object', properties: { name: STR, retentionDays: INT } },
      }),
    },
    '/v1/partner/agents': {
      get: op({ summary: 'Agents (scope read)', auth: 'apiKey', tag: 'partner' }),
    },
    '/v1/partner/sessions': {
      post: op({
        summary: "Open (or return) a visitor's session (scope write)",
        auth: 'apiKey',
        tag: 'partner',
        body: { type: 'object', properties: { visitorId: STR, visitorName: STR, entry: STR, channel: STR } },
      }),
    },
    '/v1/partner/sessions/{sessionId}': {
      get: op({ summary: 'Session (scope read)', auth: 'apiKey', tag: 'partner', params: [sessionId] }),
    },
    '/v1/partner/sessions/{sessionId}/messages': {
      post: op({
        summary: "A visitor's message, idempotent on clientMsgId (scope write)",
        auth: 'apiKey',
        tag: 'partner',
        params: [sessionId],
        body: { type: 'object', properties: { visitorId: STR, clientMsgId: STR, text: STR } },
      }),
    },
    '/v1/partner/sessions/{sessionId}/close': {
      post: op({
        summary: 'Close a session (scope write)',
        auth: 'apiKey',
        tag: 'partner',
        params: [sessionId],
      }),
    },
    '/v1/partner/sessions/{sessionId}/events': {
      get: op({
        summary: "A session's events (scope read)",
        auth: 'apiKey',
        tag: 'partner',
        params: [sessionId, param('afterSeq', 'query', INT), param('limit', 'query', INT)],
      }),
    },
    '/v1/partner/events': {
      get: op({
        summary: "The tenant's event feed from a cursor (scope read)",
        auth: 'apiKey',
        tag: 'partner',
        params: [param('afterCursor', 'query', INT), param('limit', 'query', INT)],
      }),
    },
    '/v1/platform/org-keys': {
      get: op({ summary: 'Organisation keys (platform operator)', auth: 'platform', tag: 'platform' }),
      post: op({
        summary: 'Create an organisation key for several tenants (shown once)',
        auth: 'platform',
        tag: 'platform',
        body: {
          type: 'object',
          properties: {
            name: STR,
            tenants: { type: 'array', items: STR },
            scopes: { type: 'array', items: STR },
          },
        },
      }),
    },
    '/v1/platform/org-keys/{keyId}': {
      delete: op({
        summary: 'Revoke an organisation key',
        auth: 'platform',
        tag: 'platform',
        params: [param('keyId', 'path')],
      }),
    },
    '/v1/openapi.json': {
      get: op({ summary: 'This document', auth: 'none', tag: 'meta' }),
    },
    '/v1/health': {
      get: op({ summary: 'Liveness (503 while draining)', auth: 'none', tag: 'meta' }),
    },
    '/metrics': {
      get: op({ summary: 'Prometheus metrics (text exposition)', auth: 'none', tag: 'meta' }),
    },
  },
} as const;
