/**
 * Agent workspace state: the agent's sessions, their events, unread counts and typing previews,
 * updated from protocol frames. Plain reactive state, testable without mounting components.
 */
import { reactive } from 'vue';
import type { AgentStatus, ServerFrame, SessionEvent, SessionSummary } from '../../../protos/ws-v1.ts';
import type { PendingMessage } from '../realtime/client.ts';

export interface ChatLine {
  key: string;
  seq?: number;
  at: number;
  from: 'visitor' | 'agent' | 'system';
  text: string;
  pending?: boolean;
  recalled?: boolean;
}

export interface SessionView {
  summary: SessionSummary;
  lines: ChatLine[];
  unread: number;
  preview: string;
  closed: boolean;
}

export interface AgentState {
  status: AgentStatus;
  sessions: Record<string, SessionView>;
  order: string[];
  selected: string | undefined;
}

export function createAgentStore(): {
  state: AgentState;
  applyFrame(f: ServerFrame): void;
  applyEvent(e: SessionEvent): void;
  addPending(p: PendingMessage): void;
  acked(clientMsgId: string, seq: number): void;
  select(sessionId: string): void;
} {
  const state = reactive<AgentState>({ status: 'offline', sessions: {}, order: [], selected: undefined });

  const ensure = (s: SessionSummary): SessionView => {
    let v = state.sessions[s.sessionId];
    if (!v) {
      v = { summary: s, lines: [], unread: 0, preview: '', closed: s.state === 'closed' };
      state.sessions[s.sessionId] = v;
      state.order.unshift(s.sessionId);
      if (!state.selected) state.selected = s.sessionId;
    }
    return state.sessions[s.sessionId]!;
  };

  const applyEvent = (e: SessionEvent): void => {
    const v = state.sessions[e.sessionId];
    if (!v) return;
    const b = e.body;
    if (b.kind === 'message') {
      const own = b.clientMsgId ? v.lines.find((l) => l.key === b.clientMsgId) : undefined;
      if (own) {
        own.pending = false;
        own.seq = e.seq;
        return;
      }
      v.lines.push({
        key: b.clientMsgId ?? `s${e.seq}`,
        seq: e.seq,
        at: e.at,
        from: b.from,
        text: b.text,
        recalled: Boolean(e.recalled),
      });
      if (b.from === 'visitor') {
        v.preview = '';
        if (state.selected !== e.sessionId) v.unread++;
      }
    } else if (b.kind === 'recalled') {
      const target = v.lines.find((l) => l.seq === b.targetSeq);
      if (target) target.recalled = true;
    } else if (b.kind === 'closed') {
      v.closed = true;
      v.summary = { ...v.summary, state: 'closed' };
      v.lines.push({ key: `s${e.seq}`, seq: e.seq, at: e.at, from: 'system', text: 'closed' });
    } else if (b.kind === 'assigned') {
      v.summary = { ...v.summary, state: 'in_progress', agentId: b.agentId };
    }
  };

  const applyFrame = (f: ServerFrame): void => {
    switch (f.type) {
      case 'welcome':
        if (f.status) state.status = f.status;
        for (const s of f.sessions) ensure(s);
        break;
      case 'assigned':
        ensure(f.session);
        break;
      case 'status':
        state.status = f.status;
        break;
      case 'typing': {
        const v = state.sessions[f.sessionId];
        if (v && f.from === 'visitor') v.preview = f.text ?? '';
        break;
      }
      case 'session': {
        const v = state.sessions[f.session.sessionId];
        if (v) {
          v.summary = f.session;
          v.closed = f.session.state === 'closed';
        }
        break;
      }
      default:
        break;
    }
  };

  return {
    state,
    applyFrame,
    applyEvent,
    addPending(p) {
      const v = state.sessions[p.sessionId];
      if (v) v.lines.push({ key: p.clientMsgId, at: p.sentAt, from: 'agent', text: p.text, pending: true });
    },
    acked(clientMsgId, seq) {
      for (const v of Object.values(state.sessions)) {
        const l = v.lines.find((x) => x.key === clientMsgId);
        if (l) {
          l.pending = false;
          l.seq = seq;
        }
      }
    },
    select(sessionId) {
      state.selected = sessionId;
      const v = state.sessions[sessionId];
      if (v) v.unread = 0;
    },
  };
}
