import type { CloudCoreConfig, LoadedConfig } from './config/index.js';
import { databaseSource, openDatabase } from './db.js';
import type { KernelError } from './errors.js';
import { createKubeApi, type KubeApi } from './kube/index.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { ServiceRegistry, Services } from './services.js';
import {
  type CloudConnection,
  CloudConnectionToken,
  ConfigToken,
  DatabaseToken,
  KubeToken,
  LoggerToken,
  MetricsToken,
} from './tokens.js';

/**
 * Register the services the kernel gives every plugin, in the kernel's process and in a plugin
 * process alike. Returns the function that releases them (closes the database if it was opened).
 * In a plugin process the database is the same SQLite file, opened there (WAL lets processes share
 * it), and the cloud-connection flag is kept in step with the kernel's by the port
 * (remote/client.ts).
 */
export function provideKernelServices(
  services: ServiceRegistry,
  deps: {
    config: LoadedConfig;
    log: Logger;
    metrics: Metrics;
    cloud: CloudConnection;
    /** The database file was deleted or replaced while open (see openDatabase). */
    onDatabaseLost?: (err: KernelError) => void;
  },
): () => void {
  services.provide(ConfigToken, { value: deps.config });
  services.provide(LoggerToken, { value: deps.log });
  services.provide(MetricsToken, { value: deps.metrics });
  services.provide(CloudConnectionToken, { value: deps.cloud });
  let db: ReturnType<typeof openDatabase> | undefined;
  const source = databaseSource(deps.config);
  if (source !== undefined) {
    const options = { log: deps.log, metrics: deps.metrics, onLost: deps.onDatabaseLost };
    services.provide(DatabaseToken, { factory: () => (db = openDatabase(source, options)) });
  }
  let kube: KubeApi | undefined;
  if (deps.config.kind === 'cloudcore') {
    const { kubeAPIConfig } = deps.config.config as CloudCoreConfig;
    services.provide(KubeToken, { factory: () => (kube = createKubeApi(kubeAPIConfig, deps.log)) });
  }
  return () => {
    db?.close();
    db = undefined;
    kube?.stop();
    kube = undefined;
  };
}

/**
 * The node name every edge module uses: `modules.edged.hostnameOverride`, even when edged itself is
 * disabled (as edgecore passes it to edgeHub, eventBus, deviceTwin, metaServer). Empty for cloudcore.
 */
export function nodeName(services: Services): string {
  const config = services.get(ConfigToken).config as { modules?: { edged?: { hostnameOverride?: string } } };
  return config.modules?.edged?.hostnameOverride ?? '';
}
