/**
 * `npm start` entry: loads the configuration, starts the gateway and the actor runtime, prints
 * where it listens and the demo logins, and drains cleanly on SIGINT/SIGTERM.
 */
import { loadConfig } from './config.ts';
import { startServer } from './server.ts';

async function main(): Promise<void> {
  let cfg;
  try {
    cfg = loadConfig();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const server = await startServer(cfg);
  if (server.grpcPort !== undefined) console.log(`SB_GRPC_LISTENING ${cfg.host}:${server.grpcPort}`);
  console.log(`SB_LISTENING ${server.url}`);
  if (cfg.demo.enabled) {
    console.log(
      `Switchboard is running: agent console ${server.url}/  visitor chat ${server.url}/chat.html?tenant=${cfg.demo.tenantId}`,
    );
    console.log(`Demo logins (password "${cfg.demo.password}"):`);
    for (const l of server.demoLogins.slice(0, 5)) console.log(`  ${l.role.padEnd(6)} ${l.email}`);
    if (server.demoLogins.length > 5) console.log(`  … and ${server.demoLogins.length - 5} more agents`);
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    console.log(`${sig}: draining`);
    server
      .drain()
      .then(() => process.exit(0))
      .catch((err) => {
        console.error('drain failed', err);
        process.exit(1);
      });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err) => {
  console.error('Switchboard failed to start:', err);
  process.exit(1);
});
