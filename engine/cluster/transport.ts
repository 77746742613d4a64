/**
 * Node-to-node envelope transport over gRPC (protos/cluster/v1): per peer, one long-lived `Link`
 * stream carries this node's batches; the peer acknowledges them on the same stream.
 *
 * - **Batching**: envelopes sent in one tick to one peer travel as one batch.
 * - **Flow control**: at most `window` unacknowledged batches per peer; beyond that envelopes wait
 *   in the peer's queue, bounded by `maxQueue` (overflow: SB_ERR_MAILBOX_FULL to the sender).
 * - **Redelivery**: unacknowledged batches are resent, in order and with their sequence numbers,
 *   on the next stream after a disconnect.
 * - **Deduplication**: a receiver delivers each (sender link, batch seq) once and in order, and
 *   drops envelopes whose `messageId` it delivered recently (redelivery after a handoff).
 * - **Links**: each link to a peer numbers its batches from 1 under its own id (the process's
 *   incarnation and a link counter). A peer dropped from the member list and listed again (a
 *   Redis restart, say) gets a new link. Its envelopes start a new sequence, and none is taken for
 *   a repeat of the old link's batches. Envelopes left on the old link are routed again
 *   (`onUndelivered`), and their message ids keep them from arriving twice.
 */
import * as grpc from '@grpc/grpc-js';
import { SbError } from '../../protos/errors.ts';
import {
  ClusterClient,
  ClusterService,
  type Batch,
  type ClusterServer,
  type Envelope,
} from '../../protos/gen/cluster/v1/cluster.pb.ts';

export type { Envelope };

export interface TransportOptions {
  nodeId: string;
  incarnation: string;
  /** host:port to listen on (port 0: any). */
  listen: string;
  /** Envelopes from a peer, in the order it sent them, each delivered once. */
  onEnvelopes: (fromNode: string, envelopes: Envelope[]) => void;
  /**
   * A peer left the membership with envelopes for it still here: those never sent, then those
   * sent but not acknowledged (the peer may have handled them; receivers deduplicate by id).
   */
  onUndelivered?: (node: string, envelopes: Envelope[]) => void;
  /** Unacknowledged batches in flight per peer (default 64). */
  window?: number;
  /** Envelopes waiting per peer before sends are refused (default 100,000). */
  maxQueue?: number;
  /** Delay before reconnecting a broken stream, ms (default 200). */
  reconnectMs?: number;
  log?: (msg: string) => void;
}

interface Peer {
  id: string;
  address: string;
  client: grpc.Client & ClusterClient;
  stream: grpc.ClientDuplexStream<Batch, Batch> | undefined;
  queued: Envelope[];
  /** Sent, not yet acknowledged, in seq order. */
  inflight: Batch[];
  nextSeq: number;
  /** Sequence space of this link: batches carry it as their `incarnation`. */
  linkId: string;
  reconnect: ReturnType<typeof setTimeout> | undefined;
  closed: boolean;
}

/** What a receiver delivered from one link (batches up to `delivered`). */
interface Inbound {
  delivered: number;
}

/** Links remembered by a receiver (a sender gets a new link only when it restarts or rejoins). */
const INBOUND_LINKS = 1024;

const DEDUPE_IDS = 100_000;

export class ClusterTransport {
  private server: grpc.Server | undefined;
  private readonly peers = new Map<string, Peer>();
  /** Links opened so far (each gets its own sequence space). */
  private links = 0;
  /** Per sender link (`node`, link id): what was delivered from it. */
  private readonly inbound = new Map<string, Inbound>();
  private readonly recentIds = new Set<string>();
  private flushScheduled = false;
  private readonly window: number;
  private readonly maxQueue: number;
  private readonly reconnectMs: number;
  private readonly log: (msg: string) => void;
  readonly stats = {
    batchesSent: 0,
    envelopesSent: 0,
    batchesResent: 0,
    envelopesReceived: 0,
    duplicatesDropped: 0,
  };

  constructor(private readonly o: TransportOptions) {
    this.window = o.window ?? 64;
    this.maxQueue = o.maxQueue ?? 100_000;
    this.reconnectMs = o.reconnectMs ?? 200;
    this.log = o.log ?? (() => {});
  }

  /** Starts listening; resolves with the bound port. */
  async start(): Promise<number> {
    const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
    const impl: ClusterServer = {
      link: (call) => this.serveLink(call),
      handoff: (_call, cb) =>
        cb({ code: grpc.status.UNIMPLEMENTED, details: 'handoff: not served here yet' }),
      health: (_call, cb) =>
        cb(null, {
          node: this.o.nodeId,
          incarnation: this.o.incarnation,
          shards: [],
          epochs: [],
          draining: false,
        }),
    };
    server.addService(ClusterService, impl);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(this.o.listen, grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    this.server = server;
    return port;
  }

  /** The peers to keep links to (from membership); links to nodes no longer listed are closed. */
  setPeers(peers: ReadonlyArray<{ id: string; address: string }>): void {
    const want = new Map(peers.filter((p) => p.id !== this.o.nodeId).map((p) => [p.id, p.address]));
    for (const [id, p] of this.peers) {
      if (want.get(id) === p.address) continue;
      const left = [...p.inflight.flatMap((b) => b.envelopes), ...p.queued];
      this.closePeer(p);
      if (left.length) this.o.onUndelivered?.(id, left);
    }
    for (const [id, address] of want) {
      if (this.peers.has(id)) continue;
      const client = new ClusterClient(address, grpc.credentials.createInsecure(), {
        'grpc.max_send_message_length': 64 * 1024 * 1024,
        'grpc.keepalive_time_ms': 10_000,
      }) as grpc.Client & ClusterClient;
      const peer: Peer = {
        id,
        address,
        client,
        stream: undefined,
        queued: [],
        inflight: [],
        nextSeq: 1,
        linkId: `${this.o.incarnation}.${++this.links}`,
        reconnect: undefined,
        closed: false,
      };
      this.peers.set(id, peer);
      this.open(peer);
    }
  }

  /** Queues an envelope for a peer; it leaves with this tick's batch. */
  send(nodeId: string, env: Envelope): void {
    const p = this.peers.get(nodeId);
    if (!p) throw new SbError('SB_ERR_NODE_UNAVAILABLE', `no link to node ${nodeId}`);
    if (p.queued.length >= this.maxQueue)
      throw new SbError('SB_ERR_MAILBOX_FULL', `link to ${nodeId}: ${this.maxQueue} envelopes waiting`);
    p.queued.push(env);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Envelopes waiting or unacknowledged per peer (for metrics and drains). */
  backlog(): Record<string, { queued: number; inflightBatches: number }> {
    const out: Record<string, { queued: number; inflightBatches: number }> = {};
    for (const [id, p] of this.peers)
      out[id] = { queued: p.queued.length, inflightBatches: p.inflight.length };
    return out;
  }

  /** Waits until every queued envelope was sent and acknowledged (or the timeout passed). */
  async drain(timeoutMs = 5000): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const busy = [...this.peers.values()].some((p) => p.queued.length > 0 || p.inflight.length > 0);
      if (!busy && !this.flushScheduled) return true;
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop(): Promise<void> {
    for (const p of this.peers.values()) this.closePeer(p);
    this.peers.clear();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.tryShutdown(() => r()));
  }

  // ---- sending

  private flush(): void {
    this.flushScheduled = false;
    for (const p of this.peers.values()) this.pump(p);
  }

  private pump(p: Peer): void {
    while (p.stream && p.queued.length > 0 && p.inflight.length < this.window) {
      const envelopes = p.queued.splice(0, 512);
      const b: Batch = {
        fromNode: this.o.nodeId,
        incarnation: p.linkId,
        seq: p.nextSeq++,
        envelopes,
        ack: 0,
      };
      p.inflight.push(b);
      this.write(p, b);
      this.stats.batchesSent++;
      this.stats.envelopesSent += envelopes.length;
    }
  }

  private write(p: Peer, b: Batch): void {
    p.stream?.write(b);
  }

  private open(p: Peer): void {
    if (p.closed) return;
    const stream = p.client.link();
    p.stream = stream;
    stream.on('data', (b: Batch) => {
      // Cumulative acknowledgement.
      while (p.inflight.length > 0 && p.inflight[0]!.seq <= b.ack) p.inflight.shift();
      this.pump(p);
    });
    const broken = (why: string): void => {
      if (p.stream !== stream) return;
      p.stream = undefined;
      if (p.closed) return;
      this.log(`link to ${p.id} broken (${why}); reconnecting`);
      p.reconnect = setTimeout(() => this.open(p), this.reconnectMs);
    };
    stream.on('error', (e: Error) => broken(e.message));
    stream.on('end', () => broken('end'));
    // Everything not acknowledged goes again, in order, then whatever waits.
    for (const b of p.inflight) {
      this.write(p, b);
      this.stats.batchesResent++;
    }
    this.pump(p);
  }

  private closePeer(p: Peer): void {
    p.closed = true;
    if (p.reconnect) clearTimeout(p.reconnect);
    p.stream?.end();
    p.stream = undefined;
    p.client.close();
    this.peers.delete(p.id);
  }

  // ---- receiving

  private serveLink(call: grpc.ServerDuplexStream<Batch, Batch>): void {
    let ackTimer: ReturnType<typeof setImmediate> | undefined;
    let lastAck = 0;
    let from = '';
    call.on('data', (b: Batch) => {
      const node = b.fromNode;
      const incarnation = b.incarnation;
      from = node;
      // Each link has its own sequence (a restarted or re-listed sender opens a new one).
      const link = `${node}\u0000${incarnation}`;
      let st = this.inbound.get(link);
      if (!st) {
        st = { delivered: 0 };
        this.inbound.set(link, st);
        if (this.inbound.size > INBOUND_LINKS) this.inbound.delete(this.inbound.keys().next().value!);
      }
      if (b.seq <= st.delivered) {
        this.stats.duplicatesDropped += b.envelopes.length;
      } else if (b.seq === st.delivered + 1) {
        st.delivered = b.seq;
        const fresh = b.envelopes.filter((e) => this.firstTime(e.messageId));
        this.stats.duplicatesDropped += b.envelopes.length - fresh.length;
        this.stats.envelopesReceived += fresh.length;
        if (fresh.length) this.o.onEnvelopes(node, fresh);
      } else {
        // A gap cannot happen on one ordered stream; refuse it so the sender resends from the gap.
        call.destroy(new Error(`batch ${b.seq} after ${st.delivered}`));
        return;
      }
      lastAck = st.delivered;
      ackTimer ??= setImmediate(() => {
        ackTimer = undefined;
        call.write({
          fromNode: this.o.nodeId,
          incarnation: this.o.incarnation,
          seq: 0,
          envelopes: [],
          ack: lastAck,
        });
      });
    });
    call.on('end', () => call.end());
    call.on('error', () => this.log(`inbound link from ${from || '?'} failed`));
  }

  private firstTime(id: string): boolean {
    if (!id) return true;
    if (this.recentIds.has(id)) return false;
    this.recentIds.add(id);
    if (this.recentIds.size > DEDUPE_IDS) {
      const first = this.recentIds.values().next();
      if (!first.done) this.recentIds.delete(first.value);
    }
    return true;
  }
}
