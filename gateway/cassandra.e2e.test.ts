/**
 * Chat over the gateway with history in a real Apache Cassandra (started by the project's script),
 * including Cassandra going away and coming back in the middle of a conversation.
 * In CI (CI=true) this never skips.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureCassandra, cassandraTestsCanRun, stopCassandra } from '../scripts/services.ts';
import type { AckFrame, ErrorFrame, SessionEvent, SessionFrame } from '../protos/ws-v1.ts';
import { boot, login, TestClient, visitorToken, type Booted } from './testing.ts';

const PORT = 19043;
const STORAGE_PORT = 17001;
const haveJava = cassandraTestsCanRun('the chat-on-Cassandra tests');

describe.runIf(haveJava)('gateway on cassandra', () => {
  let env: Booted;
  beforeAll(async () => {
    await ensureCassandra({ port: PORT, storagePort: STORAGE_PORT, wipe: true });
    env = await boot({
      store: 'cassandra',
      workers: 1,
      cassandra: {
        contactPoints: ['127.0.0.1'],
        port: PORT,
        keyspace: 'sb_e2e',
        localDataCenter: 'datacenter1',
        consistency: 'localQuorum',
        replication: { class: 'SimpleStrategy', replication_factor: 1 },
        connectAttempts: 5,
      },
    });
  }, 240_000);
  afterAll(async () => {
    await env?.stop();
    await stopCassandra({ port: PORT, wipe: true });
  }, 60_000);

  it('cassandra - a Cassandra restart mid-chat loses no acknowledged message and duplicates none', async () => {
    const agent = await TestClient.connect(
      env.wsUrl,
      'agent',
      (await login(env.url, 'agent1@demo.test')).token,
    );
    const vt = await visitorToken(env.url);
    const v = await TestClient.connect(env.wsUrl, 'visitor', vt.token);
    v.send({ type: 'open' });
    const sid = (await v.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
    await agent.next((f) => f.type === 'assigned');

    const acked = new Map<string, number>();
    const sendAndWait = async (id: string): Promise<AckFrame | ErrorFrame> => {
      v.send({ type: 'send', sessionId: sid, clientMsgId: id, text: `text ${id}` });
      const f = await v.next<AckFrame | ErrorFrame>(
        (x) => (x.type === 'ack' && x.clientMsgId === id) || (x.type === 'error' && x.ref === id),
        30_000,
      );
      if (f.type === 'ack') acked.set(id, f.seq);
      return f;
    };
    for (let i = 0; i < 10; i++) expect((await sendAndWait(`before-${i}`)).type).toBe('ack');

    await stopCassandra({ port: PORT });
    const during: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = `during-${i}`;
      during.push(id);
      const f = await sendAndWait(id);
      // While the store is down a sender gets a typed error, never a false ack.
      if (f.type === 'error')
        expect(['SB_ERR_STORE_UNAVAILABLE', 'SB_ERR_TIMEOUT', 'SB_ERR_SEQ_CONFLICT']).toContain(f.code);
    }
    await ensureCassandra({ port: PORT, storagePort: STORAGE_PORT });

    // The client resends everything it has no ack for, with the same ids, until acknowledged.
    for (const id of during) {
      for (let attempt = 0; attempt < 20 && !acked.has(id); attempt++) {
        const f = await sendAndWait(id);
        if (f.type === 'error') await new Promise((r) => setTimeout(r, 1000));
      }
      expect(acked.has(id), id).toBe(true);
    }
    for (let i = 0; i < 5; i++) expect((await sendAndWait(`after-${i}`)).type).toBe('ack');

    const r = await fetch(`${env.url}/v1/sessions/${sid}/events?afterSeq=0&limit=1000`, {
      headers: { authorization: `Bearer ${vt.token}` },
    });
    const { events } = (await r.json()) as { events: SessionEvent[] };
    const messages = events.filter((e) => e.body.kind === 'message');
    const ids = messages.map((e) => (e.body.kind === 'message' ? e.body.clientMsgId : ''));
    // Every acknowledged message is stored exactly once, at the seq its ack named; seqs are dense.
    expect(new Set(ids).size).toBe(ids.length);
    for (const [id, seq] of acked)
      expect(messages.find((e) => e.seq === seq)?.body).toMatchObject({ clientMsgId: id });
    expect(ids.length).toBe(acked.size);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
    agent.close();
    v.close();
  }, 180_000);
});
