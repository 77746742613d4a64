/**
 * Where one socket stands in each session it follows, so that it gets every seq exactly once and
 * in order.
 *
 * Live events normally come in order, one seq after the other. In a cluster a live event can still
 * go missing: a link breaks, or a session moves while an event is on its way. A live event beyond
 * the next expected seq is therefore a gap. The gateway does not forward it; it subscribes again
 * from the last seq it forwarded, and the session replays what is missing. Replayed pages are
 * authoritative: they may legitimately skip seqs that the tenant's visible window no longer serves.
 *
 * The socket that sent a message gets an ack with its seq instead of the event. An ack that
 * overtakes events in front of it is remembered, and absorbed once those events arrive.
 */
export type LiveVerdict = 'forward' | 'seen' | 'gap' | 'unfollowed';

interface Cursor {
  last: number;
  /** Seqs acknowledged to this socket before the events in front of them arrived. */
  ahead: Set<number> | undefined;
}

export class Follows {
  private readonly m = new Map<string, Cursor>();

  has(sessionId: string): boolean {
    return this.m.has(sessionId);
  }

  /** The last seq this socket has (forwarded or acknowledged), contiguous. */
  last(sessionId: string): number | undefined {
    return this.m.get(sessionId)?.last;
  }

  sessions(): IterableIterator<string> {
    return this.m.keys();
  }

  /** Starts (or restarts, on a resume) following a session from `lastSeq`. */
  start(sessionId: string, lastSeq: number): void {
    const prior = this.m.get(sessionId);
    const ahead = prior?.ahead;
    if (ahead) for (const s of ahead) if (s <= lastSeq) ahead.delete(s);
    this.m.set(sessionId, { last: lastSeq, ahead: ahead?.size ? ahead : undefined });
  }

  delete(sessionId: string): void {
    this.m.delete(sessionId);
  }

  /** A live event: forward it, drop it (seen already or not followed), or fill the gap first. */
  live(sessionId: string, seq: number): LiveVerdict {
    const c = this.m.get(sessionId);
    if (!c) return 'unfollowed';
    if (seq <= c.last) return 'seen';
    if (seq > c.last + 1) return 'gap';
    this.advance(c, seq);
    return 'forward';
  }

  /** A replayed event: forwarded when it is past the cursor, even across a gap (see above). */
  replay(sessionId: string, seq: number): boolean {
    const c = this.m.get(sessionId);
    if (!c || seq <= c.last) return false;
    this.advance(c, seq);
    return true;
  }

  /** An own message acknowledged to this socket (it gets no event for it). */
  acked(sessionId: string, seq: number): void {
    const c = this.m.get(sessionId);
    if (!c || seq <= c.last) return;
    if (seq === c.last + 1) this.advance(c, seq);
    else (c.ahead ??= new Set()).add(seq);
  }

  private advance(c: Cursor, seq: number): void {
    c.last = seq;
    const ahead = c.ahead;
    if (!ahead) return;
    while (ahead.delete(c.last + 1)) c.last++;
    for (const s of ahead) if (s <= c.last) ahead.delete(s);
    if (ahead.size === 0) c.ahead = undefined;
  }
}
