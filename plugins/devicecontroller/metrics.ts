/** deviceController's Prometheus counter, in the kernel's registry (served on cloudcore's `/metrics`). */
import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';
import type { Metrics } from '../../kernel/index.js';

const NAME = 'kubeedge_devicecontroller_dropped_total';

export interface DeviceControllerMetrics {
  /** A message not handled (`upstream`: unsupported, malformed, not stored; `downstream`: refused by cloudHub). */
  dropped(direction: 'upstream' | 'downstream', reason: string): void;
}

export function deviceControllerMetrics(metrics: Metrics): DeviceControllerMetrics {
  const prom = createRequire(import.meta.url)('prom-client') as typeof Prom;
  const registry = metrics.registry;
  // a restarted plugin replaces the previous instance's counter
  if (registry.getSingleMetric(NAME) !== undefined) registry.removeSingleMetric(NAME);
  const counter = new prom.Counter({
    name: NAME,
    help: 'Messages deviceController did not handle, by direction and reason',
    labelNames: ['direction', 'reason'],
    registers: [registry],
  });
  return { dropped: (direction, reason) => counter.inc({ direction, reason }) };
}
