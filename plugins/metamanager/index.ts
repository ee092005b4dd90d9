import {
  CloudConnectionToken,
  DatabaseToken,
  definePlugin,
  errorText,
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
      const { MetaServer } = await import('./metaserver/server.js');
      const ms = new MetaServer(ctx, store, {
        server: c.metaServer.server || '127.0.0.1:10550',
        nodeName: nodeName(ctx.services),
        connected: () => processor.connected(),
        contextSendModule: module,
      });
      try {
        const addr = await ms.listen();
        ctx.log.info(addr, 'metaServer listening (http)');
      } catch (err) {
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
