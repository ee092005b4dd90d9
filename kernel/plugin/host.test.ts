import { describe, expect, it } from 'vitest';
import { RestartBudget } from './host.js';

describe('restart budget per window', () => {
  const policy = { maxRestarts: 3, windowMs: 600_000, initialBackoffMs: 1000, maxBackoffMs: 3000 };

  it('allows maxRestarts within the window with doubling back-off, then gives up', () => {
    const b = new RestartBudget(policy);
    expect([b.next(0), b.next(10), b.next(20), b.next(30)]).toEqual([1000, 2000, 3000, undefined]);
  });

  it('forgets restarts older than the window: a plugin failing now and then is restarted for ever', () => {
    const b = new RestartBudget(policy);
    expect([b.next(0), b.next(1), b.next(2)]).toEqual([1000, 2000, 3000]);
    // 10 minutes after the first: that one no longer counts.
    expect(b.next(600_000)).toBe(3000);
    expect(b.next(600_000)).toBeUndefined();
    // All of them out of the window: the back-off starts over.
    expect(b.next(1_300_000)).toBe(1000);
  });

  it('maxRestarts 0 never restarts', () => {
    expect(new RestartBudget({ ...policy, maxRestarts: 0 }).next(0)).toBeUndefined();
  });
});
