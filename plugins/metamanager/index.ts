import {
  CloudConnectionToken,
  DatabaseToken,
  definePlugin,
  errorText,
  isKernelError,
  KernelError,
  nodeName,
  type ModuleConfig,
} from '../../kernel/index.js';
import { EdgeHubModuleName, HubGroup, MetaGroup, MetaManagerModuleName } from '../../protocol/index.js';
import type { MetaManagerConfig } from './config.js';

/**
 * metaManager: the edge's SQLite store (meta, meta_v2) and the message processor between the
 * cloud, edged and deviceTwin; with `metaServer.enable`, a Kubernetes API at the edge.
 */
export default definePlugin<MetaManagerConfig & ModuleConfig>({
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
    const store = new MetaStore(ctx.services.get(DatabaseToken));
    const cloud = ctx.services.has(CloudConnectionToken) ? ctx.services.get(CloudConnectionToken) : undefined;
    const processor = new MetaProcessor(ctx, store, cloud, {
      contextSendGroup: group,
      contextSendModule: module,
      remoteQueryTimeout: c.remoteQueryTimeout,
    });
    let server: { close(): Promise<void> } | undefined;
    if (c.metaServer?.enable) {
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
