/**
 * Partner gRPC API end to end with the ts-proto generated client: API keys and scopes, a session
 * opened, written to, read and closed by a partner, typed errors as gRPC status codes, deadlines,
 * server reflection (protos/generated.test.ts checks the generated code is current).
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterEach, describe, expect, it } from 'vitest';
import {
  PartnerServiceClient,
  PartnerServiceService,
  type Session,
} from '../protos/gen/partner/v1/partner.pb.ts';
import { api, boot, login, TestClient, type Booted } from './testing.ts';

const require = createRequire(import.meta.url);

let env: Booted | undefined;
const closers: Array<() => void> = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await env?.stop();
  env = undefined;
});

function client(
  port: number,
  key: string,
): {
  call<Req, Res>(method: string, req: Req, deadlineMs?: number): Promise<Res>;
} {
  const c = new PartnerServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  closers.push(() => c.close());
  return {
    call<Req, Res>(method: string, req: Req, deadlineMs = 5000): Promise<Res> {
      const md = new grpc.Metadata();
      if (key) md.set('authorization', `Bearer ${key}`);
      const fn = (c as unknown as Record<string, (...a: unknown[]) => void>)[method]!.bind(c);
      return new Promise((resolve, reject) =>
        fn(req, md, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: Res) =>
          err ? reject(err) : resolve(res),
        ),
      );
    },
  };
}

async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return -1;
  } catch (e) {
    return (e as grpc.ServiceError).code;
  }
}

describe('partner gRPC API', () => {
  it('keys, scopes, sessions and errors over the generated client', async () => {
    env = await boot({ grpcPort: 0 });
    const port = env.server.grpcPort!;
    const admin = await login(env.url, 'admin@demo.test');
    const mk = async (scopes: string[]): Promise<string> => {
      const r = await api<{ key: string }>(env!.url, 'POST', '/v1/admin/api-keys', admin.token, {
        name: 'crm',
        scopes,
      });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body.key;
    };
    const writeKey = await mk(['write']);
    const readKey = await mk(['read']);
    const adminKey = await mk(['admin']);
    const w = client(port, writeKey);
    const r = client(port, readKey);

    // An agent online to serve the partner's session.
    const agentTok = await login(env.url, 'agent1@demo.test');
    const agent = await TestClient.connect(env.wsUrl, 'agent', agentTok.token);
    closers.push(() => agent.close());

    const s = await w.call<object, Session>('openSession', {
      visitorId: 'crm-user-42',
      visitorName: 'Ada',
      entry: '',
      channel: 'app',
    });
    expect(s).toMatchObject({ visitorId: 'crm-user-42', channel: 'app' });
    await agent.next((f) => f.type === 'assigned');
    const sent = await w.call<object, { seq: number; duplicate: boolean }>('sendMessage', {
      sessionId: s.sessionId,
      visitorId: 'crm-user-42',
      clientMsgId: 'p1',
      text: 'from the partner',
    });
    expect(sent.duplicate).toBe(false);
    const again = await w.call<object, { seq: number; duplicate: boolean }>('sendMessage', {
      sessionId: s.sessionId,
      visitorId: 'crm-user-42',
      clientMsgId: 'p1',
      text: 'from the partner',
    });
    expect(again).toMatchObject({ seq: sent.seq, duplicate: true });
    await agent.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'from the partner');
    const events = await r.call<object, { events: Array<{ seq: number; kind: string; bodyJson: string }> }>(
      'listEvents',
      {
        sessionId: s.sessionId,
        afterSeq: 0,
        limit: 100,
      },
    );
    expect(events.events.map((e) => e.kind)).toContain('message');
    expect(JSON.parse(events.events.find((e) => e.kind === 'message')!.bodyJson)).toMatchObject({
      text: 'from the partner',
    });

    // Scopes: read cannot write, write cannot administer; admin can.
    expect(
      await codeOf(
        r.call('sendMessage', {
          sessionId: s.sessionId,
          visitorId: 'crm-user-42',
          clientMsgId: 'x',
          text: 'x',
        }),
      ),
    ).toBe(grpc.status.PERMISSION_DENIED);
    expect(await codeOf(w.call('updateTenant', { name: 'Renamed', retentionDays: 0 }))).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    const t = await client(port, adminKey).call<object, { name: string; retentionDays: number }>(
      'updateTenant',
      {
        name: 'Renamed',
        retentionDays: 365,
      },
    );
    expect(t).toMatchObject({ name: 'Renamed', retentionDays: 365 });
    expect(
      (await r.call<object, { agents: Array<{ agentId: string }> }>('listAgents', {})).agents.map(
        (a) => a.agentId,
      ),
    ).toContain('agent1');

    // Typed errors as status codes; unknown and forged keys; another tenant's session is not found.
    expect(
      await codeOf(
        w.call('sendMessage', { sessionId: 'nope', visitorId: 'crm-user-42', clientMsgId: 'y', text: 'y' }),
      ),
    ).toBe(grpc.status.NOT_FOUND);
    expect(
      await codeOf(w.call('openSession', { visitorId: 'bad id!', visitorName: '', entry: '', channel: '' })),
    ).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await codeOf(client(port, '').call('getTenant', {}))).toBe(grpc.status.UNAUTHENTICATED);
    expect(await codeOf(client(port, writeKey.slice(0, -2) + 'xx').call('getTenant', {}))).toBe(
      grpc.status.UNAUTHENTICATED,
    );
    // A deadline that has passed is not served.
    expect(await codeOf(r.call('getTenant', {}, -1))).toBe(grpc.status.DEADLINE_EXCEEDED);

    // Revocation takes effect at once.
    const list = await api<Array<{ keyId: string; scopes: string[]; hash?: string }>>(
      env.url,
      'GET',
      '/v1/admin/api-keys',
      admin.token,
    );
    expect(list.body.every((k) => k.hash === undefined)).toBe(true);
    const readId = list.body.find((k) => k.scopes.join() === 'read')!.keyId;
    expect((await api(env.url, 'DELETE', `/v1/admin/api-keys/${readId}`, admin.token)).status).toBe(200);
    expect(await codeOf(r.call('getTenant', {}))).toBe(grpc.status.UNAUTHENTICATED);

    const closed = await w.call<object, Session>('closeSession', { sessionId: s.sessionId });
    expect(closed.state).toBe('closed');
  });

  it('checks the scope of every method before anything else', async () => {
    env = await boot({ grpcPort: 0 });
    const port = env.server.grpcPort!;
    const admin = await login(env.url, 'admin@demo.test');
    const keyFor = async (scopes: string[]): Promise<string> =>
      (await api<{ key: string }>(env!.url, 'POST', '/v1/admin/api-keys', admin.token, { name: 's', scopes }))
        .body.key;
    const read = client(port, await keyFor(['read']));
    const write = client(port, await keyFor(['write']));
    const needs: Record<string, 'read' | 'write' | 'admin'> = {
      createTenant: 'admin',
      getTenant: 'read',
      updateTenant: 'admin',
      listAgents: 'read',
      openSession: 'write',
      sendMessage: 'write',
      closeSession: 'write',
      getSession: 'read',
      listEvents: 'read',
    };
    // Every unary method of the service is in the table.
    const declared = Object.keys(PartnerServiceService).filter(
      (m) => !PartnerServiceService[m as keyof typeof PartnerServiceService].responseStream,
    );
    expect(declared.sort()).toEqual(Object.keys(needs).sort());
    for (const [method, scope] of Object.entries(needs)) {
      // An all-defaults request (every field present), decoded from an empty message.
      const req = PartnerServiceService[method as keyof typeof PartnerServiceService].requestDeserialize(
        Buffer.alloc(0),
      );
      const readCode = await codeOf(read.call(method, req));
      const writeCode = await codeOf(write.call(method, req));
      if (scope === 'read') {
        expect(readCode, method).not.toBe(grpc.status.PERMISSION_DENIED);
        expect(writeCode, method).not.toBe(grpc.status.PERMISSION_DENIED);
      } else {
        expect(readCode, method).toBe(grpc.status.PERMISSION_DENIED);
        expect(writeCode === grpc.status.PERMISSION_DENIED, method).toBe(scope === 'admin');
      }
    }
  });

  it('streams the tenant event feed and resumes from a cursor', async () => {
    env = await boot({ grpcPort: 0 });
    const port = env.server.grpcPort!;
    const admin = await login(env.url, 'admin@demo.test');
    const key = (
      await api<{ key: string }>(env.url, 'POST', '/v1/admin/api-keys', admin.token, {
        name: 'feed',
        scopes: ['write'],
      })
    ).body.key;
    const c = new PartnerServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    closers.push(() => c.close());
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${key}`);
    // Off by default: a typed refusal.
    const off = await new Promise<number>((resolve) => {
      const st = c.subscribeEvents({ afterCursor: 0 }, md);
      st.on('error', (e: grpc.ServiceError) => resolve(e.code));
      st.on('data', () => undefined);
    });
    expect(off).toBe(grpc.status.FAILED_PRECONDITION);
    expect((await api(env.url, 'PUT', '/v1/admin/config/webhooks', admin.token, { feed: true })).status).toBe(
      200,
    );

    const w = client(port, key);
    const send = async (sessionId: string, n: number): Promise<void> => {
      await w.call('sendMessage', {
        sessionId,
        visitorId: 'feed-user',
        clientMsgId: `f${n}`,
        text: `feed ${n}`,
      });
    };
    const s = await w.call<object, Session>('openSession', {
      visitorId: 'feed-user',
      visitorName: '',
      entry: '',
      channel: '',
    });
    for (let i = 0; i < 5; i++) await send(s.sessionId, i);

    const collect = (
      after: number,
      until: (got: Array<{ cursor: number; id: string; kind: string; dataJson: string }>) => boolean,
    ) =>
      new Promise<Array<{ cursor: number; id: string; kind: string; dataJson: string }>>(
        (resolve, reject) => {
          const got: Array<{ cursor: number; id: string; kind: string; dataJson: string }> = [];
          const st = c.subscribeEvents({ afterCursor: after }, md);
          st.on('data', (e: { cursor: number; id: string; kind: string; dataJson: string }) => {
            got.push(e);
            if (until(got)) {
              st.cancel();
              resolve(got);
            }
          });
          st.on('error', (e: grpc.ServiceError) =>
            e.code === grpc.status.CANCELLED ? undefined : reject(e),
          );
        },
      );
    const first = await collect(0, (g) => g.filter((e) => e.kind === 'message.created').length >= 5);
    expect(first.filter((e) => e.kind === 'message.created').map((e) => JSON.parse(e.dataJson).text)).toEqual(
      [0, 1, 2, 3, 4].map((i) => `feed ${i}`),
    );
    const last = first.at(-1)!.cursor;
    for (let i = 5; i < 8; i++) await send(s.sessionId, i);
    const resumed = await collect(last, (g) => g.filter((e) => e.kind === 'message.created').length >= 3);
    expect(resumed.every((e) => e.cursor > last)).toBe(true);
    expect(
      resumed.filter((e) => e.kind === 'message.created').map((e) => JSON.parse(e.dataJson).text),
    ).toEqual([5, 6, 7].map((i) => `feed ${i}`));
  });

  it('org keys: a partner serving several tenants creates a tenant and acts on the ones it covers', async () => {
    const platformToken = 'p'.repeat(40);
    env = await boot({ grpcPort: 0, platformToken });
    const port = env.server.grpcPort!;
    const platform = (method: string, path: string, body?: unknown, tok = platformToken) =>
      api<{ key: string; error?: { code: string } }>(env!.url, method, path, tok, body);
    expect((await platform('GET', '/v1/platform/org-keys', undefined, 'wrong')).status).toBe(401);
    const made = await platform('POST', '/v1/platform/org-keys', {
      name: 'reseller',
      tenants: ['demo', 'acme'],
      scopes: ['admin'],
    });
    expect(made.status, JSON.stringify(made.body)).toBe(200);
    const orgKey = made.body.key;
    const call = <Res>(method: string, req: object, tenant: string): Promise<Res> => {
      const c = new PartnerServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      closers.push(() => c.close());
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${orgKey}`);
      md.set('x-sb-tenant', tenant);
      const fn = (c as unknown as Record<string, (...a: unknown[]) => void>)[method]!.bind(c);
      return new Promise((resolve, reject) =>
        fn(req, md, { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res: Res) =>
          err ? reject(err) : resolve(res),
        ),
      );
    };
    const t = await call<{ tenantId: string; name: string }>(
      'createTenant',
      {
        tenantId: 'acme',
        name: 'ACME',
        adminEmail: 'boss@acme.test',
        adminPassword: 'acme-password',
        retentionDays: 0,
      },
      'acme',
    );
    expect(t).toMatchObject({ tenantId: 'acme', name: 'ACME' });
    // The new tenant's admin can log in; the org key reads both covered tenants and no other.
    expect((await login(env.url, 'boss@acme.test', 'acme-password')).tenantId).toBe('acme');
    expect((await call<{ name: string }>('getTenant', {}, 'demo')).name).toBe('Demo');
    expect(await codeOf(call('getTenant', {}, 'other'))).toBe(grpc.status.PERMISSION_DENIED);
    expect(
      await codeOf(
        call(
          'createTenant',
          {
            tenantId: 'zeta',
            name: 'Z',
            adminEmail: 'z@z.test',
            adminPassword: 'zzzzzzzz',
            retentionDays: 0,
          },
          'zeta',
        ),
      ),
    ).toBe(grpc.status.PERMISSION_DENIED);
    // A tenant key cannot create tenants.
    const admin = await login(env.url, 'admin@demo.test');
    const tenantKey = (
      await api<{ key: string }>(env.url, 'POST', '/v1/admin/api-keys', admin.token, {
        name: 't',
        scopes: ['admin'],
      })
    ).body.key;
    expect(
      await codeOf(
        client(port, tenantKey).call('createTenant', {
          tenantId: 'demo',
          name: 'x',
          adminEmail: 'a@b.test',
          adminPassword: 'xxxxxxxx',
          retentionDays: 0,
        }),
      ),
    ).toBe(grpc.status.PERMISSION_DENIED);
    // Over REST too, with the header; revocation stops it.
    const rest = await fetch(`${env.url}/v1/partner/tenant`, {
      headers: { authorization: `Bearer ${orgKey}`, 'x-sb-tenant': 'acme' },
    });
    expect(((await rest.json()) as { name: string }).name).toBe('ACME');
    const list = await api<Array<{ keyId: string; hash?: string }>>(
      env.url,
      'GET',
      '/v1/platform/org-keys',
      platformToken,
    );
    expect(list.body.every((k) => k.hash === undefined)).toBe(true);
    await platform('DELETE', `/v1/platform/org-keys/${list.body[0]!.keyId}`);
    expect(await codeOf(call('getTenant', {}, 'demo'))).toBe(grpc.status.UNAUTHENTICATED);
  });

  it('lists its services through server reflection', async () => {
    env = await boot({ grpcPort: 0 });
    const reflectionProto = join(
      require.resolve('@grpc/reflection/package.json'),
      '../build/proto/grpc/reflection/v1/reflection.proto',
    );
    const def = grpc.loadPackageDefinition(protoLoader.loadSync(reflectionProto)) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
    };
    const c = new def.grpc.reflection.v1.ServerReflection(
      `127.0.0.1:${env.server.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    closers.push(() => c.close());
    const names = await new Promise<string[]>((resolve, reject) => {
      const stream = (
        c as unknown as {
          serverReflectionInfo(): grpc.ClientDuplexStream<
            object,
            { listServicesResponse?: { service: Array<{ name: string }> } }
          >;
        }
      ).serverReflectionInfo();
      stream.on('data', (res: { listServicesResponse?: { service: Array<{ name: string }> } }) => {
        resolve((res.listServicesResponse?.service ?? []).map((s: { name: string }) => s.name));
        stream.end();
      });
      stream.on('error', reject);
      stream.write({ listServices: '' });
    });
    expect(names).toContain('switchboard.partner.v1.PartnerService');
  });
});
