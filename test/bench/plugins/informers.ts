import { KubeToken, definePlugin } from '../../../kernel/index.js';

/**
 * For the cloudcore memory bench: the shared informers KubeEdge's cloudcore keeps (edgeController
 * and syncController's core objects), started through the kernel's Kubernetes service; logs
 * "informers synced" (warn, so a quiet log level shows it) once every cache is full. With
 * `apiClient: true` it also makes one call through a client-node API client (loading client-node).
 */
const RESOURCES = ['nodes', 'pods', 'configmaps', 'secrets', 'services', 'endpoints'];

export default definePlugin<{ enable: boolean; apiClient?: boolean }>({
  name: 'benchInformers',
  group: 'bench',
  configKey: 'benchInformers',
  requires: [KubeToken],
  async start(ctx) {
    const kube = ctx.services.get(KubeToken);
    const informers = RESOURCES.map((resource) => kube.informer({ version: 'v1', resource }));
    await Promise.all(informers.map((i) => i.synced));
    if (ctx.config.apiClient === true) {
      // what a plugin using client-node's typed API clients costs on top
      const { CoreV1Api } = await import('@kubernetes/client-node');
      await (await kube.api(CoreV1Api)).readNamespace({ name: 'kubeedge' });
    }
    ctx.log.warn({ resources: RESOURCES, ...kube.stats() }, 'informers synced');
    return {
      stop() {
        for (const i of informers) i.stop();
      },
    };
  },
});
