/**
 * Session facts: what the statistics (F18) and custom reports (F19) know of one closed session,
 * folded from the session's own event stream. Every metric is defined here once, over events;
 * docs/ANALYTICS.md states the same definitions in prose.
 *
 * Times are server times (ms epoch) of the events; durations are in ms.
 */
import type { StoredEvent } from '../engine/store/types.ts';
import type { SessionEventBody } from '../protos/ws-v1.ts';

/** Origin of a session (dimension "session type"). */
export type SessionType =
  /** The visitor asked for a human (or was routed to a skill group) and an agent accepted. */
  | 'inbound'
  /** An agent started the session with a visitor on the site (F9). */
  | 'proactive'
  /** No agent ever accepted it: served by a chatbot only, or abandoned in the queue. */
  | 'unaccepted';

export interface SessionFacts {
  sessionId: string;
  visitorId: string;
  channel: string;
  associationId?: string;
  /** The agent who accepted the session last (the one who served it to the end). */
  agentId?: string;
  visitorTags: string[];
  type: SessionType;
  /** Valid: the visitor wrote at least once and the serving side (agent, or chatbot) answered. */
  valid: boolean;
  createdAt: number;
  /** First `assigned`: the moment an agent accepted the session. */
  acceptedAt?: number;
  closedAt: number;
  /** Times the session joined a queue (`queued` events), transfers included. */
  queueCount: number;
  /** Sum over queue episodes of (accepted or closed) − queued. Absent when it never queued. */
  queueMs?: number;
  /** Visitor and agent messages (chatbot and system notices not counted). */
  messages: number;
  /** closed − accepted. */
  durationMs?: number;
  /** First agent message after acceptance − acceptance. Absent when no agent replied. */
  firstResponseMs?: number;
  /**
   * Each agent reply to visitor messages waiting since `t`: reply − t (the first unanswered visitor
   * message of the run). Count, sum and max, so averages pool every response of a report's sessions.
   */
  responses: number;
  responseSumMs: number;
  responseMaxMs?: number;
  satisfaction?: number;
  /** Highest seq folded: a re-indexed session with more events is folded again. */
  lastSeq: number;
}

/**
 * Folds a closed session's events (in seq order). Returns undefined when the stream has no
 * `created` or no `closed` event (not a finished session).
 */
export function foldSession(
  sessionId: string,
  events: readonly StoredEvent[],
  visitorTags: readonly string[] = [],
): SessionFacts | undefined {
  let created: { at: number; visitorId: string; channel: string; associationId?: string } | undefined;
  let proactive = false;
  let closedAt: number | undefined;
  let acceptedAt: number | undefined;
  let agentId: string | undefined;
  let queueCount = 0;
  let queueMs: number | undefined;
  let queuedSince: number | undefined;
  let messages = 0;
  let visitorWrote = false;
  let answered = false;
  let firstResponseMs: number | undefined;
  let waitingSince: number | undefined;
  let responses = 0;
  let responseSumMs = 0;
  let responseMaxMs: number | undefined;
  let satisfaction: number | undefined;
  let lastSeq = 0;
  const endQueue = (at: number): void => {
    if (queuedSince === undefined) return;
    queueMs = (queueMs ?? 0) + Math.max(0, at - queuedSince);
    queuedSince = undefined;
  };
  for (const e of events) {
    lastSeq = Math.max(lastSeq, e.seq);
    const b = e.body as SessionEventBody;
    switch (b.kind) {
      case 'created':
        created = { at: e.at, visitorId: b.visitorId, channel: b.channel };
        if (b.associationId !== undefined) created.associationId = b.associationId;
        proactive = b.proactive === true;
        break;
      case 'queued':
        queueCount++;
        endQueue(e.at);
        queuedSince = e.at;
        break;
      case 'assigned':
        endQueue(e.at);
        acceptedAt ??= e.at;
        agentId = b.agentId;
        break;
      case 'message':
        if (b.from === 'visitor') {
          messages++;
          visitorWrote = true;
          if (acceptedAt !== undefined) waitingSince ??= e.at;
        } else if (b.from === 'agent') {
          messages++;
          answered = true;
          if (acceptedAt !== undefined && firstResponseMs === undefined) firstResponseMs = e.at - acceptedAt;
          if (waitingSince !== undefined) {
            const ms = e.at - waitingSince;
            responses++;
            responseSumMs += ms;
            responseMaxMs = Math.max(responseMaxMs ?? 0, ms);
            waitingSince = undefined;
          }
        } else if (b.senderId.startsWith('bot:') && acceptedAt === undefined) {
          // A chatbot's answer counts for validity of sessions no human served.
          if (visitorWrote) answered = true;
        }
        break;
      case 'rated':
        satisfaction = b.score;
        break;
      case 'closed':
        closedAt = e.at;
        endQueue(e.at);
        break;
      default:
        break;
    }
  }
  if (!created || closedAt === undefined) return undefined;
  const f: SessionFacts = {
    sessionId,
    visitorId: created.visitorId,
    channel: created.channel,
    visitorTags: [...visitorTags],
    type: acceptedAt === undefined ? 'unaccepted' : proactive ? 'proactive' : 'inbound',
    valid: visitorWrote && answered,
    createdAt: created.at,
    closedAt,
    queueCount,
    messages,
    responses,
    responseSumMs,
    lastSeq,
  };
  if (created.associationId !== undefined) f.associationId = created.associationId;
  if (agentId !== undefined) f.agentId = agentId;
  if (acceptedAt !== undefined) {
    f.acceptedAt = acceptedAt;
    f.durationMs = Math.max(0, closedAt - acceptedAt);
  }
  if (queueMs !== undefined) f.queueMs = queueMs;
  if (firstResponseMs !== undefined) f.firstResponseMs = firstResponseMs;
  if (responseMaxMs !== undefined) f.responseMaxMs = responseMaxMs;
  if (satisfaction !== undefined) f.satisfaction = satisfaction;
  return f;
}
