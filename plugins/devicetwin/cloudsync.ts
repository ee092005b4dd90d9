/**
 * deviceTwin's cloud link (spec edge-modules §5.8): cloud-bound twin messages go to edgeHub (module
 * `websocket`) and are kept until the cloud confirms them (a `twin`-group message whose
 * parent_msg_id is their id), re-sent on a fixed period; the membership detail request on every
 * disconnected -> connected transition.
 */
import { randomUUID } from 'node:crypto';
import { errorText, newMessage, type Logger, type Message } from '../../kernel/index.js';
import { DeviceTwinModuleName, ResourceGroup } from '../../protocol/index.js';

/** Unconfirmed cloud messages kept at most (then the oldest is dropped, logged). */
export const CONFIRM_LIMIT = 10_000;

export interface CloudSyncOptions {
  node: string;
  log: Logger;
  retryMs: number;
  hasHub(): boolean;
  sendToHub(msg: Message): Promise<void>;
  limit?: number;
}

export class CloudSync {
  private connected = false;
  private readonly pending = new Map<string, Message>();
  private timer: NodeJS.Timeout | undefined;
  dropped = 0;

  constructor(private readonly opts: CloudSyncOptions) {}

  get unconfirmed(): number {
    return this.pending.size;
  }

  get isConnected(): boolean {
    return this.connected;
  }

  /**
   * Send a cloud-bound message and keep it until confirmed. KubeEdge drops these while the cloud
   * is disconnected; here they are kept (bounded) and sent on reconnection (README).
   */
  send(msg: Message): void {
    const limit = this.opts.limit ?? CONFIRM_LIMIT;
    if (this.pending.size >= limit) {
      const oldest = this.pending.keys().next().value as string;
      const m = this.pending.get(oldest);
      this.pending.delete(oldest);
      this.dropped++;
      this.opts.log.error(
        { resource: m?.route.resource, msgId: oldest, limit },
        `twin: ${limit} cloud messages unconfirmed; the oldest (${m?.route.resource}) is dropped`,
      );
    }
    this.pending.set(msg.header.msg_id, msg);
    if (this.connected) this.write(msg);
    this.arm();
  }

  confirm(parentId: string): void {
    // the timer stays armed (it disarms itself when it finds nothing pending): no timer churn when
    // every message is confirmed before the next is sent
    this.pending.delete(parentId);
  }

  setConnected(connected: boolean): void {
    if (connected === this.connected) return;
    this.connected = connected;
    if (!connected) return;
    this.send(
      newMessage(
        {
          source: DeviceTwinModuleName,
          group: ResourceGroup,
          operation: 'get',
          resource: 'membership/detail',
        },
        JSON.stringify({
          event_type: 'group_membership_event',
          event_id: randomUUID(),
          group_id: this.opts.node,
          operation: 'detail',
          timestamp: Date.now(),
        }),
      ),
    );
    for (const m of this.pending.values()) if (m.route.resource !== 'membership/detail') this.write(m);
  }

  /** Re-send everything unconfirmed (the 60 s retry). */
  resend(): void {
    if (this.pending.size === 0) return this.disarm();
    if (!this.connected) return;
    for (const m of this.pending.values()) this.write(m);
  }

  stop(): void {
    this.disarm();
  }

  private write(msg: Message): void {
    if (!this.opts.hasHub()) return; // kept in `pending` until edgeHub exists and confirms
    this.opts
      .sendToHub(msg)
      .catch((err: unknown) =>
        this.opts.log.warn(
          { resource: msg.route.resource, err: errorText(err) },
          `twin: cannot hand ${msg.route.resource} to edgehub; kept for retry`,
        ),
      );
  }

  private arm(): void {
    if (this.timer || this.pending.size === 0) return;
    this.timer = setInterval(() => this.resend(), this.opts.retryMs);
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
