/**
 * Crash back-off of containers, kept as kubelet keeps it (client-go `flowcontrol.Backoff` used by
 * kuberuntime's `doBackOff`, 10 s doubling to 300 s), keyed by container name:
 * - a restart is refused while `now - finishedAt` is under the current delay;
 * - each allowed restart doubles the delay and stamps the entry with the time of the restart;
 * - an entry whose stamp is more than twice the maximum (10 min) before the event looked at is
 *   stale: a container that ran that long since its last restart (or a back-off not renewed that
 *   long) starts again from the initial 10 s.
 */
export const BACKOFF_INITIAL_MS = 10_000;
export const BACKOFF_MAX_MS = 300_000;

interface Entry {
  delayMs: number;
  /** When the entry was last renewed (the last restart), ms since the epoch. */
  lastUpdate: number;
}

export class CrashBackoff {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly initialMs = BACKOFF_INITIAL_MS,
    private readonly maxMs = BACKOFF_MAX_MS,
  ) {}

  private expired(e: Entry, at: number): boolean {
    return at - e.lastUpdate > 2 * this.maxMs;
  }

  /** How long (ms) `key`, which finished at `finishedAt`, must still wait; 0 = it may restart. */
  remaining(key: string, finishedAt: number, now = Date.now()): number {
    const e = this.entries.get(key);
    if (!e || this.expired(e, now)) return 0;
    return Math.max(0, finishedAt + e.delayMs - now);
  }

  /** The current delay of `key` (0 when it has none). */
  delay(key: string): number {
    return this.entries.get(key)?.delayMs ?? 0;
  }

  /**
   * `key` is restarted now after finishing at `eventTime`: the delay doubles, or starts at the
   * initial one when there is none or it went stale before `eventTime` (a healthy run).
   */
  next(key: string, eventTime: number, now = Date.now()): void {
    const e = this.entries.get(key);
    const fresh = !e || this.expired(e, eventTime);
    this.entries.set(key, {
      delayMs: fresh ? this.initialMs : Math.min(e.delayMs * 2, this.maxMs),
      lastUpdate: now,
    });
  }

  /** A start that failed before running: begin a back-off if `key` has none in force. */
  ensure(key: string, now = Date.now()): void {
    const e = this.entries.get(key);
    if (!e || this.expired(e, now)) this.entries.set(key, { delayMs: this.initialMs, lastUpdate: now });
  }
}
