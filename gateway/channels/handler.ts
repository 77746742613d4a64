/**
 * One callback request, end to end, for any adapter: verify → parse → store → answer.
 */
import { ERRORS, toSbError } from '../../protos/errors.ts';
import { checkBodySize, methodOf } from './common.ts';
import type { ChannelAdapter, ChannelRequest, ChannelResponse, InboundMessage } from './types.ts';

/**
 * Called once per inbound message, in order, only after the whole request validated. Resolve once the
 * message is durable (the platform is told `success` only then, and retries otherwise — dedupe on
 * `msgId`). Resolving with a non-empty string, when the request held exactly one message, sends that
 * string back as a passive text reply.
 */
export type InboundHandler = (m: InboundMessage) => Promise<void | string>;

/**
 * GET: signature check, then the echostr answer. POST: body size, signature, parse — any failure throws
 * the typed SbError before `onInbound` is called, so nothing is stored from a bad request — then
 * `onInbound` for each message and the platform's answer. Errors from `onInbound` propagate unchanged
 * (the platform then retries). Map thrown errors with {@link channelErrorResponse} or the gateway's
 * usual error writer.
 */
export async function handleChannelRequest(
  adapter: ChannelAdapter,
  req: ChannelRequest,
  onInbound: InboundHandler,
): Promise<ChannelResponse> {
  const method = methodOf(req);
  if (method === 'POST') checkBodySize(req, adapter.maxBodyBytes);
  adapter.verify(req);
  if (method === 'GET') return adapter.challenge(req);
  const messages = adapter.parse(req);
  let replyText: string | undefined;
  for (const m of messages) {
    const r = await onInbound(m);
    if (typeof r === 'string' && r !== '') replyText = r;
  }
  return messages.length === 1 ? adapter.reply(messages[0], replyText) : adapter.reply(undefined);
}

/** A thrown error as an HTTP answer: the code's status and `{ error: { code, message } }`. */
export function channelErrorResponse(err: unknown): ChannelResponse {
  const e = toSbError(err);
  return {
    status: ERRORS[e.code].http,
    contentType: 'application/json; charset=utf-8',
    body: JSON.stringify({ error: { code: e.code, message: e.message } }),
  };
}
