import type { LoadedConfig } from './config/index.js';
import { openDatabase } from './db.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { ServiceRegistry, Services } from './services.js';
import {
  type CloudConnection,
  CloudConnectionToken,
  ConfigToken,
  DatabaseToken,
  LoggerToken,
  MetricsToken,
} from './tokens.js';

/**
 * Register the services the kernel gives every plugin, in the kernel's process and in a plugin
 * process alike. Returns the function that releases them (closes the database if it was opened).
 * In a plugin process the database is the same SQLite file, opened there (WAL lets processes share
 * it); the cloud-connection flag is that process's own.
 */
export function provideKernelServices(
  services: ServiceRegistry,
  deps: { config: LoadedConfig; log: Logger; metrics: Metrics; cloud: CloudConnection },
): () => void {
  services.provide(ConfigToken, { value: deps.config });
  services.provide(LoggerToken, { value: deps.log });
  services.provide(MetricsToken, { value: deps.metrics });
  services.provide(CloudConnectionToken, { value: deps.cloud });
  let db: ReturnType<typeof openDatabase> | undefined;
  const source = (deps.config.config as { database?: { dataSource?: string } }).database?.dataSource;
  if (source) services.provide(DatabaseToken, { factory: () => (db = openDatabase(source)) });
  return () => {
    db?.close();
    db = undefined;
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
