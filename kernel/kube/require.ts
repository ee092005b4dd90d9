/**
 * A cloud plugin's start when cloudcore may have no Kubernetes API: a `kubeAPIConfig` that names no
 * cluster (a demo, a test of cloudHub alone) leaves `KubeToken` unregistered. One wording and one
 * error code for every plugin, whether it cannot run without the API or idles.
 */
import { KernelError } from '../errors.js';
import type { PluginContext, PluginInstance } from '../plugin/types.js';
import { KubeToken } from '../tokens.js';
import type { KubeApi } from './types.js';

const NO_CLUSTER =
  'kubeAPIConfig names no cluster: set kubeAPIConfig.kubeConfig (a kubeconfig file) or kubeAPIConfig.master, or run cloudcore in a Pod (in-cluster)';

/**
 * The Kubernetes API, else the `EKUBE_NO_CLUSTER` error that fails the plugin's start. `what`
 * names the plugin and what it needs the API for ("modules.router reads its Rules").
 */
export function requireKube(ctx: Pick<PluginContext, 'services'>, what: string): KubeApi {
  if (ctx.services.has(KubeToken)) return ctx.services.get(KubeToken);
  throw new KernelError('EKUBE_NO_CLUSTER', `${what}, but ${NO_CLUSTER}`);
}

/**
 * What a plugin that lets a cluster-less cloudcore boot runs instead of itself: one warning
 * (`what`: the plugin and what it does without the API, "deviceController drops edge reports"),
 * then each message it receives is logged and passed to `dropped` (to count it).
 */
export function idleWithoutKube(
  ctx: Pick<PluginContext, 'log'>,
  what: string,
  dropped: () => void = () => {},
): PluginInstance {
  ctx.log.warn(`${what}: ${NO_CLUSTER}`);
  return {
    onMessage(msg) {
      dropped();
      const { resource, operation, source } = msg.route;
      ctx.log.warn({ resource, operation, source }, 'message dropped: no Kubernetes API');
    },
  };
}
