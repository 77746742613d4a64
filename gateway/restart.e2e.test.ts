import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AckFrame, SessionEvent, SessionFrame } from '../protos/ws-v1.ts';
import { login, seenEvents, TestClient, visitorToken } from './testing.ts';

const root = new URL('..', import.meta.url).pathname;
const dataDir = mkdtempSync(join(tmpdir(), 'sb-restart-'));
const procs: ChildProcess[] = [];

afterAll(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

/** Starts `gateway/main.ts` as its own process, as `npm start` does, and waits for SB_LISTENING. */
function startProcess(): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], {
    cwd: root,
    env: {
      ...process.env,
      SB_PORT: '0',
      SB_GRPC_PORT: '0',
      SB_DATA_DIR: dataDir,
      SB_WORKERS: '1',
      SB_STATIC_DIR: dataDir,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  procs.push(proc);
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /SB_LISTENING (\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ proc, url: m[1]! });
      }
    });
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
}

describe('gateway restart', () => {
  it('gateway - acknowledged history survives a killed server process and resumes exactly', async () => {
    const first = await startProcess();
    const ws = first.url.replace('http', 'ws');
    const a = await TestClient.connect(ws, 'agent', (await login(first.url, 'agent1@demo.test')).token);
    const vt = await visitorToken(first.url);
    const v = await TestClient.connect(ws, 'visitor', vt.token);
    v.send({ type: 'open' });
    const sid = (await v.next<SessionFrame>((f) => f.type === 'session')).session.sessionId;
    await a.next((f) => f.type === 'assigned');
    const acked: number[] = [];
    for (let i = 0; i < 20; i++) {
      v.send({ type: 'send', sessionId: sid, clientMsgId: `m${i}`, text: `message ${i}` });
      acked.push((await v.next<AckFrame>((f) => f.type === 'ack')).seq);
    }
    // Kill without any chance to flush: only what was durable before the ack may count.
    first.proc.kill('SIGKILL');
    await new Promise((r) => first.proc.once('exit', r));
    a.close();
    v.close();

    const second = await startProcess();
    const r = await fetch(`${second.url}/v1/sessions/${sid}/events?afterSeq=0&limit=1000`, {
      headers: { authorization: `Bearer ${vt.token}` },
    });
    expect(r.status).toBe(200);
    const { events } = (await r.json()) as { events: SessionEvent[] };
    const texts = events
      .filter((e) => e.body.kind === 'message')
      .map((e) => (e.body.kind === 'message' ? e.body.text : ''));
    expect(texts).toEqual(Array.from({ length: 20 }, (_, i) => `message ${i}`));
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));

    // The same visitor resumes over the socket; the conversation continues with the next seq.
    const v2 = await TestClient.connect(second.url.replace('http', 'ws'), 'visitor', vt.token);
    v2.send({ type: 'resume', sessionId: sid, lastSeq: acked[9]! });
    await v2.next((f) => f.type === 'events' && !f.more);
    v2.send({ type: 'send', sessionId: sid, clientMsgId: 'after', text: 'after restart' });
    const ack = await v2.next<AckFrame>((f) => f.type === 'ack');
    expect(ack.seq).toBe(events.length + 1);
    // A resend of a message from before the crash is recognised as the same message.
    v2.send({ type: 'send', sessionId: sid, clientMsgId: 'm3', text: 'message 3' });
    expect(await v2.next<AckFrame>((f) => f.type === 'ack')).toMatchObject({
      seq: acked[3],
      duplicate: true,
    });
    const replayed = seenEvents(v2, sid).map((e) => e.seq);
    expect(replayed[0]).toBe(acked[9]! + 1);
    v2.close();
    second.proc.kill('SIGTERM');
  }, 90_000);
});
