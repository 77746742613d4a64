/**
 * Statistics over real sockets: sessions served and closed through the gateway appear in the
 * tenant's reports, drill down to themselves, and never in another tenant's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Directory, seedDemo } from '../actors/index.ts';
import type { SessionFrame } from '../protos/ws-v1.ts';
import type { DrillAnswer, ReportAnswer } from '../analytics/index.ts';
import { api, boot, login, TestClient, visitorToken, type Booted } from './testing.ts';

let env: Booted;
let admin = '';
const sessions: string[] = [];
const today = new Date().toISOString().slice(0, 10);

beforeAll(async () => {
  env = await boot({ workers: 0 });
  await seedDemo(
    new Directory(env.server.runtime.stores.state),
    { tenantId: 'acme', password: 'switchboard', agents: 1, agentMaxConcurrent: 5 },
    Date.now(),
  );
  admin = (await login(env.url, 'admin@demo.test')).token;
  const agent = await TestClient.connect(
    env.wsUrl,
    'agent',
    (await login(env.url, 'agent1@demo.test')).token,
  );
  for (let i = 0; i < 3; i++) {
    const v = await TestClient.connect(env.wsUrl, 'visitor', (await visitorToken(env.url)).token);
    v.send({ type: 'open', channel: i === 2 ? 'app' : 'web' });
    const sid = (await v.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
    await v.nextEvent((e) => e.body.kind === 'assigned');
    v.send({ type: 'send', sessionId: sid, clientMsgId: `q${i}`, text: 'hello?' });
    await v.next((f) => f.type === 'ack');
    if (i < 2) {
      await agent.nextEvent(
        (e) => e.sessionId === sid && e.body.kind === 'message' && e.body.from === 'visitor',
      );
      agent.send({ type: 'send', sessionId: sid, clientMsgId: `a${i}`, text: 'hi!' });
      await agent.next((f) => f.type === 'ack');
    }
    v.send({ type: 'close', sessionId: sid });
    await v.next((f) => f.type === 'session' && f.session.state === 'closed');
    if (i === 0) {
      v.send({ type: 'rate', sessionId: sid, score: 5 });
      await v.next((f) => f.type === 'session' && f.session.rating !== undefined);
    }
    sessions.push(sid);
    v.close();
  }
  agent.close();
});
afterAll(async () => {
  await env.stop();
});

describe('reports', () => {
  it('reports - closed sessions are counted by channel and validity, with response times', async () => {
    const q = `from=${today}&to=${today}&metrics=sessions,messages,first_response_avg,satisfaction_avg,unique_visitors&dimensions=channel,validity`;
    const r = await api<ReportAnswer>(env.url, 'GET', `/v1/admin/reports?${q}`, admin);
    expect(r.status).toBe(200);
    expect(r.body.complete).toBe(true);
    expect(r.body.rows.map((x) => [x.key, x.values['sessions'], x.values['messages']])).toEqual([
      [['app', 'invalid'], 1, 1],
      [['web', 'valid'], 2, 4],
    ]);
    expect(r.body.totals.values['sessions']).toBe(3);
    expect(r.body.totals.values['unique_visitors']).toBe(3);
    expect(r.body.totals.values['satisfaction_avg']).toBe(5);
    const web = r.body.rows.find((x) => x.key[0] === 'web')!;
    expect(web.values['first_response_avg']).toBeGreaterThanOrEqual(0);
    expect(r.body.rows.find((x) => x.key[0] === 'app')!.values['first_response_avg']).toBeNull();
  });

  it('reports - a row drills down to the sessions behind it', async () => {
    const q = `from=${today}&to=${today}&metrics=sessions&dimensions=channel&key=${encodeURIComponent('["web"]')}`;
    const r = await api<DrillAnswer>(env.url, 'GET', `/v1/admin/reports/sessions?${q}`, admin);
    expect(r.status).toBe(200);
    expect(r.body.sessions.map((s) => s.sessionId).sort()).toEqual(sessions.slice(0, 2).sort());
  });

  it('reports - another tenant sees none of it; agents and bad specs are refused', async () => {
    const other = (await login(env.url, 'admin@acme.test')).token;
    const r = await api<ReportAnswer>(env.url, 'GET', `/v1/admin/reports?metrics=sessions`, other);
    expect(r.status).toBe(200);
    expect(r.body.totals.values['sessions']).toBe(0);
    expect(r.body.rows).toEqual([]);
    const agent = (await login(env.url, 'agent1@demo.test')).token;
    expect((await api(env.url, 'GET', `/v1/admin/reports?metrics=sessions`, agent)).status).toBe(403);
    const bad = await api<{ error: { code: string } }>(
      env.url,
      'GET',
      `/v1/admin/reports?metrics=nope`,
      admin,
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('SB_ERR_INVALID_FIELD');
  });
});
