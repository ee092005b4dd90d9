import { KubeToken, definePlugin } from '../../../kernel/index.js';

/**
 * For the cloudcore memory bench: the shared informers KubeEdge's cloudcore keeps (edgeController
 * and syncController's core objects), started through the kernel's Kubernetes service; logs
 * "informers synced" (warn, so a quiet log level shows it) once every cache is full.
 */
const RESOURCES = ['nodes', 'pods', 'configmaps', 'secrets', 'services', 'endpoints'];

export default definePlugin({
  name: 'benchInformers',
  group: 'bench',
  configKey: 'benchInformers',
  requires: [KubeToken],
  async start(ctx) {
    const kube = ctx.services.get(KubeToken);
    const informers = RESOURCES.map((resource) => kube.informer({ version: 'v1', resource }));
    await Promise.all(informers.map((i) => i.synced));
    ctx.log.warn({ resources: RESOURCES, ...kube.stats() }, 'informers synced');
    return {
      stop() {
        for (const i of informers) i.stop();
      },
    };
  },
});
