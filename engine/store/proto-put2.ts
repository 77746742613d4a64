import { open } from 'lmdb';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const dir = mkdtempSync(join(tmpdir(), 'sb-put-'));
const root = open({ path: dir, maxDbs: 16, trackMetrics: true } as never);
const msgs = root.openDB<unknown, number>({ name: 'm', encoding: 'msgpack' });
// sequential single puts: commit+sync latency
let t = performance.now();
for (let i = 0; i < 200; i++) await msgs.put(i, { i });
console.log('single put latency', ((performance.now() - t) / 200).toFixed(2), 'ms');
console.log((root as unknown as { getStats(): unknown }).getStats());
await root.close();
