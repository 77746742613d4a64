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
  /** Embedded store directory. Default ./data. */
  dataDir: string;
  /** Actor worker threads; 0 runs actors on the gateway thread. Default 1. */
  workers: number;
  /** Token lifetime, seconds. Default 12 h. */
  tokenTtlSec: number;
  /** HMAC secret for tokens; default: generated once and kept in `<dataDir>/token-secret`. */
  tokenSecret: string | undefined;
  /** Directory of the built console; default console/dist. */
  staticDir: string;
  /** Largest accepted HTTP request body, bytes. Default 64 KiB. */
  maxHttpBodyBytes: number;
  limits: Limits;
  demo: { enabled: boolean; tenantId: string; password: string; agents: number; agentMaxConcurrent: number };
}

export const DEFAULT_CONFIG: ServerConfig = {
  host: '127.0.0.1',
  port: 8080,
  dataDir: resolve('data'),
  workers: 1,
  tokenTtlSec: 12 * 3600,
  tokenSecret: undefined,
  staticDir: resolve(new URL('../console/dist', import.meta.url).pathname),
  maxHttpBodyBytes: 64 * 1024,
  limits: { ...DEFAULT_LIMITS },
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

const SETTERS: Record<string, Setter> = {
  SB_HOST: (c, v) => (c.host = v),
  SB_PORT: (c, v) => (c.port = int('SB_PORT', 0, 65535)(v)),
  SB_DATA_DIR: (c, v) => (c.dataDir = resolve(v)),
  SB_WORKERS: (c, v) => (c.workers = int('SB_WORKERS', 0, 64)(v)),
  SB_TOKEN_TTL_SEC: (c, v) => (c.tokenTtlSec = int('SB_TOKEN_TTL_SEC', 60, 30 * 86400)(v)),
  SB_TOKEN_SECRET: (c, v) => {
    if (v.length < 32) throw new Error('SB_TOKEN_SECRET must be at least 32 characters');
    c.tokenSecret = v;
  },
  SB_STATIC_DIR: (c, v) => (c.staticDir = resolve(v)),
  SB_DEMO: (c, v) => (c.demo.enabled = v !== '0' && v !== 'false'),
  SB_DEMO_PASSWORD: (c, v) => {
    if (v.length < 8) throw new Error('SB_DEMO_PASSWORD must be at least 8 characters');
    c.demo.password = v;
  },
  SB_DEMO_AGENTS: (c, v) => (c.demo.agents = int('SB_DEMO_AGENTS', 0, 5000)(v)),
  SB_DEMO_AGENT_MAX: (c, v) => (c.demo.agentMaxConcurrent = int('SB_DEMO_AGENT_MAX', 0, 200)(v)),
  ...Object.fromEntries(
    Object.entries(LIMIT_VARS).map(([name, key]) => [
      name,
      (c: ServerConfig, v: string) => (c.limits[key] = int(name, 1, 1 << 30)(v)),
    ]),
  ),
};

/** Variables of the environment that other parts read (bench, tests, cluster): accepted, not parsed here. */
const KNOWN_ELSEWHERE = new Set(['SB_LOG']);

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
  if (problems.length) throw new Error(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  return {
    ...c,
    ...overrides,
    limits: { ...c.limits, ...overrides.limits },
    demo: { ...c.demo, ...overrides.demo },
  };
}

export const CONFIG_VARIABLES = Object.keys(SETTERS);
