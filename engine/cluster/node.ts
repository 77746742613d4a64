/**
 * A cluster node: the actor runtime, its membership (Redis leases, placement, fencing epochs) and
 * the node-to-node transport, wired together. Envelopes for actors of shards other nodes serve
 * travel over the transport; envelopes for shards nobody serves yet wait until somebody does; a
 * shard that moves away is handed off (its actors persist and stop before the claim is released,
 * so the new owner reactivates them from the shared store).
 */
import { createRuntime } from '../runtime.ts';
import { ENDPOINT_HOLD_MS } from '../thread.ts';
import type { ClusterHooks, Runtime, RuntimeOptions } from '../types.ts';
import { EnvelopeKind } from '../../protos/gen/cluster/v1/cluster.pb.ts';
import { Membership, type MembershipOptions } from './membership.ts';
import { shardMap } from './placement.ts';
import { ClusterTransport, type Envelope as WireEnvelope } from './transport.ts';

export interface ClusterNodeOptions {
  nodeId: string;
  redisUrl: string;
  /** host:port to listen on for the cluster transport (port 0: any free port). */
  listen: string;
  /** Host others dial (default 127.0.0.1); the port is the bound one. */
  advertiseHost?: string;
  runtime: Omit<RuntimeOptions, 'cluster'>;
  membership?: Partial<Pick<MembershipOptions, 'prefix' | 'leaseMs' | 'heartbeatMs' | 'safetyMs'>>;
  log?: (msg: string) => void;
}

export interface ClusterNode {
  readonly nodeId: string;
  readonly runtime: Runtime;
  readonly membership: Membership;
  readonly transport: ClusterTransport;
  readonly address: string;
  /** Members, this node's shards and epochs, shards moving to or from it, link backlogs. */
  status(): ClusterStatus;
  /** Prometheus text for the cluster layer. */
  metricsText(): string;
  /** Graceful leave: hands every shard off, then stops. */
  drain(): Promise<void>;
  /** Stops at once (shards are taken over when the lease runs out). */
  stop(): Promise<void>;
}

export interface ClusterStatus {
  node: string;
  incarnation: string;
  address: string;
  leaseValid: boolean;
  draining: boolean;
  members: Array<{ id: string; address: string; incarnation: string }>;
  shards: number;
  /** Shards per member by placement. */
  placement: Record<string, number>;
  owned: Array<{ shard: number; epoch: number }>;
  /** Shards placement gives this node that it does not serve yet, and the reverse. */
  handoffs: { incoming: number[]; outgoing: number[] };
  links: Record<string, { queued: number; inflightBatches: number }>;
  transport: ClusterTransport['stats'];
}

const KIND: Record<number, EnvelopeKind> = {
  0: EnvelopeKind.ENVELOPE_KIND_TELL,
  1: EnvelopeKind.ENVELOPE_KIND_ASK,
  2: EnvelopeKind.ENVELOPE_KIND_REPLY,
  3: EnvelopeKind.ENVELOPE_KIND_FAIL,
  4: EnvelopeKind.ENVELOPE_KIND_REMINDER,
};

export async function startClusterNode(o: ClusterNodeOptions): Promise<ClusterNode> {
  const log = o.log ?? (() => {});
  /** Set once the runtime exists (the transport starts first, to know its port). */
  const ref: { runtime?: Runtime } = {};
  let counter = 0;
  const incarnation = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const transport = new ClusterTransport({
    nodeId: o.nodeId,
    incarnation,
    listen: o.listen,
    log,
    onEnvelopes: (from, envs) => {
      for (const e of envs) ref.runtime?.cluster?.receive(JSON.parse(e.payload.toString('utf8')), from);
    },
    // Envelopes for a node that left are routed again (to the shard's new owner).
    onUndelivered: (node, envs) => {
      log(`rerouting ${envs.length} envelopes that were for ${node}`);
      for (const e of envs) ref.runtime?.cluster?.receive(JSON.parse(e.payload.toString('utf8')), node);
    },
  });
  const port = await transport.start();
  const address = `${o.advertiseHost ?? '127.0.0.1'}:${port}`;
  const membership = new Membership({
    redisUrl: o.redisUrl,
    nodeId: o.nodeId,
    address,
    shards: o.runtime.shards ?? 1024,
    log,
    ...o.membership,
  });

  const hooks: ClusterHooks = {
    nodeId: o.nodeId,
    placeOf(shard) {
      if (membership.epochOf(shard) !== undefined) return 'local';
      const owner = membership.placementOwner(shard);
      return owner === undefined || owner === o.nodeId ? undefined : owner;
    },
    leaving: () => membership.leaving(),
    heldEpoch: (shard) => membership.heldEpoch(shard),
    leaseDeadline: () => performance.timeOrigin + performance.now() + membership.leaseRemainingMs(),
    sendRemote(node, envelope) {
      const e = envelope as {
        k: number;
        to?: { kind?: string; key?: string; thread?: number; name?: string; node?: string };
      };
      const wire: WireEnvelope = {
        kind: KIND[e.k] ?? EnvelopeKind.ENVELOPE_KIND_UNSPECIFIED,
        actor: e.to && e.to.kind !== undefined ? { kind: e.to.kind, key: e.to.key ?? '' } : undefined,
        endpoint:
          e.to && e.to.name !== undefined
            ? { node: e.to.node ?? '', thread: e.to.thread ?? 0, name: e.to.name }
            : undefined,
        payload: Buffer.from(JSON.stringify(envelope)),
        fromNode: o.nodeId,
        fromThread: 0,
        askId: 0,
        errorCode: '',
        errorMessage: '',
        messageId: `${o.nodeId}:${incarnation}:${++counter}`,
        epoch: 0,
        reminderName: '',
        dueAt: 0,
      };
      transport.send(node, wire);
    },
  };

  const rt = await createRuntime({ ...o.runtime, cluster: hooks });
  ref.runtime = rt;
  // The sockets of a member are gone when its process is: it came back with another boot id, or
  // it stayed away longer than tells for its sockets are held (ENDPOINT_HOLD_MS). A member that
  // only registered again (lost lease, Redis restart) keeps its boot id and its sockets.
  const boots = new Map<string, string>();
  const away = new Map<string, ReturnType<typeof setTimeout>>();
  const gone = (id: string): void => {
    boots.delete(id);
    rt.cluster!.endpointsGone(id);
  };
  membership.onMembers((nodes) => {
    transport.setPeers(nodes.map((n) => ({ id: n.id, address: n.address })));
    rt.cluster!.ownershipChanged();
    const present = new Set<string>();
    for (const n of nodes) {
      if (n.id === o.nodeId) continue;
      present.add(n.id);
      const t = away.get(n.id);
      if (t) clearTimeout(t);
      away.delete(n.id);
      const known = boots.get(n.id);
      if (known !== undefined && known !== n.boot) gone(n.id);
      boots.set(n.id, n.boot);
    }
    for (const id of boots.keys()) {
      if (present.has(id) || away.has(id)) continue;
      const t = setTimeout(() => {
        away.delete(id);
        gone(id);
      }, ENDPOINT_HOLD_MS);
      t.unref();
      away.set(id, t);
    }
  });
  // Workers check the lease's end themselves (fencing): they learn each renewal at once.
  membership.onLease(() => rt.cluster!.leaseRenewed());
  membership.onOwnership(async (c) => {
    if (c.kind === 'lost') await rt.cluster!.releaseShard(c.shard);
    rt.cluster!.ownershipChanged();
  });
  await membership.start();

  const shards = o.runtime.shards ?? 1024;
  const status = (): ClusterStatus => {
    const members = membership.members();
    const placement: Record<string, number> = {};
    for (const [id, list] of shardMap(
      shards,
      members.map((m) => m.id),
    ))
      placement[id] = list.length;
    const owned = membership.ownedShards();
    const ownedSet = new Set(owned.map((c) => c.shard));
    const incoming: number[] = [];
    const outgoing: number[] = [];
    for (let s = 0; s < shards; s++) {
      const mine = membership.placementOwner(s) === o.nodeId;
      if (mine && !ownedSet.has(s)) incoming.push(s);
      if (!mine && ownedSet.has(s)) outgoing.push(s);
    }
    return {
      node: o.nodeId,
      incarnation: membership.incarnation,
      address,
      leaseValid: membership.leaseValid(),
      draining: membership.leaving(),
      members,
      shards,
      placement,
      owned,
      handoffs: { incoming, outgoing },
      links: transport.backlog(),
      transport: { ...transport.stats },
    };
  };

  return {
    nodeId: o.nodeId,
    runtime: rt,
    membership,
    transport,
    address,
    status,
    metricsText() {
      const s = status();
      const lines: string[] = [];
      const g = (name: string, help: string, type: 'gauge' | 'counter', v: number): void => {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${v}`);
      };
      g('sb_cluster_members', 'Live cluster members seen by this node.', 'gauge', s.members.length);
      g('sb_cluster_shards_owned', 'Shards this node serves.', 'gauge', s.owned.length);
      g(
        'sb_cluster_handoffs_incoming',
        'Shards placed here, not served yet.',
        'gauge',
        s.handoffs.incoming.length,
      );
      g(
        'sb_cluster_handoffs_outgoing',
        'Shards served here, placed elsewhere.',
        'gauge',
        s.handoffs.outgoing.length,
      );
      g('sb_cluster_lease_valid', '1 while this node holds its lease.', 'gauge', s.leaseValid ? 1 : 0);
      g(
        'sb_cluster_envelopes_sent_total',
        'Envelopes sent to other nodes.',
        'counter',
        s.transport.envelopesSent,
      );
      g(
        'sb_cluster_envelopes_received_total',
        'Envelopes received from other nodes.',
        'counter',
        s.transport.envelopesReceived,
      );
      g(
        'sb_cluster_batches_resent_total',
        'Batches resent after a broken link.',
        'counter',
        s.transport.batchesResent,
      );
      g(
        'sb_cluster_duplicates_dropped_total',
        'Redelivered envelopes dropped.',
        'counter',
        s.transport.duplicatesDropped,
      );
      return lines.join('\n') + '\n';
    },
    async drain() {
      const heartbeat = o.membership?.heartbeatMs ?? 1000;
      const t0 = Date.now();
      const shardsHeld = membership.ownedShards().length;
      await membership.drain();
      const t1 = Date.now();
      // Keep forwarding while the other nodes' views catch up (they read the membership every
      // heartbeat), then make sure every envelope in flight was acknowledged.
      const until = Date.now() + 2 * heartbeat + 100;
      while (Date.now() < until) {
        rt.cluster!.ownershipChanged();
        await new Promise((r) => setTimeout(r, 50));
      }
      const t2 = Date.now();
      await transport.drain(5000);
      await rt.drain();
      await transport.stop();
      log(
        `left: ${shardsHeld} shards handed off in ${t1 - t0} ms, forwarding for ${t2 - t1} ms, ` +
          `links and actors drained in ${Date.now() - t2} ms`,
      );
    },
    async stop() {
      await membership.stop();
      await rt.drain();
      await transport.stop();
    },
  };
}
