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
  const kubeAPIConfig = clusterOf(deps.config);
  if (kubeAPIConfig) {
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

/**
 * What edgecore passes to edgeStream besides the node name: edged's `nodeIP` and the port of its
 * kubelet-API server (`tailoredKubeletConfig.readOnlyPort`), read even when edged is disabled.
 */
export function edgedEndpoint(services: Services): { nodeIP: string; port: number } {
  const config = services.get(ConfigToken).config as {
    modules?: { edged?: { nodeIP?: string; tailoredKubeletConfig?: { readOnlyPort?: number } } };
  };
  const edged = config.modules?.edged;
  return { nodeIP: edged?.nodeIP ?? '', port: edged?.tailoredKubeletConfig?.readOnlyPort ?? 10350 };
}

/**
 * The cluster a cloudcore config names: `kubeAPIConfig.kubeConfig` or `master`, or the pod's own
 * cluster (in-cluster, as client-go detects it). None for edgecore, or for a cloudcore without one
 * (a demo or a test: its plugins then keep their state in files).
 */
function clusterOf(loaded: LoadedConfig): CloudCoreConfig['kubeAPIConfig'] | undefined {
  if (loaded.kind !== 'cloudcore') return undefined;
  const api = (loaded.config as CloudCoreConfig).kubeAPIConfig;
  const inPod =
    process.env.KUBERNETES_SERVICE_HOST !== undefined && process.env.KUBERNETES_SERVICE_PORT !== undefined;
  return api.kubeConfig !== '' || api.master !== '' || inPod ? api : undefined;
}
