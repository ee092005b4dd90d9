import type { Message } from './message.js';

export type MessageHandler = (msg: Message) => void | Promise<void>;
export type HandlerErrorSink = (err: unknown, msg: Message) => void;
/** Runs delivery in the async context of the handler's owner (see plugin/attribution.ts). */
export type HandlerScope = (deliver: () => void) => void;

/** Counters of one mailbox; read by the metrics registry. */
export interface MailboxStats {
  /** messages accepted into the queue */
  received: number;
  /** messages handed to the module's handler */
  delivered: number;
  /** sends refused because the queue was full or the module unavailable */
  rejected: number;
  /** handler invocations that threw or rejected */
  failed: number;
  /** sync requests to this module that timed out */
  syncTimeouts: number;
  /** messages the module sent */
  sent: number;
  /** deepest the queue has been */
  highWater: number;
}

/**
 * A module's bounded queue (beehive's 1024-deep channel). Overflow policy: never silent and never
 * blocking; push() refuses the message and the bus rejects the sender's promise with
 * EBUS_QUEUE_FULL, counted in `rejected`. Messages stay queued while no handler is attached (a
 * plugin restarting, or a remote plugin whose process is down) up to the same bound.
 */
export class Mailbox {
  readonly stats: MailboxStats = {
    received: 0,
    delivered: 0,
    rejected: 0,
    failed: 0,
    syncTimeouts: 0,
    sent: 0,
    highWater: 0,
  };
  /** Set when the module is gone for good: sends are refused with this reason. */
  closedReason: string | undefined;

  private items: Message[] = [];
  private head = 0;
  private handler: MessageHandler | undefined;
  private onError: HandlerErrorSink = () => undefined;
  private concurrency = 1;
  private inFlight = 0;
  private scheduled = false;
  private runner: () => void = () => this.run();

  constructor(
    readonly name: string,
    readonly group: string,
    readonly capacity: number,
  ) {}

  get depth(): number {
    return this.items.length - this.head;
  }

  /** Enqueue; false when the queue is full (the caller reports it). */
  push(msg: Message): boolean {
    const depth = this.items.length - this.head;
    if (depth >= this.capacity) {
      this.stats.rejected++;
      return false;
    }
    this.items.push(msg);
    this.stats.received++;
    if (depth + 1 > this.stats.highWater) this.stats.highWater = depth + 1;
    if (this.handler !== undefined && !this.scheduled) this.schedule();
    return true;
  }

  /** Handlers called and not yet settled. */
  get busy(): number {
    return this.inFlight;
  }

  /**
   * Start delivering to `handler`, up to `concurrency` async handlers at once, each slice of
   * deliveries inside `scope` when given.
   */
  attach(handler: MessageHandler, onError: HandlerErrorSink, concurrency = 1, scope?: HandlerScope): void {
    this.handler = handler;
    this.onError = onError;
    this.concurrency = Math.max(1, concurrency);
    this.runner = scope ? () => scope(this.run) : this.run;
    if (this.depth > 0) this.schedule();
  }

  /** Stop delivering; queued messages stay for the next handler. */
  detach(): void {
    this.handler = undefined;
  }

  /**
   * Put messages that were handed to a handler but never handled (its process died) back at the
   * front of the queue, in their order. They were counted once already, so the bound is not checked.
   */
  requeueFront(msgs: Message[]): void {
    if (!msgs.length) return;
    this.items = [...msgs, ...this.items.slice(this.head)];
    this.head = 0;
    this.stats.delivered -= msgs.length;
  }

  /** Remove and return everything queued (used when a module is closed for good). */
  takeAll(): Message[] {
    const rest = this.items.slice(this.head);
    this.items = [];
    this.head = 0;
    return rest;
  }

  private schedule(): void {
    this.scheduled = true;
    queueMicrotask(this.runner);
  }

  private readonly run = (): void => {
    this.scheduled = false;
    // Deliver in bounded slices so a busy module cannot starve timers and I/O.
    let budget = 4096;
    while (this.handler !== undefined && this.inFlight < this.concurrency && this.head < this.items.length) {
      if (budget-- === 0) {
        this.scheduled = true;
        setImmediate(this.runner);
        return;
      }
      const msg = this.items[this.head] as Message;
      this.items[this.head++] = undefined as unknown as Message;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      this.stats.delivered++;
      let result: void | Promise<void>;
      try {
        result = this.handler(msg);
      } catch (err) {
        this.stats.failed++;
        this.onError(err, msg);
        continue;
      }
      if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
        this.inFlight++;
        (result as Promise<void>).then(
          () => {
            this.inFlight--;
            if (!this.scheduled && this.depth > 0) this.schedule();
          },
          (err: unknown) => {
            this.inFlight--;
            this.stats.failed++;
            this.onError(err, msg);
            if (!this.scheduled && this.depth > 0) this.schedule();
          },
        );
      }
    }
  };
}
