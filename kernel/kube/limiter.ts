/**
 * The client-side limits of the cloud's Kubernetes client: client-go's token bucket (`qps` tokens
 * a second, at most `burst` at once) and its retry rule for answers that say "try again".
 */

/** client-go's defaults when `qps`/`burst` are 0 (rest.DefaultQPS, rest.DefaultBurst). */
export const DEFAULT_QPS = 5;
export const DEFAULT_BURST = 10;
/** client-go's `maxRetries` for a request answered 429 or a transient 5xx. */
export const MAX_RETRIES = 10;
const MAX_RETRY_WAIT_MS = 30_000;

/** A token bucket: `take()` resolves when a token is free, in the order of the calls. */
export class TokenBucket {
  readonly qps: number;
  readonly burst: number;
  private tokens: number;
  private last = Date.now();
  private tail: Promise<void> = Promise.resolve();

  constructor(qps: number, burst: number) {
    this.qps = qps > 0 ? qps : DEFAULT_QPS;
    this.burst = burst > 0 ? burst : Math.max(DEFAULT_BURST, Math.ceil(this.qps));
    this.tokens = this.burst;
  }

  /**
   * Wait for a token (callers are served first come, first served). A caller whose `signal`
   * aborted before its turn takes no token (its turn resolves at once).
   */
  take(signal?: AbortSignal): Promise<void> {
    const turn = this.tail.then(() => (signal?.aborted ? undefined : this.waitForToken()));
    this.tail = turn;
    return turn;
  }

  private async waitForToken(): Promise<void> {
    for (;;) {
      const now = Date.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.qps) / 1000);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await sleep(Math.ceil(((1 - this.tokens) * 1000) / this.qps));
    }
  }
}

/**
 * At most `max` requests open at once, the others waiting in call order. client-go gets this bound
 * from HTTP/2 (one connection, the server's stream limit); over HTTP/1.1 without it every request
 * beyond the open ones would open one more TLS connection, and a burst of thousands (cloudHub's
 * ObjectSync writes for 5,000 pods) cost cloudcore hundreds of MB and drew 429s from kube-apiserver.
 */
export class InFlightLimit {
  private open = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {}

  /**
   * Run `work` in a free slot. A caller whose `signal` aborts before it gets one leaves the line:
   * `abandoned()` is thrown and `work` never runs.
   */
  async run<R>(
    work: () => Promise<R>,
    signal?: AbortSignal,
    abandoned = (): Error => new Error('abandoned'),
  ): Promise<R> {
    if (signal?.aborted) throw abandoned();
    if (this.open < this.max) this.open++;
    else {
      await new Promise<void>((resolve, reject) => {
        const turn = (): void => {
          signal?.removeEventListener('abort', leave);
          resolve();
        };
        const leave = (): void => {
          this.waiting.splice(this.waiting.indexOf(turn), 1);
          reject(abandoned());
        };
        this.waiting.push(turn);
        signal?.addEventListener('abort', leave, { once: true });
      });
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next === undefined) this.open--;
      else next(); // the slot passes on
    }
  }
}

/**
 * How long to wait before sending a request again, or undefined when its answer is final: 429 Too
 * Many Requests, and 502/503/504 (the apiserver or a proxy in front of it unavailable for a
 * moment), at most {@link MAX_RETRIES} times; `Retry-After` (seconds) when the server gives it,
 * else 1 s doubling, at most 30 s.
 */
export function retryDelay(
  status: number,
  retryAfter: string | undefined,
  attempt: number,
): number | undefined {
  if (attempt >= MAX_RETRIES) return undefined;
  if (status !== 429 && status !== 502 && status !== 503 && status !== 504) return undefined;
  const seconds = retryAfter === undefined ? NaN : Number(retryAfter);
  if (Number.isInteger(seconds) && seconds >= 0) return Math.min(seconds * 1000, MAX_RETRY_WAIT_MS);
  return Math.min(1000 * 2 ** attempt, MAX_RETRY_WAIT_MS);
}

/** A timer as a promise; `signal` ends the wait early (resolving). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
