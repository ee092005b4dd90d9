/**
 * deviceTwin's cloud link (spec edge-modules §5.8): cloud-bound twin messages go to edgeHub (module
 * `websocket`) and are kept until the cloud confirms them (a `twin`-group message whose
 * parent_msg_id is their id), re-sent on a fixed period; the membership detail request on every
 * disconnected -> connected transition.
 */
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import {
  decodeMessage,
  encodeMessage,
  errorText,
  newMessage,
  type Logger,
  type Message,
} from '../../kernel/index.js';
import { DeviceTwinModuleName, ResourceGroup } from '../../protocol/index.js';

/** Unconfirmed cloud messages kept at most (then the oldest is dropped, logged). */
export const CONFIRM_LIMIT = 10_000;
/** A re-send round hands edgeHub this many messages, then pauses (its mailbox holds 1024). */
export const RESEND_SLICE = 128;
export const RESEND_PAUSE_MS = 100;

export interface CloudSyncOptions {
  node: string;
  log: Logger;
  retryMs: number;
  hasHub(): boolean;
  sendToHub(msg: Message): Promise<void>;
  limit?: number;
  /** Pause between the slices of a re-send round (default RESEND_PAUSE_MS). */
  pauseMs?: number;
}

export class CloudSync {
  private connected = false;
  /**
   * Unconfirmed messages by id, kept as their wire JSON (flat text: a few hundred bytes each, where
   * the message object with its twin map and id strings takes several times that).
   */
  private readonly pending: LRUCache<string, string>;
  /** The last membership/detail request sent. */
  private detailId: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The next slice of the re-send round in progress. */
  private slice: NodeJS.Timeout | undefined;
  /** Totals. */
  dropped = 0;
  refused = 0;
  /** Since the last summary line (one per retry period at most). */
  private unreported = { dropped: 0, refused: 0 };

  constructor(private readonly opts: CloudSyncOptions) {
    // Unconfirmed messages by id, oldest first, kept as their wire JSON (flat text: a few hundred
    // bytes each, where the message object with its twin map and id strings takes several times
    // that). Beyond the limit the oldest is dropped (never read through `get`: the order stays the
    // order of sending).
    this.pending = new LRUCache({
      max: opts.limit ?? CONFIRM_LIMIT,
      dispose: (wire, id, reason) => {
        if (reason === 'evict') this.drop(id, wire);
      },
    });
  }

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
    this.pending.set(msg.header.msg_id, encodeMessage(msg));
    if (this.connected) this.write(msg);
    this.arm();
  }

  private drop(id: string, wire: string): void {
    this.dropped++;
    if (this.unreported.dropped++ > 0) return;
    const resource = decodeMessage(wire).route.resource;
    this.opts.log.error(
      { resource, msgId: id, limit: this.pending.max },
      `twin: ${this.pending.max} cloud messages unconfirmed; the oldest (${resource}) is dropped, and further drops are counted and reported once per re-send period`,
    );
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
    // the new membership/detail request supersedes an unconfirmed older one
    if (this.detailId) this.pending.delete(this.detailId);
    const backlog = [...this.pending.rkeys()];
    const detail = newMessage(
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
    );
    this.detailId = detail.header.msg_id;
    this.send(detail);
    this.round(backlog);
  }

  /** The retry period: report what was dropped or refused, re-send everything unconfirmed. */
  resend(): void {
    this.summary();
    if (this.pending.size === 0) return this.disarm();
    if (this.connected) this.round([...this.pending.rkeys()]);
  }

  stop(): void {
    this.disarm();
  }

  /**
   * Hand `ids` (those still unconfirmed) to edgeHub in slices of RESEND_SLICE with a pause between
   * them; a round still in progress is replaced.
   */
  private round(ids: string[]): void {
    if (this.slice) clearTimeout(this.slice);
    let i = 0;
    const step = (): void => {
      this.slice = undefined;
      if (!this.connected) return;
      for (let n = 0; n < RESEND_SLICE && i < ids.length; i++) {
        const m = this.pending.peek(ids[i] as string);
        if (m) {
          this.write(decodeMessage(m));
          n++;
        }
      }
      if (i < ids.length) {
        this.slice = setTimeout(step, this.opts.pauseMs ?? RESEND_PAUSE_MS);
        this.slice.unref();
      }
    };
    step();
  }

  private summary(): void {
    const { dropped, refused } = this.unreported;
    if (dropped === 0 && refused === 0) return;
    this.unreported = { dropped: 0, refused: 0 };
    this.opts.log.error(
      { dropped, refused, unconfirmed: this.pending.size, connected: this.connected },
      `twin: cloud messages in the last period: ${dropped} dropped (more than ${this.opts.limit ?? CONFIRM_LIMIT} unconfirmed), ${refused} refused by edgehub; ${this.pending.size} kept for the next re-send`,
    );
  }

  private write(msg: Message): void {
    if (!this.opts.hasHub()) return; // kept in `pending` until edgeHub exists and confirms
    this.opts.sendToHub(msg).catch((err: unknown) => {
      this.refused++;
      if (this.unreported.refused++ === 0)
        this.opts.log.warn(
          { resource: msg.route.resource, err: errorText(err) },
          `twin: cannot hand ${msg.route.resource} to edgehub (${errorText(err)}); kept for retry, further refusals are counted and reported once per re-send period`,
        );
    });
  }

  private arm(): void {
    if (this.timer || this.pending.size === 0) return;
    this.timer = setInterval(() => this.resend(), this.opts.retryMs);
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.slice) clearTimeout(this.slice);
    this.timer = undefined;
    this.slice = undefined;
  }
}
