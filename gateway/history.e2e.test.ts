import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Directory, seedDemo, type HistoryPage } from '../actors/index.ts';
import type { SessionFrame } from '../protos/ws-v1.ts';
import { boot, login, ShiftedClock, TestClient, visitorToken, type Booted } from './testing.ts';

const DAY = 86_400_000;
let env: Booted;
const clock = new ShiftedClock();
const closed: Array<{ sid: string; agentId: string; channel: string; visitorId: string; day: string }> = [];
let adminToken = '';

async function search(
  token: string,
  query: Record<string, string | number>,
): Promise<{ status: number; body: HistoryPage & { error?: { code: string } } }> {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString();
  const r = await fetch(`${env.url}/v1/history/sessions?${qs}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: r.status, body: (await r.json()) as HistoryPage & { error?: { code: string } } };
}

beforeAll(async () => {
  env = await boot({ workers: 0 }, { clock });
  adminToken = (await login(env.url, 'admin@demo.test')).token;
  const agents = [
    await TestClient.connect(env.wsUrl, 'agent', (await login(env.url, 'agent1@demo.test')).token),
    await TestClient.connect(env.wsUrl, 'agent', (await login(env.url, 'agent2@demo.test')).token),
  ];
  // Six sessions over three days, two channels, served by both agents.
  for (let i = 0; i < 6; i++) {
    clock.offsetMs = -(2 - Math.floor(i / 2)) * DAY;
    const vt = await visitorToken(env.url);
    const v = await TestClient.connect(env.wsUrl, 'visitor', vt.token);
    const channel = i % 2 === 0 ? 'web' : 'app';
    v.send({ type: 'open', channel });
    const sid = (await v.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
    const assigned = await v.nextEvent((e) => e.body.kind === 'assigned');
    const agentId = assigned.body.kind === 'assigned' ? assigned.body.agentId : '';
    v.send({ type: 'close', sessionId: sid });
    await v.next((f) => f.type === 'session' && f.session.state === 'closed');
    closed.push({
      sid,
      agentId,
      channel,
      visitorId: vt.id,
      day: new Date(clock.now()).toISOString().slice(0, 10),
    });
    v.close();
  }
  clock.offsetMs = 0;
  for (const a of agents) a.close();
});
afterAll(async () => {
  await env.stop();
});

describe('history search', () => {
  it('history - admins page through every closed session, newest first, with cursors', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 10; i++) {
      const r = await search(adminToken, { from: closed[0]!.day, limit: 4, ...(cursor ? { cursor } : {}) });
      expect(r.status).toBe(200);
      seen.push(...r.body.sessions.map((s) => s.sessionId));
      cursor = r.body.nextCursor;
      if (!cursor) break;
    }
    expect(seen).toEqual([...closed].reverse().map((c) => c.sid));
  });

  it('history - filters by date range, channel, agent and visitor', async () => {
    const day0 = closed[0]!.day;
    const r1 = await search(adminToken, { from: day0, to: day0 });
    expect(r1.body.sessions.map((s) => s.sessionId).sort()).toEqual(
      closed
        .filter((c) => c.day === day0)
        .map((c) => c.sid)
        .sort(),
    );
    const r2 = await search(adminToken, { from: day0, channel: 'app' });
    expect(r2.body.sessions.every((s) => s.channel === 'app')).toBe(true);
    expect(r2.body.sessions).toHaveLength(3);
    const agentId = closed[0]!.agentId;
    const r3 = await search(adminToken, { from: day0, agentId });
    expect(r3.body.sessions.map((s) => s.sessionId).sort()).toEqual(
      closed
        .filter((c) => c.agentId === agentId)
        .map((c) => c.sid)
        .sort(),
    );
    const r4 = await search(adminToken, { from: day0, visitorId: closed[4]!.visitorId });
    expect(r4.body.sessions.map((s) => s.sessionId)).toEqual([closed[4]!.sid]);
  });

  it('history - agents see only their own sessions; visitors and other tenants see nothing', async () => {
    const day0 = closed[0]!.day;
    const a1 = (await login(env.url, 'agent1@demo.test')).token;
    const mine = await search(a1, { from: day0 });
    expect(mine.body.sessions.length).toBeGreaterThan(0);
    expect(mine.body.sessions.every((s) => s.agentId === 'agent1')).toBe(true);
    expect((await search(a1, { from: day0, agentId: 'agent2' })).status).toBe(403);
    expect((await search((await visitorToken(env.url)).token, { from: day0 })).status).toBe(403);
    await seedDemo(
      new Directory(env.server.runtime.stores.state),
      { tenantId: 'acme', password: 'switchboard', agents: 0, agentMaxConcurrent: 1 },
      Date.now(),
    );
    const acme = (await login(env.url, 'admin@acme.test')).token;
    const other = await search(acme, { from: day0 });
    expect(other.status).toBe(200);
    expect(other.body.sessions).toEqual([]);
  });

  it('history - bad queries get typed errors', async () => {
    const bad = async (q: Record<string, string | number>): Promise<string | undefined> =>
      (await search(adminToken, q)).body.error?.code;
    expect(await bad({ from: '2026-13-01' })).toBe('SB_ERR_INVALID_FIELD');
    expect(await bad({ from: '2026-01-01', to: '2026-12-31' })).toBe('SB_ERR_INVALID_FIELD');
    expect(await bad({ from: '2026-11-10', to: '2026-11-01' })).toBe('SB_ERR_INVALID_FIELD');
    expect(await bad({ limit: 0 })).toBe('SB_ERR_INVALID_FIELD');
    expect(await bad({ limit: 101 })).toBe('SB_ERR_INVALID_FIELD');
    expect(await bad({ cursor: 'garbage' })).toBe('SB_ERR_INVALID_FIELD');
    expect(await bad({ channel: 'x'.repeat(100) })).toBe('SB_ERR_INVALID_FIELD');
    const r = await fetch(`${env.url}/v1/history/sessions`);
    expect(r.status).toBe(401);
  });
});
