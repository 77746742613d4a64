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
  | { kind: 'created'; visitorId: string; channel: string; entry?: string }
  | { kind: 'queued'; group: string }
  | { kind: 'assigned'; agentId: string; agentName: string }
  | { kind: 'message'; from: PartyType; senderId: string; text: string; clientMsgId?: string }
  | { kind: 'recalled'; targetSeq: number; by: string }
  | { kind: 'closed'; by: PartyType; reason: string };

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
  createdAt: number;
  assignedAt?: number;
  lastSeq: number;
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
  ref?: string;
}
/** Send a message. Answer: `ack` after the message is durably stored, or `error` with `ref`. */
export interface SendFrame {
  type: 'send';
  sessionId: string;
  /** Idempotency key chosen by the client, 1–64 chars; a resend with the same key gets the same ack. */
  clientMsgId: string;
  text: string;
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

export type VisitorClientFrame =
  OpenFrame | SendFrame | ResumeFrame | TypingFrame | CloseSessionFrame | PingFrame;
export type AgentClientFrame =
  SendFrame | ResumeFrame | TypingFrame | CloseSessionFrame | StatusFrame | PingFrame | RecallFrame;
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

export type ServerFrame =
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
