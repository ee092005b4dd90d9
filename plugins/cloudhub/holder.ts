/**
 * A node that connects is marked as held by this cloudcore: its Node gets this cloudcore's holder
 * annotations (KubeEdge's `cloudcore: <IP>`, `UpdateAnnotation` at connection; ours: the router's
 * address), so another cloudcore's router forwards the node's REST calls here.
 */
import { errorText, isKernelError, type KubeApi, type Logger } from '../../kernel/index.js';
import type { HolderAnnotations } from '../../protocol/index.js';

/**
 * Merge-patch the Node's annotations. A Node not registered yet (404) is left alone: edgeController
 * writes the same annotations when it registers the node through this cloudcore.
 */
export async function markHolder(
  kube: KubeApi,
  node: string,
  annotations: HolderAnnotations,
  log: Logger,
): Promise<void> {
  try {
    await kube.request(
      'PATCH',
      `/api/v1/nodes/${encodeURIComponent(node)}`,
      { metadata: { annotations } },
      { contentType: 'application/merge-patch+json' },
    );
  } catch (err) {
    if (isKernelError(err, 'EKUBE_API') && (err as { statusCode?: unknown }).statusCode === 404) return;
    log.warn({ node, error: errorText(err) }, 'cannot mark the node as held by this cloudcore');
  }
}
