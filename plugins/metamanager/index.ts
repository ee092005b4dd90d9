import {
  CloudConnectionToken,
  ConfigToken,
  DatabaseToken,
  definePlugin,
  errorText,
  isKernelError,
  KernelError,
  nodeName,
  type ModuleConfig,
} from '../../kernel/index.js';
import { EdgeHubModuleName, HubGroup, MetaGroup, MetaManagerModuleName } from '../../protocol/index.js';

/** modules.metaManager (spec edge-modules §1.4.4); the kernel's config loader fills the defaults. */
export type MetaManagerSection = ModuleConfig & {
  contextSendGroup?: string;
  contextSendModule?: string;
  remoteQueryTimeout?: number;
  metaServer?: { enable?: boolean; server?: string };
};

/**
 * metaManager: the edge's SQLite store (meta, meta_v2) and the message processor between the
 * cloud, edged and deviceTwin; with `metaServer.enable`, a Kubernetes API at the edge.
 */
export default definePlugin<MetaManagerSection>({
  name: MetaManagerModuleName,
  group: MetaGroup,
  configKey: 'metaManager',
  requires: [DatabaseToken],
  // Remote queries wait for the cloud concurrently; store steps stay in arrival order (process.ts).
  concurrency: 64,
  async start(ctx) {
    const { MetaStore } = await import('./store.js');
    const { MetaProcessor } = await import('./process.js');
    const c = ctx.config;
    const group = c.contextSendGroup || HubGroup;
    const module = c.contextSendModule || EdgeHubModuleName;
    const timeout = c.remoteQueryTimeout ?? 60;
    if (typeof timeout !== 'number' || !(timeout > 0)) {
      throw new KernelError(
        'ECONFIG_INVALID',
        `modules.metaManager.remoteQueryTimeout: expected a positive number of seconds, got ${JSON.stringify(timeout)}`,
      );
    }
    const store = new MetaStore(ctx.services.get(DatabaseToken));
    const cloud = ctx.services.has(CloudConnectionToken) ? ctx.services.get(CloudConnectionToken) : undefined;
    const processor = new MetaProcessor(ctx, store, cloud, {
      contextSendGroup: group,
      contextSendModule: module,
      remoteQueryTimeout: timeout,
    });
    let server: { close(): Promise<void> } | undefined;
    if (c.metaServer?.enable) {
      const gates = (ctx.services.get(ConfigToken).config as { featureGates?: Record<string, boolean> })
        .featureGates;
      if (gates?.requireAuthorization === true) {
        // KubeEdge v1.23 then serves HTTPS with a certificate the cluster signs (a CSR through the
        // cloud), authenticates service-account tokens and authorizes with RBAC rules fetched from
        // the cloud. None of that exists here yet; serving without it would be a silent downgrade.
        throw new KernelError(
          'ECONFIG_INVALID',
          'featureGates.requireAuthorization: true is not supported with modules.metaManager.metaServer.enable: true ' +
            '(HTTPS with a cluster-signed certificate, service-account token authentication and RBAC are not implemented); ' +
            'disable metaServer or the gate',
        );
      }
      const { MetaServer } = await import('./metaserver/server.js');
      const ms = new MetaServer(ctx, store, {
        server: c.metaServer.server || '127.0.0.1:10550',
        nodeName: nodeName(ctx.services),
        connected: () => processor.connected(),
        contextSendModule: module,
      });
      try {
        const addr = await ms.listen();
        ctx.log.info(addr, 'metaServer listening (http, loopback only)');
      } catch (err) {
        if (isKernelError(err)) throw err;
        throw new KernelError(
          'EMETA_LISTEN',
          `modules.metaManager.metaServer.server ${c.metaServer.server}: cannot listen: ${errorText(err)}`,
        );
      }
      server = ms;
    }
    ctx.log.info({ revision: store.revision }, 'metamanager ready');
    return {
      onMessage: (msg) => processor.handle(msg),
      async stop() {
        await server?.close();
      },
    };
  },
});
