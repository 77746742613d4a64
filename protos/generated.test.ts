/**
 * The TypeScript generated from the .proto files (partner API, cluster transport) is current: a
 * fresh `buf generate` into a temp folder produces exactly the committed protos/gen, file for file.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  );
}

describe('generated code', () => {
  it('protos/gen is current with the .proto files (npm run protos)', () => {
    const out = mkdtempSync(join(tmpdir(), 'sb-gen-'));
    try {
      execFileSync(join(root, 'node_modules/.bin/buf'), ['generate', '--output', out], {
        cwd: root,
        stdio: 'pipe',
      });
      const fresh = files(join(out, 'protos/gen'))
        .map((f) => relative(out, f))
        .sort();
      const committed = files(join(root, 'protos/gen'))
        .map((f) => relative(root, f))
        .sort();
      expect(fresh, 'generated files').toEqual(committed);
      expect(fresh).toContain('protos/gen/cluster/v1/cluster.pb.ts');
      for (const f of fresh)
        expect(
          readFileSync(join(out, f), 'utf8') === readFileSync(join(root, f), 'utf8'),
          `${f} is stale: run npm run protos`,
        ).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
