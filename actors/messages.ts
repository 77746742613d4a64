/**
 * Messages exchanged between the gateway and the service-desk actors, and among actors.
 * Everything here crosses worker threads, so it is plain data (structured-clone safe).
 */
import type { EndpointId } from '../engine/types.ts';
import type { AgentStatus, PartyType, ServerFrame, SessionSummary } from '../protos/ws-v1.ts';

/** Actor kinds of the service desk. Keys always start with the tenant id: `<tenant>:<id>`. */
export const KINDS = {
  session: 'session',
  visitor: 'visitor',
  agent: 'agent',
  dispatch: 'dispatch',
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
/** The agent actor deactivated; an agent connection registers itself again. */
export interface AgentResetConnection {
  t: 'agentReset';
}
/** A live session event, already serialised as an `event` frame (once per role, not per socket). */
export interface EventToConnection {
  t: 'event';
  sessionId: string;
  seq: number;
  json: string;
}
export type ConnectionMsg =
  | PushToConnection
  | EventToConnection
  | CloseConnection
  | AssignedToConnection
  | UnsubscribedConnection
  | AgentResetConnection;

// ---- to a session actor ---------------------------------------------------------------------
export type SessionMsg =
  | {
      t: 'create';
      visitorId: string;
      visitorName: string;
      channel: string;
      entry?: string;
    }
  | { t: 'summary'; caller: Caller }
  /** `endpoint`: the sending socket; it gets the ack (which carries the seq) instead of the event. */
  | { t: 'send'; caller: Caller; clientMsgId: string; text: string; endpoint?: EndpointId }
  | { t: 'subscribe'; caller: Caller; endpoint: EndpointId; lastSeq: number }
  | { t: 'unsubscribe'; endpoint: EndpointId }
  | { t: 'typing'; caller: Caller; text?: string }
  | { t: 'close'; caller: Caller; reason?: string }
  | { t: 'recall'; caller: Caller; seq: number }
  | { t: 'assign'; agentId: string; agentName: string }
  | { t: 'queuePosition'; position: number }
  | { t: 'read'; caller: Caller; afterSeq: number; limit: number };

// ---- to a visitor actor ---------------------------------------------------------------------
export type VisitorMsg =
  | { t: 'open'; caller: Caller; channel: string; entry?: string }
  | { t: 'current'; caller: Caller }
  | { t: 'sessionClosed'; sessionId: string };

// ---- to an agent actor ----------------------------------------------------------------------
export type AgentMsg =
  | { t: 'connect'; caller: Caller; endpoint: EndpointId; maxConcurrent: number }
  | { t: 'disconnect'; endpoint: EndpointId }
  | { t: 'setStatus'; caller: Caller; status: AgentStatus }
  | { t: 'sessionAssigned'; session: SessionSummary }
  | { t: 'sessionClosed'; sessionId: string }
  | { t: 'offlineGrace' };

export interface AgentConnectResult {
  status: AgentStatus;
  sessions: SessionSummary[];
}

// ---- to the dispatcher (one per tenant) -----------------------------------------------------
export type DispatchMsg =
  | { t: 'enqueue'; sessionId: string; at: number }
  | { t: 'dequeue'; sessionId: string }
  | {
      t: 'agentState';
      agentId: string;
      name: string;
      status: AgentStatus;
      connected: boolean;
      maxConcurrent: number;
      activeSessions: string[];
    }
  | { t: 'released'; agentId: string; sessionId: string }
  /** A waiting session (re)activated and lost its position: tell it again. */
  | { t: 'refreshPosition'; sessionId: string }
  | { t: 'snapshot' };

export interface DispatchSnapshot {
  queue: string[];
  agents: Array<{ agentId: string; status: AgentStatus; connected: boolean; active: number; max: number }>;
}

export type { PartyType };
