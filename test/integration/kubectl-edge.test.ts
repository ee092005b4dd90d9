/**
 * kubectl drives the edge: a real control plane (with controllers), a cloud kernel (cloudHub +
 * edgeController on the cloudcore identity's kubeconfig) and an edge kernel (edgeHub, metaManager,
 * edged on a private containerd) over real mutual TLS on loopback.
 *
 *  - the edge registers: `kubectl get node` shows it Ready with the edge role label and the
 *    `cloudcore` annotation; its Lease in kube-node-lease renews;
 *  - a pod created with `nodeName: <edge>` (busybox httpd, hostPort) reaches the edge, runs, its
 *    status (the edge's podpatches) shows Running in the API, and the hostPort answers;
 *  - `kubectl delete pod`: the edge stops it, confirms the deletion, the pod object disappears and
 *    its sandbox and containers are gone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../peers/containerd.js';
import { busyboxPod, httpdContainer } from '../helpers/pod.js';
import { cleanup, freePort, waitFor } from '../peers/util.js';
import { httpGet, ready, startEdgeStack, type EdgeStack, type Obj } from './edge-stack.js';

const NODE = 'edge-kubectl';

let s: EdgeStack;
let edgeStarted = 0;

beforeAll(async () => {
  s = await startEdgeStack(NODE);
  await buildBusyboxImage(s.cd.socket, BUSYBOX_IMAGE);
  edgeStarted = Date.now();
  await s.startEdge();
}, 600_000);

afterAll(async () => {
  await s?.stop();
  await cleanup();
}, 120_000);

describe('kubectl drives the edge (real control plane, cloudHub + edgeController, edgeHub + metaManager + edged)', () => {
  it('registers the edge node: Ready, with the edge role label and the cloudcore annotation; its lease renews', async () => {
    const node = await s.waitNodeReady();
    console.info(`FIGURE edge kernel start -> node Ready in the API: ${Date.now() - edgeStarted} ms`);
    expect(node.metadata.labels).toMatchObject({
      'node-role.kubernetes.io/edge': '',
      'node-role.kubernetes.io/agent': '',
      'kubernetes.io/hostname': NODE,
    });
    expect(node.metadata.annotations?.cloudcore).toBe('127.0.0.1');

    let lease: Obj | undefined;
    await waitFor(
      async () => (lease = await s.getJson(['lease', '-n', 'kube-node-lease', NODE])) !== undefined,
      {
        what: 'the node lease',
        timeoutMs: 30_000,
        intervalMs: 250,
      },
    );
    expect(lease!.spec.holderIdentity).toBe(NODE);
    const first = lease!.spec.renewTime;
    await waitFor(
      async () => (await s.getJson(['lease', '-n', 'kube-node-lease', NODE]))?.spec.renewTime !== first,
      {
        what: 'the lease renewed',
        timeoutMs: 30_000,
        intervalMs: 250,
      },
    );
  }, 120_000);

  it('runs a pod bound to the edge node (Running in the API, hostPort answers) and removes it on kubectl delete', async () => {
    const port = await freePort();
    const manifest = busyboxPod(NODE, 'web', httpdContainer('hello-kubectl', port), {
      labels: { app: 'web' },
      spec: { terminationGracePeriodSeconds: 2 },
    });
    const applied = Date.now();
    await s.cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(manifest) });
    let pod: Obj | undefined;
    await waitFor(
      async () => {
        pod = await s.getJson(['pod', 'web', '-n', 'default']);
        return pod?.status?.phase === 'Running' && pod.status.containerStatuses?.[0]?.ready === true;
      },
      {
        what: 'pod web Running and ready in the API',
        timeoutMs: 60_000,
        intervalMs: 250,
        details: () => JSON.stringify(pod?.status),
      },
    );
    console.info(`FIGURE kubectl apply -> pod Running in the API: ${Date.now() - applied} ms`);
    const uid = pod!.metadata.uid;
    expect(ready(pod)).toBe(true);
    await waitFor(async () => (await httpGet(port)).includes('hello-kubectl'), {
      what: `HTTP on 127.0.0.1:${port} (hostPort)`,
      timeoutMs: 20_000,
    });
    expect(await s.cri.listPodSandbox({ 'io.kubernetes.pod.uid': uid })).toHaveLength(1);

    const deleted = Date.now();
    await s.cp.kubectl(['delete', 'pod', 'web', '-n', 'default', '--wait=false']);
    await waitFor(async () => (await s.getJson(['pod', 'web', '-n', 'default'])) === undefined, {
      what: 'pod web gone from the API',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    console.info(`FIGURE kubectl delete -> pod gone from the API: ${Date.now() - deleted} ms`);
    await waitFor(async () => (await s.cri.listPodSandbox({ 'io.kubernetes.pod.uid': uid })).length === 0, {
      what: 'the sandbox removed',
      timeoutMs: 30_000,
    });
    expect(await s.cri.listContainers({ 'io.kubernetes.pod.uid': uid })).toHaveLength(0);
    await expect(httpGet(port)).rejects.toThrow();
  }, 180_000);
});
