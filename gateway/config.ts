/**
 * Server configuration: documented defaults as named constants, overridable by `SB_*` environment
 * variables, validated at start-up (unknown `SB_` variables are rejected so typos do not pass silently).
 */
import { resolve } from 'node:path';
import { DEFAULT_LIMITS, type Limits } from '../protos/ws-v1.ts';

export interface ServerConfig {
  /** Interface to bind. Default 127.0.0.1. */
  host: string;
  /** TCP port; 0 picks a free one. Default 8080. */
  port: number;
  /** Message history and state: `embedded` (LMDB under dataDir, default) or `cassandra`. */
  store: 'embedded' | 'cassandra';
  /** Embedded store directory (also keeps the token secret). Default ./data. */
  dataDir: string;
  cassandra: {
    /** Hosts, default ['127.0.0.1']. */
    contactPoints: string[];
    /** CQL port, default 9042. */
    port: number;
    /** Default `switchboard`. */
    keyspace: string;
    /** Local data center name, default `datacenter1`. */
    localDataCenter: string;
    /** Read/write consistency, default localQuorum. */
    consistency: 'one' | 'localOne' | 'quorum' | 'localQuorum' | 'all' | 'eachQuorum';
    /** Keyspace replication when it is created, default SimpleStrategy rf 1. */
    replication: Record<string, string | number>;
    /** Connection attempts at start-up before a clear failure (backoff 0.5 s doubling to 5 s). Default 10. */
    connectAttempts: number;
  };
  /** Port of the partner gRPC API on `host` (0 = any free port, null = off). Default 8081. */
  grpcPort: number | null;
  /** Actor worker threads; 0 runs actors on the gateway thread. Default 1. */
  workers: number;
  /** Token lifetime, seconds. Default 12 h. */
  tokenTtlSec: number;
  /** HMAC secret for tokens; default: generated once and kept in `<dataDir>/token-secret`. */
  tokenSecret: string | undefined;
  /** Directory of the built console; default console/dist. */
  staticDir: string;
  /** Bearer token of the platform operator routes (/v1/platform/…); undefined = those routes are off. */
  platformToken: string | undefined;
  /** Largest accepted HTTP request body, bytes. Default 64 KiB. */
  maxHttpBodyBytes: number;
  /** Largest attachment an agent or visitor may upload (images and files), bytes. */
  maxFileBytes: number;
  /**
   * WebSocket frames being handled at once by the gateway, across all sockets. Further frames wait
   * in arrival order, as received text, until one finishes. Default {@link MAX_FRAMES_IN_FLIGHT}.
   */
  maxFramesInFlight: number;
  /**
   * Frames that may wait for that turn; a frame past it is refused with SB_ERR_BUSY (the client
   * sends it again later). Default {@link MAX_QUEUED_FRAMES}.
   */
  maxQueuedFrames: number;
  /**
   * Cluster mode (undefined: a single node). Nodes share Redis (membership, placement) and the
   * store (Cassandra); actors run on the gateway thread of the node that serves their shard.
   */
  cluster:
    | {
        nodeId: string;
        redisUrl: string;
        /** host:port for the node-to-node transport (port 0: any). */
        listen: string;
        /** Host other nodes dial. */
        advertiseHost: string;
        /** Redis key prefix (one cluster per prefix). */
        prefix: string;
        leaseMs: number;
        heartbeatMs: number;
        /** Tests only: several nodes of one process on one embedded store. */
        allowEmbeddedStore: boolean;
      }
    | undefined;
  limits: Limits;
  /** Webhook delivery (actors/webhook-outbox.ts): retries, timeout, plain http to loopback (tests). */
  webhooks: {
    allowLoopbackHttp: boolean;
    baseDelayMs: number;
    maxDelayMs: number;
    maxAttempts: number;
    timeoutMs: number;
  };
  demo: { enabled: boolean; tenantId: string; password: string; agents: number; agentMaxConcurrent: number };
}

/**
 * Frames handled at once by the gateway. Under overload every frame in progress holds its whole
 * path (parsed frame, actor turn, store append) until its message is durable; with thousands in
 * progress those objects outlive the young generation and the collector's copying became the
 * largest cost at saturation. Waiting frames cost one string each. 256 keeps enough appends per
 * log flush (bench/RESULTS.md, "Saturation"); at normal load far fewer are ever in progress.
 */
export const MAX_FRAMES_IN_FLIGHT = 256;
/** Frames waiting for their turn across all sockets (≈ 300 bytes each). */
export const MAX_QUEUED_FRAMES = 100_000;

export const DEFAULT_CONFIG: ServerConfig = {
  host: '127.0.0.1',
  port: 8080,
  store: 'embedded',
  dataDir: resolve('data'),
  cassandra: {
    contactPoints: ['127.0.0.1'],
    port: 9042,
    keyspace: 'switchboard',
    localDataCenter: 'datacenter1',
    consistency: 'localQuorum',
    replication: { class: 'SimpleStrategy', replication_factor: 1 },
    connectAttempts: 10,
  },
  grpcPort: 8081,
  workers: 1,
  tokenTtlSec: 12 * 3600,
  tokenSecret: undefined,
  staticDir: resolve(new URL('../console/dist', import.meta.url).pathname),
  platformToken: undefined,
  maxHttpBodyBytes: 64 * 1024,
  maxFileBytes: 10 * 1024 * 1024,
  maxFramesInFlight: MAX_FRAMES_IN_FLIGHT,
  maxQueuedFrames: MAX_QUEUED_FRAMES,
  cluster: undefined,
  limits: { ...DEFAULT_LIMITS },
  webhooks: {
    allowLoopbackHttp: false,
    baseDelayMs: 2000,
    maxDelayMs: 30 * 60_000,
    maxAttempts: 16,
    timeoutMs: 10_000,
  },
  demo: { enabled: true, tenantId: 'demo', password: 'switchboard', agents: 2, agentMaxConcurrent: 10 },
};

type Setter = (c: ServerConfig, v: string) => void;

function int(name: string, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`${name} must be an integer in [${min}, ${max}], got "${v}"`);
    return n;
  };
}

const LIMIT_VARS: Record<string, keyof Limits> = {
  SB_LIMIT_MAX_FRAME_BYTES: 'maxFrameBytes',
  SB_LIMIT_MAX_TEXT_CHARS: 'maxTextChars',
  SB_LIMIT_FRAMES_PER_SECOND: 'framesPerSecond',
  SB_LIMIT_MAX_BACKPRESSURE_BYTES: 'maxBackpressureBytes',
  SB_LIMIT_IDLE_TIMEOUT_SEC: 'idleTimeoutSec',
  SB_LIMIT_RESUME_PAGE_SIZE: 'resumePageSize',
};

function clusterOf(c: ServerConfig): NonNullable<ServerConfig['cluster']> {
  c.cluster ??= {
    nodeId: '',
    redisUrl: 'redis://127.0.0.1:6379',
    listen: '127.0.0.1:7946',
    advertiseHost: '127.0.0.1',
    prefix: 'sb:',
    leaseMs: 3000,
    heartbeatMs: 1000,
    allowEmbeddedStore: false,
  };
  return c.cluster;
}

const SETTERS: Record<string, Setter> = {
  SB_HOST: (c, v) => (c.host = v),
  SB_PORT: (c, v) => (c.port = int('SB_PORT', 0, 65535)(v)),
  SB_DATA_DIR: (c, v) => (c.dataDir = resolve(v)),
  SB_STORE: (c, v) => {
    if (v !== 'embedded' && v !== 'cassandra')
      throw new Error(`SB_STORE must be embedded or cassandra, got "${v}"`);
    c.store = v;
  },
  SB_CASSANDRA_CONTACT_POINTS: (c, v) =>
    (c.cassandra.contactPoints = v
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)),
  SB_CASSANDRA_PORT: (c, v) => (c.cassandra.port = int('SB_CASSANDRA_PORT', 1, 65535)(v)),
  SB_CASSANDRA_KEYSPACE: (c, v) => {
    if (!/^[a-z][a-z0-9_]{0,47}$/.test(v))
      throw new Error('SB_CASSANDRA_KEYSPACE must be lower-case letters, digits and _');
    c.cassandra.keyspace = v;
  },
  SB_CASSANDRA_DC: (c, v) => (c.cassandra.localDataCenter = v),
  SB_CASSANDRA_CONSISTENCY: (c, v) => {
    const ok = ['one', 'localOne', 'quorum', 'localQuorum', 'all', 'eachQuorum'] as const;
    const found = ok.find((x) => x === v);
    if (!found) throw new Error(`SB_CASSANDRA_CONSISTENCY must be one of ${ok.join(', ')}`);
    c.cassandra.consistency = found;
  },
  SB_CASSANDRA_REPLICATION: (c, v) => {
    let r: unknown;
    try {
      r = JSON.parse(v);
    } catch {
      throw new Error(
        'SB_CASSANDRA_REPLICATION must be JSON, e.g. {"class":"NetworkTopologyStrategy","dc1":3}',
      );
    }
    if (!r || typeof r !== 'object' || typeof (r as { class?: unknown }).class !== 'string') {
      throw new Error('SB_CASSANDRA_REPLICATION needs a "class"');
    }
    c.cassandra.replication = r as Record<string, string | number>;
  },
  SB_CASSANDRA_CONNECT_ATTEMPTS: (c, v) =>
    (c.cassandra.connectAttempts = int('SB_CASSANDRA_CONNECT_ATTEMPTS', 1, 1000)(v)),
  SB_GRPC_PORT: (c, v) => (c.grpcPort = v === 'off' ? null : int('SB_GRPC_PORT', 0, 65535)(v)),
  SB_WORKERS: (c, v) => (c.workers = int('SB_WORKERS', 0, 64)(v)),
  SB_TOKEN_TTL_SEC: (c, v) => (c.tokenTtlSec = int('SB_TOKEN_TTL_SEC', 60, 30 * 86400)(v)),
  SB_TOKEN_SECRET: (c, v) => {
    if (v.length < 32) throw new Error('SB_TOKEN_SECRET must be at least 32 characters');
    c.tokenSecret = v;
  },
  SB_MAX_FRAMES_IN_FLIGHT: (c, v) => (c.maxFramesInFlight = int('SB_MAX_FRAMES_IN_FLIGHT', 1, 1_000_000)(v)),
  SB_MAX_QUEUED_FRAMES: (c, v) => (c.maxQueuedFrames = int('SB_MAX_QUEUED_FRAMES', 0, 10_000_000)(v)),
  SB_MAX_HTTP_BODY_BYTES: (c, v) =>
    (c.maxHttpBodyBytes = int('SB_MAX_HTTP_BODY_BYTES', 1024, 16 * 1024 * 1024)(v)),
  SB_MAX_FILE_BYTES: (c, v) => (c.maxFileBytes = int('SB_MAX_FILE_BYTES', 1024, 100 * 1024 * 1024)(v)),
  SB_CLUSTER_NODE_ID: (c, v) => {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(v)) throw new Error('SB_CLUSTER_NODE_ID: 1–64 letters, digits, - or _');
    clusterOf(c).nodeId = v;
  },
  SB_REDIS_URL: (c, v) => {
    if (!/^rediss?:\/\//.test(v)) throw new Error('SB_REDIS_URL must be redis://host:port (or rediss://)');
    clusterOf(c).redisUrl = v;
  },
  SB_CLUSTER_LISTEN: (c, v) => {
    if (!/^[^:]+:\d{1,5}$/.test(v)) throw new Error('SB_CLUSTER_LISTEN must be host:port');
    clusterOf(c).listen = v;
  },
  SB_CLUSTER_ADVERTISE_HOST: (c, v) => (clusterOf(c).advertiseHost = v),
  SB_CLUSTER_ALLOW_EMBEDDED: (c, v) => (clusterOf(c).allowEmbeddedStore = v === '1' || v === 'true'),
  SB_CLUSTER_PREFIX: (c, v) => (clusterOf(c).prefix = v),
  SB_CLUSTER_LEASE_MS: (c, v) => (clusterOf(c).leaseMs = int('SB_CLUSTER_LEASE_MS', 500, 60_000)(v)),
  SB_CLUSTER_HEARTBEAT_MS: (c, v) =>
    (clusterOf(c).heartbeatMs = int('SB_CLUSTER_HEARTBEAT_MS', 100, 20_000)(v)),
  SB_STATIC_DIR: (c, v) => (c.staticDir = resolve(v)),
  SB_PLATFORM_TOKEN: (c, v) => {
    if (v.length < 32) throw new Error('SB_PLATFORM_TOKEN must be at least 32 characters');
    c.platformToken = v;
  },
  SB_DEMO: (c, v) => (c.demo.enabled = v !== '0' && v !== 'false'),
  SB_DEMO_PASSWORD: (c, v) => {
    if (v.length < 8) throw new Error('SB_DEMO_PASSWORD must be at least 8 characters');
    c.demo.password = v;
  },
  SB_DEMO_AGENTS: (c, v) => (c.demo.agents = int('SB_DEMO_AGENTS', 0, 5000)(v)),
  SB_DEMO_AGENT_MAX: (c, v) => (c.demo.agentMaxConcurrent = int('SB_DEMO_AGENT_MAX', 0, 200)(v)),
  SB_WEBHOOK_ALLOW_LOOPBACK_HTTP: (c, v) => (c.webhooks.allowLoopbackHttp = v === '1' || v === 'true'),
  SB_WEBHOOK_RETRY_BASE_MS: (c, v) =>
    (c.webhooks.baseDelayMs = int('SB_WEBHOOK_RETRY_BASE_MS', 1, 3_600_000)(v)),
  SB_WEBHOOK_RETRY_MAX_MS: (c, v) =>
    (c.webhooks.maxDelayMs = int('SB_WEBHOOK_RETRY_MAX_MS', 1, 86_400_000)(v)),
  SB_WEBHOOK_MAX_ATTEMPTS: (c, v) => (c.webhooks.maxAttempts = int('SB_WEBHOOK_MAX_ATTEMPTS', 1, 100)(v)),
  SB_WEBHOOK_TIMEOUT_MS: (c, v) => (c.webhooks.timeoutMs = int('SB_WEBHOOK_TIMEOUT_MS', 100, 60_000)(v)),
  ...Object.fromEntries(
    Object.entries(LIMIT_VARS).map(([name, key]) => [
      name,
      (c: ServerConfig, v: string) => (c.limits[key] = int(name, 1, 1 << 30)(v)),
    ]),
  ),
};

/** Variables of the environment that other parts read (bench, tests, cluster): accepted, not parsed here. */
const KNOWN_ELSEWHERE = new Set([
  'SB_LOG',
  // Read by scripts/cassandra and scripts/redis (local service start/stop), not by the server.
  'SB_CASSANDRA_CDS',
  'SB_CASSANDRA_HEAP',
  'SB_CASSANDRA_HEAP_MIN',
  'SB_CASSANDRA_INSTANCE',
  'SB_CASSANDRA_JMX_PORT',
  'SB_CASSANDRA_JVM_OPTS',
  'SB_CASSANDRA_STOP_TIMEOUT',
  'SB_CASSANDRA_STORAGE_PORT',
  'SB_CASSANDRA_TIMEOUT',
  'SB_CASSANDRA_TIMERSLACK_NS',
  'SB_CASSANDRA_NICE',
  'SB_CASSANDRA_BACKGROUND_CPU_SHARES',
  'SB_CASSANDRA_VERSION',
  'SB_REDIS_MAXMEMORY',
  'SB_REDIS_PORT',
  'SB_REDIS_STOP_TIMEOUT',
  'SB_REDIS_TIMEOUT',
]);

/** Builds the config from defaults, then `env`, then `overrides`. Throws with every problem listed. */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<ServerConfig> = {},
): ServerConfig {
  const c: ServerConfig = structuredClone(DEFAULT_CONFIG);
  const problems: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('SB_') || value === undefined) continue;
    const set = SETTERS[name];
    if (!set) {
      if (!KNOWN_ELSEWHERE.has(name)) problems.push(`unknown setting ${name}`);
      continue;
    }
    try {
      set(c, value);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  if (c.cluster && !c.cluster.nodeId) problems.push('cluster mode needs SB_CLUSTER_NODE_ID');
  if (c.cluster && c.store !== 'cassandra' && !c.cluster.allowEmbeddedStore)
    problems.push(
      'cluster mode needs the shared store: SB_STORE=cassandra (an embedded store is per machine)',
    );
  if (problems.length) throw new Error(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  return {
    ...c,
    ...overrides,
    limits: { ...c.limits, ...overrides.limits },
    webhooks: { ...c.webhooks, ...overrides.webhooks },
    demo: { ...c.demo, ...overrides.demo },
  };
}

export const CONFIG_VARIABLES = Object.keys(SETTERS);
