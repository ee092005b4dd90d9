/**
 * The node sessions and the two dispatchers of cloudHub (KubeEdge's SessionManager and
 * MessageDispatcher): upstream per §5.0.1, downstream by the node named in the resource, ACK-mode
 * messages through each node's {@link NodeQueue} (kept while the node is offline).
 */
import type { WebSocket } from 'ws';
import {
  errorText,
  isKernelError,
  newErrorMessage,
  newMessage,
  newResponse,
  type Logger,
  type Message,
  type PluginContext,
} from '../../kernel/index.js';
import { CloudHubModuleName, ResourceGroup } from '../../protocol/index.js';
import { KubeCaResource, classifyUpstream, needsAck, nodeOf } from './dispatch.js';
import type { HubMetrics } from './metrics.js';
import { MemoryAckStore, NodeQueue, type AckStore } from './queue.js';
import { Session, type SessionEvents } from './session.js';

/** ACK-mode objects kept per node (connected or not) before the oldest waiting one is dropped. */
export const DEFAULT_QUEUE_LIMIT = 10_000;

export type HubPort = Pick<PluginContext, 'send' | 'sendToGroup' | 'respond'>;

export interface HubOptions {
  port: HubPort;
  log: Logger;
  /** cloudHub.keepaliveInterval, in ms. */
  keepaliveMs: number;
  nodeLimit: number;
  queueLimit?: number;
  acks?: AckStore;
  /** PEM of the Kubernetes API's CA (`k8s/ca.crt`, §5.9). */
  kubeCa(): Promise<string>;
  metrics: HubMetrics;
}

export class Hub implements SessionEvents {
  private readonly sessions = new Map<string, Session>();
  private readonly queues = new Map<string, NodeQueue>();
  private readonly acks: AckStore;
  private readonly log: Logger;

  constructor(private readonly opts: HubOptions) {
    this.acks = opts.acks ?? new MemoryAckStore();
    this.log = opts.log;
    // what a node got through another cloudcore leaves this cloudcore's queue for it
    this.acks.watch((node, uid) => this.queues.get(node)?.prune(uid));
  }

  get connectedNodes(): number {
    return this.sessions.size;
  }

  /** Every node with a queue, and every connected node (0 when it has none). */
  *queueDepths(): Iterable<[string, number]> {
    for (const [node, q] of this.queues) yield [node, q.depth];
    for (const node of this.sessions.keys()) if (!this.queues.has(node)) yield [node, 0];
  }

  /** nodeLimit: a new node beyond it is refused; a node already connected may replace itself. */
  admit(node: string): string | undefined {
    if (this.sessions.has(node) || this.sessions.size < this.opts.nodeLimit) return undefined;
    return `node ${node} refused: cloudHub.nodeLimit (${this.opts.nodeLimit}) nodes are connected`;
  }

  private queue(node: string): NodeQueue {
    let q = this.queues.get(node);
    if (q === undefined) {
      q = new NodeQueue(node, this.acks, this.opts.queueLimit ?? DEFAULT_QUEUE_LIMIT);
      this.queues.set(node, q);
    }
    return q;
  }

  /** A websocket passed the checks: it becomes the node's session, replacing any previous one. */
  connect(node: string, ws: WebSocket, projectId?: string): void {
    const old = this.sessions.get(node);
    if (old !== undefined) {
      this.sessions.delete(node);
      old.close('replaced by a new connection of the same node');
    }
    const session = new Session(node, ws, () => this.queues.get(node), this.opts.keepaliveMs, this.log, this);
    this.sessions.set(node, session);
    this.log.info({ node, project_id: projectId, nodes: this.sessions.size }, 'edge node connected');
    session.pump();
  }

  /** Close every session (cloudHub stops); the queues keep their messages. */
  stop(): void {
    for (const s of [...this.sessions.values()]) s.close('cloudcore is stopping', 1001);
    for (const q of this.queues.values()) q.close();
  }

  // ---- SessionEvents

  upstream(session: Session, msg: Message): void {
    this.opts.metrics.message(session.node, 'in');
    void this.dispatchUpstream(session, msg);
  }

  badFrame(session: Session, err: unknown): void {
    this.opts.metrics.refused('bad-frame');
    this.log.warn(
      { node: session.node, error: errorText(err) },
      'frame from the edge dropped: not a message',
    );
  }

  written(session: Session): void {
    this.opts.metrics.message(session.node, 'out');
  }

  retransmitted(session: Session): void {
    this.opts.metrics.ackRetry(session.node);
  }

  requeued(node: string): void {
    this.sessions.get(node)?.pump();
  }

  closed(session: Session, reason: string): void {
    if (this.sessions.get(session.node) === session) this.sessions.delete(session.node);
    this.log.info({ node: session.node, reason, nodes: this.sessions.size }, 'edge node disconnected');
  }

  // ---- upstream (§5.0.1)

  private async dispatchUpstream(session: Session, msg: Message): Promise<void> {
    const { node } = session;
    const action = classifyUpstream(msg, node);
    switch (action.kind) {
      case 'control':
        session.send(newResponse(msg, 'ack'));
        return;
      case 'keepalive':
        session.keepalive();
        return;
      case 'volume':
        this.opts.port.respond(msg);
        return;
      case 'ack':
        session.ack(action.parentId);
        return;
      case 'error':
        this.log.warn(
          {
            node,
            parent_msg_id: msg.header.parent_msg_id,
            resource: msg.route.resource,
            content: msg.content,
          },
          'the edge reports an error',
        );
        return;
      case 'kubeCa':
        await this.answerKubeCa(session, msg);
        return;
      case 'drop':
        this.opts.metrics.undeliverable('', 'cloud-source');
        this.log.warn(
          { node, resource: msg.route.resource, reason: action.reason },
          'upstream message dropped',
        );
        return;
      case 'group':
        await this.handOn(node, action.group, msg, () => this.opts.port.sendToGroup(action.group, msg));
        return;
      case 'module': {
        const forwarded: Message = { ...msg, route: { ...msg.route, resource: action.resource } };
        await this.handOn(node, action.module, forwarded, () =>
          this.opts.port.send(action.module, forwarded),
        );
        return;
      }
    }
  }

  private async handOn(node: string, target: string, msg: Message, send: () => Promise<void>): Promise<void> {
    try {
      await send();
    } catch (err) {
      const reason = isKernelError(err) ? err.code : 'error';
      this.opts.metrics.undeliverable(target, reason);
      // constant text: the logger folds a flood of these into one line with a count
      this.log.warn(
        { node, target, reason, resource: msg.route.resource, error: errorText(err) },
        'upstream message not delivered: its cloud module is not running',
      );
    }
  }

  private async answerKubeCa(session: Session, msg: Message): Promise<void> {
    let reply: Message;
    try {
      const ca = await this.opts.kubeCa();
      reply = newMessage(
        { source: CloudHubModuleName, group: ResourceGroup, operation: 'response', resource: KubeCaResource },
        ca,
        { parentId: msg.header.msg_id },
      );
    } catch (err) {
      this.log.warn({ node: session.node, error: errorText(err) }, 'cannot answer k8s/ca.crt');
      reply = newErrorMessage(msg, `cannot read the Kubernetes CA: ${errorText(err)}`, {
        source: CloudHubModuleName,
        group: ResourceGroup,
      });
    }
    session.send(reply);
  }

  // ---- downstream

  /** A message sent to the cloudhub module: for the node its resource names. */
  downstream(msg: Message): void {
    const node = nodeOf(msg.route.resource ?? '');
    if (node === undefined) {
      this.opts.metrics.undeliverable('', 'no-node');
      this.log.warn(
        { resource: msg.route.resource, source: msg.route.source },
        'downstream message dropped: its resource names no node (node/<id>/...)',
      );
      return;
    }
    const session = this.sessions.get(node);
    if (!needsAck(msg)) {
      // a sync request (the router's) is answered: written to the node's connection, or not
      const answer = msg.header.sync === true;
      if (session !== undefined) {
        session.send(msg);
        if (answer) this.opts.port.respond(newResponse(msg, 'OK'));
      } else {
        this.opts.metrics.undeliverable(node, 'offline');
        this.log.info(
          { node, resource: msg.route.resource, operation: msg.route.operation },
          'downstream message without ACK dropped: the node is not connected',
        );
        if (answer)
          this.opts.port.respond(
            newErrorMessage(msg, `node ${node} is not connected to this cloudcore`, {
              source: CloudHubModuleName,
              group: msg.route.group ?? '',
            }),
          );
      }
      return;
    }
    const queue = this.queue(node);
    const admitted = queue.admit(msg);
    if (!admitted.queued) {
      if (admitted.reason !== 'not-newer') {
        this.opts.metrics.undeliverable(node, admitted.reason);
        this.log.warn(
          { node, resource: msg.route.resource, reason: admitted.reason },
          'ACK-mode message dropped: it cannot be queued',
        );
      }
      return;
    }
    if (admitted.evicted !== undefined) {
      this.opts.metrics.undeliverable(node, 'queue-full');
      this.log.warn(
        { node, resource: admitted.evicted.route.resource, limit: queue.limit },
        'node queue full: its oldest waiting message was dropped',
      );
    }
    session?.pump();
  }
}
