/**
 * RealtimeClient: the protocol v1 client shared by the agent console and the visitor window.
 * Framework-free. It reconnects with exponential backoff and jitter, resumes every known session
 * from the last seq it saw, and resends every unacknowledged message with its original clientMsgId
 * (the server stores it once), so a flaky network neither loses nor doubles a message.
 */
import type { ClientFrame, ServerFrame, SessionEvent, WelcomeFrame } from '../../../protos/ws-v1.ts';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** The subset of the browser WebSocket the client needs (injectable for tests). */
export interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type SocketFactory = (url: string) => SocketLike;

export interface PendingMessage {
  sessionId: string;
  clientMsgId: string;
  text: string;
  sentAt: number;
}

export interface RealtimeEvents {
  state: ConnectionState;
  welcome: WelcomeFrame;
  /** A session event never seen before on this client (live or replayed), in seq order per session. */
  event: SessionEvent;
  /** Any server frame (after the client's own processing). */
  frame: ServerFrame;
  ack: { sessionId: string; clientMsgId: string; seq: number };
}

type Handler<T> = (v: T) => void;

export interface RealtimeOptions {
  /** ws(s)://host/v1/ws/visitor or …/agent, without the token. */
  url: string;
  token: string;
  socketFactory?: SocketFactory;
  /** First reconnect delay, ms (default 500), doubling up to maxBackoffMs (default 15 s), ±30 % jitter. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Typing frames at most this often, ms (default 400). */
  typingThrottleMs?: number;
  random?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (h: unknown) => void;
}

const OPEN = 1;
/** Close codes after which reconnecting is pointless. */
const FINAL_CLOSE = new Set([4001, 4003]);

export class RealtimeClient {
  state: ConnectionState = 'idle';
  private socket: SocketLike | undefined;
  private readonly lastSeq = new Map<string, number>();
  private readonly pending = new Map<string, PendingMessage>();
  private readonly handlers = new Map<keyof RealtimeEvents, Set<Handler<never>>>();
  private attempt = 0;
  private retryTimer: unknown;
  private stopped = false;
  private lastTyping = 0;
  private seqCounter = 0;
  private readonly o: Required<Omit<RealtimeOptions, 'socketFactory'>> & { socketFactory: SocketFactory };

  constructor(opts: RealtimeOptions) {
    this.o = {
      backoffMs: 500,
      maxBackoffMs: 15_000,
      typingThrottleMs: 400,
      random: Math.random,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
      socketFactory: (url) => new WebSocket(url) as unknown as SocketLike,
      ...opts,
    } as RealtimeClient['o'];
  }

  on<K extends keyof RealtimeEvents>(ev: K, h: Handler<RealtimeEvents[K]>): () => void {
    let set = this.handlers.get(ev);
    if (!set) {
      set = new Set();
      this.handlers.set(ev, set);
    }
    set.add(h as Handler<never>);
    return () => set.delete(h as Handler<never>);
  }

  private emit<K extends keyof RealtimeEvents>(ev: K, v: RealtimeEvents[K]): void {
    for (const h of this.handlers.get(ev) ?? []) (h as Handler<RealtimeEvents[K]>)(v);
  }

  private setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s);
  }

  connect(): void {
    this.stopped = false;
    this.open();
  }

  /** Closes for good (logout, page unload). */
  close(): void {
    this.stopped = true;
    this.o.clearTimer(this.retryTimer);
    this.socket?.close(1000, 'bye');
    this.setState('closed');
  }

  /** Sessions the client follows (seq tracking); `lastSeq` 0 replays the whole conversation. */
  track(sessionId: string, lastSeq = 0): void {
    if (!this.lastSeq.has(sessionId)) this.lastSeq.set(sessionId, lastSeq);
  }

  untrack(sessionId: string): void {
    this.lastSeq.delete(sessionId);
    for (const [id, p] of this.pending) if (p.sessionId === sessionId) this.pending.delete(id);
  }

  seqOf(sessionId: string): number {
    return this.lastSeq.get(sessionId) ?? 0;
  }

  get unacked(): PendingMessage[] {
    return [...this.pending.values()];
  }

  /** Sends a message; it stays pending (and is resent after reconnects) until acknowledged. */
  sendMessage(sessionId: string, text: string): PendingMessage {
    const clientMsgId = `${Date.now().toString(36)}-${(++this.seqCounter).toString(36)}-${Math.floor(this.o.random() * 1e9).toString(36)}`;
    const p: PendingMessage = { sessionId, clientMsgId, text, sentAt: Date.now() };
    this.pending.set(clientMsgId, p);
    this.raw({ type: 'send', sessionId, clientMsgId, text });
    return p;
  }

  /**
   * Typing state (with the draft text for the visitor's typing preview). Throttled: at most one
   * frame per window, and the latest draft is always sent at the end of the window.
   */
  typing(sessionId: string, text?: string): void {
    const now = Date.now();
    const wait = this.lastTyping + this.o.typingThrottleMs - now;
    this.typingLatest = { sessionId, text };
    if (wait <= 0) {
      this.flushTyping();
      return;
    }
    if (this.typingTimer === undefined) {
      this.typingTimer = this.o.setTimer(() => {
        this.typingTimer = undefined;
        this.flushTyping();
      }, wait);
    }
  }

  private typingLatest: { sessionId: string; text: string | undefined } | undefined;
  private typingTimer: unknown;

  private flushTyping(): void {
    const t = this.typingLatest;
    if (!t) return;
    this.typingLatest = undefined;
    this.lastTyping = Date.now();
    this.raw(
      t.text === undefined
        ? { type: 'typing', sessionId: t.sessionId }
        : { type: 'typing', sessionId: t.sessionId, text: t.text },
    );
  }

  /** Sends a frame if the socket is open (frames other than `send` are not queued). */
  raw(frame: ClientFrame): boolean {
    if (!this.socket || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  private open(): void {
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const s = this.o.socketFactory(`${this.o.url}?token=${encodeURIComponent(this.o.token)}`);
    this.socket = s;
    s.onmessage = (ev) => this.onFrame(JSON.parse(String(ev.data)) as ServerFrame);
    s.onclose = (ev) => {
      if (this.socket !== s) return;
      this.socket = undefined;
      if (this.stopped || FINAL_CLOSE.has(ev.code)) {
        this.setState('closed');
        return;
      }
      this.scheduleReconnect();
    };
    s.onerror = () => {};
    s.onopen = () => {};
  }

  private scheduleReconnect(): void {
    this.setState('reconnecting');
    const base = Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** this.attempt);
    const delay = base * (0.7 + this.o.random() * 0.6);
    this.attempt++;
    this.retryTimer = this.o.setTimer(() => this.open(), delay);
  }

  private onFrame(f: ServerFrame): void {
    switch (f.type) {
      case 'welcome':
        this.attempt = 0;
        this.setState('open');
        for (const s of f.sessions) this.track(s.sessionId);
        this.emit('welcome', f);
        // Catch up on every followed session, then resend what was never acknowledged.
        for (const [sessionId, seq] of this.lastSeq) this.raw({ type: 'resume', sessionId, lastSeq: seq });
        for (const p of this.pending.values()) {
          this.raw({ type: 'send', sessionId: p.sessionId, clientMsgId: p.clientMsgId, text: p.text });
        }
        break;
      case 'event':
        this.deliver(f.event);
        break;
      case 'events':
        for (const e of f.events) this.deliver(e);
        break;
      case 'ack': {
        // The sender's own message comes back as this ack, not as an event: it advances the seq.
        const last = this.lastSeq.get(f.sessionId);
        if (last !== undefined && f.seq > last) this.lastSeq.set(f.sessionId, f.seq);
        if (this.pending.delete(f.clientMsgId)) {
          this.emit('ack', { sessionId: f.sessionId, clientMsgId: f.clientMsgId, seq: f.seq });
        }
        break;
      }
      case 'session':
      case 'assigned':
        this.track(f.session.sessionId);
        break;
      case 'error':
        // A message the server refused for good (closed session, invalid) stops being resent.
        if (
          f.ref &&
          this.pending.has(f.ref) &&
          f.code !== 'SB_ERR_STORE_UNAVAILABLE' &&
          f.code !== 'SB_ERR_TIMEOUT'
        ) {
          this.pending.delete(f.ref);
        }
        break;
      default:
        break;
    }
    this.emit('frame', f);
  }

  private deliver(e: SessionEvent): void {
    const last = this.lastSeq.get(e.sessionId) ?? 0;
    // Defensive: the server sends each seq once per socket, but a resume may overlap a live event.
    if (e.seq <= last) return;
    this.lastSeq.set(e.sessionId, e.seq);
    this.emit('event', e);
  }
}
