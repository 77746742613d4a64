/**
 * `npm start`: builds the console when its sources are newer than the last build, then runs the
 * server. Building here (not by hand) keeps the two-command quick start true on a fresh clone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const consoleDir = join(root, 'console');
const built = join(consoleDir, 'dist', 'index.html');

function newest(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    if (name === 'dist' || name === 'node_modules' || name === 'e2e') continue;
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : s.mtimeMs);
  }
  return t;
}

if (existsSync(join(consoleDir, 'vite.config.ts'))) {
  const stale = !existsSync(built) || newest(consoleDir) > statSync(built).mtimeMs;
  if (stale) {
    console.log('Building the console…');
    const r = spawnSync(
      process.execPath,
      [
        join(root, 'node_modules/vite/bin/vite.js'),
        'build',
        '--config',
        'console/vite.config.ts',
        '--logLevel',
        'warn',
      ],
      {
        cwd: root,
        stdio: 'inherit',
      },
    );
    if (r.status !== 0) {
      console.error('Console build failed; see the output above.');
      process.exit(r.status ?? 1);
    }
  }
}

await import('../gateway/main.ts');
