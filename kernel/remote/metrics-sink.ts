import type { Metric, MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import { KernelError, errorText } from '../errors.js';

type Snapshot = MetricObjectWithValues<MetricValue<string> & { metricName?: string }>[];

/**
 * The kernel end of the metrics sink: what plugin processes send of their registries (prom-client
 * JSON, every few seconds and when they stop) appears in the kernel's registry, each metric once
 * with a `module` label naming the process it came from. Metrics the kernel keeps itself (the
 * per-module counters) are counted kernel-side and are not taken from the processes.
 */
export class MetricsSink {
  private readonly latest = new Map<string, Snapshot>();
  private readonly names = new Set<string>();

  constructor(private readonly registry: () => Registry) {}

  /** Take a module's snapshot; registers the metrics the kernel has not seen yet. */
  update(module: string, json: string): void {
    let snapshot: Snapshot;
    try {
      snapshot = JSON.parse(json) as Snapshot;
      if (!Array.isArray(snapshot)) throw new Error('not an array');
    } catch (err) {
      throw new KernelError(
        'EREMOTE_PROTOCOL',
        `metrics of "${module}": not a prom-client JSON snapshot (${errorText(err)})`,
      );
    }
    this.latest.set(module, snapshot);
    const registry = this.registry();
    for (const m of snapshot) {
      if (this.names.has(m.name) || registry.getSingleMetric(m.name)) continue;
      this.names.add(m.name);
      const metric = {
        name: m.name,
        help: m.help,
        type: m.type,
        aggregator: m.aggregator,
        get: () => ({ ...m, values: this.values(m.name) }),
        reset: () => undefined,
      };
      registry.registerMetric(metric as unknown as Metric);
    }
  }

  private values(name: string): Snapshot[number]['values'] {
    const out: Snapshot[number]['values'] = [];
    for (const [module, snapshot] of this.latest) {
      for (const m of snapshot) {
        if (m.name !== name) continue;
        for (const v of m.values) out.push({ ...v, labels: { ...v.labels, module } });
      }
    }
    return out;
  }
}
