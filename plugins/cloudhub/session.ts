/**
 * One connected edge node (KubeEdge's NodeSession, wire-cloud-edge §3.6, §3.9, §6.2): reads frames,
 * keeps the keepalive timer, writes no-ACK messages at once and ACK-mode messages one at a time from
 * the node's {@link NodeQueue} (made by the hub when the first one is queued: most links carry
 * none), each retransmitted every 5 s until the edge acknowledges it.
 */
import type { WebSocket } from 'ws';
import { decodeMessage, encodeMessage, errorText, type Logger, type Message } from '../../kernel/index.js';
import { toEdge } from './dispatch.js';
import { RETRANSMISSIONS, RETRANSMIT_INTERVAL_MS, type NodeQueue } from './queue.js';

export interface SessionEvents {
  /** A decoded upstream message. */
  upstream(session: Session, msg: Message): void;
  /** A frame that is not a message (dropped; the connection stays). */
  badFrame(session: Session, err: unknown): void;
  /** A message was written to the edge. */
  written(session: Session, msg: Message): void;
  /** An ACK-mode message was written again. */
  retransmitted(session: Session, msg: Message): void;
  /** A message that waited for its back-off is queued again (the node's session, if any, sends it). */
  requeued(node: string): void;
  /** The session ended (socket closed, keepalive expired, replaced, write failed, stopped). */
  closed(session: Session, reason: string): void;
}

export class Session {
  private readonly keepaliveTimer: NodeJS.Timeout;
  private retransmitTimer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(
    readonly node: string,
    private readonly ws: WebSocket,
    /** The node's queue, if one was made. */
    private readonly queueOf: () => NodeQueue | undefined,
    private readonly keepaliveMs: number,
    private readonly log: Logger,
    private readonly events: SessionEvents,
  ) {
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data as ArrayBuffer).toString('utf8');
      let msg: Message;
      try {
        msg = decodeMessage(text);
      } catch (err) {
        this.events.badFrame(this, err);
        return;
      }
      this.events.upstream(this, msg);
    });
    ws.on('close', (code: number) => this.end(`connection closed by the edge (code ${code})`));
    ws.on('error', (err: Error) => this.end(`connection error: ${errorText(err)}`));
    this.keepaliveTimer = setTimeout(
      () => this.close(`no keepalive for ${this.keepaliveMs / 1000} s`),
      this.keepaliveMs,
    );
  }

  get open(): boolean {
    return !this.ended;
  }

  /** An upstream keepalive: the node has `keepaliveInterval` again (§3.6). */
  keepalive(): void {
    if (!this.ended) this.keepaliveTimer.refresh();
  }

  /** Write a no-ACK message once. */
  send(msg: Message): void {
    this.write(msg);
  }

  /** Send the next ACK-mode message of the queue if none is in flight. */
  pump(): void {
    if (this.ended) return;
    const queue = this.queueOf();
    const msg = queue?.take();
    if (queue === undefined || msg === undefined) return;
    let sent = 1;
    this.write(msg);
    this.retransmitTimer = setInterval(() => {
      if (sent < RETRANSMISSIONS) {
        sent++;
        this.events.retransmitted(this, msg);
        this.write(msg);
        return;
      }
      this.stopRetransmit();
      const delay = queue.park(() => this.events.requeued(this.node));
      this.log.warn(
        { node: this.node, msg_id: msg.header.msg_id, resource: msg.route.resource, retryInMs: delay },
        `message not acknowledged after ${RETRANSMISSIONS} transmissions: queued again`,
      );
      this.pump();
    }, RETRANSMIT_INTERVAL_MS);
    this.retransmitTimer.unref();
  }

  /** An upstream `response`: completes the message in flight if it is the one acknowledged. */
  ack(parentId: string): boolean {
    if (this.queueOf()?.ack(parentId) === undefined) return false;
    this.stopRetransmit();
    this.pump();
    return true;
  }

  /** End the session and close its socket. */
  close(reason: string, code = 1000): void {
    if (this.ended) return;
    this.ws.close(code, reason.slice(0, 120));
    // a peer that does not answer the close frame is cut after a grace period
    setTimeout(() => this.ws.terminate(), 2000).unref();
    this.end(reason);
  }

  private write(msg: Message): void {
    if (this.ended) return;
    // Go's WriteJSON appends a newline
    this.ws.send(`${encodeMessage(toEdge(msg))}\n`, (err) => {
      if (err) this.close(`write failed: ${errorText(err)}`, 1011);
    });
    this.events.written(this, msg);
  }

  private stopRetransmit(): void {
    clearInterval(this.retransmitTimer);
    this.retransmitTimer = undefined;
  }

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.keepaliveTimer);
    this.stopRetransmit();
    this.queueOf()?.release();
    this.events.closed(this, reason);
  }
}
