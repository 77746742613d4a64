/**
 * Partner gRPC scenario load (child of `npm run bench -- partner`, pinned to the load cores): one
 * gRPC channel, an API key with the write scope, S sessions opened through the API, then
 * `SendMessage` calls kept C in flight (closed loop) for D seconds after a warm-up. Latency is call
 * start → response. Prints progress on stderr and the result as the last stdout line (JSON).
 */
import * as grpc from '@grpc/grpc-js';
import {
  OpenSessionRequest,
  PartnerServiceClient,
  PartnerServiceService,
  SendMessageRequest,
  SendMessageResponse,
  Session,
} from '../protos/gen/partner/v1/partner.pb.ts';
import { LiteGrpcChannel } from './grpc-lite.ts';
import { Histogram } from './histogram.ts';

export interface PartnerOptions {
  url: string;
  grpc: string;
  sessions: number;
  concurrency: number;
  durationS: number;
  warmupS: number;
  /** Also keep the tenant's event feed, then read it back over SubscribeEvents and time that. */
  feed: boolean;
  /**
   * The load generator's gRPC client: `lite` (bench/grpc-lite.ts, the default, cheap enough that
   * one core can load the server) or `grpc-js` (the library partners on Node use).
   */
  client: 'lite' | 'grpc-js';
}

export interface PartnerResult {
  scenario: 'partner';
  client: 'lite' | 'grpc-js';
  sessions: number;
  concurrency: number;
  duration_s: number;
  calls: number;
  errors: number;
  calls_per_s: number;
  latency_ms: ReturnType<Histogram['summary']>;
  /** SubscribeEvents from cursor 0 after the run: events read and their rate. */
  feed_events?: number;
  feed_events_per_s?: number;
}

const log = (s: string): void => void process.stderr.write(s + '\n');

async function http<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers['authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

export async function runPartner(o: PartnerOptions): Promise<PartnerResult> {
  const base = o.url.replace(/\/$/, '');
  const admin = await http<{ token: string }>(base, 'POST', '/v1/auth/login', {
    email: 'admin@demo.test',
    password: 'switchboard',
  });
  const { key } = await http<{ key: string }>(
    base,
    'POST',
    '/v1/admin/api-keys',
    { name: 'bench', scopes: ['write'] },
    admin.token,
  );
  if (o.feed) await http(base, 'PUT', '/v1/admin/config/webhooks', { feed: true }, admin.token);
  const client = new PartnerServiceClient(o.grpc, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${key}`);
  const lite = o.client === 'lite' ? new LiteGrpcChannel(o.grpc) : undefined;
  const viaGrpcJs = <Req, Res>(method: 'openSession' | 'sendMessage', req: Req): Promise<Res> =>
    new Promise((resolve, reject) => {
      const fn = (client as unknown as Record<string, (...a: unknown[]) => void>)[method]!.bind(client);
      fn(req, md, { deadline: Date.now() + 10_000 }, (err: grpc.ServiceError | null, res: Res) =>
        err ? reject(err) : resolve(res),
      );
    });
  const auth = { authorization: `Bearer ${key}` };
  const openSession = (req: OpenSessionRequest): Promise<Session> =>
    lite
      ? lite.unary(PartnerServiceService.openSession.path, OpenSessionRequest, Session, req, auth, 10_000)
      : viaGrpcJs<OpenSessionRequest, Session>('openSession', req);
  const sendMessage = (req: SendMessageRequest): Promise<SendMessageResponse> =>
    lite
      ? lite.unary(
          PartnerServiceService.sendMessage.path,
          SendMessageRequest,
          SendMessageResponse,
          req,
          auth,
          10_000,
        )
      : viaGrpcJs<SendMessageRequest, SendMessageResponse>('sendMessage', req);

  const sessions: Array<{ sessionId: string; visitorId: string; n: number }> = [];
  for (let i = 0; i < o.sessions; i++) {
    const visitorId = `pb${i}`;
    const s = await openSession({
      visitorId,
      visitorName: '',
      entry: '',
      channel: 'app',
    });
    sessions.push({ sessionId: s.sessionId, visitorId, n: 0 });
  }
  log(
    `[partner] ${o.sessions} sessions open over one channel (${o.client} client); ${o.concurrency} calls in flight`,
  );

  const hist = new Histogram();
  let calls = 0;
  let errors = 0;
  let measuring = false;
  let stop = false;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (!stop) {
      const s = sessions[next++ % sessions.length]!;
      const t0 = performance.now();
      try {
        await sendMessage({
          sessionId: s.sessionId,
          visitorId: s.visitorId,
          clientMsgId: `b${s.n++}`,
          text: 'partner bench message',
        });
        if (measuring) {
          hist.record(performance.now() - t0);
          calls++;
        }
      } catch {
        if (measuring) errors++;
      }
    }
  };
  const workers = Array.from({ length: o.concurrency }, () => worker());
  await new Promise((r) => setTimeout(r, o.warmupS * 1000));
  measuring = true;
  const start = performance.now();
  const progress = setInterval(() => {
    const el = (performance.now() - start) / 1000;
    log(
      `[partner] t=${el.toFixed(0)}s calls ${calls} (${Math.round(calls / el)}/s) p99 ${hist.summary().p99} ms errors ${errors}`,
    );
  }, 1000);
  await new Promise((r) => setTimeout(r, o.durationS * 1000));
  measuring = false;
  const seconds = (performance.now() - start) / 1000;
  stop = true;
  clearInterval(progress);
  await Promise.all(workers);
  let feedEvents: number | undefined;
  let feedRate: number | undefined;
  if (o.feed) {
    // Every send of the run (warm-up included) produced one message.created event.
    const expected = sessions.reduce((n, x) => n + x.n, 0);
    log(`[partner] reading the feed back: ${expected} events expected`);
    const t0 = performance.now();
    feedEvents = await new Promise<number>((resolve, reject) => {
      let n = 0;
      const st = client.subscribeEvents({ afterCursor: 0 }, md);
      const timer = setTimeout(() => {
        st.cancel();
        resolve(n);
      }, 120_000);
      st.on('data', () => {
        if (++n >= expected) {
          clearTimeout(timer);
          st.cancel();
          resolve(n);
        }
      });
      st.on('error', (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
    });
    feedRate = Math.round(feedEvents / ((performance.now() - t0) / 1000));
  }
  client.close();
  lite?.close();
  return {
    ...(feedEvents !== undefined ? { feed_events: feedEvents, feed_events_per_s: feedRate } : {}),
    scenario: 'partner',
    client: o.client,
    sessions: o.sessions,
    concurrency: o.concurrency,
    duration_s: o.durationS,
    calls,
    errors,
    calls_per_s: Math.round(calls / seconds),
    latency_ms: hist.summary(),
  };
}

if (process.argv[1] && new URL(import.meta.url).pathname === process.argv[1]) {
  runPartner(JSON.parse(process.argv[2] ?? '{}') as PartnerOptions)
    .then((r) => {
      console.log(JSON.stringify(r));
      process.exit(0);
    })
    .catch((err: unknown) => {
      log(`[partner] failed: ${(err as Error)?.stack ?? String(err)}`);
      process.exit(1);
    });
}
