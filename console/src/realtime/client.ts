/**
 * RealtimeClient: the protocol v1 client shared by the agent console and the visitor window.
 * Framework-free. It reconnects with exponential backoff and jitter, resumes every known session
 * from the last seq it saw, and resends every unacknowledged message with its original clientMsgId
 * (the server stores it once), so a flaky network neither loses nor doubles a message.
 */
import type {
  Attachment,
  ClientFrame,
  ErrorFrame,
  ServerFrame,
  SessionEvent,
  WelcomeFrame,
} from '../../../protos/ws-v1.ts';
import { TRANSIENT_ERRORS, type ErrorCode } from '../../../protos/errors.ts';

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
  /** An uploaded image or file sent with the message. */
  attachment?: Attachment & { url?: string };
  /** Local time the user sent it, ms since epoch. */
  sentAt: number;
}

export interface AckInfo {
  sessionId: string;
  clientMsgId: string;
  seq: number;
  /** Server time the message was stored. */
  at: number;
  duplicate: boolean;
}

export interface RealtimeEvents {
  state: ConnectionState;
  welcome: WelcomeFrame;
  /** A session event never seen before on this client (live or replayed), in seq order per session. */
  event: SessionEvent;
  /** A session finished replaying after `resume` (the `events` page with `more: false`). */
  synced: { sessionId: string; lastSeq: number };
  /** An own message is durably stored. */
  ack: AckInfo;
  /** The server refused an own message for good; it is no longer resent. */
  failed: { message: PendingMessage; code: ErrorCode; reason: string };
  /** Any server frame (after the client's own processing). */
  frame: ServerFrame;
  /** A connection closed for good (unauthenticated, replaced) with its close code. */
  ended: { code: number; reason: string };
}

type Handler<T> = (v: T) => void;

export interface RealtimeOptions {
  /** ws(s)://host/v1/ws/visitor or …/agent, without the token. */
  url: string;
  /** The token, or a function called before every connection attempt (e.g. to fetch a fresh one). */
  token: string | (() => string | Promise<string>);
  socketFactory?: SocketFactory;
  /** First reconnect delay, ms (default 500); doubles per failed attempt up to maxBackoffMs. */
  backoffMs?: number;
  /** Reconnect delay cap, ms (default 15 000). */
  maxBackoffMs?: number;
  /** Each delay is multiplied by a random factor in [1 − jitter, 1 + jitter] (default 0.3). */
  jitter?: number;
  /** Typing frames at most this often, ms (default 400). */
  typingThrottleMs?: number;
  /** A message refused with a transient error (store unavailable, timeout…) is resent after this, ms (default 2 000). */
  retryMs?: number;
  /** App-level ping period, ms (default 25 000; 0 disables). */
  pingIntervalMs?: number;
  /** A socket silent for pingIntervalMs + this, ms (default 10 000), is dropped and reconnected. */
  pongTimeoutMs?: number;
  /** After a replay page with `more: true`, ask again from the last seq if nothing follows within this, ms (default 5 000). */
  pageTimeoutMs?: number;
  random?: () => number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (h: unknown) => void;
}

type Resolved = Required<Omit<RealtimeOptions, 'token'>> & Pick<RealtimeOptions, 'token'>;

const OPEN = 1;
/** Close codes after which reconnecting is pointless: the token is refused, or another tab took over. */
const FINAL_CLOSE = new Set([4001, 4003]);

export class RealtimeClient {
  state: ConnectionState = 'idle';
  private socket: SocketLike | undefined;
  /** Highest seq seen per followed session, contiguous (events and acks). */
  private readonly lastSeq = new Map<string, number>();
  /** Seqs of own messages acknowledged before the events in front of them arrived. */
  private readonly ackedAhead = new Map<string, Set<number>>();
  private readonly pending = new Map<string, PendingMessage>();
  private readonly pageTimers = new Map<string, unknown>();
  private readonly handlers = new Map<keyof RealtimeEvents, Set<Handler<never>>>();
  private attempt = 0;
  private retryTimer: unknown;
  private pingTimer: unknown;
  private lastHeard = 0;
  private stopped = false;
  private lastTyping = -Infinity;
  private typingLatest: { sessionId: string; text: string | undefined } | undefined;
  private typingTimer: unknown;
  private idCounter = 0;
  private readonly o: Resolved;

  constructor(opts: RealtimeOptions) {
    this.o = {
      socketFactory: (url) => new WebSocket(url) as unknown as SocketLike,
      backoffMs: 500,
      maxBackoffMs: 15_000,
      jitter: 0.3,
      typingThrottleMs: 400,
      retryMs: 2_000,
      pingIntervalMs: 25_000,
      pongTimeoutMs: 10_000,
      pageTimeoutMs: 5_000,
      random: Math.random,
      now: Date.now,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
      ...opts,
    };
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
    if (this.socket || this.state === 'connecting') return;
    this.stopped = false;
    this.attempt = 0;
    void this.open();
  }

  /** Skips the remaining backoff delay (e.g. when the browser reports it is online again). */
  reconnectNow(): void {
    if (this.stopped || this.state !== 'reconnecting' || this.socket) return;
    this.o.clearTimer(this.retryTimer);
    void this.open();
  }

  /** Closes for good (logout, page unload). Pending messages stay in {@link unacked}. */
  close(): void {
    this.stopped = true;
    this.o.clearTimer(this.retryTimer);
    this.o.clearTimer(this.pingTimer);
    this.o.clearTimer(this.typingTimer);
    for (const t of this.pageTimers.values()) this.o.clearTimer(t);
    this.pageTimers.clear();
    const s = this.socket;
    this.socket = undefined;
    s?.close(1000, 'bye');
    this.setState('closed');
  }

  /** Follows a session (seq tracking, resume after reconnects); `lastSeq` 0 replays it all. */
  track(sessionId: string, lastSeq = 0): void {
    if (!this.lastSeq.has(sessionId)) this.lastSeq.set(sessionId, lastSeq);
  }

  /**
   * Starts following a session now (e.g. an admin watching a chat): replays from `afterSeq`, then live.
   * Returns false when the session was followed already (nothing changes then).
   */
  follow(sessionId: string, afterSeq = 0): boolean {
    if (this.lastSeq.has(sessionId)) return false;
    this.lastSeq.set(sessionId, afterSeq);
    if (this.state === 'open') this.resume(sessionId);
    return true;
  }

  /** Stops following a session and forgets its unacknowledged messages. */
  untrack(sessionId: string): void {
    this.lastSeq.delete(sessionId);
    this.ackedAhead.delete(sessionId);
    this.o.clearTimer(this.pageTimers.get(sessionId));
    this.pageTimers.delete(sessionId);
    for (const [id, p] of this.pending) if (p.sessionId === sessionId) this.pending.delete(id);
  }

  /** The highest seq seen of a session (0 when none). */
  seqOf(sessionId: string): number {
    return this.lastSeq.get(sessionId) ?? 0;
  }

  /** Messages sent but not yet acknowledged, in sending order. */
  get unacked(): PendingMessage[] {
    return [...this.pending.values()];
  }

  /**
   * Sends a message. It stays pending — resent with the same clientMsgId after every reconnect and
   * after transient errors — until the server acknowledges it or refuses it for good.
   */
  sendMessage(sessionId: string, text: string, attachment?: Attachment & { url?: string }): PendingMessage {
    const rnd = Math.floor(this.o.random() * 0x7fffffff).toString(36);
    const clientMsgId = `${this.o.now().toString(36)}-${(++this.idCounter).toString(36)}-${rnd}`;
    const p: PendingMessage = { sessionId, clientMsgId, text, sentAt: this.o.now() };
    if (attachment) p.attachment = attachment;
    this.pending.set(clientMsgId, p);
    // A draft still waiting in the typing throttle is now stale: the message supersedes it.
    if (this.typingLatest?.sessionId === sessionId) this.typingLatest = undefined;
    this.track(sessionId);
    this.resend(p);
    return p;
  }

  /**
   * Typing state, with the draft text for the agent's typing preview (visitors). Throttled: at most
   * one frame per window; the latest draft always goes out at the end of the window.
   */
  typing(sessionId: string, text?: string): void {
    this.typingLatest = { sessionId, text };
    const wait = this.lastTyping + this.o.typingThrottleMs - this.o.now();
    if (wait <= 0) {
      this.flushTyping();
    } else if (this.typingTimer === undefined) {
      this.typingTimer = this.o.setTimer(() => {
        this.typingTimer = undefined;
        this.flushTyping();
      }, wait);
    }
  }

  private flushTyping(): void {
    const t = this.typingLatest;
    if (!t) return;
    this.typingLatest = undefined;
    this.lastTyping = this.o.now();
    this.raw(
      t.text === undefined
        ? { type: 'typing', sessionId: t.sessionId }
        : { type: 'typing', sessionId: t.sessionId, text: t.text },
    );
  }

  /** Sends a frame if the socket is open; returns false otherwise (only `send` is kept and resent). */
  raw(frame: ClientFrame): boolean {
    if (!this.socket || this.socket.readyState !== OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  private async open(): Promise<void> {
    this.setState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    let token: string;
    try {
      token = typeof this.o.token === 'string' ? this.o.token : await this.o.token();
    } catch {
      if (!this.stopped) this.scheduleReconnect();
      return;
    }
    if (this.stopped) return;
    const s = this.o.socketFactory(`${this.o.url}?token=${encodeURIComponent(token)}`);
    this.socket = s;
    s.onmessage = (ev) => {
      if (this.socket !== s) return;
      this.lastHeard = this.o.now();
      let f: ServerFrame;
      try {
        f = JSON.parse(String(ev.data)) as ServerFrame;
      } catch {
        return;
      }
      if (f && typeof f.type === 'string') this.onFrame(f);
    };
    s.onclose = (ev) => {
      if (this.socket !== s) return;
      this.lost(ev.code, ev.reason);
    };
    s.onerror = () => {};
    s.onopen = () => {
      this.lastHeard = this.o.now();
    };
  }

  /** The current socket is gone: reconnect, or stop for close codes that make retrying pointless. */
  private lost(code: number, reason: string): void {
    this.socket = undefined;
    this.o.clearTimer(this.pingTimer);
    for (const t of this.pageTimers.values()) this.o.clearTimer(t);
    this.pageTimers.clear();
    if (this.stopped) return;
    if (FINAL_CLOSE.has(code)) {
      this.stopped = true;
      this.setState('closed');
      this.emit('ended', { code, reason });
      return;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.setState('reconnecting');
    const base = Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** this.attempt);
    const delay = Math.round(base * (1 - this.o.jitter + this.o.random() * 2 * this.o.jitter));
    this.attempt++;
    this.retryTimer = this.o.setTimer(() => void this.open(), delay);
  }

  /** Pings while open; a socket that stays silent past the pong timeout is dropped (dead network). */
  private schedulePing(): void {
    if (this.o.pingIntervalMs <= 0) return;
    this.o.clearTimer(this.pingTimer);
    this.pingTimer = this.o.setTimer(() => {
      const s = this.socket;
      if (!s) return;
      if (this.o.now() - this.lastHeard > this.o.pingIntervalMs + this.o.pongTimeoutMs) {
        // A dead TCP connection may take minutes to report close: stop listening to it now.
        s.onclose = null;
        s.onmessage = null;
        s.close(4000, 'no pong');
        this.lost(1006, 'no pong');
        return;
      }
      this.raw({ type: 'ping' });
      this.schedulePing();
    }, this.o.pingIntervalMs);
  }

  private resume(sessionId: string): void {
    this.raw({ type: 'resume', sessionId, lastSeq: this.seqOf(sessionId) });
    this.armPageTimer(sessionId);
  }

  private armPageTimer(sessionId: string): void {
    this.o.clearTimer(this.pageTimers.get(sessionId));
    this.pageTimers.set(
      sessionId,
      this.o.setTimer(() => {
        this.pageTimers.delete(sessionId);
        if (this.lastSeq.has(sessionId)) this.resume(sessionId);
      }, this.o.pageTimeoutMs),
    );
  }

  private onFrame(f: ServerFrame): void {
    switch (f.type) {
      case 'welcome':
        this.attempt = 0;
        this.setState('open');
        for (const s of f.sessions) this.track(s.sessionId);
        this.emit('welcome', f);
        // Catch up on every followed session, then resend what was never acknowledged.
        for (const sessionId of this.lastSeq.keys()) this.resume(sessionId);
        for (const p of this.pending.values()) this.resend(p);
        this.schedulePing();
        break;
      case 'event':
        this.deliver(f.event);
        break;
      case 'events': {
        for (const e of f.events) this.deliver(e);
        if (f.more) {
          // The server sends the following pages itself; ask again only if they do not come.
          if (this.lastSeq.has(f.sessionId)) this.armPageTimer(f.sessionId);
        } else {
          this.o.clearTimer(this.pageTimers.get(f.sessionId));
          this.pageTimers.delete(f.sessionId);
          this.emit('synced', { sessionId: f.sessionId, lastSeq: this.seqOf(f.sessionId) });
        }
        break;
      }
      case 'ack':
        this.onAck(f.sessionId, f.seq);
        if (this.pending.delete(f.clientMsgId)) {
          const { sessionId, clientMsgId, seq, at, duplicate } = f;
          this.emit('ack', { sessionId, clientMsgId, seq, at, duplicate });
        }
        break;
      case 'session':
      case 'assigned':
      case 'invited':
        this.track(f.session.sessionId);
        break;
      case 'released':
        // Transferred to someone else: no resume of it after a reconnect.
        this.untrack(f.sessionId);
        break;
      case 'error':
        this.onError(f);
        break;
      default:
        break;
    }
    this.emit('frame', f);
  }

  private resend(p: PendingMessage): void {
    const f: ClientFrame = { type: 'send', sessionId: p.sessionId, clientMsgId: p.clientMsgId, text: p.text };
    if (p.attachment) {
      const { fileId, name, mime, size } = p.attachment;
      f.attachment = { fileId, name, mime, size };
    }
    this.raw(f);
  }

  private onError(f: ErrorFrame): void {
    const p = f.ref ? this.pending.get(f.ref) : undefined;
    if (!p) return;
    if (TRANSIENT_ERRORS.has(f.code)) {
      // Same clientMsgId: if the first try was stored after all, the server answers a duplicate ack.
      this.o.setTimer(() => {
        if (this.pending.has(p.clientMsgId)) this.resend(p);
      }, this.o.retryMs);
      return;
    }
    this.pending.delete(p.clientMsgId);
    this.emit('failed', { message: p, code: f.code, reason: f.message });
  }

  /**
   * The sender's own message comes back as an ack, not as an event. It advances the session's
   * position only when contiguous: an ack may overtake replayed events that must not be skipped.
   */
  private onAck(sessionId: string, seq: number): void {
    const last = this.lastSeq.get(sessionId);
    if (last === undefined || seq <= last) return;
    if (seq === last + 1) {
      this.lastSeq.set(sessionId, seq);
      this.drainAhead(sessionId);
      return;
    }
    let ahead = this.ackedAhead.get(sessionId);
    if (!ahead) {
      ahead = new Set();
      this.ackedAhead.set(sessionId, ahead);
    }
    ahead.add(seq);
  }

  private drainAhead(sessionId: string): void {
    const ahead = this.ackedAhead.get(sessionId);
    if (!ahead) return;
    let last = this.lastSeq.get(sessionId) ?? 0;
    while (ahead.delete(last + 1)) last++;
    for (const s of ahead) if (s <= last) ahead.delete(s);
    this.lastSeq.set(sessionId, last);
    if (ahead.size === 0) this.ackedAhead.delete(sessionId);
  }

  private deliver(e: SessionEvent): void {
    const last = this.lastSeq.get(e.sessionId) ?? 0;
    // Defensive: the server sends each seq once per socket, but a resume may overlap a live event.
    if (e.seq <= last) return;
    this.lastSeq.set(e.sessionId, e.seq);
    // An own message already reported by its ack is not reported again.
    const ownAcked = this.ackedAhead.get(e.sessionId)?.has(e.seq) === true;
    this.drainAhead(e.sessionId);
    if (!ownAcked) this.emit('event', e);
  }
}
