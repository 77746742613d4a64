import { open } from 'lmdb';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const mode = process.argv[2] ?? 'put';
const dir = mkdtempSync(join(tmpdir(), 'sb-put-'));
const root = open({ path: dir, maxDbs: 16, trackMetrics: true } as never);
const msgs = root.openDB<unknown, Array<string|number>>({ name: 'm', keyEncoding: 'ordered-binary', encoding: 'msgpack' });
const next = new Array(1000).fill(1); let acked = 0; const end = performance.now() + 5000; const t0 = performance.now();
const lat: number[] = [];
await Promise.all(Array.from({length:Number(process.argv[3] ?? 256)}, async (_, c) => {
  const own: number[] = []; for (let s = c; s < 1000; s += 256) own.push(s); let i = 0;
  while (performance.now() < end) { const s = own[i++ % own.length]!; const seq = next[s]!;
    const st = performance.now();
    const v = { at: Date.now(), body: { kind: 'message', from: 'visitor', text: 'Hello, I would like to know where my order is. It was due yesterday. Order 123456.' } };
    if (mode === 'put') await msgs.put(['tenant-1', `stream-${s}`, seq], v);
    else if (mode === 'ifno') await msgs.ifNoExists(['tenant-1', `stream-${s}`, seq], () => { msgs.put(['tenant-1', `stream-${s}`, seq], v); });
    else if (mode === 'txn') await msgs.transaction(() => { if (msgs.get(['tenant-1', `stream-${s}`, seq]) === undefined) msgs.put(['tenant-1', `stream-${s}`, seq], v); });
    lat.push(performance.now() - st);
    next[s] = seq + 1; acked++; }
}));
lat.sort((a,b)=>a-b);
console.log(mode, Math.round(acked / ((performance.now() - t0) / 1000)), 'appends/s', 'p50', lat[lat.length>>1]?.toFixed(2));
const st = (root as unknown as { getStats(): Record<string, unknown> }).getStats(); delete st.root; delete st.free; console.log(st);
await root.close();
