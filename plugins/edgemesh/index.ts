/**
 * edgeMesh (module `edgemesh`, group `mesh`, config `modules.edgeMesh`): service names at the edge.
 * A DNS server answers `<svc>.<ns>.svc.<clusterDomain>` from the Services and Endpoints this edge
 * stores, and a TCP proxy makes each service port reach a ready endpoint; other names go to the
 * host's nameservers. It reads the store through metaManager (a query at start, then the pushes
 * metaManager hands it), so it keeps answering with the cloud gone. See README.md.
 */
import {
  definePlugin,
  errorText,
  KernelError,
  newMessage,
  parseResource,
  type Message,
  type ModuleConfig,
} from '../../kernel/index.js';
import {
  EdgeMeshModuleName,
  MeshGroup,
  MeshResourceTypes,
  MetaGroup,
  type MeshResourceType,
  MetaManagerModuleName,
} from '../../protocol/index.js';
import type { Service } from './catalog.js';
import type { EdgeMeshConfig } from './config.js';

/** A stored object as metaManager returns it (a JSON string) or pushes it (an object). */
function objectOf(content: unknown): Service | undefined {
  const c = typeof content === 'string' ? (JSON.parse(content) as unknown) : content;
  return c !== null && typeof c === 'object' && !Array.isArray(c) ? (c as Service) : undefined;
}

export default definePlugin<EdgeMeshConfig & ModuleConfig>({
  name: EdgeMeshModuleName,
  group: MeshGroup,
  configKey: 'edgeMesh',
  async start(ctx) {
    const [{ Catalog }, { DnsServer, upstreamServers }, { ServiceProxy }, { edgeMeshMetrics }] =
      await Promise.all([
        import('./catalog.js'),
        import('./dns.js'),
        import('./proxy.js'),
        import('./metrics.js'),
      ]);
    const cfg = ctx.config;
    const metrics = edgeMeshMetrics(ctx.metrics);
    const catalog = new Catalog();

    // what metaManager stored (2-token query: every object of the type, any namespace)
    if (ctx.hasModule(MetaManagerModuleName)) {
      for (const type of MeshResourceTypes) {
        const reply = await ctx.request(
          MetaManagerModuleName,
          newMessage(
            { source: EdgeMeshModuleName, group: MetaGroup, operation: 'query', resource: `default/${type}` },
            null,
          ),
        );
        if (reply.route.operation === 'error' || !Array.isArray(reply.content))
          throw new KernelError('EMESH_STORE', `metaManager's ${type} list: ${errorText(reply.content)}`);
        for (const text of reply.content) {
          try {
            const obj = objectOf(text);
            if (obj) catalog.apply('insert', type, obj);
          } catch (err) {
            ctx.log.warn({ type, err: errorText(err) }, 'a stored object that is not JSON skipped');
          }
        }
      }
    } else {
      ctx.log.warn('no metaManager module: edgeMesh knows only the services pushed to it from now on');
    }

    const proxy = new ServiceProxy({
      address: cfg.listenAddress,
      catalog,
      log: ctx.log,
      count: metrics.proxy,
    });
    proxy.sync();
    const upstream = upstreamServers(cfg.resolvConf, cfg.listenAddress);
    if (upstream.length === 0)
      ctx.log.warn(
        { resolvConf: cfg.resolvConf },
        'no upstream nameserver: names outside the cluster get SERVFAIL',
      );
    const dns = new DnsServer({
      address: cfg.listenAddress,
      port: cfg.dnsPort,
      domain: cfg.clusterDomain,
      answerAddress: cfg.listenAddress,
      upstream,
      catalog,
      log: ctx.log,
      count: metrics.dns,
    });
    let dnsPort: number;
    try {
      dnsPort = await dns.start();
    } catch (err) {
      await Promise.all([proxy.stop(), dns.stop()]);
      throw new KernelError(
        'EMESH_LISTEN',
        `modules.edgeMesh: DNS cannot listen on ${cfg.listenAddress}:${cfg.dnsPort}: ${errorText(err)}`,
      );
    }
    ctx.log.info(
      { address: cfg.listenAddress, dnsPort, upstream, ...catalog.size },
      'edgeMesh DNS and proxy listening',
    );

    return {
      onMessage(msg: Message) {
        const op = msg.route.operation ?? '';
        const resource = msg.route.resource ?? '';
        let type: string;
        try {
          type = parseResource(resource).type;
        } catch (err) {
          ctx.log.warn({ resource, op, err: errorText(err) }, 'message with an unparsable resource ignored');
          return;
        }
        if (
          !(MeshResourceTypes as readonly string[]).includes(type) ||
          !['insert', 'update', 'delete'].includes(op)
        ) {
          ctx.log.debug({ resource, op }, 'message ignored: edgeMesh takes service and endpoints changes');
          return;
        }
        let obj: Service | undefined;
        try {
          obj = objectOf(msg.content);
        } catch {
          obj = undefined;
        }
        if (obj === undefined) {
          ctx.log.warn({ resource, op }, 'service or endpoints message without an object ignored');
          return;
        }
        if (catalog.apply(op, type as MeshResourceType, obj)) proxy.sync();
      },
      async stop() {
        await Promise.all([proxy.stop(), dns.stop()]);
      },
    };
  },
});
