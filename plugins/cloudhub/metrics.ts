/**
 * cloudHub's Prometheus metrics, registered in the kernel's registry (`ctx.metrics.registry`, served
 * on `/metrics`). A restarted plugin replaces the previous instance's metrics.
 */
import type { Metrics } from '../../kernel/index.js';

export type Direction = 'in' | 'out';

/** Why a connection, a frame or a message was refused. */
export type Refusal =
  | 'no-client-cert'
  | 'untrusted-cert'
  | 'tls'
  | 'no-node-id'
  | 'ext-key-usage'
  | 'node-isolation'
  | 'node-limit'
  | 'bad-frame';

export interface HubFigures {
  connectedNodes(): number;
  queueDepths(): Iterable<[string, number]>;
}

export interface HubMetrics {
  message(node: string, direction: Direction): void;
  ackRetry(node: string): void;
  refused(reason: Refusal): void;
  /** A message cloudHub could not hand on (upstream module not running, downstream not queueable). */
  undeliverable(target: string, reason: string): void;
  bootstrapFailure(reason: string): void;
}

export function hubMetrics(metrics: Metrics, figures: HubFigures): HubMetrics {
  metrics.replace(
    'kubeedge_cloudhub_connected_nodes',
    (prom, registry) =>
      new prom.Gauge({
        name: 'kubeedge_cloudhub_connected_nodes',
        help: 'Edge nodes connected to cloudHub',
        registers: [registry],
        collect() {
          this.set(figures.connectedNodes());
        },
      }),
  );
  metrics.replace(
    'kubeedge_cloudhub_queue_depth',
    (prom, registry) =>
      new prom.Gauge({
        name: 'kubeedge_cloudhub_queue_depth',
        help: 'ACK-mode messages waiting for a node (in flight included), connected or not',
        labelNames: ['node'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [node, depth] of figures.queueDepths()) this.set({ node }, depth);
        },
      }),
  );
  const messages = metrics.replace(
    'kubeedge_cloudhub_messages_total',
    (prom, registry) =>
      new prom.Counter({
        name: 'kubeedge_cloudhub_messages_total',
        help: 'Messages over the edge links by node and direction (in = from the edge)',
        labelNames: ['node', 'direction'],
        registers: [registry],
      }),
  );
  const retries = metrics.replace(
    'kubeedge_cloudhub_ack_retries_total',
    (prom, registry) =>
      new prom.Counter({
        name: 'kubeedge_cloudhub_ack_retries_total',
        help: 'Retransmissions of ACK-mode messages the edge had not acknowledged',
        labelNames: ['node'],
        registers: [registry],
      }),
  );
  const refusals = metrics.replace(
    'kubeedge_cloudhub_refusals_total',
    (prom, registry) =>
      new prom.Counter({
        name: 'kubeedge_cloudhub_refusals_total',
        help: 'Connections and frames refused, by reason',
        labelNames: ['reason'],
        registers: [registry],
      }),
  );
  const undeliverable = metrics.replace(
    'kubeedge_cloudhub_undeliverable_total',
    (prom, registry) =>
      new prom.Counter({
        name: 'kubeedge_cloudhub_undeliverable_total',
        help: 'Messages cloudHub could not hand on, by target and reason',
        labelNames: ['target', 'reason'],
        registers: [registry],
      }),
  );
  const bootstrap = metrics.replace(
    'kubeedge_cloudhub_bootstrap_failures_total',
    (prom, registry) =>
      new prom.Counter({
        name: 'kubeedge_cloudhub_bootstrap_failures_total',
        help: 'Certificate requests refused by the cert server, by reason',
        labelNames: ['reason'],
        registers: [registry],
      }),
  );
  return {
    message: (node, direction) => messages.inc({ node, direction }),
    ackRetry: (node) => retries.inc({ node }),
    refused: (reason) => refusals.inc({ reason }),
    undeliverable: (target, reason) => undeliverable.inc({ target, reason }),
    bootstrapFailure: (reason) => bootstrap.inc({ reason }),
  };
}
