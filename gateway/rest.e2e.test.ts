/**
 * The REST side of the partner API and the OpenAPI document: every registered HTTP route is
 * documented and every documented route exists; the partner routes work with API keys and scopes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { api, boot, login, TestClient, type Booted } from './testing.ts';

let env: Booted | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await env?.stop();
  env = undefined;
});

describe('OpenAPI', () => {
  it('documents exactly the routes the server serves', async () => {
    env = await boot();
    const r = await fetch(`${env.url}/v1/openapi.json`);
    expect(r.status).toBe(200);
    const doc = (await r.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toMatch(/^3\./);
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths))
      for (const m of Object.keys(ops)) documented.add(`${m} ${path}`);
    const served = new Set(
      env.server.routes
        .filter((x) => x.method !== 'ws' && x.method !== 'any' && x.path !== '/*')
        .map((x) => `${x.method} ${x.path.replace(/:([A-Za-z]+)/g, '{$1}')}`),
    );
    expect(
      [...served].filter((x) => !documented.has(x)),
      'served but not documented',
    ).toEqual([]);
    expect(
      [...documented].filter((x) => !served.has(x)),
      'documented but not served',
    ).toEqual([]);
    // Path parameters are declared.
    for (const [path, ops] of Object.entries(doc.paths)) {
      const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      for (const o of Object.values(ops) as Array<{ parameters?: Array<{ name: string; in: string }> }>) {
        const declared = (o.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name);
        expect(declared.sort(), path).toEqual([...names].sort());
      }
    }
  });
});

describe('partner REST API', () => {
  it('the gRPC operations over HTTP with API keys, scopes and typed errors', async () => {
    env = await boot();
    const admin = await login(env.url, 'admin@demo.test');
    const key = async (scopes: string[]): Promise<string> =>
      (
        await api<{ key: string }>(env!.url, 'POST', '/v1/admin/api-keys', admin.token, {
          name: 'web',
          scopes,
        })
      ).body.key;
    const write = await key(['write']);
    const read = await key(['read']);
    const agentTok = await login(env.url, 'agent1@demo.test');
    const agent = await TestClient.connect(env.wsUrl, 'agent', agentTok.token);
    clients.push(agent);

    const s = await api<{ sessionId: string; visitorId: string }>(
      env.url,
      'POST',
      '/v1/partner/sessions',
      write,
      {
        visitorId: 'web-user-1',
        visitorName: 'Grace',
      },
    );
    expect(s.status, JSON.stringify(s.body)).toBe(200);
    await agent.next((f) => f.type === 'assigned');
    const sent = await api<{ seq: number; duplicate: boolean }>(
      env.url,
      'POST',
      `/v1/partner/sessions/${s.body.sessionId}/messages`,
      write,
      { visitorId: 'web-user-1', clientMsgId: 'r1', text: 'hello over REST' },
    );
    expect(sent.body.duplicate).toBe(false);
    await agent.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'hello over REST');
    const evs = await api<{ events: Array<{ kind: string }> }>(
      env.url,
      'GET',
      `/v1/partner/sessions/${s.body.sessionId}/events?afterSeq=0&limit=50`,
      read,
    );
    expect(evs.body.events.map((e) => e.kind)).toContain('message');
    expect((await api(env.url, 'GET', '/v1/partner/tenant', read)).status).toBe(200);

    // Scopes, bad input, unknown fields, bad keys, other kinds of tokens.
    const msg = { visitorId: 'web-user-1', clientMsgId: 'r2', text: 'x' };
    expect(
      (await api(env.url, 'POST', `/v1/partner/sessions/${s.body.sessionId}/messages`, read, msg)).status,
    ).toBe(403);
    expect((await api(env.url, 'PATCH', '/v1/partner/tenant', write, { name: 'x' })).status).toBe(403);
    expect((await api(env.url, 'POST', '/v1/partner/sessions', write, { visitorId: 'bad id' })).status).toBe(
      400,
    );
    expect(
      (await api(env.url, 'POST', '/v1/partner/sessions', write, { visitorId: 'ok', extra: 1 })).status,
    ).toBe(400);
    expect((await api(env.url, 'GET', '/v1/partner/sessions/nope', read)).status).toBe(404);
    expect((await api(env.url, 'GET', '/v1/partner/tenant', 'sbk_demo.x.y')).status).toBe(401);
    expect((await api(env.url, 'GET', '/v1/partner/tenant', admin.token)).status).toBe(401);
    // The feed is off until enabled, then paged by cursor.
    expect((await api(env.url, 'GET', '/v1/partner/events', read)).status).toBe(409);
    await api(env.url, 'PUT', '/v1/admin/config/webhooks', admin.token, { feed: true });
    await api(env.url, 'POST', `/v1/partner/sessions/${s.body.sessionId}/messages`, write, msg);
    let page: { events: Array<{ kind: string; cursor: number }>; nextCursor: number } = {
      events: [],
      nextCursor: 0,
    };
    for (let i = 0; i < 50 && page.events.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      page = (await api<typeof page>(env.url, 'GET', '/v1/partner/events?afterCursor=0', read)).body;
    }
    expect(page.events.map((e) => e.kind)).toContain('message.created');
    const closed = await api<{ state: string }>(
      env.url,
      'POST',
      `/v1/partner/sessions/${s.body.sessionId}/close`,
      write,
    );
    expect(closed.body.state).toBe('closed');
  });
});
