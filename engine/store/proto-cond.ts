import { open, IF_EXISTS } from 'lmdb';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const dir = mkdtempSync(join(tmpdir(), 'sb-cond-'));
const root = open({ path: dir, maxDbs: 16 });
const msgs = root.openDB<unknown, Array<string|number>>({ name: 'm', keyEncoding: 'ordered-binary', encoding: 'msgpack' });
const ids = root.openDB<number, Array<string|number>>({ name: 'i', keyEncoding: 'ordered-binary', encoding: 'msgpack' });
function append(t: string, s: string, seq: number, cm: string, body: unknown): Promise<boolean> {
  let p!: Promise<boolean>;
  const inner = () => {
    const writes = () => { msgs.put([t, s, seq], { at: Date.now(), cm, body }); ids.put([t, s, cm], seq); };
    const noSeq = () => { p = msgs.ifNoExists([t, s, seq], seq > 1 ? () => { p = msgs.ifVersion([t, s, seq - 1], IF_EXISTS, writes); } : writes); };
    p = ids.ifNoExists([t, s, cm], noSeq);
  };
  inner();
  return p;
}
console.log(await append('t','s',1,'a',{x:1}), 'expect true');
console.log(await append('t','s',1,'b',{x:1}), 'expect false (seq taken)');
console.log(await append('t','s',2,'a',{x:1}), 'expect false (dup cm)');
console.log(await append('t','s',3,'c',{x:1}), 'expect false (gap)');
console.log(await append('t','s',2,'c',{x:1}), 'expect true');
console.log([...msgs.getRange({})].map(e=>e.key), [...ids.getRange({})].map(e=>[e.key,e.value]));
// throughput
const next = new Array(1000).fill(1); let acked = 0; const end = performance.now() + 5000; const t0 = performance.now();
await Promise.all(Array.from({length:256}, async (_, c) => {
  const own: number[] = []; for (let s = c; s < 1000; s += 256) own.push(s); let i = 0;
  while (performance.now() < end) { const s = own[i++ % own.length]!; const seq = next[s]!;
    const ok = await append('tenant-1', `stream-${s}`, seq, `c-${s}-${seq}`, { kind: 'message', from: 'visitor', text: 'Hello, I would like to know where my order is. It was due yesterday. Order 123456.' });
    if (!ok) throw new Error('failed ' + s + ' ' + seq); next[s] = seq + 1; acked++; }
}));
console.log(Math.round(acked / ((performance.now() - t0) / 1000)), 'appends/s');
await root.close();
