/**
 * Starts and stops the local Cassandra and Redis used by development and integration tests, by
 * calling scripts/cassandra/*.sh and scripts/redis/*.sh (see docs/LOCAL-SERVICES.md). Meant for a
 * vitest globalSetup:
 *
 *   import { ensureCassandra, stopCassandra } from '../scripts/services.ts';
 *   export async function setup() { await ensureCassandra({ port: 19042, storagePort: 17000, wipe: true }); }
 *   export async function teardown() { await stopCassandra({ port: 19042, wipe: true }); }
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const scriptsDir = path.dirname(fileURLToPath(import.meta.url));
/** Repository root (the scripts compute the same from their own location). */
export const repoRoot = path.resolve(scriptsDir, '..');

/** Defaults, mirrored from the shell scripts. */
export const CASSANDRA_DEFAULT_PORT = 9042;
export const CASSANDRA_DEFAULT_STORAGE_PORT = 7000;
export const REDIS_DEFAULT_PORT = 6390;
/** Seconds the Cassandra start script waits for CQL before giving up. */
export const CASSANDRA_DEFAULT_TIMEOUT_S = 180;

export interface CassandraOptions {
  /** CQL native port (default 9042). */
  port?: number;
  /** Internode storage port (default 7000); must differ between nodes running at once. */
  storagePort?: number;
  /** Instance folder under .cache/cassandra/ (default `node-<port>`). */
  instance?: string;
  /** Max heap, e.g. '1G' (default 1G). */
  heap?: string;
  /** Seconds to wait for CQL (default 180). */
  timeoutSeconds?: number;
  /** CPU priority, 0–19 (default 0): see SB_CASSANDRA_NICE in scripts/cassandra/start.sh. */
  nice?: number;
  /** cpu.shares of its background threads' CPU group: see SB_CASSANDRA_BACKGROUND_CPU_SHARES. */
  backgroundCpuShares?: number;
  /** Delete the instance's data before starting (start) or after stopping (stop). */
  wipe?: boolean;
  /** Print the script output as it runs (default: only on failure). */
  verbose?: boolean;
}

export interface RedisOptions {
  /** Port (default 6390). */
  port?: number;
  verbose?: boolean;
}

export interface ServiceEndpoint {
  host: string;
  port: number;
  /** The start script's last line, e.g. "Cassandra 5.0.9 ready on 127.0.0.1:9042 (pid 1234) in 3.7 s". */
  message: string;
}

/** Error from a start/stop script, with the script output and the service log tail in `message`. */
export class LocalServiceError extends Error {
  override readonly name = 'LocalServiceError';
  constructor(
    message: string,
    readonly output: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function cassandraEnv(opts: CassandraOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (opts.port !== undefined) env.SB_CASSANDRA_PORT = String(opts.port);
  if (opts.storagePort !== undefined) env.SB_CASSANDRA_STORAGE_PORT = String(opts.storagePort);
  if (opts.instance !== undefined) env.SB_CASSANDRA_INSTANCE = opts.instance;
  if (opts.heap !== undefined) env.SB_CASSANDRA_HEAP = opts.heap;
  if (opts.timeoutSeconds !== undefined) env.SB_CASSANDRA_TIMEOUT = String(opts.timeoutSeconds);
  if (opts.nice !== undefined) env.SB_CASSANDRA_NICE = String(opts.nice);
  if (opts.backgroundCpuShares !== undefined)
    env.SB_CASSANDRA_BACKGROUND_CPU_SHARES = String(opts.backgroundCpuShares);
  return env;
}

function tail(file: string, lines: number): string {
  if (!existsSync(file)) return '';
  const text = readFileSync(file, 'utf8').trimEnd().split('\n');
  return `--- last ${Math.min(lines, text.length)} lines of ${file} ---\n${text.slice(-lines).join('\n')}`;
}

function run(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  verbose: boolean,
  logFiles: string[],
): Promise<string> {
  const file = path.join(scriptsDir, script);
  return new Promise((resolve, reject) => {
    const child = execFile(
      'bash',
      [file, ...args],
      { cwd: repoRoot, env, timeout: timeoutMs, killSignal: 'SIGTERM', maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const output = `${stdout}${stderr}`.trim();
        if (!error) {
          resolve(output);
          return;
        }
        const logs = logFiles
          .map((f) => tail(f, 40))
          .filter(Boolean)
          .join('\n');
        const why = error.killed ? `timed out after ${timeoutMs} ms` : `exited with ${String(error.code)}`;
        reject(
          new LocalServiceError(
            `scripts/${script} ${args.join(' ')} ${why}\n${output}${logs ? `\n${logs}` : ''}`,
            output,
            { cause: error },
          ),
        );
      },
    );
    if (verbose) child.stderr?.pipe(process.stderr);
  });
}

function lastLine(output: string): string {
  return output.split('\n').at(-1) ?? '';
}

/** True when a Java 11 or 17 runtime (what Cassandra 5.0 accepts) is on PATH or in JAVA_HOME. */
export function javaAvailable(): boolean {
  const java = process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
  const result = spawnSync(java, ['-XshowSettings:properties', '-version'], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  if (result.status !== 0) return false;
  const match = /java\.specification\.version = (\d+)/.exec(result.stderr);
  return match?.[1] === '11' || match?.[1] === '17';
}

/** True when Maven is on PATH (needed only for the first Cassandra start, to fetch the jars). */
/**
 * For test files that need Cassandra: true when Java is here. Without Java a test run on a
 * developer machine skips loudly; in CI (CI=true) it fails, because there those tests must run.
 */
export function cassandraTestsCanRun(what: string): boolean {
  if (javaAvailable()) return true;
  if (process.env['CI']) throw new Error(`CI=true but Java is not available: ${what} must run in CI`);
  console.warn(`\n*** SKIPPING ${what}: no Java on this machine (install openjdk-17-jre) ***\n`);
  return false;
}

/**
 * For test files that need Redis: true when Debian's redis-server is installed. Without it a test
 * run on a developer machine skips loudly; in CI (CI=true) it fails, because there those tests must run.
 */
export function redisTestsCanRun(what: string): boolean {
  if (spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status === 0) return true;
  if (process.env['CI']) throw new Error(`CI=true but redis-server is missing: ${what} must run in CI`);
  console.warn(
    `\n*** SKIPPING ${what}: no redis-server on this machine (apt-get install redis-server) ***\n`,
  );
  return false;
}

export function mavenAvailable(): boolean {
  return spawnSync('mvn', ['-v'], { timeout: 30_000 }).status === 0;
}

function cassandraHome(opts: CassandraOptions): string {
  const port = opts.port ?? CASSANDRA_DEFAULT_PORT;
  return path.join(repoRoot, '.cache', 'cassandra', opts.instance ?? `node-${port}`);
}

/**
 * Starts the local Cassandra node (fetching the jars with Maven on first use) unless it is already
 * running, and resolves once it answers CQL. Idempotent and safe to call from several processes.
 */
export async function ensureCassandra(opts: CassandraOptions = {}): Promise<ServiceEndpoint> {
  const timeoutS = opts.timeoutSeconds ?? CASSANDRA_DEFAULT_TIMEOUT_S;
  const home = cassandraHome(opts);
  // Headroom over the script's own CQL timeout for the one-time Maven download.
  const output = await run(
    'cassandra/start.sh',
    opts.wipe ? ['--wipe'] : [],
    cassandraEnv(opts),
    (timeoutS + 600) * 1000,
    opts.verbose ?? false,
    [path.join(home, 'logs', 'system.log'), path.join(home, 'logs', 'stdout.log')],
  );
  return { host: '127.0.0.1', port: opts.port ?? CASSANDRA_DEFAULT_PORT, message: lastLine(output) };
}

/** Stops the local Cassandra node (SIGTERM, SIGKILL after a timeout); with `wipe`, kills it and deletes its data. */
export async function stopCassandra(opts: CassandraOptions = {}): Promise<void> {
  await run(
    'cassandra/stop.sh',
    opts.wipe ? ['--wipe'] : [],
    cassandraEnv(opts),
    120_000,
    opts.verbose ?? false,
    [],
  );
}

/** Starts Redis (Debian redis-server, no persistence) unless it already answers PING on the port. */
export async function ensureRedis(opts: RedisOptions = {}): Promise<ServiceEndpoint> {
  const port = opts.port ?? REDIS_DEFAULT_PORT;
  const env = { ...process.env, SB_REDIS_PORT: String(port) };
  const output = await run('redis/start.sh', [], env, 120_000, opts.verbose ?? false, [
    path.join(repoRoot, '.cache', 'redis', String(port), 'redis.log'),
  ]);
  return { host: '127.0.0.1', port, message: lastLine(output) };
}

/** Stops the Redis started by ensureRedis on that port. */
export async function stopRedis(opts: RedisOptions = {}): Promise<void> {
  const env = { ...process.env, SB_REDIS_PORT: String(opts.port ?? REDIS_DEFAULT_PORT) };
  await run('redis/stop.sh', [], env, 30_000, opts.verbose ?? false, []);
}
