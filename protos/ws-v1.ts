/**
 * Conversation protocol v1: JSON frames over WebSocket at `/v1/ws/visitor` and `/v1/ws/agent`.
 * The prose version with examples is docs/PROTOCOL.md; this file is the machine-checked contract
 * shared by the gateway, the console, the visitor window and the bench.
 */
import type { ErrorCode } from './errors.ts';

export const PROTOCOL_VERSION = 1 as const;

/** An agent may recall an own message for this long after the server stored it (server clock). */
export const RECALL_WINDOW_MS = 2 * 60_000;

/** Default limits; the server announces the ones in force in `welcome.limits`. */
export const DEFAULT_LIMITS = {
  /** Largest accepted frame, bytes. Larger frames close the socket with 4009. */
  maxFrameBytes: 16 * 1024,
  /** Longest message text, characters. */
  maxTextChars: 4000,
  /** Sustained frames per second per socket (token bucket), burst = 2 × rate. */
  framesPerSecond: 50,
  /** Buffered outbound bytes before a socket counts as a slow consumer and is closed with 4008. */
  maxBackpressureBytes: 1024 * 1024,
  /** Seconds without traffic before the server closes the socket; the server pings before that. */
  idleTimeoutSec: 60,
  /** Events per replay page; the server sends every page of a `resume` in order, the last with `more: false`. */
  resumePageSize: 500,
} as const;
export type Limits = { -readonly [K in keyof typeof DEFAULT_LIMITS]: number };

export const CLOSE_CODES = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  IDLE: 4000,
  UNAUTHENTICATED: 4001,
  SHUTTING_DOWN: 4002,
  REPLACED: 4003,
  SLOW_CONSUMER: 4008,
  FRAME_TOO_LARGE: 4009,
  RATE_LIMITED: 4029,
} as const;

export const AGENT_STATUSES = ['online', 'busy', 'away', 'invisible', 'offline'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

export const SESSION_STATES = ['created', 'chatbot', 'queued', 'in_progress', 'closed'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

export type Role = 'visitor' | 'agent' | 'admin';
export type PartyType = 'visitor' | 'agent' | 'system';

/** Body of a session event; every event has a per-session `seq` assigned by the server. */
export type SessionEventBody =
  | {
      kind: 'created';
      visitorId: string;
      channel: string;
      entry?: string;
      associationId?: string;
      /** An agent started the session with the visitor (F9). */
      proactive?: true;
    }
  /** Staff only: the routing decision, with the rule that matched and why (F4). */
  | {
      kind: 'routed';
      target: { kind: 'bot'; botId: string } | { kind: 'group'; groupId: string };
      ruleId: string;
      ruleKind: string;
      hours: string;
      reason: string;
    }
  /** The session is served by a chatbot until the visitor asks for a human. */
  | { kind: 'chatbot'; botId: string; botName: string }
  /** Waiting for an agent of `group`; `priority` > 0 for transfers (served before arrivals). */
  | { kind: 'queued'; group: string; priority?: number }
  | { kind: 'assigned'; agentId: string; agentName: string }
  | {
      kind: 'message';
      from: PartyType;
      senderId: string;
      text: string;
      clientMsgId?: string;
      /** With a download path (`url`, signed) for the session's participants. */
      attachment?: Attachment & { url?: string };
    }
  | { kind: 'recalled'; targetSeq: number; by: string }
  /** Staff only: an agent asked to hand the session to another agent or to a skill group. */
  | {
      kind: 'transfer_requested';
      fromAgentId: string;
      toAgentId?: string;
      toGroupId?: string;
      expiresAt?: number;
    }
  /** Staff only: the target agent declined, or did not answer in time (`reason: 'timeout'`). */
  | { kind: 'transfer_declined'; toAgentId: string; reason: 'declined' | 'timeout' }
  /** Staff only: the transfer went through (followed by `assigned` or `queued`). */
  | { kind: 'transferred'; fromAgentId: string; toAgentId?: string; toGroupId?: string }
  /** Staff only. */
  | { kind: 'tag_added'; tagId: string; by: string }
  /** Staff only. */
  | { kind: 'tag_removed'; tagId: string; by: string }
  /** Staff only: an internal note on the session. */
  | { kind: 'note'; text: string; by: string }
  | { kind: 'rating_invited'; by: string }
  | { kind: 'rated'; score: number; remark?: string }
  | { kind: 'closed'; by: PartyType; reason: string }
  /** What visitors receive in place of a staff-only event: its seq, no content (no gap in their stream). */
  | { kind: 'internal' };

/** Event kinds whose content visitors never receive: they get `{kind: 'internal'}` at that seq instead. */
export const STAFF_ONLY_EVENTS: ReadonlySet<string> = new Set([
  'routed',
  'transfer_requested',
  'transfer_declined',
  'transferred',
  'tag_added',
  'tag_removed',
  'note',
]);

export type SessionEventKind = SessionEventBody['kind'];

export interface SessionEvent {
  sessionId: string;
  seq: number;
  /** Server time, ms since epoch. */
  at: number;
  body: SessionEventBody;
  /** Set on a message that its sender recalled: visitors get it without text, staff with it. */
  recalled?: { at: number; by: string };
}

export interface SessionSummary {
  sessionId: string;
  tenantId: string;
  visitorId: string;
  visitorName: string;
  channel: string;
  state: SessionState;
  agentId?: string;
  /** Skill group serving (or about to serve) the session. */
  groupId?: string;
  /** Chatbot serving the session while `state` is `chatbot`. */
  botId?: string;
  createdAt: number;
  assignedAt?: number;
  lastSeq: number;
  /** Staff only: session tag ids. */
  tags?: string[];
  /** Rating once submitted. */
  rating?: { score: number; remark?: string };
  /** Staff only: a transfer waiting for the target agent's answer. */
  pendingTransfer?: { fromAgentId: string; toAgentId: string; expiresAt: number };
}

// ---------------------------------------------------------------------------------------------
// Client → server
// ---------------------------------------------------------------------------------------------

/** Visitor opens (or re-joins its open) session. Answer: `session`. */
export interface OpenFrame {
  type: 'open';
  /** Entry parameter of the page/app button ("contact us"); names a skill group or association. */
  entry?: string;
  channel?: 'web' | 'h5' | 'app';
  /** The app key or site the visitor came through (association-based routing, F4). */
  associationId?: string;
  ref?: string;
}
/** Send a message. Answer: `ack` after the message is durably stored, or `error` with `ref`. */
export interface SendFrame {
  type: 'send';
  sessionId: string;
  /** Idempotency key chosen by the client, 1–64 chars; a resend with the same key gets the same ack. */
  clientMsgId: string;
  /** May be empty when the message carries an attachment. */
  text: string;
  /** An image or file uploaded with `POST /v1/files` by the sender, in this tenant. */
  attachment?: Attachment;
}

/** An image or file sent in a chat (uploaded first with `POST /v1/files`). */
export interface Attachment {
  fileId: string;
  name: string;
  mime: string;
  /** Bytes. */
  size: number;
}
/** Replay every event after `lastSeq` (0 = from the start). Answer: `events` pages then live events. */
export interface ResumeFrame {
  type: 'resume';
  sessionId: string;
  lastSeq: number;
  ref?: string;
}
/** Typing state; visitors may include the text being typed (preview for the agent). Not stored. */
export interface TypingFrame {
  type: 'typing';
  sessionId: string;
  text?: string;
}
/** Agent only: recall an own message (within {@link RECALL_WINDOW_MS} of sending it). Answer: `recalled` event. */
export interface RecallFrame {
  type: 'recall';
  sessionId: string;
  seq: number;
  ref?: string;
}
export interface CloseSessionFrame {
  type: 'close';
  sessionId: string;
  ref?: string;
}
/** Agent only. */
export interface StatusFrame {
  type: 'status';
  status: AgentStatus;
  ref?: string;
}
/** Application-level ping for clients that cannot see WebSocket pings. Answer: `pong`. */
export interface PingFrame {
  type: 'ping';
  ref?: string;
}

/** Visitor: ask the chatbot for a human agent (F4 handoff). Answer: `queued` event. */
export interface HandoffFrame {
  type: 'handoff';
  sessionId: string;
  ref?: string;
}
/** Visitor: satisfaction rating, once per session, after the agent invited it or the session closed. */
export interface RateFrame {
  type: 'rate';
  sessionId: string;
  /** 1 (very dissatisfied) – 5 (very satisfied). */
  score: number;
  remark?: string;
  ref?: string;
}
/** Visitor: the page being viewed (browsing trail, proactive chat list, F7/F9). */
export interface PageFrame {
  type: 'page';
  url: string;
  title?: string;
}
/** Visitor (mobile app SDK): device details shown to agents (F7). Each field ≤ 100 characters. */
export interface DeviceFrame {
  type: 'device';
  os?: string;
  model?: string;
  appVersion?: string;
  carrier?: string;
}
/** What agents see of a visitor's device: the socket's address and browser, and what an app reported. */
export interface DeviceInfo {
  ip?: string;
  userAgent?: string;
  os?: string;
  model?: string;
  appVersion?: string;
  carrier?: string;
}
/** Agent: hand the session to another agent (who may accept or decline) or to a skill group's queue. */
export interface TransferFrame {
  type: 'transfer';
  sessionId: string;
  toAgentId?: string;
  toGroupId?: string;
  ref?: string;
}
/** Agent: answer a `transferOffer`. */
export interface TransferAnswerFrame {
  type: 'transferAnswer';
  sessionId: string;
  accept: boolean;
  ref?: string;
}
/** Agent: add or remove a session tag (an id of the tenant's tag tree). */
export interface TagFrame {
  type: 'tag';
  sessionId: string;
  tagId: string;
  op: 'add' | 'remove';
  ref?: string;
}
/** Agent: internal note, never shown to the visitor. */
export interface NoteFrame {
  type: 'note';
  sessionId: string;
  text: string;
  ref?: string;
}
/** Agent: invite the visitor to rate the session. */
export interface InviteRatingFrame {
  type: 'inviteRating';
  sessionId: string;
  ref?: string;
}

export type VisitorClientFrame =
  | OpenFrame
  | SendFrame
  | ResumeFrame
  | TypingFrame
  | CloseSessionFrame
  | PingFrame
  | HandoffFrame
  | RateFrame
  | PageFrame
  | DeviceFrame;
export type AgentClientFrame =
  | SendFrame
  | ResumeFrame
  | TypingFrame
  | CloseSessionFrame
  | StatusFrame
  | PingFrame
  | RecallFrame
  | TransferFrame
  | TransferAnswerFrame
  | TagFrame
  | NoteFrame
  | InviteRatingFrame;
export type ClientFrame = VisitorClientFrame | AgentClientFrame;

// ---------------------------------------------------------------------------------------------
// Server → client
// ---------------------------------------------------------------------------------------------

export interface WelcomeFrame {
  type: 'welcome';
  protocol: typeof PROTOCOL_VERSION;
  role: Role;
  tenantId: string;
  /** Visitor id or agent id. */
  id: string;
  name: string;
  limits: Limits;
  /** Agents: their current status. */
  status?: AgentStatus;
  /** Sessions the client takes part in that are not closed (agent: assigned; visitor: its open one). */
  sessions: SessionSummary[];
}
export interface SessionFrame {
  type: 'session';
  session: SessionSummary;
  ref?: string;
}
export interface AckFrame {
  type: 'ack';
  sessionId: string;
  clientMsgId: string;
  seq: number;
  at: number;
  /** True when this clientMsgId had been stored before (a resend). */
  duplicate: boolean;
}
/** One live event. Clients deduplicate nothing: the server sends each seq once per subscription. */
export interface EventFrame {
  type: 'event';
  event: SessionEvent;
}
/** Replay page answering `resume`; `more` = further pages follow (the server sends them unasked). */
export interface EventsFrame {
  type: 'events';
  sessionId: string;
  events: SessionEvent[];
  more: boolean;
  ref?: string;
}
export interface QueueFrame {
  type: 'queue';
  sessionId: string;
  /** 1 = next to be served. */
  position: number;
  /** Server time (ms) of the queue change this position reflects. */
  changedAt?: number;
}
export interface TypingNoticeFrame {
  type: 'typing';
  sessionId: string;
  from: PartyType;
  text?: string;
}
/** Agent: a session was assigned to this agent (also sent as the `assigned` event). */
export interface AssignedFrame {
  type: 'assigned';
  session: SessionSummary;
}
export interface StatusNoticeFrame {
  type: 'status';
  status: AgentStatus;
  ref?: string;
}
export interface PongFrame {
  type: 'pong';
  ref?: string;
  at: number;
}
export interface ErrorFrame {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** The `ref` (or `clientMsgId` for `send`) of the frame that failed, when there was one. */
  ref?: string;
}

/** Agent: another agent offers this session; answer with `transferAnswer` before `expiresAt`. */
export interface TransferOfferFrame {
  type: 'transferOffer';
  session: SessionSummary;
  fromAgentId: string;
  expiresAt: number;
}
/** Agent: the session left this agent (transferred away); drop it from the current list. */
export interface ReleasedFrame {
  type: 'released';
  sessionId: string;
  reason: 'transferred';
}
/** Staff: a notice about a session that is not an event (sensitive-word reminder, F11). */
export interface NoticeFrame {
  type: 'notice';
  sessionId: string;
  kind: 'sensitive';
  text: string;
  words: string[];
}
/** Visitor: an agent started a session with this visitor (proactive chat, F9). */
export interface InvitedFrame {
  type: 'invited';
  session: SessionSummary;
}

export type ServerFrame =
  | TransferOfferFrame
  | ReleasedFrame
  | NoticeFrame
  | InvitedFrame
  | WelcomeFrame
  | SessionFrame
  | AckFrame
  | EventFrame
  | EventsFrame
  | QueueFrame
  | TypingNoticeFrame
  | AssignedFrame
  | StatusNoticeFrame
  | PongFrame
  | ErrorFrame;

// ---------------------------------------------------------------------------------------------
// HTTP (JSON) under /v1
// ---------------------------------------------------------------------------------------------

/** POST /v1/visitor/token */
export interface VisitorTokenRequest {
  tenantId: string;
  /** Reuse a visitor id from an earlier token (kept in the browser); a new one is made otherwise. */
  visitorId?: string;
  name?: string;
}
export interface TokenResponse {
  token: string;
  tenantId: string;
  id: string;
  name: string;
  role: Role;
  expiresAt: number;
}
/** POST /v1/auth/login */
export interface LoginRequest {
  email: string;
  password: string;
}
