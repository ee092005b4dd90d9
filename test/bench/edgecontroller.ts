/**
 * What edgeController adds to a pod's way to its edge (issue 12: p99 <= 10 ms): pods bound to an
 * edge node are created in the test control plane; for each, the time from the shared Pod
 * informer's event (a handler registered before edgeController's, on the same informer) to the
 * `insert` reaching the `cloudhub` mailbox (a probe here; cloudHub's own added latency to the
 * websocket write is the cloudhub bench's figure).
 */
import type { V1Pod } from '@kubernetes/client-node';
import { parseConfig } from '../../kernel/config/index.js';
import { KubeToken, newMessage, type Message } from '../../kernel/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger } from '../../kernel/log.js';
import { cloudLayout, cloudRegistry } from '../../plugins/registry.js';
import { startControlPlane } from '../peers/kube.js';
import { waitFor } from '../peers/util.js';
import { latencyFigures, type Figure } from './report.js';

const NODE = 'bench-edge';
const PODS = 300;
/** Pods created at once (one request each). */
const IN_FLIGHT = 4;

export async function edgecontrollerBench(): Promise<Figure[]> {
  const plane = await startControlPlane();
  const kernel = new Kernel({
    config: parseConfig(
      cloudLayout,
      `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${plane.cloudcoreKubeconfigPath}
modules:
  cloudHub: {enable: false, advertiseAddress: [127.0.0.1]}
  edgeController: {enable: true}
`,
      'cloudcore.yaml',
    ),
    registry: cloudRegistry,
    logger: createLogger('silent'),
  });
  try {
    await plane.kubectl(['create', 'serviceaccount', 'default', '-n', 'default']);
    const kube = kernel.services.get(KubeToken);
    const seen = new Map<string, bigint>();
    const samples: number[] = [];
    const replies = new Set<string>();
    kube.informer<V1Pod>({ version: 'v1', resource: 'pods' }).addHandlers({
      add: (p) => seen.set(p.metadata?.name ?? '', process.hrtime.bigint()),
    });
    kernel.bus.addModule('cloudhub', 'cloudhub').attach(
      (m: Message) => {
        if (m.header.parent_msg_id) replies.add(m.header.parent_msg_id);
        const name = /\/default\/pod\/(.+)$/.exec(m.route.resource ?? '')?.[1];
        const t0 = name === undefined ? undefined : seen.get(name);
        if (m.route.operation === 'insert' && t0 !== undefined)
          samples.push(Number(process.hrtime.bigint() - t0));
      },
      () => undefined,
    );
    await kernel.start();
    const node = {
      metadata: { name: NODE, labels: { 'node-role.kubernetes.io/edge': '' } },
      status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }] },
    };
    const register = newMessage(
      { source: 'edged', group: 'meta', operation: 'insert', resource: `node/${NODE}/null/node/${NODE}` },
      node,
    );
    await kernel.bus.send('edgecontroller', register);
    await waitFor(() => replies.has(register.header.msg_id), {
      what: 'the node registered',
      timeoutMs: 30_000,
    });

    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < PODS) {
        const name = `p${next++}`;
        await kube.request('POST', '/api/v1/namespaces/default/pods', {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name },
          spec: {
            nodeName: NODE,
            automountServiceAccountToken: false,
            containers: [{ name: 'c', image: 'busybox' }],
          },
        });
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    await waitFor(() => samples.length === PODS, {
      what: `${PODS} pod inserts at cloudhub`,
      timeoutMs: 60_000,
    });
    return latencyFigures('edgecontroller_pod_event_to_cloudhub', samples, 'ms', '<= 10');
  } finally {
    await kernel.stop();
    await plane.stop();
  }
}
