/**
 * Size budgets of the built pages (gzip, JavaScript loaded by the page): the visitor window is
 * embedded in customers' sites and opened on phones, so it stays small.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'vite';
import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const out = `${root}test-results/console-budget`;
const KB = 1024;

/** Gzipped bytes of every script a page loads up front (entry and preloaded chunks). */
function pageJsGzip(page: string): { total: number; files: string[] } {
  const html = readFileSync(`${out}/${page}`, 'utf8');
  const files = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]!);
  const total = files.reduce((n, f) => n + gzipSync(readFileSync(`${out}/${f}`)).length, 0);
  return { total, files };
}

describe('console bundle budgets', () => {
  beforeAll(async () => {
    await build({ configFile: `${root}console/vite.config.ts`, logLevel: 'warn', build: { outDir: out } });
  }, 60_000);

  it('budget - the visitor window loads at most 60 KB of gzipped JavaScript', () => {
    const { total, files } = pageJsGzip('chat.html');
    expect(files.length).toBeGreaterThan(0);
    expect(total).toBeLessThanOrEqual(60 * KB);
  });

  it('budget - the agent workspace loads at most 250 KB of gzipped JavaScript', () => {
    const { total, files } = pageJsGzip('index.html');
    expect(files.length).toBeGreaterThan(0);
    expect(total).toBeLessThanOrEqual(250 * KB);
  });
});
