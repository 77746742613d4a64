/**
 * The gateway: one uWebSockets.js app serving HTTP (login, tokens, history, static console) and
 * the visitor/agent WebSockets of protocol v1. Each socket is a pinned endpoint of the actor
 * runtime on this thread: actors on worker threads push frames to it by address.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type * as Uws from 'uWebSockets.js';
import { createRuntime } from '../engine/index.ts';
import { DEFAULTS, type Clock, type EndpointId, type Runtime } from '../engine/types.ts';
import type { IndexStore } from '../engine/store/types.ts';
import {
  Directory,
  KINDS,
  assertId,
  isValidId,
  newId,
  searchHistory,
  seedDemo,
  tkey,
  type AgentConnectResult,
  type AgentMsg,
  type Caller,
  type HistoryQuery,
  type ConnectionMsg,
  type SessionMsg,
  type VisitorMsg,
} from '../actors/index.ts';
import { ERRORS, SbError, TRANSIENT_ERRORS, toSbError } from '../protos/errors.ts';
import {
  CLOSE_CODES,
  PROTOCOL_VERSION,
  type ClientFrame,
  type DeviceInfo,
  type ServerFrame,
  type SessionSummary,
  type TokenResponse,
} from '../protos/ws-v1.ts';
import type { ServerConfig } from './config.ts';
import { registerAdminRoutes } from './admin.ts';
import { PRODUCT_MODULE } from '../analytics/index.ts';
import { ApiKeys } from '../actors/api-keys.ts';
import type { ExternalTicketSystem } from '../actors/tickets.ts';
import { startGrpc } from './grpc.ts';
import { registerPartnerRest } from './partner-rest.ts';
import { registerFileRoutes } from './files.ts';
import { startClusterNode } from '../engine/cluster/node.ts';
import { ownerOf } from '../engine/cluster/placement.ts';
import { shardOf } from '../engine/hash.ts';
import { registerPlatformRoutes } from './platform.ts';
import { OPENAPI } from './openapi.ts';
import { OUTBOX_KIND, WEBHOOK_TENANTS, outboxKey, type OutboxMsg } from '../actors/webhook-outbox.ts';
import type { ChannelProvider } from './channel-adapters.ts';
import { registerChannelRoutes } from './channel-routes.ts';
import { RateLimiter, ackFrameJson, parseJson, refOf, validateFrame } from './frames.ts';
import { guard, loadStatic, readJsonBody, sendError, sendJson, statusLine } from './http.ts';
import { TokenSigner, type Claims } from './tokens.ts';
import { Follows } from './follow.ts';

const require = createRequire(import.meta.url);

/**
 * Pauses between tries to renew a socket's subscription to a session between owners: the first
 * short (a hand-off usually settles within a heartbeat, and until the renewal the socket's agent
 * sees nothing of the session), doubling up to the longest.
 */
const RESUBSCRIBE_FIRST_DELAY_MS = 50;
const RESUBSCRIBE_MAX_DELAY_MS = 1000;

/**
 * Backoff of a renewal (subscription or registration) refused for now: doubling up to
 * {@link RESUBSCRIBE_MAX_DELAY_MS}, with ±25 % jitter so the sockets that lost an actor together do
 * not retry in step.
 */
function retryDelay(attempt: number): number {
  return (
    Math.min(RESUBSCRIBE_MAX_DELAY_MS, RESUBSCRIBE_FIRST_DELAY_MS * 2 ** Math.min(attempt, 8)) *
    (0.75 + Math.random() / 2)
  );
}

/**
 * Loads uWebSockets.js and refuses to run on its pure-JS fallback, which the package silently
 * switches to when the native binary does not load: that would be an order of magnitude slower.
 */
export function loadNativeUws(): typeof Uws {
  const uws = require('uWebSockets.js') as typeof Uws;
  if (!String(uws.App).includes('[native code]') || typeof uws.us_listen_socket_close !== 'function') {
    throw new Error(
      `uWebSockets.js native binary did not load for ${process.platform}-${process.arch} (ABI ${process.versions.modules}); ` +
        'refusing to start on the slow fallback.',
    );
  }
  return uws;
}

interface Conn {
  id: number;
  caller: Caller;
  endpoint: EndpointId | undefined;
  ws: Uws.WebSocket<UserData> | undefined;
  ready: boolean;
  closed: boolean;
  /** Frames that arrived before the welcome was sent, processed in order afterwards. */
  pending: string[];
  /** The sessions this socket follows and where it stands in each; every seq goes out once, in order. */
  subs: Follows;
  /** Subscriptions being renewed (at most one ask per session; `again`: renew once more after it). */
  renewing: Map<string, { again: boolean }>;
  /** Registration with the caller's own actor being renewed (`again`: once more after it). */
  registering: { again: boolean } | undefined;
  limiter: RateLimiter;
  lastActivity: number;
  pinged: boolean;
  /** Frames produced in this tick, written together under one cork (one syscall per socket per tick). */
  out: string[];
  /** Address and browser of the socket (visitor context, F7). */
  device: DeviceInfo;
}

interface UserData {
  conn: Conn;
}

export interface Server {
  readonly url: string;
  readonly port: number;
  readonly runtime: Runtime;
  readonly demoLogins: Array<{ email: string; role: string }>;
  /** Port of the partner gRPC API, when enabled. */
  readonly grpcPort: number | undefined;
  /** HTTP routes as registered (method, uWS pattern). */
  readonly routes: ReadonlyArray<{ method: string; path: string }>;
  /** Closes the listener and every socket (code 4002), then drains the runtime. */
  drain(): Promise<void>;
}

/** The app, recording each route's method and pattern as it is registered. */
function recordRoutes(
  app: Uws.TemplatedApp,
  into: Array<{ method: string; path: string }>,
): Uws.TemplatedApp {
  const methods = new Set(['get', 'post', 'put', 'patch', 'del', 'any', 'options', 'ws']);
  return new Proxy(app, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop) as unknown;
      if (typeof v !== 'function') return v;
      // Native methods must run with the native app as `this`.
      if (typeof prop !== 'string' || !methods.has(prop))
        return (v as (...a: unknown[]) => unknown).bind(target);
      return (path: string, ...rest: unknown[]) => {
        into.push({ method: prop === 'del' ? 'delete' : prop, path });
        (v as (...a: unknown[]) => unknown).call(target, path, ...rest);
        return receiver;
      };
    },
  });
}

export interface ServerLog {
  info(msg: string): void;
  error(msg: string, err?: unknown): void;
}

const consoleLog: ServerLog = {
  info: (m) => console.log(m),
  error: (m, e) => console.error(m, e),
};

function loadOrCreateSecret(dataDir: string): string {
  const p = join(dataDir, 'token-secret');
  try {
    return readFileSync(p, 'utf8').trim();
  } catch {
    const s = randomBytes(32).toString('base64url');
    writeFileSync(p, s + '\n', { mode: 0o600 });
    return s;
  }
}

export interface ServerOptions {
  /** Clock of the actor runtime (tests; honoured with workers = 0). */
  clock?: Clock;
  /**
   * Carries agents' replies to WeChat/Weibo users. Default: logs them (no platform credentials are
   * configured in this build; a deployment plugs in its official-account API client here).
   */
  channelProvider?: ChannelProvider;
  /** Mirrors tickets to an external ticket system (F25). */
  ticketSystem?: ExternalTicketSystem;
  /**
   * Fault injection (tests): a live session event this returns true for is dropped on its way to
   * the socket, as an envelope lost with a broken link would be.
   */
  dropLiveEvent?: (sessionId: string, seq: number) => boolean;
}

export async function startServer(
  cfg: ServerConfig,
  log: ServerLog = consoleLog,
  opts: ServerOptions = {},
): Promise<Server> {
  const uws = loadNativeUws();
  mkdirSync(cfg.dataDir, { recursive: true });
  const signer = new TokenSigner(cfg.tokenSecret ?? loadOrCreateSecret(cfg.dataDir));
  const productConfig =
    cfg.store === 'embedded'
      ? {
          store: 'embedded',
          dataDir: cfg.dataDir,
          // One thread opens the store (no worker threads, no cluster): it holds the path alone.
          exclusive: cfg.workers === 0 && !cfg.cluster,
          webhooks: { ...cfg.webhooks },
        }
      : { store: 'cassandra', cassandra: { ...cfg.cassandra }, webhooks: { ...cfg.webhooks } };
  const cc = cfg.cluster;
  if (cc && cfg.store !== 'cassandra' && !cc.allowEmbeddedStore)
    throw new Error('cluster mode needs SB_STORE=cassandra: nodes must share the store');
  // Cluster mode: actors of the shards this node serves run on its threads (the gateway thread, or
  // SB_WORKERS worker threads); the rest are reached over the cluster transport.
  const clusterNode = cc
    ? await startClusterNode({
        nodeId: cc.nodeId,
        redisUrl: cc.redisUrl,
        listen: cc.listen,
        advertiseHost: cc.advertiseHost,
        runtime: { productModule: PRODUCT_MODULE, config: productConfig, workers: cfg.workers },
        membership: { prefix: cc.prefix, leaseMs: cc.leaseMs, heartbeatMs: cc.heartbeatMs },
        log: (m) => log.info(`cluster: ${m}`),
      })
    : undefined;
  const runtime =
    clusterNode?.runtime ??
    (await createRuntime({
      ...(opts.clock ? { clock: opts.clock } : {}),
      workers: cfg.workers,
      productModule: PRODUCT_MODULE,
      config: productConfig,
    }));
  const dir = new Directory(runtime.stores.state);
  // Webhook outboxes resume their retries and pending deliveries after a restart.
  const wakeOutboxes = async (only?: ReadonlySet<number>): Promise<void> => {
    for (const t of await runtime.stores.state.list(WEBHOOK_TENANTS.tenant, WEBHOOK_TENANTS.kind, {
      limit: 100_000,
    })) {
      const key = outboxKey(t.key);
      if (only && !only.has(shardOf(OUTBOX_KIND, key, DEFAULTS.shards))) continue;
      runtime.tell({ kind: OUTBOX_KIND, key }, { t: 'wake' } satisfies OutboxMsg);
    }
  };
  await wakeOutboxes();
  if (clusterNode) {
    // In a cluster an outbox stops with its shard's handoff or its node's crash, and nothing else
    // would start it on its new node before the tenant's next event: the node that acquires the
    // shard wakes it (acquisitions of one tick go together).
    let acquired = new Set<number>();
    clusterNode.membership.onOwnership((c) => {
      if (c.kind !== 'acquired') return;
      if (acquired.size === 0)
        setTimeout(() => {
          const shards = acquired;
          acquired = new Set();
          void wakeOutboxes(shards).catch((err: unknown) => log.error('waking webhook outboxes failed', err));
        }, 50);
      acquired.add(c.shard);
    });
  }
  let demoLogins: Array<{ email: string; role: string }> = [];
  if (cfg.demo.enabled) {
    demoLogins = await seedDemo(
      dir,
      {
        tenantId: cfg.demo.tenantId,
        password: cfg.demo.password,
        agents: cfg.demo.agents,
        agentMaxConcurrent: cfg.demo.agentMaxConcurrent,
      },
      Date.now(),
    );
  }
  const staticFiles = loadStatic(cfg.staticDir);
  const limits = cfg.limits;
  const conns = new Set<Conn>();
  /** Sockets the server closed, by error code (exported on /metrics). */
  const closedBy = new Map<string, number>();
  /** Live events that arrived past a hole in a session's seqs (the hole was filled by a replay). */
  let gapsFilled = 0;
  let nextConnId = 1;
  // Endpoint names are unique to this server instance: a session on another node may still hold the
  // address of a socket of a node that restarted under the same id, and must never reach a new
  // socket that happens to get the same number.
  const endpointTag = randomBytes(3).toString('hex');
  let draining = false;

  /** Every route registered on the app, for the OpenAPI conformance check. */
  const routes: Array<{ method: string; path: string }> = [];
  const app = recordRoutes(uws.App(), routes);

  // ------------------------------------------------------------------------------ sockets
  const send = (c: Conn, frame: ServerFrame): void => sendText(c, JSON.stringify(frame));

  /**
   * Sockets with frames to flush: a socket enters when its queue goes from empty to not empty
   * (after a direct flush it may be listed twice; the second flush finds nothing). An array
   * reused in place: a set emptied after every flush would reallocate its table as it refills.
   */
  const dirty: Conn[] = [];
  let flushScheduled = false;

  const flushConn = (c: Conn): void => {
    const ws = c.ws;
    const q = c.out;
    if (q.length === 0) return;
    if (c.closed || !ws) {
      q.length = 0;
      return;
    }
    let dropped = false;
    // The socket's queue is emptied in place, not replaced: a fresh array per flush would live
    // until the socket's next flush, long enough to be promoted into the old generation.
    ws.cork(() => {
      for (let i = 0; i < q.length; i++) if (ws.send(q[i]!, false, false) === 2) dropped = true;
    });
    q.length = 0;
    // 2 = dropped by uWS's own bound; either way the client is too slow: close it, it will resume.
    if (dropped || ws.getBufferedAmount() > limits.maxBackpressureBytes) {
      closeWith(c, 'SB_ERR_SLOW_CONSUMER', CLOSE_CODES.SLOW_CONSUMER);
    }
  };

  const flushAll = (): void => {
    flushScheduled = false;
    for (let i = 0; i < dirty.length; i++) flushConn(dirty[i]!);
    dirty.length = 0;
  };

  const sendText = (c: Conn, text: string): void => {
    if (c.closed || !c.ws) return;
    if (c.out.push(text) === 1) dirty.push(c);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  };

  const sendErr = (c: Conn, err: unknown, ref?: string): void => {
    const e = toSbError(err);
    if (e.code === 'SB_ERR_INTERNAL') log.error(`connection ${c.id}: internal error`, err);
    const f: ServerFrame = { type: 'error', code: e.code, message: e.message };
    if (ref !== undefined) f.ref = ref;
    send(c, f);
  };

  const closeWith = (c: Conn, code: keyof typeof ERRORS, closeCode: number): void => {
    if (c.closed || !c.ws) return;
    if (code !== 'SB_ERR_SLOW_CONSUMER') flushConn(c);
    const ws = c.ws;
    c.closed = true;
    closedBy.set(code, (closedBy.get(code) ?? 0) + 1);
    // The error frame may not fit in the socket's buffer (slow consumer); the close code says it anyway.
    ws.cork(() => {
      ws.send(
        JSON.stringify({ type: 'error', code, message: ERRORS[code].text } satisfies ServerFrame),
        false,
        false,
      );
      ws.end(closeCode, code);
    });
  };

  /** A live event for a socket: forwarded when it is the next seq; a gap is filled by a replay. */
  const liveEvent = (c: Conn, sessionId: string, seq: number): boolean => {
    const v = c.subs.live(sessionId, seq);
    if (v === 'gap') {
      gapsFilled++;
      resubscribe(c, sessionId);
    }
    return v === 'forward';
  };

  const subscribe = async (
    c: Conn,
    sessionId: string,
    lastSeq: number,
    ref?: string,
  ): Promise<SessionSummary | undefined> => {
    if (!c.endpoint) return undefined;
    c.subs.start(sessionId, lastSeq);
    try {
      const m: SessionMsg = { t: 'subscribe', caller: c.caller, endpoint: c.endpoint, lastSeq };
      return await runtime.ask<SessionSummary>(
        { kind: KINDS.session, key: tkey(c.caller.tenantId, sessionId) },
        m,
      );
    } catch (err) {
      const e = toSbError(err);
      // Not now (a shard between owners, a node or the store away): the socket keeps following the
      // session and the gateway tries again until it works. A refusal ends the subscription.
      if (TRANSIENT_ERRORS.has(e.code)) resubscribe(c, sessionId);
      else {
        c.subs.delete(sessionId);
        sendErr(c, e, ref);
      }
      return undefined;
    }
  };

  /**
   * Subscribes a socket again to a session it follows, from the last seq it has (the session moved,
   * its node died, or a live event went missing). The session replays what came since. While the
   * session is between owners the ask fails with a transient error; it is tried again with backoff
   * (up to {@link RESUBSCRIBE_MAX_DELAY_MS} apart) for as long as the socket is open. A refusal
   * (the session went to another agent, say) ends the subscription with an error frame.
   */
  const resubscribe = (c: Conn, sessionId: string, attempt = 0): void => {
    if (c.closed || !c.endpoint || !c.subs.has(sessionId)) {
      c.renewing.delete(sessionId);
      return;
    }
    const busy = c.renewing.get(sessionId);
    if (busy && attempt === 0) {
      busy.again = true;
      return;
    }
    const state = busy ?? { again: false };
    state.again = false;
    c.renewing.set(sessionId, state);
    const m: SessionMsg = {
      t: 'subscribe',
      caller: c.caller,
      endpoint: c.endpoint,
      lastSeq: c.subs.last(sessionId) ?? 0,
    };
    runtime.ask({ kind: KINDS.session, key: tkey(c.caller.tenantId, sessionId) }, m).then(
      () => {
        c.renewing.delete(sessionId);
        if (state.again) resubscribe(c, sessionId);
      },
      (err: unknown) => {
        const e = toSbError(err);
        if (TRANSIENT_ERRORS.has(e.code) && !c.closed) {
          setTimeout(() => resubscribe(c, sessionId, attempt + 1), retryDelay(attempt));
          return;
        }
        c.renewing.delete(sessionId);
        if (c.closed) return;
        c.subs.delete(sessionId);
        sendErr(c, e);
      },
    );
  };

  // Cluster: a node that stops (crash or leave) takes the subscriber lists of the sessions it
  // served with it; after a crash nobody tells this node's sockets. When a member disappears, or
  // comes back under a new incarnation (it lost its lease and registered again: every actor it ran
  // was stopped), each socket here subscribes again, from the last seq it forwarded, to every
  // session whose shard that member served; the new owner replays what came since, and seqs
  // deduplicate. A socket whose own (agent or visitor) actor that member served registers again.
  if (clusterNode) {
    const incarnations = (nodes: ReadonlyArray<{ id: string; incarnation: string }>): Map<string, string> =>
      new Map(nodes.map((n) => [n.id, n.incarnation]));
    let members = incarnations(clusterNode.membership.members());
    const self = clusterNode.membership.nodeId;
    let selfIncarnation = members.get(self);
    /** Every socket here registers and subscribes again, wherever its actors are served. */
    const resyncAll = (): void => {
      for (const c of conns) {
        reregister(c);
        for (const sessionId of c.subs.sessions()) resubscribe(c, sessionId);
      }
    };
    clusterNode.membership.onMembers((nodes) => {
      const before = members;
      members = incarnations(nodes);
      const mine = members.get(self);
      if (mine !== undefined && selfIncarnation !== undefined && mine !== selfIncarnation) {
        // This node was away (its lease lapsed) and registered again. The others forget the
        // sockets of a member away longer than the endpoint hold, so every socket here registers
        // and subscribes again: now, and once more after the others have surely seen it back (a
        // forget decided just before they noticed would otherwise win).
        selfIncarnation = mine;
        resyncAll();
        setTimeout(resyncAll, clusterNode.membership.leaseMs).unref();
        return;
      }
      if (mine !== undefined) selfIncarnation = mine;
      const gone = new Set([...before].filter(([id, inc]) => members.get(id) !== inc).map(([id]) => id));
      if (gone.size === 0) return;
      const ids = [...before.keys()];
      const wasGone = (kind: string, key: string): boolean => {
        const owner = ownerOf(shardOf(kind, key, DEFAULTS.shards), ids);
        return owner !== undefined && gone.has(owner);
      };
      // A tenant's presence list died with its node: its visitors' sockets report themselves again.
      const presenceLost = new Map<string, boolean>();
      const lostPresence = (tenant: string): boolean => {
        let v = presenceLost.get(tenant);
        if (v === undefined)
          presenceLost.set(tenant, (v = wasGone(KINDS.presence, tkey(tenant, 'presence'))));
        return v;
      };
      for (const c of conns) {
        if (
          wasGone(ownKindOf(c), tkey(c.caller.tenantId, c.caller.id)) ||
          (c.caller.role === 'visitor' && lostPresence(c.caller.tenantId))
        )
          reregister(c);
        for (const sessionId of c.subs.sessions())
          if (wasGone(KINDS.session, tkey(c.caller.tenantId, sessionId))) resubscribe(c, sessionId);
      }
    });
  }

  const onEndpoint = (c: Conn, raw: unknown): void => {
    if (c.closed) return;
    const m = raw as ConnectionMsg;
    switch (m.t) {
      case 'frame': {
        const f = m.frame;
        if (f.type === 'released') c.subs.delete(f.sessionId);
        else if (f.type === 'invited' && !c.subs.has(f.session.sessionId)) {
          send(c, f);
          void subscribe(c, f.session.sessionId, 0);
          return;
        }
        if (f.type === 'event') {
          if (!liveEvent(c, f.event.sessionId, f.event.seq)) return;
        } else if (f.type === 'events') {
          const fresh = f.events.filter((e) => c.subs.replay(e.sessionId, e.seq));
          if (fresh.length !== f.events.length) {
            if (fresh.length === 0 && f.more) return;
            send(c, { ...f, events: fresh });
            return;
          }
        }
        send(c, f);
        return;
      }
      case 'event':
        if (opts.dropLiveEvent?.(m.sessionId, m.seq)) return;
        if (liveEvent(c, m.sessionId, m.seq)) sendText(c, m.json);
        return;
      case 'assigned':
        send(c, { type: 'assigned', session: m.session });
        if (!c.subs.has(m.session.sessionId)) void subscribe(c, m.session.sessionId, 0);
        return;
      case 'unsubscribed': {
        // The session went away here (handoff, idle): follow it to wherever it runs next.
        resubscribe(c, m.sessionId);
        return;
      }
      case 'reset':
        reregister(c);
        return;
      case 'close':
        if (c.ws) {
          flushConn(c);
          c.closed = true;
          c.ws.end(m.code, m.reason);
        }
        return;
    }
  };

  const ownKindOf = (c: Conn): string => (c.caller.role === 'visitor' ? KINDS.visitor : KINDS.agent);

  /**
   * Registers a socket again with its caller's own actor, which forgot it (it was collected, moved
   * to another node, or its node died). An agent's actor may have been assigned sessions meanwhile,
   * announced to nobody: the socket gets an `assigned` frame for each session it does not follow
   * yet, and follows it. Retried with backoff while the actor is between owners.
   */
  const reregister = (c: Conn, attempt = 0): void => {
    if (c.closed || !c.endpoint) return;
    if (c.registering && attempt === 0) {
      c.registering.again = true;
      return;
    }
    const state = c.registering ?? { again: false };
    state.again = false;
    c.registering = state;
    const done = (): void => {
      c.registering = undefined;
      if (state.again) reregister(c);
    };
    if (c.caller.role === 'visitor') {
      try {
        runtime.tell({ kind: KINDS.visitor, key: tkey(c.caller.tenantId, c.caller.id) }, {
          t: 'connected',
          caller: c.caller,
          endpoint: c.endpoint,
          device: c.device,
        } satisfies VisitorMsg);
      } catch {
        // This node is shutting down: its sockets close and reconnect elsewhere.
      }
      done();
      return;
    }
    connectAgent(c).then(
      (r) => {
        if (!c.ready && !c.closed) {
          // The welcome is still on its way: chats go out after it, never before.
          c.registering = undefined;
          setTimeout(() => reregister(c), 100);
          return;
        }
        if (!c.closed)
          for (const s of r.sessions) {
            if (c.subs.has(s.sessionId)) continue;
            send(c, { type: 'assigned', session: s });
            void subscribe(c, s.sessionId, 0);
          }
        done();
      },
      (err: unknown) => {
        const e = toSbError(err);
        if (TRANSIENT_ERRORS.has(e.code) && !c.closed) {
          setTimeout(() => reregister(c, attempt + 1), retryDelay(attempt));
          return;
        }
        c.registering = undefined;
        if (!c.closed && e.code !== 'SB_ERR_SHUTTING_DOWN') sendErr(c, e);
      },
    );
  };

  const connectAgent = async (c: Conn): Promise<AgentConnectResult> => {
    const member = await dir.getMember(c.caller.tenantId, c.caller.id);
    if (!member) throw new SbError('SB_ERR_UNAUTHENTICATED', 'member no longer exists');
    const m: AgentMsg = {
      t: 'connect',
      caller: c.caller,
      endpoint: c.endpoint!,
      maxConcurrent: member.maxConcurrent,
      groups: member.groups ?? [],
    };
    return runtime.ask<AgentConnectResult>(
      { kind: KINDS.agent, key: tkey(c.caller.tenantId, c.caller.id) },
      m,
    );
  };

  const welcome = async (c: Conn): Promise<void> => {
    let sessions: SessionSummary[] = [];
    let status: AgentConnectResult['status'] | undefined;
    if (c.caller.role === 'visitor') {
      runtime.tell({ kind: KINDS.visitor, key: tkey(c.caller.tenantId, c.caller.id) }, {
        t: 'connected',
        caller: c.caller,
        endpoint: c.endpoint!,
        device: c.device,
      } satisfies VisitorMsg);
      const m: VisitorMsg = { t: 'current', caller: c.caller };
      const cur = await runtime.ask<SessionSummary | undefined>(
        { kind: KINDS.visitor, key: tkey(c.caller.tenantId, c.caller.id) },
        m,
      );
      if (cur) sessions = [cur];
    } else {
      const r = await connectAgent(c);
      sessions = r.sessions;
      status = r.status;
    }
    const w: ServerFrame = {
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      role: c.caller.role,
      tenantId: c.caller.tenantId,
      id: c.caller.id,
      name: c.caller.name,
      limits,
      sessions,
    };
    if (status !== undefined) w.status = status;
    send(c, w);
  };

  /**
   * A message: asked of its session, acknowledged once durable. The hot path, kept apart from
   * `handleFrame` so the wait for the durable write holds one small continuation, not the
   * suspended frame of the whole dispatcher.
   */
  const sendMessage = (c: Conn, f: Extract<ClientFrame, { type: 'send' }>): Promise<void> => {
    const m: SessionMsg = { t: 'send', caller: c.caller, clientMsgId: f.clientMsgId, text: f.text };
    if (f.attachment) m.attachment = f.attachment;
    if (c.endpoint) m.endpoint = c.endpoint;
    return runtime
      .ask<{ seq: number; at: number; duplicate: boolean }>(
        { kind: KINDS.session, key: tkey(c.caller.tenantId, f.sessionId) },
        m,
      )
      .then(
        (r) => {
          // The sender gets the ack instead of its own event: the ack's seq counts as seen (once
          // the events in front of it are; normally they already are, told earlier on the same
          // channel).
          if (!r.duplicate) c.subs.acked(f.sessionId, r.seq);
          sendText(c, ackFrameJson(f.sessionId, f.clientMsgId, r));
        },
        (err: unknown) => sendErr(c, err, f.clientMsgId),
      );
  };

  /** Every frame but `send`, which `startFrame` hands to `sendMessage`. */
  const handleFrame = async (c: Conn, f: Exclude<ClientFrame, { type: 'send' }>): Promise<void> => {
    const ref = 'ref' in f ? f.ref : undefined;
    const tenant = c.caller.tenantId;
    try {
      switch (f.type) {
        case 'ping':
          send(
            c,
            f.ref === undefined
              ? { type: 'pong', at: Date.now() }
              : { type: 'pong', at: Date.now(), ref: f.ref },
          );
          return;
        case 'open': {
          const m: VisitorMsg = { t: 'open', caller: c.caller, channel: f.channel ?? 'web' };
          if (f.entry !== undefined) m.entry = f.entry;
          if (f.associationId !== undefined) m.associationId = f.associationId;
          const s = await runtime.ask<SessionSummary>(
            { kind: KINDS.visitor, key: tkey(tenant, c.caller.id) },
            m,
          );
          send(
            c,
            f.ref === undefined
              ? { type: 'session', session: s }
              : { type: 'session', session: s, ref: f.ref },
          );
          if (!c.subs.has(s.sessionId)) await subscribe(c, s.sessionId, 0, f.ref);
          return;
        }
        case 'resume':
          await subscribe(c, f.sessionId, f.lastSeq, f.ref);
          return;
        case 'typing': {
          const m: SessionMsg = { t: 'typing', caller: c.caller };
          if (f.text !== undefined) m.text = f.text;
          runtime.tell({ kind: KINDS.session, key: tkey(tenant, f.sessionId) }, m);
          return;
        }
        case 'close': {
          const m: SessionMsg = {
            t: 'close',
            caller: c.caller,
            reason: c.caller.role === 'visitor' ? 'visitor' : 'agent',
          };
          const s = await runtime.ask<SessionSummary>(
            { kind: KINDS.session, key: tkey(tenant, f.sessionId) },
            m,
          );
          send(
            c,
            f.ref === undefined
              ? { type: 'session', session: s }
              : { type: 'session', session: s, ref: f.ref },
          );
          return;
        }
        case 'recall': {
          const m: SessionMsg = { t: 'recall', caller: c.caller, seq: f.seq };
          await runtime.ask({ kind: KINDS.session, key: tkey(tenant, f.sessionId) }, m);
          return;
        }
        case 'status': {
          const m: AgentMsg = { t: 'setStatus', caller: c.caller, status: f.status };
          await runtime.ask({ kind: KINDS.agent, key: tkey(tenant, c.caller.id) }, m);
          return;
        }
        case 'page': {
          const m: VisitorMsg = { t: 'page', caller: c.caller, url: f.url };
          if (f.title !== undefined) m.title = f.title;
          runtime.tell({ kind: KINDS.visitor, key: tkey(tenant, c.caller.id) }, m);
          return;
        }
        case 'device': {
          const { type: _t, ...device } = f;
          runtime.tell({ kind: KINDS.visitor, key: tkey(tenant, c.caller.id) }, {
            t: 'device',
            caller: c.caller,
            device,
          } satisfies VisitorMsg);
          return;
        }
        case 'note': {
          const m: SessionMsg = { t: 'note', caller: c.caller, text: f.text };
          await runtime.ask({ kind: KINDS.session, key: tkey(tenant, f.sessionId) }, m);
          return;
        }
        case 'handoff':
        case 'rate':
        case 'transfer':
        case 'transferAnswer':
        case 'tag':
        case 'inviteRating': {
          let m: SessionMsg;
          if (f.type === 'handoff') m = { t: 'handoff', caller: c.caller };
          else if (f.type === 'inviteRating') m = { t: 'inviteRating', caller: c.caller };
          else if (f.type === 'transferAnswer')
            m = { t: 'transferAnswer', caller: c.caller, accept: f.accept };
          else if (f.type === 'tag') m = { t: 'tag', caller: c.caller, tagId: f.tagId, op: f.op };
          else if (f.type === 'rate') {
            m = { t: 'rate', caller: c.caller, score: f.score };
            if (f.remark !== undefined) m.remark = f.remark;
          } else {
            m = { t: 'transfer', caller: c.caller };
            if (f.toAgentId !== undefined) m.toAgentId = f.toAgentId;
            if (f.toGroupId !== undefined) m.toGroupId = f.toGroupId;
          }
          const s = await runtime.ask<SessionSummary>(
            { kind: KINDS.session, key: tkey(tenant, f.sessionId) },
            m,
          );
          send(
            c,
            f.ref === undefined
              ? { type: 'session', session: s }
              : { type: 'session', session: s, ref: f.ref },
          );
          return;
        }
      }
    } catch (err) {
      sendErr(c, err, ref);
    }
  };

  // ---- the frame gate: at most cfg.maxFramesInFlight frames handled at once (see config.ts) ----
  let framesInFlight = 0;
  /** Waiting frames in arrival order: socket, text, socket, text, … from `waitHead` on. */
  let waitingFrames: Array<Conn | string> = [];
  let waitHead = 0;
  /** Frames refused because too many were waiting (exported on /metrics). */
  let framesRefusedBusy = 0;

  const onText = (c: Conn, text: string): void => {
    if (framesInFlight < cfg.maxFramesInFlight && waitHead === waitingFrames.length) {
      startFrame(c, text);
      return;
    }
    if ((waitingFrames.length - waitHead) / 2 >= cfg.maxQueuedFrames) {
      framesRefusedBusy++;
      let ref: string | undefined;
      try {
        ref = refOf(parseJson(text));
      } catch {
        // Not JSON: the refusal carries no ref.
      }
      sendErr(c, new SbError('SB_ERR_BUSY'), ref);
      return;
    }
    waitingFrames.push(c, text);
  };

  const startFrame = (c: Conn, text: string): void => {
    let obj: Record<string, unknown> | undefined;
    try {
      obj = parseJson(text);
      const f = validateFrame(obj, c.caller.role, limits);
      framesInFlight++;
      (f.type === 'send' ? sendMessage(c, f) : handleFrame(c, f)).then(frameDone, frameDone);
    } catch (err) {
      sendErr(c, err, refOf(obj));
    }
  };

  const frameDone = (): void => {
    framesInFlight--;
    while (framesInFlight < cfg.maxFramesInFlight && waitHead < waitingFrames.length) {
      const c = waitingFrames[waitHead] as Conn;
      const text = waitingFrames[waitHead + 1] as string;
      waitHead += 2;
      if (waitHead === waitingFrames.length) {
        waitingFrames = [];
        waitHead = 0;
      } else if (waitHead >= 4096 && waitHead * 2 >= waitingFrames.length) {
        waitingFrames = waitingFrames.slice(waitHead);
        waitHead = 0;
      }
      if (!c.closed) startFrame(c, text);
    }
  };

  const wsBehavior = (role: 'visitor' | 'agent'): Uws.WebSocketBehavior<UserData> => ({
    // uWS closes (1009) anything above this hard cap itself; frames between the limit and the
    // cap get the typed error and close code 4009 below.
    maxPayloadLength: limits.maxFrameBytes * 4,
    idleTimeout: 0,
    sendPingsAutomatically: false,
    maxBackpressure: limits.maxBackpressureBytes * 2,
    closeOnBackpressureLimit: 0,
    compression: uws.DISABLED,
    upgrade: (res, req, context) => {
      const key = req.getHeader('sec-websocket-key');
      const protocols = req.getHeader('sec-websocket-protocol');
      const ext = req.getHeader('sec-websocket-extensions');
      let token = req.getQuery('token');
      let protocol = '';
      if (!token && protocols) {
        const parts = protocols.split(',').map((p) => p.trim());
        if (parts[0] === 'sb.v1' && parts[1]) {
          token = parts[1];
          protocol = 'sb.v1';
        }
      }
      if (draining) {
        res.cork(() =>
          res.writeStatus(statusLine(503)).end(JSON.stringify({ error: { code: 'SB_ERR_SHUTTING_DOWN' } })),
        );
        return;
      }
      let claims: Claims;
      try {
        claims = signer.verify(token);
        const roleOk =
          role === 'visitor' ? claims.role === 'visitor' : claims.role === 'agent' || claims.role === 'admin';
        if (!roleOk)
          throw new SbError(
            'SB_ERR_UNAUTHENTICATED',
            `a ${claims.role} token cannot open the ${role} socket`,
          );
      } catch (err) {
        const e = toSbError(err);
        res.cork(() =>
          res
            .writeStatus(statusLine(401))
            .writeHeader('content-type', 'application/json')
            .end(JSON.stringify({ error: { code: e.code, message: e.message } })),
        );
        return;
      }
      const now = Date.now();
      const device: DeviceInfo = {};
      const ip = Buffer.from(res.getRemoteAddressAsText()).toString();
      if (ip) device.ip = ip;
      const ua = req.getHeader('user-agent');
      if (ua) device.userAgent = ua.slice(0, 300);
      const conn: Conn = {
        id: nextConnId++,
        caller: { role: claims.role, tenantId: claims.tenantId, id: claims.sub, name: claims.name },
        endpoint: undefined,
        ws: undefined,
        ready: false,
        closed: false,
        pending: [],
        subs: new Follows(),
        renewing: new Map(),
        registering: undefined,
        limiter: new RateLimiter(limits.framesPerSecond, limits.framesPerSecond * 2, now),
        lastActivity: now,
        pinged: false,
        out: [],
        device,
      };
      res.upgrade<UserData>({ conn }, key, protocol, ext, context);
    },
    open: (ws) => {
      const c = ws.getUserData().conn;
      c.ws = ws;
      conns.add(c);
      c.endpoint = runtime.registerEndpoint(`${endpointTag}.c${c.id}`, (m) => onEndpoint(c, m));
      welcome(c)
        .then(() => {
          c.ready = true;
          const queued = c.pending;
          c.pending = [];
          for (const t of queued) onText(c, t);
        })
        .catch((err) => {
          sendErr(c, err);
          closeWith(
            c,
            toSbError(err).code === 'SB_ERR_UNAUTHENTICATED' ? 'SB_ERR_UNAUTHENTICATED' : 'SB_ERR_INTERNAL',
            CLOSE_CODES.UNAUTHENTICATED,
          );
        });
    },
    message: (ws, message, isBinary) => {
      const c = ws.getUserData().conn;
      if (c.closed) return;
      const now = Date.now();
      c.lastActivity = now;
      c.pinged = false;
      if (message.byteLength > limits.maxFrameBytes) {
        closeWith(c, 'SB_ERR_FRAME_TOO_LARGE', CLOSE_CODES.FRAME_TOO_LARGE);
        return;
      }
      if (!c.limiter.take(now)) {
        if (c.limiter.refused > limits.framesPerSecond * 2)
          closeWith(c, 'SB_ERR_RATE_LIMITED', CLOSE_CODES.RATE_LIMITED);
        else sendErr(c, new SbError('SB_ERR_RATE_LIMITED'));
        return;
      }
      if (isBinary) {
        sendErr(c, new SbError('SB_ERR_BAD_FRAME', 'binary frames are not part of protocol v1'));
        return;
      }
      const text = Buffer.from(message).toString('utf8');
      if (!c.ready) {
        if (c.pending.length >= limits.framesPerSecond * 2) {
          closeWith(c, 'SB_ERR_RATE_LIMITED', CLOSE_CODES.RATE_LIMITED);
          return;
        }
        c.pending.push(text);
        return;
      }
      onText(c, text);
    },
    pong: (ws) => {
      const c = ws.getUserData().conn;
      c.lastActivity = Date.now();
      c.pinged = false;
    },
    drain: () => {},
    close: (ws) => {
      const c = ws.getUserData().conn;
      c.closed = true;
      c.ws = undefined;
      conns.delete(c);
      if (!c.endpoint) return;
      runtime.unregisterEndpoint(c.endpoint.name);
      if (draining) return;
      for (const sid of c.subs.sessions()) {
        runtime.tell({ kind: KINDS.session, key: tkey(c.caller.tenantId, sid) }, {
          t: 'unsubscribe',
          endpoint: c.endpoint,
        } satisfies SessionMsg);
      }
      if (c.caller.role !== 'visitor') {
        runtime.tell({ kind: KINDS.agent, key: tkey(c.caller.tenantId, c.caller.id) }, {
          t: 'disconnect',
          endpoint: c.endpoint,
        } satisfies AgentMsg);
      } else {
        runtime.tell({ kind: KINDS.visitor, key: tkey(c.caller.tenantId, c.caller.id) }, {
          t: 'disconnected',
          endpoint: c.endpoint,
        } satisfies VisitorMsg);
      }
    },
  });

  app.ws('/v1/ws/visitor', wsBehavior('visitor'));
  app.ws('/v1/ws/agent', wsBehavior('agent'));

  // Idle sweep: ping sockets quiet for half the timeout, close those quiet for the whole of it.
  const idleMs = limits.idleTimeoutSec * 1000;
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const c of conns) {
        if (!c.ws || c.closed) continue;
        const quiet = now - c.lastActivity;
        if (quiet >= idleMs) closeWith(c, 'SB_ERR_IDLE_TIMEOUT', CLOSE_CODES.IDLE);
        else if (quiet >= idleMs / 2 && !c.pinged) {
          c.pinged = true;
          c.ws.ping();
        }
      }
    },
    Math.max(250, Math.min(5000, idleMs / 4)),
  );
  sweep.unref();

  // ------------------------------------------------------------------------------ HTTP
  const internal = (e: unknown): void => log.error('http: internal error', e);

  /** A JSON POST route: bounded body, typed errors, the handler's value as the 200 answer. */
  const postJsonRoute = (path: string, handle: (body: Record<string, unknown>) => Promise<unknown>): void => {
    app.post(path, (res, req) => {
      const g = guard(res);
      const ct = req.getHeader('content-type');
      void (async () => {
        try {
          sendJson(g, 200, await handle(await readJsonBody(g, cfg.maxHttpBodyBytes, ct)));
        } catch (err) {
          sendError(g, err, internal);
        }
      })();
    });
  };

  const issueToken = (c: Omit<Claims, 'exp'>): TokenResponse => {
    const claims: Claims = { ...c, exp: Date.now() + cfg.tokenTtlSec * 1000 };
    return {
      token: signer.sign(claims),
      tenantId: claims.tenantId,
      id: claims.sub,
      name: claims.name,
      role: claims.role,
      expiresAt: claims.exp,
    };
  };

  postJsonRoute('/v1/auth/login', async (body) => {
    const email = body['email'];
    const password = body['password'];
    if (
      typeof email !== 'string' ||
      email.length > 254 ||
      typeof password !== 'string' ||
      password.length > 256
    ) {
      throw new SbError('SB_ERR_INVALID_FIELD', 'email and password are required strings');
    }
    const m = await dir.login(email, password);
    return issueToken({ role: m.role, tenantId: m.tenantId, sub: m.memberId, name: m.name });
  });

  postJsonRoute('/v1/visitor/token', async (body) => {
    const tenantId = assertId(body['tenantId'], 'tenantId');
    if (!(await dir.getTenant(tenantId))) throw new SbError('SB_ERR_NOT_FOUND', 'no such tenant');
    const vid = body['visitorId'];
    if (vid !== undefined && !isValidId(vid)) {
      throw new SbError('SB_ERR_INVALID_FIELD', 'visitorId must be 1–64 letters, digits, - or _');
    }
    const nm = body['name'];
    if (nm !== undefined && (typeof nm !== 'string' || nm.length > 64)) {
      throw new SbError('SB_ERR_INVALID_FIELD', 'name must be at most 64 characters');
    }
    const visitorId = (vid as string | undefined) ?? `v${newId()}`;
    const name = (nm as string | undefined)?.trim() || `Visitor ${visitorId.slice(-4)}`;
    return issueToken({ role: 'visitor', tenantId, sub: visitorId, name });
  });

  app.get('/v1/sessions/:sessionId/events', (res, req) => {
    const g = guard(res);
    const auth = req.getHeader('authorization');
    const sessionId = req.getParameter(0) ?? '';
    const afterSeq = Number(req.getQuery('afterSeq') ?? '0');
    const limit = Number(req.getQuery('limit') ?? '100');
    void (async () => {
      try {
        const claims = signer.verify(auth.startsWith('Bearer ') ? auth.slice(7) : undefined);
        assertId(sessionId, 'sessionId');
        if (!Number.isSafeInteger(afterSeq) || afterSeq < 0)
          throw new SbError('SB_ERR_INVALID_FIELD', 'afterSeq must be an integer ≥ 0');
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
          throw new SbError('SB_ERR_INVALID_FIELD', 'limit must be 1–1000');
        const caller: Caller = {
          role: claims.role,
          tenantId: claims.tenantId,
          id: claims.sub,
          name: claims.name,
        };
        const r = await runtime.ask({ kind: KINDS.session, key: tkey(claims.tenantId, sessionId) }, {
          t: 'read',
          caller,
          afterSeq,
          limit,
        } satisfies SessionMsg);
        sendJson(g, 200, r);
      } catch (err) {
        sendError(g, err, internal);
      }
    })();
  });

  app.get('/v1/history/sessions', (res, req) => {
    const g = guard(res);
    const auth = req.getHeader('authorization');
    const q: HistoryQuery = {};
    const str = (name: keyof HistoryQuery & string, max = 64): void => {
      const v = req.getQuery(name);
      if (v === undefined || v === '') return;
      if (v.length > max) throw new SbError('SB_ERR_INVALID_FIELD', `${name} is too long`);
      (q as Record<string, unknown>)[name] = v;
    };
    let parseError: unknown;
    try {
      for (const n of ['from', 'to', 'channel', 'agentId', 'visitorId', 'tag'] as const) str(n);
      str('cursor', 512);
      const limit = req.getQuery('limit');
      if (limit) q.limit = Number(limit);
    } catch (err) {
      parseError = err;
    }
    void (async () => {
      try {
        if (parseError) throw parseError;
        const claims = signer.verify(auth.startsWith('Bearer ') ? auth.slice(7) : undefined);
        const caller: Caller = {
          role: claims.role,
          tenantId: claims.tenantId,
          id: claims.sub,
          name: claims.name,
        };
        const index = runtime.stores.extra['index'] as IndexStore;
        sendJson(g, 200, await searchHistory(index, caller, q, Date.now()));
      } catch (err) {
        sendError(g, err, internal);
      }
    })();
  });

  const apiKeys = new ApiKeys(runtime.stores.state);
  registerAdminRoutes({
    app,
    runtime,
    dir,
    apiKeys,
    ticketSystem: opts.ticketSystem,
    signer,
    maxBodyBytes: cfg.maxHttpBodyBytes,
    onInternal: internal,
    now: () => (opts.clock ?? Date).now(),
  });

  const channelStats = registerChannelRoutes({
    app,
    runtime,
    provider: opts.channelProvider ?? {
      sendText: async (channel, accountId, user, text) =>
        log.info(
          `channel ${channel}/${accountId}: reply to ${user} not sent (no provider): ${text.slice(0, 80)}`,
        ),
    },
    now: () => (opts.clock ?? Date).now(),
    log,
  });

  registerFileRoutes({
    app,
    state: runtime.stores.state,
    signer,
    maxFileBytes: cfg.maxFileBytes,
    onInternal: internal,
    now: () => (opts.clock ?? Date).now(),
  });

  registerPlatformRoutes(app, {
    cluster: clusterNode ? () => clusterNode.status() : undefined,
    token: cfg.platformToken,
    keys: apiKeys,
    now: () => Date.now(),
    maxBodyBytes: cfg.maxHttpBodyBytes,
    onInternal: internal,
  });
  registerPartnerRest(app, { runtime, dir, keys: apiKeys, now: () => Date.now(), log }, cfg.maxHttpBodyBytes);
  app.get('/v1/openapi.json', (res) => {
    const g = guard(res);
    sendJson(g, 200, OPENAPI);
  });

  app.get('/v1/health', (res) => {
    const g = guard(res);
    sendJson(g, draining ? 503 : 200, { ok: !draining, connections: conns.size });
  });

  app.get('/metrics', (res) => {
    const g = guard(res);
    void runtime
      .metricsText()
      .then((text) => {
        if (g.aborted) return;
        res.cork(() => {
          res.writeHeader('content-type', 'text/plain; version=0.0.4');
          let extra =
            '# HELP sb_gateway_connections Open WebSocket connections.\n# TYPE sb_gateway_connections gauge\n';
          extra += `sb_gateway_connections ${conns.size}\n`;
          extra +=
            '# HELP sb_gateway_closed_total Sockets closed by the server, by error code.\n# TYPE sb_gateway_closed_total counter\n';
          for (const [code, n] of closedBy) extra += `sb_gateway_closed_total{code="${code}"} ${n}\n`;
          extra +=
            '# HELP sb_gateway_gaps_filled_total Live events that arrived past a missing seq; the socket got a replay instead.\n# TYPE sb_gateway_gaps_filled_total counter\n';
          extra += `sb_gateway_gaps_filled_total ${gapsFilled}\n`;
          extra +=
            '# HELP sb_gateway_frames_in_flight WebSocket frames being handled (at most SB_MAX_FRAMES_IN_FLIGHT).\n# TYPE sb_gateway_frames_in_flight gauge\n';
          extra += `sb_gateway_frames_in_flight ${framesInFlight}\n`;
          extra +=
            '# HELP sb_gateway_frames_waiting WebSocket frames waiting for their turn.\n# TYPE sb_gateway_frames_waiting gauge\n';
          extra += `sb_gateway_frames_waiting ${(waitingFrames.length - waitHead) / 2}\n`;
          extra +=
            '# HELP sb_gateway_frames_busy_total Frames refused with SB_ERR_BUSY (too many waiting).\n# TYPE sb_gateway_frames_busy_total counter\n';
          extra += `sb_gateway_frames_busy_total ${framesRefusedBusy}\n`;
          extra +=
            '# HELP sb_channel_messages_total WeChat/Weibo messages in, replies out, replies that failed.\n# TYPE sb_channel_messages_total counter\n';
          extra += `sb_channel_messages_total{dir="in"} ${channelStats.inbound}\n`;
          extra += `sb_channel_messages_total{dir="out"} ${channelStats.outbound}\n`;
          extra += `sb_channel_messages_total{dir="out_failed"} ${channelStats.outboundFailed}\n`;
          if (clusterNode) extra += clusterNode.metricsText();
          res.end(text + extra);
        });
      })
      .catch((err) => sendError(g, err, internal));
  });

  app.any('/v1/*', (res) => {
    const g = guard(res);
    sendError(g, new SbError('SB_ERR_NOT_FOUND', 'no such endpoint'));
  });

  app.get('/*', (res, req) => {
    const url = req.getUrl();
    const f = staticFiles.get(url) ?? staticFiles.get(url + '.html');
    res.cork(() => {
      if (!f) {
        res
          .writeStatus(statusLine(404))
          .writeHeader('content-type', 'text/plain; charset=utf-8')
          .end('not found');
        return;
      }
      res.writeHeader('content-type', f.type).writeHeader('cache-control', f.cache).end(f.body);
    });
  });

  // ------------------------------------------------------------------------------ listen
  const listenSocket = await new Promise<Uws.us_listen_socket>((resolve, reject) => {
    app.listen(cfg.host, cfg.port, (s) =>
      s ? resolve(s) : reject(new Error(`cannot listen on ${cfg.host}:${cfg.port}`)),
    );
  });
  const port = uws.us_socket_local_port(listenSocket);
  const grpcServer =
    cfg.grpcPort === null
      ? undefined
      : await startGrpc(cfg.host, cfg.grpcPort, { runtime, dir, keys: apiKeys, now: () => Date.now(), log });
  const url = `http://${cfg.host}:${port}`;

  return {
    url,
    port,
    runtime,
    demoLogins,
    grpcPort: grpcServer?.port,
    routes,
    async drain() {
      if (draining) return;
      draining = true;
      await grpcServer?.stop();
      uws.us_listen_socket_close(listenSocket);
      clearInterval(sweep);
      for (const c of [...conns]) {
        if (c.ws && !c.closed) {
          flushConn(c);
          c.closed = true;
          c.ws.end(CLOSE_CODES.SHUTTING_DOWN, 'SB_ERR_SHUTTING_DOWN');
        }
      }
      if (clusterNode) await clusterNode.drain();
      else await runtime.drain();
    },
  };
}

export { ERRORS };
