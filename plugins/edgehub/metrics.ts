/**
 * edgeHub's Prometheus metrics, registered in the kernel's registry (`ctx.metrics.registry`, served
 * on edgecore's `/metrics`). A restarted plugin replaces the previous instance's metrics.
 */
import type * as Prom from 'prom-client';
import type { Metrics } from '../../kernel/index.js';

export type Direction = 'in' | 'out';

/** What the gauges read when scraped. */
export interface EdgeHubFigures {
  connected(): boolean;
  outboxDepth(): number;
}

export interface EdgeHubMetrics {
  /** A message from the cloud handed on (`in`), or one written to the cloud (`out`). */
  message(direction: Direction): void;
  /** A connection made after an earlier one ended or a dial failed. */
  reconnected(): void;
  /** A failed dial (TLS, upgrade refused, unreachable). */
  dialFailed(): void;
  /** A certificate bootstrap or rotation that failed, by its error code. */
  bootstrapFailure(reason: string): void;
}

export function edgeHubMetrics(metrics: Metrics, figures: EdgeHubFigures): EdgeHubMetrics {
  metrics.replace(
    'kubeedge_edgehub_connected',
    (prom, registry) =>
      new prom.Gauge({
        name: 'kubeedge_edgehub_connected',
        help: 'Whether the websocket to cloudHub is up (1) or not (0)',
        registers: [registry],
        collect() {
          this.set(figures.connected() ? 1 : 0);
        },
      }),
  );
  metrics.replace(
    'kubeedge_edgehub_outbox_depth',
    (prom, registry) =>
      new prom.Gauge({
        name: 'kubeedge_edgehub_outbox_depth',
        help: 'Messages for the cloud waiting in the outbox (offline, draining or over messageQPS)',
        registers: [registry],
        collect() {
          this.set(figures.outboxDepth());
        },
      }),
  );
  const counter = <L extends string>(name: string, help: string, labelNames: L[] = []): Prom.Counter<L> =>
    metrics.replace(
      name,
      (prom, registry) => new prom.Counter({ name, help, labelNames, registers: [registry] }),
    );
  const messages = counter(
    'kubeedge_edgehub_messages_total',
    'Messages over the cloud link by direction (in = from the cloud, out = to it), keepalives not counted',
    ['direction'],
  );
  for (const direction of ['in', 'out']) messages.inc({ direction }, 0);
  const reconnects = counter(
    'kubeedge_edgehub_reconnects_total',
    'Connections to cloudHub made after an earlier one ended or a dial failed',
  );
  const dialFailures = counter('kubeedge_edgehub_dial_failures_total', 'Dials of cloudHub that failed');
  const bootstrap = counter(
    'kubeedge_edgehub_bootstrap_failures_total',
    'Certificate bootstraps and rotations that failed, by error code',
    ['reason'],
  );
  return {
    message: (direction) => messages.inc({ direction }),
    reconnected: () => reconnects.inc(),
    dialFailed: () => dialFailures.inc(),
    bootstrapFailure: (reason) => bootstrap.inc({ reason }),
  };
}
