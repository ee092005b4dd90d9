import type Database from 'better-sqlite3';
import type { LoadedConfig } from './config/index.js';
import type { KubeApi } from './kube/types.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { defineToken } from './services.js';

/** Process-wide "cloud connected" state (beehive's cloudconnection package), set by edgeHub. */
export class CloudConnection {
  private state = false;
  private readonly listeners = new Set<(connected: boolean) => void>();

  get connected(): boolean {
    return this.state;
  }

  set(connected: boolean): void {
    if (connected === this.state) return;
    this.state = connected;
    for (const l of this.listeners) l(connected);
  }

  /** Listen for changes; returns the function that removes the listener. */
  onChange(listener: (connected: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** Services the kernel provides to every plugin. */
export const ConfigToken = defineToken<LoadedConfig>('kernel.config');
export const LoggerToken = defineToken<Logger>('kernel.logger');
export const MetricsToken = defineToken<Metrics>('kernel.metrics');
export const CloudConnectionToken = defineToken<CloudConnection>('kernel.cloudConnection');
/** The edge database at `database.dataSource`, opened on first use (one connection per process). */
export const DatabaseToken = defineToken<Database.Database>('kernel.database');
/**
 * cloudcore's Kubernetes client and shared informers (`kernel/kube/`), built on first use from
 * `kubeAPIConfig`; registered only when the loaded config is a cloudcore config.
 */
export const KubeToken = defineToken<KubeApi>('kernel.kube');
