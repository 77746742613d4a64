/**
 * Visitor window state: the visitor's current session, its queue position, the assigned agent,
 * the conversation with delivery states and the agent's typing indicator. Plain reactive state,
 * testable without mounting components.
 */
import { reactive } from 'vue';
import type { ServerFrame, SessionEvent } from '../../../protos/ws-v1.ts';
import type { MessageKey } from '../i18n.ts';
import type { AckInfo, PendingMessage } from '../realtime/client.ts';

export interface VisitorLine {
  key: string;
  seq?: number;
  from: 'visitor' | 'agent' | 'system';
  text: string;
  at: number;
  /** The visitor's own messages only. */
  delivery?: 'pending' | 'sent' | 'failed';
  recalled?: boolean;
  /** An image or file (download path `url`). */
  attachment?: { name: string; mime: string; size: number; url?: string };
  /** System lines: a text key with its placeholder values. */
  notice?: { key: MessageKey; vars?: Record<string, string> };
}

export interface VisitorState {
  sessionId: string | undefined;
  /** Queue position while waiting (1 = next); 0 when not queued. */
  queue: number;
  agentName: string;
  closed: boolean;
  agentTyping: boolean;
  lines: VisitorLine[];
  /** The agent asked for a rating (or the served session closed): the rating card shows. */
  ratingInvited: boolean;
  /** The score given, once rated (a session is rated once). */
  rated: number | undefined;
}

/** "Agent is typing" disappears this long after the agent's last typing frame, ms. */
export const AGENT_TYPING_MS = 5_000;

export interface StatusText {
  key: MessageKey;
  vars?: Record<string, string | number>;
}

export interface VisitorStore {
  state: VisitorState;
  /** Shows a (new) session, forgetting the previous one. */
  adopt(sessionId: string): void;
  applyEvent(e: SessionEvent): void;
  applyFrame(f: ServerFrame): void;
  addPending(p: PendingMessage): void;
  acked(a: Pick<AckInfo, 'clientMsgId' | 'seq'>): void;
  failed(clientMsgId: string): void;
  remove(key: string): void;
  /** The line under the title: queue position, agent, closed… */
  status(): StatusText;
}

export function createVisitorStore(
  timers: { set: (fn: () => void, ms: number) => unknown; clear: (h: unknown) => void } = {
    set: (fn, ms) => setTimeout(fn, ms),
    clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  },
): VisitorStore {
  const state = reactive<VisitorState>({
    sessionId: undefined,
    queue: 0,
    agentName: '',
    closed: false,
    agentTyping: false,
    lines: [],
    ratingInvited: false,
    rated: undefined,
  });
  let typingTimer: unknown;

  const stopTyping = (): void => {
    timers.clear(typingTimer);
    state.agentTyping = false;
  };
  const line = (key: string): VisitorLine | undefined => state.lines.find((l) => l.key === key);

  return {
    state,
    adopt(sessionId) {
      stopTyping();
      Object.assign(state, {
        sessionId,
        queue: 0,
        agentName: '',
        closed: false,
        lines: [],
        ratingInvited: false,
        rated: undefined,
      });
    },
    applyEvent(e) {
      if (e.sessionId !== state.sessionId) return;
      const b = e.body;
      switch (b.kind) {
        case 'message': {
          const mine = b.clientMsgId ? line(b.clientMsgId) : undefined;
          if (mine) {
            mine.delivery = 'sent';
            mine.seq = e.seq;
            return;
          }
          const from = b.from === 'visitor' ? 'visitor' : 'agent';
          state.lines.push({
            key: b.clientMsgId ?? `s${e.seq}`,
            seq: e.seq,
            from,
            // Visitors get a recalled message without its text.
            text: e.recalled ? '' : b.text,
            at: e.at,
            recalled: Boolean(e.recalled),
            ...(from === 'visitor' ? { delivery: 'sent' as const } : {}),
            ...(b.attachment && !e.recalled ? { attachment: b.attachment } : {}),
          });
          if (from === 'agent') stopTyping();
          return;
        }
        case 'recalled': {
          const l = state.lines.find((x) => x.seq === b.targetSeq);
          if (l) {
            l.recalled = true;
            l.text = '';
            delete l.attachment;
          }
          return;
        }
        case 'assigned':
          state.agentName = b.agentName;
          state.queue = 0;
          state.lines.push({
            key: `s${e.seq}`,
            seq: e.seq,
            from: 'system',
            text: '',
            at: e.at,
            notice: { key: 'visitor.assigned', vars: { name: b.agentName } },
          });
          return;
        case 'rating_invited':
          state.ratingInvited = true;
          return;
        case 'rated':
          state.rated = b.score;
          return;
        case 'closed':
          state.closed = true;
          state.queue = 0;
          stopTyping();
          state.lines.push({
            key: `s${e.seq}`,
            seq: e.seq,
            from: 'system',
            text: '',
            at: e.at,
            notice: { key: 'visitor.closed' },
          });
          return;
        default:
          return;
      }
    },
    applyFrame(f) {
      if (f.type === 'session' && f.session.sessionId === state.sessionId && f.session.rating) {
        // The answer to `rate` (a closed session no longer streams its `rated` event).
        state.rated = f.session.rating.score;
      } else if (f.type === 'queue' && f.sessionId === state.sessionId && !state.agentName) {
        state.queue = f.position;
      } else if (
        f.type === 'typing' &&
        f.from === 'agent' &&
        f.sessionId === state.sessionId &&
        !state.closed
      ) {
        state.agentTyping = true;
        timers.clear(typingTimer);
        typingTimer = timers.set(() => (state.agentTyping = false), AGENT_TYPING_MS);
      }
    },
    addPending(p) {
      state.lines.push({
        key: p.clientMsgId,
        from: 'visitor',
        text: p.text,
        at: p.sentAt,
        delivery: 'pending',
        ...(p.attachment ? { attachment: p.attachment } : {}),
      });
    },
    acked(a) {
      const l = line(a.clientMsgId);
      if (l) {
        l.delivery = 'sent';
        l.seq = a.seq;
      }
    },
    failed(clientMsgId) {
      const l = line(clientMsgId);
      if (l) l.delivery = 'failed';
    },
    remove(key) {
      state.lines = state.lines.filter((l) => l.key !== key);
    },
    status(): StatusText {
      if (state.closed) return { key: 'visitor.closed' };
      if (state.agentName) return { key: 'visitor.assigned', vars: { name: state.agentName } };
      if (state.queue === 1) return { key: 'visitor.queueNext' };
      if (state.queue > 1) return { key: 'visitor.queue', vars: { n: state.queue - 1 } };
      return { key: 'visitor.connecting' };
    },
  };
}
