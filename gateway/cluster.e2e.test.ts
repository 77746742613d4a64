/**
 * Two gateway nodes in cluster mode (real Redis, real gRPC between them, one shared store): a
 * visitor on one node chats with an agent on the other; the operator's status endpoint shows the
 * members and the shard split; one node leaves gracefully (drain) while the chat goes on, its
 * agent reconnects to the other node and resumes by seq with nothing lost or doubled. Node b runs
 * its actors on a worker thread, node a on its gateway thread. And Redis restarts in the middle of
 * a chat: the chat goes on live and the membership comes back. And churn: a node that wins the
 * session's shard joins and leaves four times mid-chat, then joins for good; the agent's live feed
 * follows every move without resuming.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AckFrame, SessionEvent, SessionFrame } from '../protos/ws-v1.ts';
import { ensureRedis, redisTestsCanRun, stopRedis } from '../scripts/services.ts';
import { KINDS } from '../actors/messages.ts';
import { dispatchKey, tkey } from '../actors/ids.ts';
import { shardOf } from '../engine/hash.ts';
import { DEFAULTS } from '../engine/types.ts';
import type { ServerConfig } from './config.ts';
import {
  api,
  boot,
  joinerId,
  listedOnline,
  login,
  TestClient,
  visitorToken,
  type Booted,
} from './testing.ts';

const PORT = 6395;
const PLATFORM = 'p'.repeat(40);
const haveRedis = redisTestsCanRun('the gateway cluster tests');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Status {
  members: Array<{ id: string }>;
  owned: Array<{ shard: number }>;
  placement: Record<string, number>;
  handoffs: { incoming: number[]; outgoing: number[] };
}

async function status(b: Booted): Promise<Status> {
  const r = await fetch(`${b.url}/v1/platform/cluster`, { headers: { authorization: `Bearer ${PLATFORM}` } });
  expect(r.status).toBe(200);
  return (await r.json()) as Status;
}

describe.runIf(haveRedis)('gateway cluster mode', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-gw-cluster-'));
  const prefix = `g${Date.now().toString(36)}:`;
  const nodes: Booted[] = [];
  const clients: TestClient[] = [];
  beforeAll(async () => {
    await ensureRedis({ port: PORT });
  }, 120_000);
  const dirs = [dataDir];
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const n of nodes) await n.server.drain().catch(() => undefined);
    await stopRedis({ port: PORT });
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const settled = async (ns: Booted[]): Promise<boolean> => {
    const ss = await Promise.all(ns.map(status));
    return (
      ss.every((x) => x.members.length === ns.length) && ss.reduce((x, y) => x + y.owned.length, 0) === 1024
    );
  };
  /** Waits until both views agree and every shard is served (true), or `tries` × 100 ms pass. */
  const settle = async (ns: Booted[], tries: number): Promise<boolean> => {
    for (let i = 0; i < tries; i++) {
      if (await settled(ns)) return true;
      await sleep(100);
    }
    return settled(ns);
  };
  /** Sends until acknowledged; transient refusals (a shard between owners) are tried again. */
  const sendAcked = async (c: TestClient, sessionId: string, id: string): Promise<void> => {
    const end = Date.now() + 20_000;
    while (Date.now() < end) {
      c.send({ type: 'send', sessionId, clientMsgId: id, text: id });
      const f = await c.next(
        (x) => (x.type === 'ack' && x.clientMsgId === id) || (x.type === 'error' && x.ref === id),
        20_000,
      );
      if (f.type === 'ack') return;
      await sleep(200);
    }
    throw new Error(`${id} was never acknowledged`);
  };
  /** An agent on node `ag`, a visitor on node `vis`; the visitor opens a chat the agent is given. */
  const chatAcross = async (
    ag: Booted,
    vis: Booted,
  ): Promise<{ agent: TestClient; visitor: TestClient; sid: string }> => {
    const agentTok = await login(ag.url, 'agent1@demo.test');
    const agent = await TestClient.connect(ag.wsUrl, 'agent', agentTok.token);
    clients.push(agent);
    const vt = await visitorToken(vis.url);
    const visitor = await TestClient.connect(vis.wsUrl, 'visitor', vt.token);
    clients.push(visitor);
    visitor.send({ type: 'open', ref: 'o' });
    const sid = (await visitor.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
    await agent.next((f) => f.type === 'assigned', 10_000);
    return { agent, visitor, sid };
  };
  /** Every event of a session a client received, live or replayed, in arrival order. */
  const eventsOf = (c: TestClient, sid: string): SessionEvent[] =>
    c.frames.flatMap((f) =>
      f.type === 'event' && f.event.sessionId === sid
        ? [f.event]
        : f.type === 'events' && f.sessionId === sid
          ? f.events
          : [],
    );

  /**
   * The agent never resumed by itself: live delivery carried every acknowledged message (`sent`,
   * the last one awaited), once, in order, with no hole in the session's seqs.
   */
  const expectLiveFeed = async (agent: TestClient, sid: string, sent: string[]): Promise<void> => {
    const last = sent[sent.length - 1]!;
    await agent.nextEvent((e) => e.body.kind === 'message' && e.body.text === last, 15_000);
    const seen = eventsOf(agent, sid);
    expect(seen.map((e) => e.seq)).toEqual(seen.map((_, i) => i + 1));
    const texts = seen
      .filter((e) => e.body.kind === 'message' && e.body.from === 'visitor')
      .map((e) => (e.body as { text: string }).text);
    expect(texts).toEqual(sent);
  };
  /** A data directory and key prefix of its own: a cluster that starts empty. */
  const freshStore = (tag: string): { dataDir: string; prefix: string } => {
    const where = { dataDir: mkdtempSync(join(tmpdir(), 'sb-gw-cluster-')), prefix: `${tag}${prefix}` };
    dirs.push(where.dataDir);
    return where;
  };
  /** Waits (up to 5 s) until node `n` serves `shard`. */
  const ownsShard = async (n: Booted, shard: number): Promise<void> => {
    const owns = async (): Promise<boolean> => (await status(n)).owned.some((o) => o.shard === shard);
    for (let i = 0; i < 100 && !(await owns()); i++) await sleep(50);
    expect(await owns()).toBe(true);
  };
  const node = async (nodeId: string, workers = 0, where = { dataDir, prefix }): Promise<Booted> => {
    const cluster: NonNullable<ServerConfig['cluster']> = {
      nodeId,
      redisUrl: `redis://127.0.0.1:${PORT}`,
      listen: '127.0.0.1:0',
      advertiseHost: '127.0.0.1',
      prefix: where.prefix,
      leaseMs: 1500,
      heartbeatMs: 300,
      allowEmbeddedStore: true,
    };
    const b = await boot({ dataDir: where.dataDir, cluster, platformToken: PLATFORM, workers });
    nodes.push(b);
    return b;
  };

  it('a visitor on one node and an agent on another chat; a graceful leave keeps the chat going', async () => {
    const a = await node('gw-a');
    // Node b runs its actors on a worker thread: one addressing model for threads and nodes.
    const b = await node('gw-b', 1);
    await settle([a, b], 100);
    const sa = await status(a);
    expect(sa.members.map((m) => m.id).sort()).toEqual(['gw-a', 'gw-b']);
    expect(Object.values(sa.placement).reduce((x, y) => x + y, 0)).toBe(1024);
    expect(sa.owned.length).toBeGreaterThan(300);
    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toMatch(/sb_cluster_members 2/);

    // The agent is connected to node b, the visitor to node a.
    const across = await chatAcross(b, a);
    let agent = across.agent;
    const { visitor, sid } = across;

    const fromVisitor: string[] = [];
    for (let i = 0; i < 10; i++) {
      visitor.send({ type: 'send', sessionId: sid, clientMsgId: `v${i}`, text: `v${i}` });
      await visitor.next<AckFrame>((f) => f.type === 'ack' && f.clientMsgId === `v${i}`, 10_000);
      fromVisitor.push(`v${i}`);
    }
    agent.send({ type: 'resume', sessionId: sid, lastSeq: 0 });
    await agent.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'v9', 10_000);
    agent.send({ type: 'send', sessionId: sid, clientMsgId: 'a0', text: 'hello from node b' });
    await agent.next<AckFrame>((f) => f.type === 'ack' && f.clientMsgId === 'a0', 10_000);
    await visitor.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'hello from node b', 10_000);

    // Node b's actors live on its worker thread (thread 1), none on its gateway thread.
    const bm = await (await fetch(`${b.url}/metrics`)).text();
    expect(Number(/sb_thread_actors_active\{thread="1"\} (\d+)/.exec(bm)?.[1])).toBeGreaterThan(0);
    expect(bm).toMatch(/sb_thread_actors_active\{thread="0"\} 0\b/);

    // Node b leaves gracefully while the visitor keeps writing.
    const draining = b.server.drain();
    const sending = (async () => {
      for (let i = 10; i < 30; i++) {
        visitor.send({ type: 'send', sessionId: sid, clientMsgId: `v${i}`, text: `v${i}` });
        await visitor.next<AckFrame>((f) => f.type === 'ack' && f.clientMsgId === `v${i}`, 15_000);
        fromVisitor.push(`v${i}`);
        await sleep(30);
      }
    })();
    await agent.waitClose(10_000);
    await draining;
    nodes.splice(nodes.indexOf(b), 1);
    // The agent comes back on node a and resumes from the last seq it saw.
    const seen = eventsOf(agent, sid);
    const lastSeq = Math.max(0, ...seen.map((e) => e.seq));
    const again = await login(a.url, 'agent1@demo.test');
    agent = await TestClient.connect(a.wsUrl, 'agent', again.token);
    clients.push(agent);
    agent.send({ type: 'resume', sessionId: sid, lastSeq });
    await sending;
    await agent.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'v29', 15_000);
    seen.push(...eventsOf(agent, sid));
    // By seq (what a client keeps: a replay may overlap what arrived live), the agent has the whole
    // session without a gap, and every acknowledged visitor message once, in order.
    const bySeq = new Map<number, SessionEvent>();
    for (const e of seen) if (!bySeq.has(e.seq)) bySeq.set(e.seq, e);
    const ordered = [...bySeq.values()].sort((x, y) => x.seq - y.seq);
    expect(ordered.map((e) => e.seq)).toEqual(ordered.map((_, i) => i + 1));
    const texts = ordered
      .filter((e) => e.body.kind === 'message' && e.body.from === 'visitor')
      .map((e) => (e.body as { text: string }).text);
    expect(texts).toEqual(fromVisitor);
    // The same seq always carries the same event.
    for (const e of seen) expect(JSON.stringify(e.body)).toBe(JSON.stringify(bySeq.get(e.seq)!.body));
    // Node a serves every shard now.
    for (let i = 0; i < 50 && (await status(a)).owned.length < 1024; i++) await sleep(100);
    expect((await status(a)).owned.length).toBe(1024);
  }, 90_000);

  it('Redis restarts mid-chat: the chat goes on live, membership and every shard come back', async () => {
    const where = freshStore('r');
    const a = await node('rd-a', 0, where);
    const b = await node('rd-b', 1, where);
    await settle([a, b], 100);
    const { agent, visitor, sid } = await chatAcross(b, a);
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) {
      await sendAcked(visitor, sid, `r${i}`);
      sent.push(`r${i}`);
    }
    // Redis goes away and comes back (its keys lost) while the visitor keeps writing.
    const writing = (async () => {
      for (let i = 5; i < 25; i++) {
        await sendAcked(visitor, sid, `r${i}`);
        sent.push(`r${i}`);
        await sleep(40);
      }
    })();
    await stopRedis({ port: PORT });
    await sleep(300);
    await ensureRedis({ port: PORT });
    await writing;
    expect(await settle([a, b], 150)).toBe(true);
    await expectLiveFeed(agent, sid, sent);
    // The chat still works both ways after the restart.
    agent.send({ type: 'send', sessionId: sid, clientMsgId: 'after', text: 'after the restart' });
    await visitor.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'after the restart', 10_000);
  }, 90_000);
  it('churn: a node that wins the session shard joins and leaves again and again mid-chat; live delivery follows every move', async () => {
    const where = freshStore('c');
    const a = await node('ch-a', 0, where);
    const b = await node('ch-b', 0, where);
    await settle([a, b], 100);
    const { agent, visitor, sid } = await chatAcross(a, b);
    // A third node id that wins this session's shard: each join moves the session to it, each
    // leave moves it back.
    const shard = shardOf(KINDS.session, tkey('demo', sid), DEFAULTS.shards);
    const cid = joinerId('ch-c', ['ch-a', 'ch-b'], [shard]);
    const sent: string[] = [];
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing || i < 5; i++) {
        await sendAcked(visitor, sid, `c${i}`);
        sent.push(`c${i}`);
        await sleep(20);
      }
    })();
    for (let cycle = 0; cycle < 4; cycle++) {
      const c = await node(cid, 0, where);
      await ownsShard(c, shard);
      await sleep(150);
      await c.server.drain();
      nodes.splice(nodes.indexOf(c), 1);
      await sleep(150);
    }
    // A last join that stays: the session moves to the new node and nobody leaves afterwards, so
    // no member-gone signal helps; the old owner's hand-off alone must carry the subscription.
    const c = await node(cid, 0, where);
    await ownsShard(c, shard);
    writing = false;
    await writer;
    const before = sent.length;
    for (let i = 0; i < 5; i++) {
      await sendAcked(visitor, sid, `d${i}`);
      sent.push(`d${i}`);
    }
    expect(sent.length).toBe(before + 5);
    await expectLiveFeed(agent, sid, sent);
  }, 120_000);

  it("a joining node takes the visitor's and the agent's own actors: both sockets register again with it", async () => {
    const where = freshStore('o');
    const a = await node('ow-a', 0, where);
    await settle([a], 100);
    const agentTok = await login(a.url, 'agent1@demo.test');
    const agent = await TestClient.connect(a.wsUrl, 'agent', agentTok.token);
    clients.push(agent);
    const vt = await visitorToken(a.url);
    const visitor = await TestClient.connect(a.wsUrl, 'visitor', vt.token);
    clients.push(visitor);
    // A second node id that wins both the visitor's and the agent's shard: its join moves both
    // actors, which forget the sockets registered with them.
    const vShard = shardOf(KINDS.visitor, tkey('demo', vt.id), DEFAULTS.shards);
    const aShard = shardOf(KINDS.agent, tkey('demo', agentTok.id), DEFAULTS.shards);
    const cid = joinerId('ow-c', ['ow-a'], [vShard, aShard]);
    const c = await node(cid, 0, where);
    await ownsShard(c, vShard);
    await ownsShard(c, aShard);
    expect(await settle([a, c], 100)).toBe(true);
    // The visitor is still on the site for the agent: a proactive invitation reaches it, and the
    // agent is told of the new chat.
    let inv = { status: 0, body: { sessionId: '' } };
    for (let i = 0; i < 20 && inv.status !== 200; i++) {
      if (i > 0) await sleep(100);
      inv = await api<{ sessionId: string }>(a.url, 'POST', `/v1/visitors/${vt.id}/invite`, agentTok.token);
    }
    expect(inv.status, JSON.stringify(inv.body)).toBe(200);
    await visitor.next((f) => f.type === 'invited' && f.session.sessionId === inv.body.sessionId, 10_000);
    await agent.next((f) => f.type === 'assigned' && f.session.sessionId === inv.body.sessionId, 10_000);
    agent.send({
      type: 'send',
      sessionId: inv.body.sessionId,
      clientMsgId: 'hi',
      text: 'hello after the move',
    });
    await visitor.nextEvent(
      (e) => e.body.kind === 'message' && e.body.text === 'hello after the move',
      10_000,
    );
  }, 90_000);

  it("a joining node takes the tenant's dispatcher: connected agents are still given new chats", async () => {
    const where = freshStore('d');
    const a = await node('dp-a', 0, where);
    await settle([a], 100);
    const agentTok = await login(a.url, 'agent1@demo.test');
    const agent = await TestClient.connect(a.wsUrl, 'agent', agentTok.token);
    clients.push(agent);
    // A node id that wins the dispatcher's shard but neither the agent's nor its own: only the
    // dispatcher moves, and it forgets who is online.
    const dShard = shardOf(KINDS.dispatch, dispatchKey('demo'), DEFAULTS.shards);
    const aShard = shardOf(KINDS.agent, tkey('demo', agentTok.id), DEFAULTS.shards);
    const cid = joinerId('dp-c', ['dp-a'], [dShard], [aShard]);
    const c = await node(cid, 0, where);
    await ownsShard(c, dShard);
    expect(await settle([a, c], 100)).toBe(true);
    const vt = await visitorToken(a.url);
    const visitor = await TestClient.connect(a.wsUrl, 'visitor', vt.token);
    clients.push(visitor);
    visitor.send({ type: 'open', ref: 'o' });
    const sid = (await visitor.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
    await agent.next((f) => f.type === 'assigned' && f.session.sessionId === sid, 10_000);
  }, 90_000);

  it("a joining node takes the tenant's presence list: visitors on the site stay listed", async () => {
    const where = freshStore('p');
    const a = await node('pr-a', 0, where);
    await settle([a], 100);
    const agentTok = await login(a.url, 'agent1@demo.test');
    const vt = await visitorToken(a.url);
    const visitor = await TestClient.connect(a.wsUrl, 'visitor', vt.token);
    clients.push(visitor);
    visitor.send({ type: 'page', url: 'https://shop.example/pricing', title: 'Pricing' });
    const listed = (): Promise<boolean> =>
      listedOnline(a.url, agentTok.token, vt.id, 'https://shop.example/pricing');
    for (let i = 0; i < 50 && !(await listed()); i++) await sleep(50);
    expect(await listed()).toBe(true);
    // A node id that wins the presence shard but not the visitor's: only the list moves.
    const pShard = shardOf(KINDS.presence, tkey('demo', 'presence'), DEFAULTS.shards);
    const vShard = shardOf(KINDS.visitor, tkey('demo', vt.id), DEFAULTS.shards);
    const cid = joinerId('pr-c', ['pr-a'], [pShard], [vShard]);
    const c = await node(cid, 0, where);
    await ownsShard(c, pShard);
    expect(await settle([a, c], 100)).toBe(true);
    for (let i = 0; i < 40 && !(await listed()); i++) await sleep(50);
    expect(await listed()).toBe(true);
  }, 90_000);

  it("an agent's actor moves while its offline grace runs: the agent still goes offline", async () => {
    const where = freshStore('g');
    const a = await node('gr-a', 0, where);
    await settle([a], 100);
    const admin = await login(a.url, 'admin@demo.test');
    const agentTok = await login(a.url, 'agent1@demo.test');
    const statusOf = async (): Promise<string | undefined> =>
      (
        await api<Array<{ agentId: string; status: string }>>(a.url, 'GET', '/v1/agents', admin.token)
      ).body.find((x) => x.agentId === agentTok.id)?.status;
    const agent = await TestClient.connect(a.wsUrl, 'agent', agentTok.token);
    for (let i = 0; i < 50 && (await statusOf()) !== 'online'; i++) await sleep(50);
    expect(await statusOf()).toBe('online');
    // The agent closes the console: the 15 s grace starts; then a join moves the agent's actor.
    agent.close();
    await sleep(300);
    const aShard = shardOf(KINDS.agent, tkey('demo', agentTok.id), DEFAULTS.shards);
    const dShard = shardOf(KINDS.dispatch, dispatchKey('demo'), DEFAULTS.shards);
    const cid = joinerId('gr-c', ['gr-a'], [aShard], [dShard]);
    const c = await node(cid, 0, where);
    await ownsShard(c, aShard);
    let st = await statusOf();
    for (let i = 0; i < 250 && st !== 'offline'; i++) {
      await sleep(100);
      st = await statusOf();
    }
    expect(st).toBe('offline');
  }, 90_000);
});
