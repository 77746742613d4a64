import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { startServer } from './server.ts';

describe('gateway configuration', () => {
  it('config - defaults are documented values', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ host: '127.0.0.1', port: 8080, store: 'embedded', workers: 1 });
    expect(c.limits.maxFrameBytes).toBe(16 * 1024);
    expect(c).toMatchObject({ maxFramesInFlight: 256, maxQueuedFrames: 100_000 });
  });

  it('config - environment overrides are parsed and validated', () => {
    const c = loadConfig({
      SB_PORT: '0',
      SB_STORE: 'cassandra',
      SB_CASSANDRA_CONTACT_POINTS: 'a, b',
      SB_CASSANDRA_CONSISTENCY: 'quorum',
      SB_CASSANDRA_REPLICATION: '{"class":"NetworkTopologyStrategy","dc1":3}',
      SB_LIMIT_FRAMES_PER_SECOND: '10',
      SB_CASSANDRA_HEAP: '2G',
      SB_MAX_FRAMES_IN_FLIGHT: '64',
      SB_MAX_QUEUED_FRAMES: '0',
    });
    expect(c).toMatchObject({ maxFramesInFlight: 64, maxQueuedFrames: 0 });
    expect(c.port).toBe(0);
    expect(c.cassandra).toMatchObject({
      contactPoints: ['a', 'b'],
      consistency: 'quorum',
      replication: { dc1: 3 },
    });
    expect(c.limits.framesPerSecond).toBe(10);
  });

  it('config - unknown SB_ variables and bad values stop the start with every problem listed', () => {
    expect(() => loadConfig({ SB_PROT: '1', SB_PORT: 'x', SB_STORE: 'mongo', SB_WORKERS: '-1' })).toThrow(
      /unknown setting SB_PROT[\s\S]*SB_PORT must be[\s\S]*SB_STORE must be[\s\S]*SB_WORKERS must be/,
    );
    expect(() => loadConfig({ SB_TOKEN_SECRET: 'short' })).toThrow(/at least 32/);
    expect(() => loadConfig({ SB_CASSANDRA_REPLICATION: 'nope' })).toThrow(/must be JSON/);
    expect(() => loadConfig({ SB_MAX_FRAMES_IN_FLIGHT: '0', SB_MAX_QUEUED_FRAMES: '-5' })).toThrow(
      /SB_MAX_FRAMES_IN_FLIGHT must be[\s\S]*SB_MAX_QUEUED_FRAMES must be/,
    );
  });

  it('config - a configured Cassandra that does not answer fails the start clearly, with no fallback', async () => {
    const cfg = loadConfig(
      {
        SB_STORE: 'cassandra',
        SB_CASSANDRA_PORT: '1',
        SB_CASSANDRA_CONNECT_ATTEMPTS: '2',
        SB_PORT: '0',
        SB_WORKERS: '0',
      },
      { dataDir: `/tmp/sb-cfg-${process.pid}` },
    );
    const quiet = { info: () => {}, error: () => {} };
    const err = await startServer(cfg, quiet).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SB_ERR_STORE_UNAVAILABLE' });
    expect(String((err as Error).message)).toMatch(
      /Cassandra at 127\.0\.0\.1:1 .* did not answer after 2 attempts/,
    );
  });
});
