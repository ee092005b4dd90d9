/**
 * Wire compatibility with KubeEdge's own edge: a Go edgecore (KubeEdge v1.23.1, built from its Go
 * module by test/peers/kubeedge/build.sh) joins OUR cloudcore (cloudHub, edgeController,
 * cloudStream) on a real control plane. It bootstraps its node certificate with the token
 * `keadm gettoken` reads, registers its Node (Ready in kubectl), runs a busybox pod on a private
 * containerd whose status reaches the API, and serves `kubectl logs` and `kubectl exec` through
 * our cloudStream and its edgeStream.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getToken, kubeClient } from '../../keadm/cloud.js';
import { createLogger } from '../../kernel/log.js';
import { busyboxPod } from '../helpers/pod.js';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../peers/containerd.js';
import { KUBEEDGE_VERSION, startGoEdgecore, type GoEdgecore } from '../peers/kubeedge.js';
import { cleanup, waitFor } from '../peers/util.js';
import { ready, runningReady, startEdgeStack, type EdgeStack, type Obj } from './edge-stack.js';

const NODE = 'go-edge';
let s: EdgeStack;
let go: GoEdgecore;

interface NodeStatus {
  nodeInfo?: { kubeletVersion?: string };
  daemonEndpoints?: { kubeletEndpoint?: { Port?: number } };
  addresses?: { type: string; address: string }[];
}

beforeAll(async () => {
  s = await startEdgeStack(NODE, { stream: true });
  await buildBusyboxImage(s.cd.socket, BUSYBOX_IMAGE);
  const token = await getToken(kubeClient(s.cp.cloudcoreKubeconfigPath, createLogger('silent')));
  go = await startGoEdgecore({
    nodeName: NODE,
    server: `127.0.0.1:${s.link.wsPort}`,
    httpServer: `https://127.0.0.1:${s.link.httpsPort}`,
    token,
    containerd: s.cd,
    tunnelServer: `127.0.0.1:${s.stream!.tunnelPort}`,
    heartbeat: 2,
    nodeStatusUpdateFrequency: 2,
  });
}, 1_800_000);

afterAll(async () => {
  await go?.stop();
  await s?.stop();
  await cleanup();
}, 120_000);

describe(`a Go edgecore ${KUBEEDGE_VERSION} with our cloudcore`, () => {
  it('gets its node certificate from our cert server with the token of keadm gettoken', async () => {
    const cert = new X509Certificate(await readFile(join(go.dir, 'certs/server.crt')));
    expect(cert.subject).toBe('O=system:nodes\nCN=system:node:go-edge');
    expect(cert.verify(new X509Certificate(s.link.ca.cert).publicKey)).toBe(true);
  });

  it('registers its Node, Ready, with its kubelet endpoint on our cloudStream once its tunnel is up', async () => {
    let node: Obj | undefined;
    await waitFor(
      async () => {
        node = await s.getJson(['node', NODE]);
        const status = node?.status as NodeStatus | undefined;
        return ready(node) && status?.daemonEndpoints?.kubeletEndpoint?.Port === s.stream!.streamPort;
      },
      {
        what: `node ${NODE} Ready with its kubelet endpoint on cloudStream's stream port`,
        timeoutMs: 120_000,
        intervalMs: 250,
        details: () => `${JSON.stringify(node?.status)}\n${go.output().slice(-4_000)}`,
      },
    );
    const status = node!.status as NodeStatus;
    expect(status.nodeInfo?.kubeletVersion).toContain(`kubeedge-${KUBEEDGE_VERSION}`);
    expect(status.addresses).toContainEqual({ type: 'InternalIP', address: '127.0.0.1' });
  });

  it('runs a pod: its status (Running, Ready, pod IP) reaches the API', async () => {
    await s.apply([
      busyboxPod(NODE, 'hello', {
        command: ['sh', '-c', 'echo hello-from-go-edged; echo second-line; exec sleep 3600'],
      }),
    ]);
    const pod = await s.waitPod('hello', 'Running and Ready', runningReady);
    expect(pod.status?.podIP).toMatch(
      new RegExp(`^${s.cd.subnet.replace(/\.0\/24$/, '').replace(/\./g, '\\.')}\\.`),
    );
    expect(pod.status?.containerStatuses?.[0]?.containerID).toMatch(/^containerd:\/\//);
  });

  it('kubectl logs reaches the container through our cloudStream and Go edgeStream', async () => {
    let out = '';
    await waitFor(
      async () => {
        out = await s.cp.kubectl(['logs', 'hello']);
        return out.includes('second-line');
      },
      { what: 'kubectl logs hello', timeoutMs: 30_000, intervalMs: 500, details: () => out },
    );
    expect(out).toBe('hello-from-go-edged\nsecond-line\n');
  });

  it('kubectl exec runs a command in the container through the same tunnel', async () => {
    expect(await s.cp.kubectl(['exec', 'hello', '--', 'sh', '-c', 'echo exec-$((6 * 7))'])).toBe('exec-42\n');
  });

  it('deletes the pod: edged stops it and the pod leaves the API', async () => {
    await s.cp.kubectl(['delete', 'pod', 'hello', '--wait=false']);
    await s.waitPod('hello', 'gone from the API', (p) => p === undefined);
  });
});
