/**
 * HTTP side of the WeChat and Weibo channels (F1):
 *
 *   GET  /v1/channels/:channel/:tenantId/:associationId   URL verification (echostr)
 *   POST /v1/channels/:channel/:tenantId/:associationId   messages from the platform
 *
 * The association must exist in the tenant's configuration with this channel and a secret (the
 * WeChat token / Weibo app secret). A message becomes a visitor message of the user's open session
 * (created and routed like any other, with the association for association rules), stored with
 * `clientMsgId = <channel>:<msgId>` so the platform's retries never duplicate it; the platform gets
 * `success` only after the message is durable. Agents' replies in such sessions come back through
 * the CHANNEL_OUT endpoint and go out through the {@link ChannelProvider}, retried with backoff.
 */
import { createHash } from 'node:crypto';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Runtime } from '../engine/types.ts';
import {
  CHANNEL_OUT_ENDPOINT,
  KINDS,
  isValidId,
  tkey,
  type Caller,
  type ChannelOutMsg,
  type SessionMsg,
  type VisitorMsg,
} from '../actors/index.ts';
import { configKey, type DeskConfig, type TenantConfigMsg } from '../actors/tenant-config.ts';
import { ERRORS, SbError, toSbError } from '../protos/errors.ts';
import type { SessionSummary } from '../protos/ws-v1.ts';
import {
  ADAPTERS,
  MAX_CALLBACK_BYTES,
  handleCallback,
  type ChannelProvider,
  type ExternalChannel,
  type InboundMessage,
} from './channel-adapters.ts';
import { guard, readBody, statusLine } from './http.ts';

/** Attempts per outbound reply before it is logged as failed (backoff 250 ms × 2^n). */
export const CHANNEL_OUT_ATTEMPTS = 5;

export interface ChannelStats {
  inbound: number;
  outbound: number;
  outboundFailed: number;
}

export interface ChannelDeps {
  app: TemplatedApp;
  runtime: Runtime;
  provider: ChannelProvider;
  now: () => number;
  log: { error(msg: string, err?: unknown): void };
}

/** Visitor id of a channel user: stable, valid as an id, and not reversible to the OpenID. */
export function channelVisitorId(
  channel: ExternalChannel,
  associationId: string,
  externalUserId: string,
): string {
  const h = createHash('sha1').update(`${associationId}\u0000${externalUserId}`).digest('hex').slice(0, 24);
  return `${channel === 'wechat' ? 'wx' : 'wb'}-${h}`;
}

function clientMsgIdOf(channel: ExternalChannel, msgId: string): string {
  const id = `${channel}:${msgId}`;
  return /^[\x21-\x7e]{1,64}$/.test(id) ? id : `${channel}:${createHash('sha1').update(msgId).digest('hex')}`;
}

function textOf(m: InboundMessage): string | undefined {
  if (m.kind === 'text') return m.text;
  if (m.kind === 'image') return `[image] ${m.mediaUrl ?? ''}`.trim();
  if (m.kind === 'voice') return m.text ? `[voice] ${m.text}` : '[voice message]';
  return undefined;
}

export function registerChannelRoutes(d: ChannelDeps): ChannelStats {
  const stats: ChannelStats = { inbound: 0, outbound: 0, outboundFailed: 0 };
  const { app, runtime } = d;

  const deliver = async (m: ChannelOutMsg): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      try {
        await d.provider.sendText(m.channel as ExternalChannel, m.associationId, m.externalUserId, m.text);
        stats.outbound++;
        return;
      } catch (err) {
        if (attempt >= CHANNEL_OUT_ATTEMPTS) {
          stats.outboundFailed++;
          d.log.error(
            `channel ${m.channel}: reply ${m.sessionId}#${m.seq} not delivered after ${attempt} attempts`,
            err,
          );
          return;
        }
        await new Promise((r) => setTimeout(r, 250 * 2 ** (attempt - 1)));
      }
    }
  };
  runtime.registerEndpoint(CHANNEL_OUT_ENDPOINT.name, (raw) => {
    const m = raw as ChannelOutMsg;
    if (m.t === 'channelOut') void deliver(m);
  });

  const onInbound = async (tenantId: string, associationId: string, m: InboundMessage): Promise<void> => {
    const text = textOf(m);
    if (text === undefined) return; // events (subscribe, …) open no conversation
    const visitorId = channelVisitorId(m.channel, associationId, m.externalUserId);
    const caller: Caller = {
      role: 'visitor',
      tenantId,
      id: visitorId,
      name: `${m.channel === 'wechat' ? 'WeChat' : 'Weibo'} user ${m.externalUserId.slice(-4)}`,
    };
    for (let attempt = 0; ; attempt++) {
      const open: VisitorMsg = {
        t: 'open',
        caller,
        channel: m.channel,
        associationId,
        externalUserId: m.externalUserId,
      };
      const s = await runtime.ask<SessionSummary>(
        { kind: KINDS.visitor, key: tkey(tenantId, visitorId) },
        open,
      );
      try {
        await runtime.ask({ kind: KINDS.session, key: tkey(tenantId, s.sessionId) }, {
          t: 'send',
          caller,
          clientMsgId: clientMsgIdOf(m.channel, m.msgId),
          text: text.slice(0, 4000),
        } satisfies SessionMsg);
        stats.inbound++;
        return;
      } catch (err) {
        // Closed between open and send: the next open starts a new session.
        if (attempt === 0 && toSbError(err).code === 'SB_ERR_SESSION_CLOSED') continue;
        throw err;
      }
    }
  };

  const handler = (method: 'get' | 'post') => (res: HttpResponse, req: HttpRequest) => {
    const g = guard(res);
    const channel = req.getParameter(0) ?? '';
    const tenantId = req.getParameter(1) ?? '';
    const associationId = req.getParameter(2) ?? '';
    const query = new URLSearchParams(req.getQuery() ?? '');
    const bodyP = method === 'post' ? readBody(g, MAX_CALLBACK_BYTES) : Promise.resolve(Buffer.alloc(0));
    bodyP.catch(() => {});
    void (async () => {
      let answer: { status: number; contentType: string; body: string };
      try {
        if (channel !== 'wechat' && channel !== 'weibo')
          throw new SbError('SB_ERR_NOT_FOUND', 'no such channel');
        if (!isValidId(tenantId) || !isValidId(associationId))
          throw new SbError('SB_ERR_NOT_FOUND', 'no such association');
        const cfg = await runtime.ask<DeskConfig>({ kind: KINDS.tenantConfig, key: configKey(tenantId) }, {
          t: 'get',
        } satisfies TenantConfigMsg);
        const assoc = cfg.associations.find(
          (a) => a.associationId === associationId && a.channel === channel,
        );
        if (!assoc?.secret) throw new SbError('SB_ERR_NOT_FOUND', 'no such association');
        answer = await handleCallback(
          ADAPTERS[channel],
          { method, query, body: await bodyP },
          assoc.secret,
          d.now(),
          (m) => onInbound(tenantId, associationId, m),
        );
      } catch (err) {
        const e = toSbError(err);
        if (e.code === 'SB_ERR_INTERNAL') d.log.error(`channel ${channel}: internal error`, err);
        answer = {
          status: ERRORS[e.code].http,
          contentType: 'application/json',
          body: JSON.stringify({ error: { code: e.code, message: e.message } }),
        };
      }
      if (g.aborted) return;
      res.cork(() => {
        res
          .writeStatus(statusLine(answer.status))
          .writeHeader('content-type', answer.contentType)
          .end(answer.body);
      });
      g.aborted = true;
    })();
  };
  app.get('/v1/channels/:channel/:tenantId/:associationId', handler('get'));
  app.post('/v1/channels/:channel/:tenantId/:associationId', handler('post'));
  return stats;
}
