/**
 * edgeController (KubeEdge's `edgecontroller` module, group `edgecontroller`) of cloudcore: the
 * edges' requests (node registration and status, leases, pod status and deletion, remote queries)
 * become Kubernetes requests answered through cloudHub; edge Nodes, the Pods bound to them and the
 * ConfigMaps/Secrets those pods use are pushed to their node. See README.md.
 */
import {
  ConfigToken,
  KubeToken,
  definePlugin,
  errorText,
  idleWithoutKube,
  localIP,
  type CloudCoreConfig,
  type ModuleConfig,
} from '../../kernel/index.js';
import { CloudHubModuleName, EdgeControllerModuleName, holderAnnotations } from '../../protocol/index.js';
import type { EdgeControllerConfig } from './config.js';
import { EdgeControllerGroup } from './messages.js';

export default definePlugin<EdgeControllerConfig & ModuleConfig>({
  name: EdgeControllerModuleName,
  group: EdgeControllerGroup,
  configKey: 'edgeController',
  // API requests run side by side (KubeEdge runs a pool of workers per message type)
  concurrency: 64,
  async start(ctx) {
    const [{ Upstream }, { Downstream }] = await Promise.all([
      import('./upstream.js'),
      import('./downstream.js'),
    ]);
    const file = ctx.services.get(ConfigToken).config as CloudCoreConfig;
    // a message not handled (`upstream`: unsupported, malformed, failed; `downstream`: refused by cloudHub)
    const droppedTotal = ctx.metrics.replace(
      'kubeedge_edgecontroller_dropped_total',
      (prom, registry) =>
        new prom.Counter({
          name: 'kubeedge_edgecontroller_dropped_total',
          help: 'Messages edgeController did not handle, by direction and reason',
          labelNames: ['direction', 'reason'],
          registers: [registry],
        }),
    );
    const dropped = (direction: 'upstream' | 'downstream', reason: string): void =>
      droppedTotal.inc({ direction, reason });
    // a cloudcore whose kubeAPIConfig names no cluster (a demo or a test of cloudHub alone) still boots
    if (!ctx.services.has(KubeToken))
      return idleWithoutKube(ctx, 'edgeController drops the edge requests', () =>
        dropped('upstream', 'no-kubernetes'),
      );
    const kube = ctx.services.get(KubeToken);
    const send = (msg: Parameters<typeof ctx.send>[1]): Promise<void> => ctx.send(CloudHubModuleName, msg);
    const upstream = new Upstream({
      kube,
      log: ctx.log,
      send,
      holder: holderAnnotations(file.modules, localIP()),
      nodeUpdateMs: ctx.config.nodeUpdateFrequency * 1000,
      dropped: (reason) => dropped('upstream', reason),
    });
    const downstream = new Downstream({
      kube,
      log: ctx.log,
      signal: ctx.signal,
      send,
      dropped: (reason) => dropped('downstream', reason),
    });
    // the informers list and watch in the background (an API server not there yet is retried)
    downstream.start().then(
      () => ctx.log.info('edgeController: edge nodes, pods, configmaps and secrets watched'),
      (err: unknown) => {
        if (!ctx.signal.aborted)
          ctx.log.error({ err: errorText(err) }, 'edgeController: the informers cannot start');
      },
    );
    return {
      onMessage: (msg) => upstream.handle(msg),
      stop() {
        downstream.stop();
      },
    };
  },
});
