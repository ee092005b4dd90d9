import { KernelError } from '../errors.js';
import { Mailbox } from './mailbox.js';
import type { Message } from './message.js';

/** beehive's default for a sync request whose timeout is <= 0. */
export const DEFAULT_SYNC_TIMEOUT_MS = 30_000;

const RESOLVED: Promise<void> = Promise.resolve();

interface Waiter {
  resolve(replies: Message[]): void;
  reject(err: KernelError): void;
  timer: NodeJS.Timeout;
  expected: number;
  replies: Message[];
}

/** Observer for replies nobody waited for (beehive discards them with a warning). */
export type StrayReplyHook = (msg: Message) => void;

/**
 * Routing between mailboxes with beehive's semantics (spec edge-modules §2.6): send to a module,
 * send to a group, sync request answered by the reply whose parent_msg_id matches, response.
 * Unlike beehive, nothing is dropped silently: an unknown module or group, a full queue or a closed
 * module rejects the sender's promise with a coded KernelError.
 */
export class Bus {
  private readonly mailboxes = new Map<string, Mailbox>();
  private readonly groups = new Map<string, Mailbox[]>();
  private readonly waiters = new Map<string, Waiter>();
  strayReplies = 0;
  onStrayReply: StrayReplyHook = () => undefined;

  constructor(readonly defaultCapacity = 1024) {}

  /** Create the mailbox of a module (and its group membership). */
  addModule(name: string, group: string, capacity = this.defaultCapacity): Mailbox {
    if (this.mailboxes.has(name))
      throw new KernelError('EPLUGIN_DUPLICATE', `module "${name}" is already registered`);
    const box = new Mailbox(name, group, capacity);
    this.mailboxes.set(name, box);
    if (group) {
      const members = this.groups.get(group);
      if (members) members.push(box);
      else this.groups.set(group, [box]);
    }
    return box;
  }

  mailbox(name: string): Mailbox | undefined {
    return this.mailboxes.get(name);
  }

  modules(): Mailbox[] {
    return [...this.mailboxes.values()];
  }

  hasModule(name: string): boolean {
    return this.mailboxes.has(name);
  }

  /** Enqueue for one module; resolves once queued. */
  send(module: string, msg: Message): Promise<void> {
    const err = this.enqueue(module, msg);
    return err ? Promise.reject(err) : RESOLVED;
  }

  /** Enqueue for every member of a group; rejects naming the members that refused it. */
  sendToGroup(group: string, msg: Message): Promise<void> {
    const err = this.enqueueGroup(group, msg);
    return err ? Promise.reject(err) : RESOLVED;
  }

  /** Sync request to a module: resolves with the reply whose parent_msg_id is msg's id. */
  request(module: string, msg: Message, timeoutMs = DEFAULT_SYNC_TIMEOUT_MS): Promise<Message> {
    const box = this.mailboxes.get(module);
    if (!box) return Promise.reject(new KernelError('EBUS_NO_MODULE', `bad request module name "${module}"`));
    // one promise per request (no async wrapper): this is the hot path of eventBus -> deviceTwin
    return this.wait([box], msg, timeoutMs, `module "${module}"`, (replies) => replies[0] as Message);
  }

  /** Sync request to a group: one reply per member, or a timeout error. */
  requestGroup(group: string, msg: Message, timeoutMs = DEFAULT_SYNC_TIMEOUT_MS): Promise<Message[]> {
    const members = this.groups.get(group);
    if (!members) return Promise.reject(new KernelError('EBUS_NO_GROUP', `no module in group "${group}"`));
    return this.wait(members, msg, timeoutMs, `group "${group}"`, (replies) => replies);
  }

  /** Deliver a reply to the waiter of msg.parent_msg_id; false (and counted) when nobody waits. */
  respond(msg: Message): boolean {
    const id = msg.header.parent_msg_id;
    const waiter = id ? this.waiters.get(id) : undefined;
    if (!waiter || !id) {
      this.strayReplies++;
      this.onStrayReply(msg);
      return false;
    }
    waiter.replies.push(msg);
    if (waiter.replies.length >= waiter.expected) {
      this.waiters.delete(id);
      clearTimeout(waiter.timer);
      waiter.resolve(waiter.replies);
    }
    return true;
  }

  /** Reject every pending request (kernel shutdown). */
  close(): void {
    for (const [id, waiter] of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new KernelError('EBUS_CLOSED', `message ${id}: the kernel is shutting down`));
    }
    this.waiters.clear();
  }

  private wait<T>(
    boxes: Mailbox[],
    msg: Message,
    timeoutMs: number,
    what: string,
    result: (replies: Message[]) => T,
  ): Promise<T> {
    const id = msg.header.msg_id;
    const ms = timeoutMs > 0 ? timeoutMs : DEFAULT_SYNC_TIMEOUT_MS;
    msg.header.sync = true;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        for (const box of boxes) box.stats.syncTimeouts++;
        reject(
          new KernelError(
            'EBUS_TIMEOUT',
            `timeout to get response for message ${id} from ${what} after ${ms} ms`,
          ),
        );
      }, ms);
      this.waiters.set(id, {
        resolve: (replies) => resolve(result(replies)),
        reject,
        timer,
        expected: boxes.length,
        replies: [],
      });
      for (const box of boxes) {
        const err = this.pushTo(box, msg);
        if (err) {
          clearTimeout(timer);
          this.waiters.delete(id);
          reject(err);
          return;
        }
      }
    });
  }

  /** send() without the promise: the error, or undefined once queued (the out-of-process hot path). */
  enqueue(module: string, msg: Message): KernelError | undefined {
    const box = this.mailboxes.get(module);
    if (!box)
      return new KernelError('EBUS_NO_MODULE', `bad module name "${module}": no such module is running`);
    return this.pushTo(box, msg);
  }

  /** sendToGroup() without the promise. */
  enqueueGroup(group: string, msg: Message): KernelError | undefined {
    const members = this.groups.get(group);
    if (!members) return new KernelError('EBUS_NO_GROUP', `no module in group "${group}"`);
    const refused: string[] = [];
    for (const box of members) {
      const err = this.pushTo(box, msg);
      if (err) refused.push(`${box.name} (${err.message})`);
    }
    if (refused.length === 0) return undefined;
    return new KernelError('EBUS_QUEUE_FULL', `group "${group}": not delivered to ${refused.join(', ')}`);
  }

  private pushTo(box: Mailbox, msg: Message): KernelError | undefined {
    if (box.closedReason !== undefined) {
      box.stats.rejected++;
      return new KernelError(
        'EPLUGIN_UNAVAILABLE',
        `module "${box.name}" is unavailable: ${box.closedReason}`,
      );
    }
    if (box.push(msg)) return undefined;
    return new KernelError(
      'EBUS_QUEUE_FULL',
      `module "${box.name}" queue is full (${box.capacity} messages); message ${msg.header.msg_id} refused`,
    );
  }
}
