import type { Metric, Registry } from 'prom-client';
import type { MailboxStats } from './bus/mailbox.js';
import { requireCjs } from './cjs.js';

type PromClient = typeof import('prom-client');

/** Counters the kernel keeps for itself (not per module): `kubeedge_kernel_<name>_total`. */
const KERNEL_COUNTERS = {
  database_file_lost: 'Times the database file was found deleted or replaced while open',
  stray_replies: 'Replies nobody waited for (their request had timed out or was never made)',
} as const;
export type KernelCounter = keyof typeof KERNEL_COUNTERS;

/** Where the registry reads the per-module figures from when scraped. */
export interface ModuleFigures {
  module: string;
  stats: MailboxStats;
  depth(): number;
  restarts(): number;
  /** Whether the module is running (started and not failed, restarting or stopped). */
  running(): boolean;
}

/**
 * The metrics registry (prom-client, loaded on first use so an idle edgecore does not pay for it).
 * Per-module counters are plain numbers on the hot path, read by collect() at scrape time.
 */
export class Metrics {
  private prom: PromClient | undefined;
  private reg: Registry | undefined;
  private readonly sources: (() => ModuleFigures[])[] = [];
  private readonly kernelCounts = new Map<KernelCounter, number>();

  /** Count a kernel event. */
  inc(name: KernelCounter, by = 1): void {
    this.kernelCounts.set(name, (this.kernelCounts.get(name) ?? 0) + by);
  }

  /** The current value of a kernel counter. */
  count(name: KernelCounter): number {
    return this.kernelCounts.get(name) ?? 0;
  }

  /** Register a source of per-module figures (the kernel's plugin hosts). */
  addModuleSource(source: () => ModuleFigures[]): void {
    this.sources.push(source);
  }

  get registry(): Registry {
    if (!this.reg) this.init();
    return this.reg as Registry;
  }

  /**
   * A plugin's metric in this registry: `create` gets prom-client and the registry to build it in. A
   * metric of the same name (a restarted plugin's previous instance) is removed first.
   */
  replace<T extends Metric>(name: string, create: (prom: PromClient, registry: Registry) => T): T {
    const registry = this.registry;
    if (registry.getSingleMetric(name) !== undefined) registry.removeSingleMetric(name);
    return create(this.client(), registry);
  }

  /** Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of text(). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The same figures as plain objects (tests, logs). */
  snapshot(): Record<string, MailboxStats & { depth: number; restarts: number }> {
    const out: Record<string, MailboxStats & { depth: number; restarts: number }> = {};
    for (const f of this.figures()) out[f.module] = { ...f.stats, depth: f.depth(), restarts: f.restarts() };
    return out;
  }

  private figures(): ModuleFigures[] {
    return this.sources.flatMap((s) => s());
  }

  private client(): PromClient {
    if (!this.prom) this.prom = requireCjs('prom-client') as PromClient;
    return this.prom;
  }

  private init(): void {
    const prom = this.client();
    this.reg = new prom.Registry();
    const counters: [string, string, (f: ModuleFigures) => number][] = [
      [
        'kubeedge_module_messages_in_total',
        'Messages accepted into the module mailbox',
        (f) => f.stats.received,
      ],
      [
        'kubeedge_module_messages_delivered_total',
        'Messages handed to the module handler',
        (f) => f.stats.delivered,
      ],
      ['kubeedge_module_messages_out_total', 'Messages the module sent', (f) => f.stats.sent],
      [
        'kubeedge_module_messages_rejected_total',
        'Sends refused (queue full or module unavailable)',
        (f) => f.stats.rejected,
      ],
      ['kubeedge_module_handler_failures_total', 'Message handlers that threw', (f) => f.stats.failed],
      [
        'kubeedge_module_sync_timeouts_total',
        'Sync requests to the module that timed out',
        (f) => f.stats.syncTimeouts,
      ],
      ['kubeedge_module_restarts_total', 'Restarts of the module', (f) => f.restarts()],
    ];
    const figures = (): ModuleFigures[] => this.figures();
    for (const [name, help, read] of counters) {
      new prom.Counter({
        name,
        help,
        labelNames: ['module'],
        registers: [this.reg],
        collect() {
          this.reset();
          for (const f of figures()) this.inc({ module: f.module }, read(f));
        },
      });
    }
    new prom.Gauge({
      name: 'kubeedge_module_up',
      help: 'Whether the module is running (1) or not (0: starting, restarting, failed, stopped)',
      labelNames: ['module'],
      registers: [this.reg],
      collect() {
        this.reset();
        for (const f of figures()) this.set({ module: f.module }, f.running() ? 1 : 0);
      },
    });
    const counts = this.kernelCounts;
    for (const [name, help] of Object.entries(KERNEL_COUNTERS) as [KernelCounter, string][]) {
      new prom.Counter({
        name: `kubeedge_kernel_${name}_total`,
        help,
        registers: [this.reg],
        collect() {
          this.reset();
          this.inc(counts.get(name) ?? 0);
        },
      });
    }
    new prom.Gauge({
      name: 'kubeedge_module_queue_depth',
      help: 'Messages waiting in the module mailbox',
      labelNames: ['module'],
      registers: [this.reg],
      collect() {
        this.reset();
        for (const f of figures()) this.set({ module: f.module }, f.depth());
      },
    });
  }
}
