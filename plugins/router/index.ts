/**
 * router (KubeEdge's `router` module, group `router`) of cloudcore: Rules made of RuleEndpoints
 * move users' messages between cloud apps and the edges (spec devices-dmi-router §5): a REST call
 * to MQTT at the edge, MQTT at the edge to a cloud URL, a REST call to an HTTP app on the edge
 * node. Rules are watched through the shared informers; see README.md.
 */
import { createServer, type Server } from 'node:http';
import {
  ConfigToken,
  KernelError,
  definePlugin,
  errorText,
  localIP,
  requireKube,
  type CloudCoreConfig,
  type ModuleConfig,
} from '../../kernel/index.js';
import { DefaultRouterPort, RouterAddressAnnotation, holderAnnotations } from '../../protocol/index.js';
import type { RouterConfig } from './config.js';
import type { RuleEndpointObject, RuleObject } from './rules.js';

export const RouterModuleName = 'router';
export const RouterGroup = 'router';
/** Rule status patches at most this often per rule. */
export const STATUS_INTERVAL_MS = 1_000;

export default definePlugin<RouterConfig & ModuleConfig>({
  name: RouterModuleName,
  group: RouterGroup,
  configKey: 'router',
  async start(ctx) {
    const kube = requireKube(ctx, 'modules.router reads its Rules and RuleEndpoints from the Kubernetes API');
    const [{ Router }, { RuleStatuses }, { Forwarder }] = await Promise.all([
      import('./router.js'),
      import('./status.js'),
      import('./forward.js'),
    ]);
    // KubeEdge's fallbacks (listener/http.go): port <= 0 → 9443, restTimeout <= 0 → 60 s
    const port = ctx.config.port > 0 ? ctx.config.port : DefaultRouterPort;
    const restTimeoutMs = (ctx.config.restTimeout > 0 ? ctx.config.restTimeout : 60) * 1000;
    const statuses = new RuleStatuses(kube, ctx.log, STATUS_INTERVAL_MS);
    // several cloudcores: this router's address as the Nodes this cloudcore holds name it
    const file = ctx.services.get(ConfigToken).config as CloudCoreConfig;
    const self = holderAnnotations(file.modules, localIP())[RouterAddressAnnotation];
    const forwarder = new Forwarder({ kube, log: ctx.log, self, timeoutMs: restTimeoutMs + 15_000 });
    const router = new Router({ ctx, statuses, restTimeoutMs, forwarder });

    const endpoints = kube.informer<RuleEndpointObject>({
      group: 'rules.kubeedge.io',
      version: 'v1',
      resource: 'ruleendpoints',
      signal: ctx.signal,
    });
    const rules = kube.informer<RuleObject>({
      group: 'rules.kubeedge.io',
      version: 'v1',
      resource: 'rules',
      signal: ctx.signal,
    });
    endpoints.addHandlers({
      add: (ep) => router.endpointChanged(ep),
      update: (ep) => router.endpointChanged(ep),
      delete: (ep) => router.endpointChanged(ep, true),
    });
    rules.addHandlers({
      add: (r) => router.ruleChanged(r),
      update: (r) => router.ruleChanged(r),
      delete: (r) => router.ruleChanged(r, true),
    });
    Promise.all([endpoints.synced, rules.synced]).then(
      () => {
        router.synced = true;
        router.rebuild();
        ctx.log.info(
          { rules: rules.list().length, ruleEndpoints: endpoints.list().length },
          'router: rules watched',
        );
      },
      (err: unknown) => {
        if (!ctx.signal.aborted)
          ctx.log.error({ err: errorText(err) }, 'router: the rule informers cannot start');
      },
    );

    const server: Server = createServer((req, res) => void router.serve(req, res));
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) =>
          reject(
            new KernelError(
              'EROUTER_LISTEN',
              `modules.router: cannot listen on ${ctx.config.address}:${port}: ${errorText(err)}`,
            ),
          ),
        );
        server.listen(port, ctx.config.address, () => resolve());
      });
    } catch (err) {
      endpoints.stop();
      rules.stop();
      router.stop();
      await statuses.stop();
      throw err;
    }
    ctx.log.info({ address: `${ctx.config.address}:${port}`, restTimeoutMs }, 'router started');
    return {
      onMessage: (msg) => router.fromEdge(msg),
      async stop() {
        endpoints.stop();
        rules.stop();
        router.stop();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await statuses.stop();
      },
    };
  },
});
