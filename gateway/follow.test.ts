import { describe, expect, it } from 'vitest';
import { Follows } from './follow.ts';

describe('Follows: one socket’s place in the sessions it follows', () => {
  it('forwards live events in order, each seq once; ignores sessions it does not follow', () => {
    const f = new Follows();
    f.start('s', 0);
    expect([1, 2, 2, 1, 3].map((q) => f.live('s', q))).toEqual([
      'forward',
      'forward',
      'seen',
      'seen',
      'forward',
    ]);
    expect(f.last('s')).toBe(3);
    expect(f.live('other', 1)).toBe('unfollowed');
  });

  it('reports a live event past a missing seq as a gap and does not move past the hole', () => {
    const f = new Follows();
    f.start('s', 4);
    expect(f.live('s', 6)).toBe('gap');
    expect(f.last('s')).toBe(4);
    // The replay that fills it: 5 and 6 go out, then the live stream goes on after them.
    expect([5, 6].map((q) => f.replay('s', q))).toEqual([true, true]);
    expect(f.live('s', 6)).toBe('seen');
    expect(f.live('s', 7)).toBe('forward');
  });

  it('lets replays skip seqs (the visible window may start later) but never repeat one', () => {
    const f = new Follows();
    f.start('s', 0);
    expect(f.replay('s', 40)).toBe(true);
    expect(f.replay('s', 40)).toBe(false);
    expect(f.replay('s', 12)).toBe(false);
    expect(f.live('s', 41)).toBe('forward');
  });

  it('counts an own acknowledged message as seen, also when the ack overtakes earlier events', () => {
    const f = new Follows();
    f.start('s', 2);
    f.acked('s', 3);
    expect(f.last('s')).toBe(3);
    // The ack of 6 arrives before the events 4 and 5 (another participant's messages).
    f.acked('s', 6);
    expect(f.last('s')).toBe(3);
    expect(f.live('s', 4)).toBe('forward');
    expect(f.live('s', 5)).toBe('forward');
    expect(f.last('s')).toBe(6);
    expect(f.live('s', 7)).toBe('forward');
  });

  it('a replay past acknowledged seqs forgets them; a restart keeps only those still ahead', () => {
    const f = new Follows();
    f.start('s', 0);
    f.acked('s', 3);
    f.acked('s', 9);
    expect(f.replay('s', 5)).toBe(true);
    expect(f.last('s')).toBe(5);
    f.start('s', 7);
    expect(f.live('s', 8)).toBe('forward');
    expect(f.last('s')).toBe(9);
  });

  it('a deleted session is not followed any more', () => {
    const f = new Follows();
    f.start('s', 0);
    f.delete('s');
    expect(f.has('s')).toBe(false);
    expect(f.live('s', 1)).toBe('unfollowed');
    expect([...f.sessions()]).toEqual([]);
  });
});
