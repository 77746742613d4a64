/**
 * The node-to-node transport over real gRPC on loopback: ordered exactly-once delivery across a
 * link cut (a TCP proxy that drops every connection mid-stream), bounded queues with a typed error,
 * and a restarted sender.
 */
import { createServer, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SbError } from '../../protos/errors.ts';
import { EnvelopeKind } from '../../protos/gen/cluster/v1/cluster.pb.ts';
import { ClusterTransport, type Envelope } from './transport.ts';

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

function env(i: number, from = 'a'): Envelope {
  return {
    kind: EnvelopeKind.ENVELOPE_KIND_TELL,
    actor: { kind: 'session', key: `t:${i % 50}` },
    endpoint: undefined,
    payload: Buffer.from(JSON.stringify({ i })),
    fromNode: from,
    fromThread: 0,
    askId: 0,
    errorCode: '',
    errorMessage: '',
    messageId: `${from}-${i}`,
    epoch: 1,
    reminderName: '',
    dueAt: 0,
  };
}

async function proxy(target: number): Promise<{ port: number; cut(): void }> {
  const open = new Set<Socket>();
  const server = createServer((c) => {
    const u = connect(target, '127.0.0.1');
    open.add(c).add(u);
    const drop = (): void => {
      open.delete(c);
      open.delete(u);
      c.destroy();
      u.destroy();
    };
    c.on('error', drop).on('close', drop);
    u.on('error', drop).on('close', drop);
    c.pipe(u);
    u.pipe(c);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  stops.push(
    () =>
      new Promise((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  );
  return {
    port: (server.address() as { port: number }).port,
    cut: () => {
      for (const s of open) s.destroy();
    },
  };
}

async function transport(
  nodeId: string,
  got: Array<{ from: string; i: number }>,
  incarnation = 'i1',
  o: { window?: number; maxQueue?: number } = {},
): Promise<{ t: ClusterTransport; port: number }> {
  const t = new ClusterTransport({
    nodeId,
    incarnation,
    listen: '127.0.0.1:0',
    reconnectMs: 50,
    ...o,
    onEnvelopes: (from, envs) => {
      for (const e of envs) got.push({ from, i: (JSON.parse(e.payload.toString()) as { i: number }).i });
    },
  });
  const port = await t.start();
  stops.push(() => t.stop());
  return { t, port };
}

const until = async (pred: () => boolean, ms = 15_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('cluster transport (gRPC on loopback)', () => {
  it('delivers every envelope once and in order across link cuts', async () => {
    const atB: Array<{ from: string; i: number }> = [];
    const { port: bPort } = await transport('b', atB);
    const p = await proxy(bPort);
    const { t: a } = await transport('a', [], 'i1', { window: 8 });
    a.setPeers([{ id: 'b', address: `127.0.0.1:${p.port}` }]);
    const N = 20_000;
    for (let i = 0; i < N; i++) {
      a.send('b', env(i));
      if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
      if (i === 7000 || i === 14_000) p.cut();
    }
    await until(() => atB.length >= N);
    await new Promise((r) => setTimeout(r, 200));
    expect(atB).toHaveLength(N);
    expect(atB.every((x, idx) => x.i === idx && x.from === 'a')).toBe(true);
    expect(a.stats.batchesResent).toBeGreaterThan(0);
    await until(() => a.backlog()['b']!.inflightBatches === 0);
  });

  it('a peer that cannot be reached fills its bounded queue, then sends are refused with a typed error', async () => {
    const { t: a } = await transport('a', [], 'i1', { maxQueue: 100 });
    a.setPeers([{ id: 'gone', address: '127.0.0.1:1' }]);
    for (let i = 0; i < 100; i++) a.send('gone', env(i));
    let err: unknown;
    try {
      a.send('gone', env(100));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SbError);
    expect((err as SbError).code).toBe('SB_ERR_MAILBOX_FULL');
    expect(() => a.send('nobody', env(0))).toThrow(/no link/);
  });

  it('a peer dropped from the member list and listed again gets a new link: nothing is taken for a repeat', async () => {
    const atB: Array<{ from: string; i: number }> = [];
    const { port } = await transport('b', atB);
    const { t: a } = await transport('a', []);
    const peer = [{ id: 'b', address: `127.0.0.1:${port}` }];
    a.setPeers(peer);
    for (let i = 0; i < 10; i++) a.send('b', env(i));
    await until(() => atB.length === 10);
    // A Redis restart empties the member list for a moment: the link closes and opens again.
    a.setPeers([]);
    a.setPeers(peer);
    for (let i = 10; i < 20; i++) a.send('b', env(i));
    await until(() => atB.length >= 20, 5000);
    await new Promise((r) => setTimeout(r, 100));
    expect(atB.map((x) => x.i)).toEqual([...Array(20).keys()]);
  });

  it('a restarted sender (new incarnation) starts its sequence again; redelivered ids are dropped', async () => {
    const atB: Array<{ from: string; i: number }> = [];
    const { port } = await transport('b', atB);
    const first = await transport('a', [], 'i1');
    first.t.setPeers([{ id: 'b', address: `127.0.0.1:${port}` }]);
    for (let i = 0; i < 10; i++) first.t.send('b', env(i));
    await until(() => atB.length === 10);
    await first.t.stop();
    const second = await transport('a', [], 'i2');
    second.t.setPeers([{ id: 'b', address: `127.0.0.1:${port}` }]);
    // The restarted node redelivers 5..9 (same message ids) and sends 10..14.
    for (let i = 5; i < 15; i++) second.t.send('b', env(i));
    await until(() => atB.length >= 15);
    await new Promise((r) => setTimeout(r, 100));
    expect(atB.map((x) => x.i)).toEqual([...Array(15).keys()]);
  });
});
