/**
 * Crash handoff between node processes: two gateway processes in cluster mode (real Redis, gRPC
 * between them, a real Apache Cassandra as the shared store, all started by the project's scripts). A visitor on node A writes without
 * pause to an agent on node B; B is killed with SIGKILL mid-stream. Node A takes B's shards once
 * B's lease runs out (time reported), the agent reconnects to A and resumes by seq: every message
 * the visitor got an ack for is there once, in order. Then the other way round: the session lives on
 * a node that is killed while agent and visitor stay connected to the survivor; the agent keeps
 * receiving the visitor's new messages live, without asking to resume. And the node serving an
 * agent's own actor is killed while the agent stays connected to the survivor: the agent registers
 * again with the actor's new home and is still given new chats. And a node restarted under the same
 * id: the survivors forget the sockets its old process had, so an agent connected only there goes
 * offline after the grace instead of being offered chats forever. And a node frozen (SIGSTOP) longer
 * than that: the others forget its sockets, and once it runs again it subscribes them all again, so
 * its agent keeps receiving a chat served elsewhere live. And the node serving the tenant's presence
 * list is killed: the visitors connected to the survivor are listed again at once. And the node
 * serving the tenant's webhook outbox is killed while its receiver is down: the survivor takes the
 * outbox over and delivers once the receiver is back, with no new event to nudge it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AckFrame, ErrorFrame, SessionEvent, SessionFrame } from '../protos/ws-v1.ts';
import {
  cassandraTestsCanRun,
  ensureCassandra,
  ensureRedis,
  redisTestsCanRun,
  stopCassandra,
  stopRedis,
} from '../scripts/services.ts';
import { KINDS, tkey } from '../actors/index.ts';
import { OUTBOX_KIND, outboxKey } from '../actors/webhook-outbox.ts';
import { shardOf } from '../engine/hash.ts';
import { api, joinerId, listedOnline, login, TestClient, visitorToken } from './testing.ts';

const PORT = 6396;
const CASSANDRA_PORT = 19044;
const CASSANDRA_STORAGE_PORT = 17004;
const PLATFORM = 'q'.repeat(40);
const root = new URL('..', import.meta.url).pathname;
const haveRedis = redisTestsCanRun('the cluster crash test');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const haveJava = cassandraTestsCanRun('the cluster crash test');

describe.runIf(haveRedis && haveJava)('cluster crash handoff (node processes)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-crash-'));
  const prefix = `x${Date.now().toString(36)}:`;
  const procs: ChildProcess[] = [];
  const clients: TestClient[] = [];
  beforeAll(async () => {
    await Promise.all([
      ensureRedis({ port: PORT }),
      ensureCassandra({ port: CASSANDRA_PORT, storagePort: CASSANDRA_STORAGE_PORT, wipe: true }),
    ]);
  }, 300_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const p of procs) p.kill('SIGKILL');
    await stopRedis({ port: PORT });
    await stopCassandra({ port: CASSANDRA_PORT, wipe: true });
    rmSync(dataDir, { recursive: true, force: true });
  }, 120_000);

  function startNode(nodeId: string): Promise<{ proc: ChildProcess; url: string }> {
    const proc = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], {
      cwd: root,
      env: {
        ...process.env,
        SB_PORT: '0',
        SB_GRPC_PORT: 'off',
        SB_DATA_DIR: dataDir,
        SB_STATIC_DIR: dataDir,
        SB_PLATFORM_TOKEN: PLATFORM,
        SB_CLUSTER_NODE_ID: nodeId,
        SB_REDIS_URL: `redis://127.0.0.1:${PORT}`,
        SB_CLUSTER_LISTEN: '127.0.0.1:0',
        SB_CLUSTER_PREFIX: prefix,
        SB_CLUSTER_LEASE_MS: '1500',
        SB_CLUSTER_HEARTBEAT_MS: '300',
        SB_STORE: 'cassandra',
        SB_CASSANDRA_PORT: String(CASSANDRA_PORT),
        SB_CASSANDRA_KEYSPACE: 'sb_cluster',
        SB_CASSANDRA_CONSISTENCY: 'localQuorum',
        SB_WEBHOOK_ALLOW_LOOPBACK_HTTP: '1',
        SB_WEBHOOK_RETRY_BASE_MS: '50',
        SB_WEBHOOK_RETRY_MAX_MS: '300',
        SB_WEBHOOK_MAX_ATTEMPTS: '100',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    procs.push(proc);
    return new Promise((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`node did not start: ${out}`)), 30_000);
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /SB_LISTENING (\S+)/.exec(out);
        if (m) {
          clearTimeout(t);
          resolve({ proc, url: m[1]! });
        }
      });
      proc.stderr!.on('data', (d: Buffer) => {
        out += d.toString();
        if (process.env['DEBUG_NODES']) process.stderr.write(`[${nodeId}] ${d.toString()}`);
      });
      proc.once('exit', (code) => reject(new Error(`node exited ${code}: ${out}`)));
    });
  }

  const ownedShards = async (url: string): Promise<{ shards: Set<number>; members: number }> => {
    const r = await fetch(`${url}/v1/platform/cluster`, { headers: { authorization: `Bearer ${PLATFORM}` } });
    const s = (await r.json()) as { owned: Array<{ shard: number }>; members: unknown[] };
    return { shards: new Set(s.owned.map((o) => o.shard)), members: s.members.length };
  };
  const owned = async (url: string): Promise<{ owned: number; members: number }> => {
    const s = await ownedShards(url);
    return { owned: s.shards.size, members: s.members };
  };
  /** Waits (up to 10 s) until both nodes see each other and together serve every shard. */
  const settle = async (x: string, y: string): Promise<void> => {
    for (let i = 0; i < 100; i++) {
      const [sx, sy] = await Promise.all([owned(x), owned(y)]);
      if (sx.members === 2 && sy.members === 2 && sx.owned + sy.owned === 1024) return;
      await sleep(100);
    }
  };
  /**
   * Visitors connected to `url` open chats until one's session lands on a shard of `shards`
   * (served by node `name`); up to 12 tries.
   */
  const chatServedBy = async (
    url: string,
    shards: ReadonlySet<number>,
    name: string,
  ): Promise<{ visitor: TestClient; sid: string }> => {
    for (let i = 0; i < 12; i++) {
      const vt = await visitorToken(url);
      const v = await TestClient.connect(url.replace('http', 'ws'), 'visitor', vt.token);
      clients.push(v);
      v.send({ type: 'open', ref: 'o' });
      const sid = (await v.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
      if (shards.has(shardOf(KINDS.session, tkey('demo', sid), 1024))) return { visitor: v, sid };
    }
    throw new Error(`no session landed on node ${name} in 12 tries`);
  };
  let survivor: { proc: ChildProcess; url: string } | undefined;

  it('a node killed mid-chat: its shards move within the lease, no acknowledged message is lost', async () => {
    const a = await startNode('pa');
    survivor = a;
    const b = await startNode('pb');
    const ws = (u: string): string => u.replace('http', 'ws');
    await settle(a.url, b.url);
    const agentTok = await login(b.url, 'agent1@demo.test');
    let agent = await TestClient.connect(ws(b.url), 'agent', agentTok.token);
    clients.push(agent);
    const vt = await visitorToken(a.url);
    const visitor = await TestClient.connect(ws(a.url), 'visitor', vt.token);
    clients.push(visitor);
    visitor.send({ type: 'open', ref: 'o' });
    const sid = (await visitor.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
    await agent.next((f) => f.type === 'assigned', 10_000);

    // The visitor writes without pause; every message is retried (same id) until acknowledged.
    const acked: string[] = [];
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const id = `m${i}`;
        for (;;) {
          visitor.send({ type: 'send', sessionId: sid, clientMsgId: id, text: id });
          const f = await visitor
            .next<AckFrame | ErrorFrame>(
              (x) => (x.type === 'ack' && x.clientMsgId === id) || (x.type === 'error' && x.ref === id),
              10_000,
            )
            .catch(() => undefined);
          if (f?.type === 'ack') {
            acked.push(id);
            break;
          }
          await sleep(100);
        }
        await sleep(20);
      }
    })();
    await sleep(800);
    const killedAt = Date.now();
    const ackedBeforeKill = acked.length;
    b.proc.kill('SIGKILL');
    let recovered = 0;
    for (let i = 0; i < 200; i++) {
      const s = await owned(a.url);
      if (s.owned === 1024) {
        recovered = Date.now() - killedAt;
        break;
      }
      await sleep(50);
    }
    console.log(`cluster crash: node a serves all shards ${recovered} ms after the SIGKILL`);
    expect(recovered).toBeGreaterThan(0);
    expect(recovered).toBeLessThan(5000);
    // Writing goes on after the takeover (a send lost with node b is retried once its ask failed).
    for (let i = 0; i < 300 && acked.length < ackedBeforeKill + 10; i++) await sleep(100);
    stop = true;
    await writer;
    expect(acked.length).toBeGreaterThanOrEqual(ackedBeforeKill + 10);

    // The agent's socket died with node b; it reconnects to node a and resumes from seq 0.
    const again = await login(a.url, 'agent1@demo.test');
    agent = await TestClient.connect(ws(a.url), 'agent', again.token);
    clients.push(agent);
    agent.send({ type: 'resume', sessionId: sid, lastSeq: 0 });
    const last = acked[acked.length - 1]!;
    await agent.nextEvent((e) => e.body.kind === 'message' && e.body.text === last, 15_000);
    const seen: SessionEvent[] = [];
    for (const f of agent.frames) {
      if (f.type === 'event' && f.event.sessionId === sid) seen.push(f.event);
      if (f.type === 'events' && f.sessionId === sid) seen.push(...f.events);
    }
    const texts = seen
      .filter((e) => e.body.kind === 'message' && e.body.from === 'visitor')
      .map((e) => (e.body as { text: string }).text);
    // Every acknowledged message once and in order (a message retried across the crash is stored once).
    expect(texts.filter((t) => acked.includes(t))).toEqual(acked);
    expect(new Set(texts).size).toBe(texts.length);
    const seqs = seen.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  }, 120_000);

  it('the node serving a session is killed: an agent connected elsewhere keeps receiving it live', async () => {
    const a = survivor!;
    const c = await startNode('pc');
    const ws = (u: string): string => u.replace('http', 'ws');
    await settle(a.url, c.url);
    const onC = (await ownedShards(c.url)).shards;
    expect(onC.size).toBeGreaterThan(0);
    // Agent 1 (still connected from the first test) steps away: new chats go to agent 2 alone.
    const t1 = await login(a.url, 'agent1@demo.test');
    const away = await TestClient.connect(ws(a.url), 'agent', t1.token);
    clients.push(away);
    away.send({ type: 'status', status: 'away' });
    await away.next((f) => f.type === 'status' && f.status === 'away', 10_000);
    // Agent and visitors stay on node a; the session actor must live on node c.
    const tok = await login(a.url, 'agent2@demo.test');
    const agent = await TestClient.connect(ws(a.url), 'agent', tok.token);
    clients.push(agent);
    const { visitor, sid } = await chatServedBy(a.url, onC, 'c');
    await agent.next((f) => f.type === 'assigned' && f.session.sessionId === sid, 10_000);
    agent.send({ type: 'resume', sessionId: sid, lastSeq: 0 });
    const send = async (id: string): Promise<void> => {
      for (;;) {
        visitor.send({ type: 'send', sessionId: sid, clientMsgId: id, text: id });
        const f = await visitor!
          .next<AckFrame | ErrorFrame>(
            (x) => (x.type === 'ack' && x.clientMsgId === id) || (x.type === 'error' && x.ref === id),
            10_000,
          )
          .catch(() => undefined);
        if (f?.type === 'ack') return;
        await sleep(200);
      }
    };
    await send('before');
    await agent.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'before', 10_000);

    c.proc.kill('SIGKILL');
    for (let i = 0; i < 200 && (await owned(a.url)).owned < 1024; i++) await sleep(50);
    expect((await owned(a.url)).owned).toBe(1024);
    // No resume from the agent: the session, now served by node a, pushes to it again.
    await send('after');
    await agent.nextEvent((e) => e.body.kind === 'message' && e.body.text === 'after', 10_000);
  }, 120_000);

  it("the node serving an agent's own actor is killed: the agent, connected to the survivor, is still given new chats", async () => {
    const a = survivor!;
    const ws = (u: string): string => u.replace('http', 'ws');
    // Agent 1 steps away: new chats go to agent 2 alone.
    const t1 = await login(a.url, 'agent1@demo.test');
    const away = await TestClient.connect(ws(a.url), 'agent', t1.token);
    clients.push(away);
    away.send({ type: 'status', status: 'away' });
    await away.next((f) => f.type === 'status' && f.status === 'away', 10_000);
    // A node id that wins agent 2's shard: its actor lives there once the node has joined.
    const t2 = await login(a.url, 'agent2@demo.test');
    const shard = shardOf(KINDS.agent, tkey('demo', t2.id), 1024);
    const id = joinerId('pd', ['pa'], [shard]);
    const d = await startNode(id);
    await settle(a.url, d.url);
    expect((await ownedShards(d.url)).shards.has(shard)).toBe(true);
    const agent = await TestClient.connect(ws(a.url), 'agent', t2.token);
    clients.push(agent);

    d.proc.kill('SIGKILL');
    for (let i = 0; i < 200 && (await owned(a.url)).owned < 1024; i++) await sleep(50);
    expect((await owned(a.url)).owned).toBe(1024);
    // Nobody told the agent's socket that its actor died; it registers again by itself.
    const vt = await visitorToken(a.url);
    const visitor = await TestClient.connect(ws(a.url), 'visitor', vt.token);
    clients.push(visitor);
    visitor.send({ type: 'open', ref: 'o' });
    const sid = (await visitor.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
    await agent.next((f) => f.type === 'assigned' && f.session.sessionId === sid, 15_000);
    visitor.send({ type: 'send', sessionId: sid, clientMsgId: 'hi', text: 'hello after the crash' });
    await agent.nextEvent(
      (e) => e.body.kind === 'message' && e.body.text === 'hello after the crash',
      10_000,
    );
  }, 120_000);

  it('a node restarted under the same id: its old sockets are forgotten; an agent connected only there goes offline', async () => {
    const a = survivor!;
    const ws = (u: string): string => u.replace('http', 'ws');
    for (const c of clients.splice(0)) c.close();
    const t1 = await login(a.url, 'agent1@demo.test');
    const admin = await login(a.url, 'admin@demo.test');
    const statusOf = async (): Promise<string | undefined> =>
      (
        await api<Array<{ agentId: string; status: string }>>(a.url, 'GET', '/v1/agents', admin.token)
      ).body.find((x) => x.agentId === t1.id)?.status;
    // A node id that leaves agent 1's actor on node a: only the agent's socket lives on the new node.
    const shard = shardOf(KINDS.agent, tkey('demo', t1.id), 1024);
    const id = joinerId('pe', ['pa'], [], [shard]);
    let e = await startNode(id);
    await settle(a.url, e.url);
    const sock = await TestClient.connect(ws(e.url), 'agent', t1.token);
    clients.push(sock);
    sock.send({ type: 'status', status: 'online' });
    for (let i = 0; i < 100 && (await statusOf()) !== 'online'; i++) await sleep(100);
    expect(await statusOf()).toBe('online');
    // Killed and back at once under the same id: a new process, none of the old sockets.
    e.proc.kill('SIGKILL');
    e = await startNode(id);
    await settle(a.url, e.url);
    // The agent's actor forgets the dead socket; after the offline grace (15 s) the agent is offline.
    let st = await statusOf();
    for (let i = 0; i < 300 && st !== 'offline'; i++) {
      await sleep(100);
      st = await statusOf();
    }
    expect(st).toBe('offline');
    // Node a alone again for the next test.
    e.proc.kill('SIGKILL');
    for (let i = 0; i < 200 && (await owned(a.url)).owned < 1024; i++) await sleep(50);
  }, 120_000);

  it('a node frozen past the endpoint hold: once it runs again its sockets subscribe again and the chat goes on live', async () => {
    const a = survivor!;
    const ws = (u: string): string => u.replace('http', 'ws');
    for (const c of clients.splice(0)) c.close();
    const t2 = await login(a.url, 'agent2@demo.test');
    const id = joinerId('pf', ['pa'], [], [shardOf(KINDS.agent, tkey('demo', t2.id), 1024)]);
    const f = await startNode(id);
    await settle(a.url, f.url);
    const onA = (await ownedShards(a.url)).shards;
    // The agent's socket on node f; the visitor and the session on node a.
    const agent = await TestClient.connect(ws(f.url), 'agent', t2.token);
    clients.push(agent);
    agent.send({ type: 'status', status: 'online' });
    const { visitor, sid } = await chatServedBy(a.url, onA, 'a');
    await agent.next((x) => x.type === 'assigned' && x.session.sessionId === sid, 15_000);
    const say = async (text: string): Promise<void> => {
      visitor.send({ type: 'send', sessionId: sid, clientMsgId: text, text });
      await visitor.next<AckFrame>((x) => x.type === 'ack' && x.clientMsgId === text, 10_000);
    };
    await say('before');
    await agent.nextEvent(
      (e) => e.sessionId === sid && e.body.kind === 'message' && e.body.text === 'before',
      10_000,
    );
    // Frozen longer than the endpoint hold (15 s): node a takes f's shards and forgets its sockets.
    f.proc.kill('SIGSTOP');
    await sleep(17_000);
    await say('while-frozen');
    f.proc.kill('SIGCONT');
    await settle(a.url, f.url);
    // No resume from the agent: node f subscribes its sockets again, and the session replays.
    await say('after');
    await agent.nextEvent(
      (e) => e.sessionId === sid && e.body.kind === 'message' && e.body.text === 'after',
      15_000,
    );
    const texts = agent.frames
      .flatMap((x) => (x.type === 'event' ? [x.event] : x.type === 'events' ? x.events : []))
      .filter((e) => e.sessionId === sid && e.body.kind === 'message')
      .map((e) => (e.body as { text: string }).text);
    expect(new Set(texts)).toEqual(new Set(['before', 'while-frozen', 'after']));
    // Node a alone again for the next test.
    f.proc.kill('SIGKILL');
    for (let i = 0; i < 200 && (await owned(a.url)).owned < 1024; i++) await sleep(50);
  }, 120_000);

  it("the node serving the tenant's presence list is killed: visitors on the survivor are listed again", async () => {
    const a = survivor!;
    const ws = (u: string): string => u.replace('http', 'ws');
    const agentTok = await login(a.url, 'agent1@demo.test');
    const vt = await visitorToken(a.url);
    // A node id that wins the presence shard but not the visitor's: only the list dies with it.
    const pShard = shardOf(KINDS.presence, tkey('demo', 'presence'), 1024);
    const vShard = shardOf(KINDS.visitor, tkey('demo', vt.id), 1024);
    const id = joinerId('pg', ['pa'], [pShard], [vShard]);
    const g = await startNode(id);
    await settle(a.url, g.url);
    const visitor = await TestClient.connect(ws(a.url), 'visitor', vt.token);
    clients.push(visitor);
    visitor.send({ type: 'page', url: 'https://shop.example/cart', title: 'Cart' });
    const listed = (): Promise<boolean> =>
      listedOnline(a.url, agentTok.token, vt.id, 'https://shop.example/cart');
    for (let i = 0; i < 50 && !(await listed()); i++) await sleep(100);
    expect(await listed()).toBe(true);
    g.proc.kill('SIGKILL');
    for (let i = 0; i < 200 && (await owned(a.url)).owned < 1024; i++) await sleep(50);
    expect((await owned(a.url)).owned).toBe(1024);
    for (let i = 0; i < 50 && !(await listed()); i++) await sleep(100);
    expect(await listed()).toBe(true);
  }, 120_000);

  it("the node serving the tenant's webhook outbox is killed: the survivor resumes its deliveries", async () => {
    const a = survivor!;
    const ws = (u: string): string => u.replace('http', 'ws');
    // A receiver that is down at first.
    const got: string[] = [];
    let down = true;
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        if (down) return void res.writeHead(503).end();
        const p = JSON.parse(body) as { kind: string; data: { text?: string } };
        if (p.kind === 'message.created' && p.data.text) got.push(p.data.text);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const port = (receiver.address() as { port: number }).port;
    try {
      const admin = await login(a.url, 'admin@demo.test');
      const put = await api(a.url, 'PUT', '/v1/admin/config/webhooks', admin.token, {
        subscriptions: [
          {
            id: 'crash',
            url: `http://127.0.0.1:${port}/hook`,
            events: ['message.created'],
            secret: 'receiver-secret-0123456789',
          },
        ],
      });
      expect(put.status, JSON.stringify(put.body)).toBe(200);
      // A node id that wins the outbox's shard.
      const oShard = shardOf(OUTBOX_KIND, outboxKey('demo'), 1024);
      const id = joinerId('ph', ['pa'], [oShard]);
      const h = await startNode(id);
      await settle(a.url, h.url);
      expect((await ownedShards(h.url)).shards.has(oShard)).toBe(true);
      await sleep(1500); // every node's cached tenant config has the subscription
      const vt = await visitorToken(a.url);
      const visitor = await TestClient.connect(ws(a.url), 'visitor', vt.token);
      clients.push(visitor);
      visitor.send({ type: 'open', ref: 'o' });
      const sid = (await visitor.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
      for (;;) {
        visitor.send({ type: 'send', sessionId: sid, clientMsgId: 'hook-1', text: 'hook-1' });
        const f = await visitor.next<AckFrame | ErrorFrame>(
          (x) =>
            (x.type === 'ack' && x.clientMsgId === 'hook-1') || (x.type === 'error' && x.ref === 'hook-1'),
          10_000,
        );
        if (f.type === 'ack') break;
        await sleep(200);
      }
      await sleep(500); // the outbox on node h tries and fails
      h.proc.kill('SIGKILL');
      for (let i = 0; i < 200 && (await owned(a.url)).owned < 1024; i++) await sleep(50);
      expect((await owned(a.url)).owned).toBe(1024);
      // The receiver is back; no new event happens: the survivor's outbox must deliver by itself.
      down = false;
      for (let i = 0; i < 100 && !got.includes('hook-1'); i++) await sleep(100);
      expect(got).toContain('hook-1');
    } finally {
      receiver.close();
    }
  }, 120_000);
});
