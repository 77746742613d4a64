/**
 * Testing kit for the gateway: boots a real server on port 0 with a temp data directory and
 * offers a small WebSocket client that waits for frames by predicate.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { ServerFrame, SessionEvent, TokenResponse } from '../protos/ws-v1.ts';
import { ownerOf } from '../engine/cluster/placement.ts';
import { loadConfig, type ServerConfig } from './config.ts';
import { startServer, type Server, type ServerOptions } from './server.ts';

export interface Booted {
  server: Server;
  url: string;
  wsUrl: string;
  dataDir: string;
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

const quiet = { info: () => {}, error: (m: string, e?: unknown) => console.error(m, e) };

export async function boot(overrides: Partial<ServerConfig> = {}, opts: ServerOptions = {}): Promise<Booted> {
  const dataDir = overrides.dataDir ?? mkdtempSync(join(tmpdir(), 'sb-test-'));
  const cfg = loadConfig({}, { port: 0, workers: 0, grpcPort: null, ...overrides, dataDir });
  const server = await startServer(cfg, quiet, opts);
  return {
    server,
    url: server.url,
    wsUrl: server.url.replace('http', 'ws'),
    dataDir,
    async stop(opts) {
      await server.drain();
      if (!opts?.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function postJson<T>(url: string, body: unknown): Promise<{ status: number; body: T }> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as T };
}

export async function visitorToken(
  base: string,
  tenantId = 'demo',
  visitorId?: string,
): Promise<TokenResponse> {
  const r = await postJson<TokenResponse>(
    `${base}/v1/visitor/token`,
    visitorId ? { tenantId, visitorId } : { tenantId },
  );
  if (r.status !== 200) throw new Error(`visitor token: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export async function login(base: string, email: string, password = 'switchboard'): Promise<TokenResponse> {
  const r = await postJson<TokenResponse>(`${base}/v1/auth/login`, { email, password });
  if (r.status !== 200) throw new Error(`login: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** A protocol client for tests: records every frame, waits for frames matching a predicate. */
export class TestClient {
  readonly frames: ServerFrame[] = [];
  private cursor = 0;
  private waiters: Array<() => void> = [];
  closed: { code: number; reason: string } | undefined;
  private closeWaiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(String(data)) as ServerFrame);
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: String(reason) };
      this.wake();
      for (const w of this.closeWaiters.splice(0)) w();
    });
  }

  static async connect(wsBase: string, role: 'visitor' | 'agent', token: string): Promise<TestClient> {
    const ws = new WebSocket(`${wsBase}/v1/ws/${role}?token=${encodeURIComponent(token)}`);
    const c = new TestClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    await c.next((f) => f.type === 'welcome');
    return c;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Next frame (after the previous `next`) matching `pred`; frames skipped are still in `frames`. */
  async next<T extends ServerFrame = ServerFrame>(
    pred: (f: ServerFrame) => boolean,
    timeoutMs = 5000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.frames.length) {
        const f = this.frames[this.cursor++]!;
        if (pred(f)) return f as T;
      }
      if (this.closed)
        throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) while waiting`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; frames: ${JSON.stringify(this.frames.slice(-5))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Next session event (live or replayed) matching `pred`. */
  async nextEvent(pred: (e: SessionEvent) => boolean, timeoutMs = 5000): Promise<SessionEvent> {
    let found: SessionEvent | undefined;
    await this.next((f) => {
      const evs = f.type === 'event' ? [f.event] : f.type === 'events' ? f.events : [];
      found = evs.find(pred);
      return found !== undefined;
    }, timeoutMs);
    return found!;
  }

  waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('socket did not close')), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(t);
        resolve(this.closed!);
      });
    });
  }

  close(): void {
    this.ws.close();
  }
}

/** All session events this client has seen (live and replayed), in arrival order. */
export function seenEvents(
  c: TestClient,
  sessionId: string,
): Array<{ seq: number; kind: string; text?: string }> {
  const out: Array<{ seq: number; kind: string; text?: string }> = [];
  for (const f of c.frames) {
    const evs = f.type === 'event' ? [f.event] : f.type === 'events' ? f.events : [];
    for (const e of evs) {
      if (e.sessionId !== sessionId) continue;
      const item: { seq: number; kind: string; text?: string } = { seq: e.seq, kind: e.body.kind };
      if (e.body.kind === 'message') item.text = e.body.text;
      out.push(item);
    }
  }
  return out;
}

/** Wall clock with an adjustable offset, for tests of time windows (timers stay real). */
export class ShiftedClock {
  offsetMs = 0;
  now(): number {
    return Date.now() + this.offsetMs;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  }
  clearTimeout(h: unknown): void {
    clearTimeout(h as NodeJS.Timeout);
  }
}

/**
 * Wall clock that tests can move forward: `advance(ms)` shifts `now()` and at once fires every
 * timer whose (shifted) due time has passed — reminders, transfer and auto-close timers — while
 * short timers keep running in real time.
 */
export class JumpClock {
  offsetMs = 0;
  private readonly timers = new Map<number, { due: number; fn: () => void; t: NodeJS.Timeout }>();
  private nextId = 1;
  now(): number {
    return Date.now() + this.offsetMs;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    const t = setTimeout(() => {
      this.timers.delete(id);
      fn();
    }, ms);
    t.unref();
    this.timers.set(id, { due: this.now() + ms, fn, t });
    return id;
  }
  clearTimeout(h: unknown): void {
    const e = this.timers.get(h as number);
    if (!e) return;
    clearTimeout(e.t);
    this.timers.delete(h as number);
  }
  advance(ms: number): void {
    this.offsetMs += ms;
    const now = this.now();
    for (const [id, e] of [...this.timers]) {
      if (e.due > now) continue;
      clearTimeout(e.t);
      this.timers.delete(id);
      e.fn();
    }
  }
}

/** JSON request with a Bearer token; returns status and parsed body. */
export async function api<T = unknown>(
  base: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const init: RequestInit = { method, headers: { authorization: `Bearer ${token}` } };
  if (body !== undefined) {
    init.headers = { ...init.headers, 'content-type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  const r = await fetch(`${base}${path}`, init);
  return { status: r.status, body: (await r.json()) as T };
}

/**
 * Cluster tests: the first node id `${stem}${i}` that, joining `members`, wins every shard of
 * `wins` and none of `stays` (those stay with their current owners).
 */
export function joinerId(stem: string, members: string[], wins: number[], stays: number[] = []): string {
  for (let i = 0; ; i++) {
    const id = `${stem}${i}`;
    const all = [...members, id];
    if (wins.every((s) => ownerOf(s, all) === id) && stays.every((s) => ownerOf(s, all) !== id)) return id;
  }
}

/** Whether the tenant's list of visitors on the site shows `visitorId` on page `url`. */
export async function listedOnline(
  base: string,
  token: string,
  visitorId: string,
  url: string,
): Promise<boolean> {
  const r = await api<{ visitors?: Array<{ visitorId: string; url?: string }> }>(
    base,
    'GET',
    '/v1/visitors/online',
    token,
  ).catch(() => ({ body: { visitors: [] } }));
  return (r.body.visitors ?? []).some((x) => x.visitorId === visitorId && x.url === url);
}
