/**
 * Wire compatibility with KubeEdge's own cloud: OUR edgecore (edgeHub, metaManager, edged) joins
 * a Go cloudcore (KubeEdge v1.23.1, built from its Go module by test/peers/kubeedge/build.sh:
 * cloudHub, edgeController, syncController) on a real control plane. It bootstraps its node
 * certificate with our token of the cloud's CA against Go's cert server, registers its Node
 * (Ready in kubectl) and runs a busybox pod whose status reaches the API through Go's cloud; our
 * edgeStream's tunnel to Go's cloudStream serves the pod's logs.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxPod } from '../helpers/pod.js';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../peers/containerd.js';
import { httpsGet } from '../peers/kube.js';
import { KUBEEDGE_VERSION, startGoCloudcore, type GoCloudcore } from '../peers/kubeedge.js';
import { toPem } from '../../plugins/cloudhub/pki.js';
import { cleanup, waitFor } from '../peers/util.js';
import { runningReady, startEdgeStack, type EdgeStack } from './edge-stack.js';

const NODE = 'ts-edge-go-cloud';
const CRDS = [
  'v1.23.1_objectsync_v1alpha1.yaml',
  'v1.23.1_cluster_objectsync_v1alpha1.yaml',
  'v1.23.1_router_v1_rule.yaml',
  'v1.23.1_router_v1_ruleEndpoint.yaml',
];
let s: EdgeStack;
let go: GoCloudcore;

beforeAll(async () => {
  s = await startEdgeStack(NODE, { cloud: false, stream: true });
  for (const f of CRDS) {
    await s.cp.kubectl(['apply', '-f', join(import.meta.dirname, '../fixtures/kubeedge-crds', f)]);
  }
  await s.cp.waitForCrds([
    'objectsyncs.reliablesyncs.kubeedge.io',
    'clusterobjectsyncs.reliablesyncs.kubeedge.io',
    'rules.rules.kubeedge.io',
    'ruleendpoints.rules.kubeedge.io',
  ]);
  await buildBusyboxImage(s.cd.socket, BUSYBOX_IMAGE);
  go = await startGoCloudcore({
    kubeconfig: s.cp.cloudcoreKubeconfigPath,
    caFile: join(s.dir, 'cloud/ca/rootCA.crt'),
    caKeyFile: join(s.dir, 'cloud/ca/rootCA.key'),
    wsPort: s.link.wsPort,
    httpsPort: s.link.httpsPort,
    stream: {
      tunnelPort: s.stream!.tunnelPort,
      streamPort: s.stream!.streamPort,
      certFile: join(s.dir, 'cloud/stream/stream.crt'),
      keyFile: join(s.dir, 'cloud/stream/stream.key'),
      clusterCaFile: s.cp.caPath,
    },
  });
  await s.startEdge();
}, 1_800_000);

afterAll(async () => {
  await s?.stopEdge();
  await go?.stop();
  await s?.stop();
  await cleanup();
}, 120_000);

describe(`our edgecore with a Go cloudcore ${KUBEEDGE_VERSION}`, () => {
  it('registers its Node through the Go cloud, Ready', async () => {
    await s.waitNodeReady();
  });

  it('runs a pod the Go cloud sends: its status (Running, Ready, pod IP) reaches the API', async () => {
    await s.apply([
      busyboxPod(NODE, 'hello', {
        command: ['sh', '-c', 'echo hello-from-ts-edged; echo second-line; exec sleep 3600'],
      }),
    ]);
    const pod = await s.waitPod('hello', 'Running and Ready', runningReady);
    expect(pod.status?.podIP).toBeDefined();
  });

  it("serves the container's logs through Go cloudStream's stream server and our edgeStream's tunnel", async () => {
    // as kube-apiserver asks a kubelet: a client certificate of the cluster CA, Host the node's IP
    const tls = {
      ca: toPem('CERTIFICATE', s.link.ca.cert),
      cert: await readFile(s.cp.adminCertPath),
      key: await readFile(s.cp.adminKeyPath),
    };
    let got = { status: 0, body: '' };
    await waitFor(
      async () => {
        got = await httpsGet(`https://127.0.0.1:${s.stream!.streamPort}/containerLogs/default/hello/c`, tls);
        return got.status === 200 && got.body.includes('second-line');
      },
      {
        what: 'container logs from the Go stream server',
        timeoutMs: 30_000,
        intervalMs: 500,
        details: () => `${JSON.stringify(got)}\n${go.output().slice(-3_000)}`,
      },
    );
    expect(got.body).toBe('hello-from-ts-edged\nsecond-line\n');
  });

  it('deletes the pod: edged stops it and the pod leaves the API', async () => {
    await s.cp.kubectl(['delete', 'pod', 'hello', '--wait=false']);
    await s.waitPod('hello', 'gone from the API', (p) => p === undefined);
  });
});
