/**
 * Agent workspace state: the agent's sessions, their events, unread counts, waiting times and typing
 * previews, updated from protocol frames. Plain reactive state, testable without mounting components.
 */
import { computed, reactive, type ComputedRef } from 'vue';
import type {
  AgentStatus,
  Attachment,
  ServerFrame,
  SessionEvent,
  SessionSummary,
} from '../../../protos/ws-v1.ts';
import type { AckInfo, PendingMessage } from '../realtime/client.ts';

/** Delivery of an own message: on its way, durably stored (acked), or refused for good. */
export type Delivery = 'pending' | 'sent' | 'failed';

export interface ChatLine {
  /** clientMsgId for messages that have one, `s<seq>` otherwise. */
  key: string;
  seq?: number;
  at: number;
  from: 'visitor' | 'agent' | 'system';
  text: string;
  /** Own messages only. */
  delivery?: Delivery;
  /** An image or file (download path `url`). */
  attachment?: Attachment & { url?: string };
  recalled?: boolean;
  /** System lines: what happened (rendered in the UI language). */
  notice?:
    | { kind: 'assigned'; name: string }
    | { kind: 'closed' }
    | { kind: 'sensitive'; text: string }
    | { kind: 'note'; text: string };
}

export interface SessionView {
  summary: SessionSummary;
  lines: ChatLine[];
  unread: number;
  /** The visitor's draft (typing preview); '' when not typing. */
  preview: string;
  closed: boolean;
  /** Server time of the oldest visitor message not answered yet; undefined when nobody waits. */
  waitingSince: number | undefined;
}

export interface TransferOffer {
  session: SessionSummary;
  fromAgentId: string;
  expiresAt: number;
}

export interface AgentState {
  status: AgentStatus;
  sessions: Record<string, SessionView>;
  /** Session ids, newest assignment first. */
  order: string[];
  selected: string | undefined;
  /** Transfers other agents offer to this agent, waiting for an answer. */
  offers: TransferOffer[];
  /** The last refused action (typed error), shown until the next one or dismissed. */
  error: { code: string; at: number } | undefined;
}

export interface AgentStore {
  state: AgentState;
  /** Unread visitor messages over all sessions. */
  totalUnread: ComputedRef<number>;
  applyFrame(f: ServerFrame): void;
  applyEvent(e: SessionEvent): void;
  addPending(p: PendingMessage): void;
  acked(a: Pick<AckInfo, 'clientMsgId' | 'seq' | 'at'>): void;
  failed(clientMsgId: string): void;
  select(sessionId: string): void;
  /** Removes a closed session from the list. */
  dismiss(sessionId: string): void;
  reset(): void;
  /** A transfer offer was answered (or expired). */
  answered(sessionId: string): void;
}

export function createAgentStore(): AgentStore {
  const state = reactive<AgentState>({
    status: 'offline',
    sessions: {},
    order: [],
    selected: undefined,
    offers: [],
    error: undefined,
  });

  const ensure = (s: SessionSummary): SessionView => {
    const known = state.sessions[s.sessionId];
    if (known) {
      known.summary = { ...known.summary, ...s };
      if (s.state === 'closed') known.closed = true;
      return known;
    }
    state.sessions[s.sessionId] = {
      summary: s,
      lines: [],
      unread: 0,
      preview: '',
      closed: s.state === 'closed',
      waitingSince: undefined,
    };
    state.order.unshift(s.sessionId);
    if (!state.selected) state.selected = s.sessionId;
    return state.sessions[s.sessionId]!;
  };

  const findLine = (clientMsgId: string): ChatLine | undefined => {
    for (const v of Object.values(state.sessions)) {
      const l = v.lines.find((x) => x.key === clientMsgId);
      if (l) return l;
    }
    return undefined;
  };

  const applyEvent = (e: SessionEvent): void => {
    const v = state.sessions[e.sessionId];
    if (!v) return;
    const b = e.body;
    switch (b.kind) {
      case 'message': {
        const own = b.clientMsgId ? v.lines.find((l) => l.key === b.clientMsgId) : undefined;
        if (own) {
          own.delivery = 'sent';
          own.seq = e.seq;
          own.at = e.at;
          return;
        }
        v.lines.push({
          key: b.clientMsgId ?? `s${e.seq}`,
          seq: e.seq,
          at: e.at,
          from: b.from,
          text: b.text,
          recalled: Boolean(e.recalled),
          ...(b.from === 'agent' ? { delivery: 'sent' as const } : {}),
          ...(b.attachment ? { attachment: b.attachment } : {}),
        });
        if (b.from === 'visitor') {
          v.preview = '';
          v.waitingSince ??= e.at;
          if (state.selected !== e.sessionId) v.unread++;
        } else if (b.from === 'agent') {
          v.waitingSince = undefined;
        }
        return;
      }
      case 'recalled': {
        const target = v.lines.find((l) => l.seq === b.targetSeq);
        if (target) target.recalled = true;
        return;
      }
      case 'assigned':
        v.summary = { ...v.summary, state: 'in_progress', agentId: b.agentId };
        v.lines.push({
          key: `s${e.seq}`,
          seq: e.seq,
          at: e.at,
          from: 'system',
          text: '',
          notice: { kind: 'assigned', name: b.agentName },
        });
        return;
      case 'closed':
        v.closed = true;
        v.preview = '';
        v.waitingSince = undefined;
        v.summary = { ...v.summary, state: 'closed' };
        v.lines.push({
          key: `s${e.seq}`,
          seq: e.seq,
          at: e.at,
          from: 'system',
          text: '',
          notice: { kind: 'closed' },
        });
        return;
      case 'note':
        v.lines.push({
          key: `s${e.seq}`,
          seq: e.seq,
          at: e.at,
          from: 'system',
          text: '',
          notice: { kind: 'note', text: b.text },
        });
        return;
      default:
        return;
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
        state.offers = state.offers.filter((o) => o.session.sessionId !== f.session.sessionId);
        break;
      case 'status':
        state.status = f.status;
        break;
      case 'transferOffer':
        state.offers = [
          ...state.offers.filter((o) => o.session.sessionId !== f.session.sessionId),
          { session: f.session, fromAgentId: f.fromAgentId, expiresAt: f.expiresAt },
        ];
        break;
      case 'error':
        state.error = { code: f.code, at: Date.now() };
        break;
      case 'notice': {
        const v = state.sessions[f.sessionId];
        if (v)
          v.lines.push({
            key: `n${v.lines.length}-${Date.now()}`,
            at: Date.now(),
            from: 'system',
            text: '',
            notice: { kind: 'sensitive', text: f.text },
          });
        break;
      }
      case 'released':
        // The session went to another agent: it leaves this workspace.
        delete state.sessions[f.sessionId];
        state.order = state.order.filter((id) => id !== f.sessionId);
        if (state.selected === f.sessionId) state.selected = state.order[0];
        break;
      case 'typing': {
        const v = state.sessions[f.sessionId];
        if (v && f.from === 'visitor' && !v.closed) v.preview = f.text ?? '';
        break;
      }
      case 'session': {
        const v = state.sessions[f.session.sessionId];
        if (v) {
          v.summary = f.session;
          if (f.session.state === 'closed') v.closed = true;
        }
        break;
      }
      default:
        break;
    }
  };

  const totalUnread = computed(() => Object.values(state.sessions).reduce((n, v) => n + v.unread, 0));

  return {
    state,
    totalUnread,
    applyFrame,
    applyEvent,
    addPending(p) {
      const v = state.sessions[p.sessionId];
      if (!v) return;
      v.lines.push({
        key: p.clientMsgId,
        at: p.sentAt,
        from: 'agent',
        text: p.text,
        delivery: 'pending',
        ...(p.attachment ? { attachment: p.attachment } : {}),
      });
      v.waitingSince = undefined;
    },
    acked(a) {
      const l = findLine(a.clientMsgId);
      if (l) {
        l.delivery = 'sent';
        l.seq = a.seq;
        l.at = a.at;
      }
    },
    failed(clientMsgId) {
      const l = findLine(clientMsgId);
      if (l) l.delivery = 'failed';
    },
    select(sessionId) {
      state.selected = sessionId;
      const v = state.sessions[sessionId];
      if (v) v.unread = 0;
    },
    dismiss(sessionId) {
      if (!state.sessions[sessionId]?.closed) return;
      delete state.sessions[sessionId];
      state.order = state.order.filter((id) => id !== sessionId);
      if (state.selected === sessionId) state.selected = state.order[0];
    },
    reset() {
      state.status = 'offline';
      state.sessions = {};
      state.order = [];
      state.selected = undefined;
      state.offers = [];
      state.error = undefined;
    },
    answered(sessionId) {
      state.offers = state.offers.filter((o) => o.session.sessionId !== sessionId);
    },
  };
}
