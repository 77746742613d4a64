/**
 * Messages exchanged between the gateway and the service-desk actors, and among actors.
 * Everything here crosses worker threads, so it is plain data (structured-clone safe).
 */
import type { EndpointId } from '../engine/types.ts';
import type {
  AgentStatus,
  Attachment,
  DeviceInfo,
  PartyType,
  ServerFrame,
  SessionSummary,
} from '../protos/ws-v1.ts';

/** Actor kinds of the service desk. Keys always start with the tenant id: `<tenant>:<id>`. */
export const KINDS = {
  session: 'session',
  visitor: 'visitor',
  agent: 'agent',
  dispatch: 'dispatch',
  /** One per tenant: the configuration writer (actors/tenant-config.ts). */
  tenantConfig: 'tenantcfg',
  /** One per tenant: web visitors on the site now (F9). */
  presence: 'presence',
} as const;

/** Who is acting; checked by the actor that owns the resource. */
export interface Caller {
  role: 'visitor' | 'agent' | 'admin';
  tenantId: string;
  id: string;
  name: string;
}

// ---- to a gateway connection endpoint ------------------------------------------------------
/** A frame for the socket behind an endpoint. */
export interface PushToConnection {
  t: 'frame';
  frame: ServerFrame;
}
/** The connection must close (e.g. replaced by a newer one). */
export interface CloseConnection {
  t: 'close';
  code: number;
  reason: string;
}
/** An agent connection was assigned a session: subscribe to it and forward the frame. */
export interface AssignedToConnection {
  t: 'assigned';
  session: SessionSummary;
}
/** The session actor deactivated; the connection subscribes again from the last seq it forwarded. */
export interface UnsubscribedConnection {
  t: 'unsubscribed';
  sessionId: string;
}
/**
 * The actor the connection registered with (the caller's agent or visitor actor) deactivated — idle,
 * or its shard moved to another node — and forgot its endpoints: the connection registers again.
 */
export interface ResetConnection {
  t: 'reset';
}
/** A live session event, already serialised as an `event` frame (once per role, not per socket). */
export interface EventToConnection {
  t: 'event';
  sessionId: string;
  seq: number;
  json: string;
}
/**
 * An agent's (or bot's) message in a WeChat/Weibo session, for the gateway's channel provider.
 * Sent to the host thread's {@link CHANNEL_OUT_ENDPOINT}.
 */
export interface ChannelOutMsg {
  t: 'channelOut';
  tenantId: string;
  sessionId: string;
  seq: number;
  channel: string;
  associationId: string;
  externalUserId: string;
  text: string;
}
export const CHANNEL_OUT_ENDPOINT = { thread: 0, name: 'channel-out' } as const;

export type ConnectionMsg =
  | PushToConnection
  | EventToConnection
  | CloseConnection
  | AssignedToConnection
  | UnsubscribedConnection
  | ResetConnection;

// ---- to a session actor ---------------------------------------------------------------------
export type SessionMsg =
  | {
      t: 'create';
      visitorId: string;
      visitorName: string;
      channel: string;
      entry?: string;
      associationId?: string;
      /** WeChat/Weibo: the user on the channel, for replies through the channel provider. */
      externalUserId?: string;
      /** Proactive chat (F9): the agent who started it; the session skips routing and queue. */
      proactive?: { agentId: string; agentName: string };
    }
  | { t: 'summary'; caller: Caller }
  /** `endpoint`: the sending socket; it gets the ack (which carries the seq) instead of the event. */
  | {
      t: 'send';
      caller: Caller;
      clientMsgId: string;
      text: string;
      attachment?: Attachment;
      endpoint?: EndpointId;
    }
  | { t: 'subscribe'; caller: Caller; endpoint: EndpointId; lastSeq: number }
  | { t: 'unsubscribe'; endpoint: EndpointId }
  | { t: 'typing'; caller: Caller; text?: string }
  | { t: 'typingFlush' }
  | { t: 'close'; caller: Caller; reason?: string }
  | { t: 'recall'; caller: Caller; seq: number }
  | { t: 'assign'; agentId: string; agentName: string; groupId?: string }
  /** `changedAt`: when the queue changed (server clock), for delivery-latency measurement. */
  | { t: 'queuePosition'; position: number; changedAt?: number }
  | { t: 'read'; caller: Caller; afterSeq: number; limit: number }
  /** Visitor asks the chatbot for a human. */
  | { t: 'handoff'; caller: Caller }
  | { t: 'transfer'; caller: Caller; toAgentId?: string; toGroupId?: string }
  | { t: 'transferAnswer'; caller: Caller; accept: boolean }
  | { t: 'transferTimeout'; toAgentId: string }
  | { t: 'tag'; caller: Caller; tagId: string; op: 'add' | 'remove' }
  | { t: 'note'; caller: Caller; text: string }
  | { t: 'inviteRating'; caller: Caller }
  | { t: 'rate'; caller: Caller; score: number; remark?: string }
  /** Durable reminders of the session (auto-close rules); they re-check their condition when they fire. */
  /** The chatbot's answer to a visitor message (its own turn, after the visitor's ack). */
  | { t: 'botTurn'; text: string }
  | { t: 'inactivityCheck' }
  | { t: 'noReplyCheck' }
  /** The routing decision and state for admins. */
  | { t: 'details'; caller: Caller };

// ---- to a visitor actor ---------------------------------------------------------------------
export type VisitorMsg =
  | {
      t: 'open';
      caller: Caller;
      channel: string;
      entry?: string;
      associationId?: string;
      externalUserId?: string;
    }
  | { t: 'current'; caller: Caller }
  | { t: 'sessionClosed'; sessionId: string }
  /** A visitor socket connected / went away (presence, proactive invitations). */
  | { t: 'connected'; caller: Caller; endpoint: EndpointId; device?: DeviceInfo }
  /** An app reported its device (F7). */
  | { t: 'device'; caller: Caller; device: Omit<DeviceInfo, 'ip' | 'userAgent'> }
  | { t: 'disconnected'; endpoint: EndpointId }
  | { t: 'page'; caller: Caller; url: string; title?: string }
  /** An agent starts a session with this visitor (F9). */
  | { t: 'invite'; caller: Caller }
  | { t: 'profile'; caller: Caller }
  | { t: 'tags'; caller: Caller; add?: string[]; remove?: string[] };

export interface VisitorProfile {
  visitorId: string;
  name: string;
  tags: string[];
  /** Most recent pages first (browsing trail, F7). */
  trail: Array<{ url: string; title?: string; at: number }>;
  online: boolean;
  openSessionId?: string;
  sessions: string[];
  /** Address, browser and (apps) device of the latest connection. */
  device?: DeviceInfo;
}

// ---- to the presence actor (one per tenant) --------------------------------------------------
export type PresenceMsg =
  | { t: 'online'; visitorId: string; name: string; url?: string; title?: string; at: number }
  | { t: 'offline'; visitorId: string }
  | { t: 'list'; limit: number }
  /** What a presence actor knew when it deactivated (its shard moved), oldest first. */
  | { t: 'restore'; visitors: OnlineVisitor[] };

export interface OnlineVisitor {
  visitorId: string;
  name: string;
  url?: string;
  title?: string;
  since: number;
}

// ---- to an agent actor ----------------------------------------------------------------------
export type AgentMsg =
  | { t: 'connect'; caller: Caller; endpoint: EndpointId; maxConcurrent: number; groups: string[] }
  | { t: 'disconnect'; endpoint: EndpointId }
  | { t: 'setStatus'; caller: Caller; status: AgentStatus }
  /** An admin created / deleted the member. */
  | { t: 'created'; name: string; role: string }
  | { t: 'deleted' }
  /** An admin changed the member (cap, groups, name). */
  | { t: 'profile'; name: string; maxConcurrent: number; groups: string[] }
  /** The tenant's dispatcher (re)activated and knows nobody: tell it this agent's state. */
  | { t: 'announce' }
  /** Activates the agent actor (a moving activation hands on its offline grace this way). */
  | { t: 'wake' }
  | { t: 'sessionAssigned'; session: SessionSummary }
  | { t: 'sessionClosed'; sessionId: string }
  /** The session was transferred to someone else. */
  | { t: 'sessionReleased'; sessionId: string }
  | { t: 'transferOffer'; session: SessionSummary; fromAgentId: string; expiresAt: number }
  | { t: 'transferWithdrawn'; sessionId: string }
  | { t: 'offlineGrace' };

export interface AgentConnectResult {
  status: AgentStatus;
  sessions: SessionSummary[];
}

// ---- to the dispatcher (one per tenant) -----------------------------------------------------
export type DispatchMsg =
  | {
      t: 'enqueue';
      sessionId: string;
      groupId: string;
      at: number;
      /** Transfers are served before arrivals. */
      priority?: number;
      /** The agent that held the session until now (transfer to a group). */
      releaseFrom?: string;
    }
  | { t: 'dequeue'; sessionId: string }
  | {
      t: 'agentState';
      agentId: string;
      name: string;
      status: AgentStatus;
      connected: boolean;
      maxConcurrent: number;
      groups?: string[];
      activeSessions: string[];
    }
  | { t: 'released'; agentId: string; sessionId: string }
  /** Direct assignment to one agent (transfer accepted, proactive chat); answers true or false. */
  | { t: 'reserve'; agentId: string; sessionId: string; requireOnline?: boolean; releaseFrom?: string }
  /** A waiting session (re)activated and lost its position: tell it again. */
  | { t: 'refreshPosition'; sessionId: string }
  | { t: 'flushPositions' }
  | { t: 'snapshot' };

export interface DispatchSnapshot {
  /** Waiting sessions per skill group, most urgent first. */
  queues: Record<string, string[]>;
  /** The same with the time each session joined its queue. */
  waiting: Record<string, Array<{ sessionId: string; since: number }>>;
  /** All waiting sessions. */
  queue: string[];
  agents: Array<{
    agentId: string;
    name: string;
    status: AgentStatus;
    connected: boolean;
    active: number;
    activeSessions: string[];
    max: number;
    groups: string[];
  }>;
}

export type { PartyType };
