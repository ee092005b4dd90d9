import { describe, expect, it } from 'vitest';
import { BACKOFF_INITIAL_MS, BACKOFF_MAX_MS, CrashBackoff } from './backoff.js';

const S = 1000;

describe('edged crash back-off (kubelet flowcontrol.Backoff rules)', () => {
  it('doubles from 10 s to 300 s and refuses a restart inside the delay', () => {
    const b = new CrashBackoff();
    let now = 1_000_000 * S;
    expect(b.remaining('c', now, now)).toBe(0); // first crash: restart at once
    b.next('c', now, now);
    expect(b.delay('c')).toBe(BACKOFF_INITIAL_MS);
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const finished = now + 1 * S; // crashed one second after the restart
      now = finished + 1 * S;
      expect(b.remaining('c', finished, now)).toBe(b.delay('c') - 1 * S);
      now = finished + b.delay('c');
      expect(b.remaining('c', finished, now)).toBe(0);
      b.next('c', finished, now);
      delays.push(b.delay('c') / S);
    }
    expect(delays).toEqual([20, 40, 80, 160, 300, 300, 300, 300]);
  });

  it('starts again at 10 s once the container ran longer than twice the maximum', () => {
    const b = new CrashBackoff();
    let now = 5_000_000 * S;
    for (let i = 0; i < 6; i++) b.next('c', now, now);
    expect(b.delay('c')).toBe(BACKOFF_MAX_MS);
    // ran 10 min + 1 s after its last restart, then crashed
    const finished = now + 2 * BACKOFF_MAX_MS + 1 * S;
    now = finished + 1;
    expect(b.remaining('c', finished, now)).toBe(0);
    b.next('c', finished, now);
    expect(b.delay('c')).toBe(BACKOFF_INITIAL_MS);
  });

  it('keeps the back-off for a container that ran exactly twice the maximum', () => {
    const b = new CrashBackoff();
    const t0 = 9_000_000 * S;
    b.next('c', t0, t0);
    b.next('c', t0, t0);
    const finished = t0 + 2 * BACKOFF_MAX_MS;
    b.next('c', finished, finished);
    expect(b.delay('c')).toBe(40 * S);
  });

  it('ensure() starts a back-off for a failed start and leaves one in force alone', () => {
    const b = new CrashBackoff();
    const now = 7_000_000 * S;
    b.ensure('c', now);
    expect(b.delay('c')).toBe(BACKOFF_INITIAL_MS);
    b.next('c', now, now);
    b.ensure('c', now);
    expect(b.delay('c')).toBe(20 * S);
    expect(b.delay('other')).toBe(0);
  });
});
