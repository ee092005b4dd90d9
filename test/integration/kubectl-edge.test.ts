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
import { mkdir, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../kernel/config/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger, type LogLevel } from '../../kernel/log.js';
import { createCa, toPem } from '../../plugins/cloudhub/pki.js';
import { createToken } from '../../plugins/cloudhub/token.js';
import { CriClient } from '../../plugins/edged/cri.js';
import { cloudLayout, cloudRegistry, edgeLayout, edgeRegistry } from '../../plugins/registry.js';
import {
  BUSYBOX_IMAGE,
  buildBusyboxImage,
  startContainerd,
  type ContainerdPeer,
} from '../peers/containerd.js';
import { startControlPlane, type ControlPlane } from '../peers/kube.js';
import { cleanup, freePort, tempDir, waitFor } from '../peers/util.js';

const NODE = 'edge-kubectl';
const logger = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel);
const edgeModules = new Set(['metaManager', 'edged', 'edgeHub']);

let cp: ControlPlane;
let cd: ContainerdPeer;
let cri: CriClient;
let cloud: Kernel | undefined;
let edge: Kernel | undefined;
let edgeStarted = 0;

interface Condition {
  type: string;
  status: string;
}
interface Obj {
  metadata: {
    name: string;
    uid: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: Record<string, unknown> & { renewTime?: string };
  status?: { phase?: string; conditions?: Condition[]; containerStatuses?: { ready: boolean }[] };
}

async function getJson(args: string[]): Promise<Obj | undefined> {
  try {
    return JSON.parse(await cp.kubectl(['get', ...args, '-o', 'json'])) as Obj;
  } catch (err) {
    if (String(err).includes('NotFound')) return undefined;
    throw err;
  }
}

const ready = (o: Obj | undefined): boolean =>
  o?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

beforeAll(async () => {
  [cp, cd] = await Promise.all([startControlPlane({ withControllers: true }), startContainerd()]);
  await buildBusyboxImage(cd.socket, BUSYBOX_IMAGE);
  cri = new CriClient({ runtimeEndpoint: cd.endpoint, timeoutMs: 30_000 });

  const dir = await tempDir('kubectl-edge');
  const ca = await createCa();
  await mkdir(join(dir, 'cloud/ca'), { recursive: true });
  await writeFile(join(dir, 'cloud/ca/rootCA.crt'), toPem('CERTIFICATE', ca.cert));
  await writeFile(join(dir, 'cloud/ca/rootCA.key'), toPem('EC PRIVATE KEY', ca.key), { mode: 0o600 });
  const [wsPort, httpsPort] = [await freePort(), await freePort()];
  const cloudYaml = `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${cp.cloudcoreKubeconfigPath}
modules:
  edgeController: {enable: true}
  cloudHub:
    advertiseAddress: [127.0.0.1]
    tlsCAFile: ${join(dir, 'cloud/ca/rootCA.crt')}
    tlsCAKeyFile: ${join(dir, 'cloud/ca/rootCA.key')}
    tlsCertFile: ${join(dir, 'cloud/certs/server.crt')}
    tlsPrivateKeyFile: ${join(dir, 'cloud/certs/server.key')}
    websocket: {enable: true, address: 127.0.0.1, port: ${wsPort}}
    https: {enable: true, address: 127.0.0.1, port: ${httpsPort}}
`;
  const edgeYaml = `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${join(dir, 'edge/edgecore.db')}
modules:
  eventBus: {enable: false}
  deviceTwin: {enable: false}
  metaManager: {enable: true}
  edgeHub:
    enable: true
    heartbeat: 2
    httpServer: https://127.0.0.1:${httpsPort}
    token: ${createToken(ca, 12)}
    tlsCaFile: ${join(dir, 'edge/ca/rootCA.crt')}
    tlsCertFile: ${join(dir, 'edge/certs/server.crt')}
    tlsPrivateKeyFile: ${join(dir, 'edge/certs/server.key')}
    websocket: {enable: true, server: "127.0.0.1:${wsPort}"}
  edged:
    enable: true
    hostnameOverride: ${NODE}
    nodeIP: 127.0.0.1
    rootDirectory: ${JSON.stringify(join(dir, 'kubelet'))}
    tailoredKubeletConfig:
      containerRuntimeEndpoint: ${cd.endpoint}
      imageServiceEndpoint: ${cd.endpoint}
      podLogsDir: ${JSON.stringify(cd.podLogDir)}
      staticPodPath: ${JSON.stringify(join(dir, 'manifests-none'))}
      nodeStatusUpdateFrequency: 2s
      nodeLeaseDurationSeconds: 8
`;
  cloud = new Kernel({
    config: parseConfig(cloudLayout, cloudYaml, 'cloudcore.yaml'),
    registry: cloudRegistry,
    logger,
  });
  await cloud.start();
  edgeStarted = Date.now();
  edge = new Kernel({
    config: parseConfig(edgeLayout, edgeYaml, join(dir, 'edge/edgecore.yaml')),
    registry: edgeRegistry.filter((e) => edgeModules.has(e.configKey)),
    logger,
  });
  await edge.start();
}, 600_000);

afterAll(async () => {
  cri?.close();
  await edge?.stop();
  await cloud?.stop();
  await cp?.stop();
  await cleanup();
}, 120_000);

describe('kubectl drives the edge (real control plane, cloudHub + edgeController, edgeHub + metaManager + edged)', () => {
  it('registers the edge node: Ready, with the edge role label and the cloudcore annotation; its lease renews', async () => {
    let node: Obj | undefined;
    await waitFor(async () => ready((node = await getJson(['node', NODE]))), {
      what: `node ${NODE} Ready`,
      timeoutMs: 60_000,
      intervalMs: 250,
      details: () => JSON.stringify(node?.status?.conditions),
    });
    console.info(`FIGURE edge kernel start -> node Ready in the API: ${Date.now() - edgeStarted} ms`);
    expect(node!.metadata.labels).toMatchObject({
      'node-role.kubernetes.io/edge': '',
      'node-role.kubernetes.io/agent': '',
      'kubernetes.io/hostname': NODE,
    });
    expect(node!.metadata.annotations?.cloudcore).toBe('127.0.0.1');

    let lease: Obj | undefined;
    await waitFor(
      async () => (lease = await getJson(['lease', '-n', 'kube-node-lease', NODE])) !== undefined,
      {
        what: 'the node lease',
        timeoutMs: 30_000,
        intervalMs: 250,
      },
    );
    expect(lease!.spec.holderIdentity).toBe(NODE);
    const first = lease!.spec.renewTime;
    await waitFor(
      async () => (await getJson(['lease', '-n', 'kube-node-lease', NODE]))?.spec.renewTime !== first,
      {
        what: 'the lease renewed',
        timeoutMs: 30_000,
        intervalMs: 250,
      },
    );
  }, 120_000);

  it('runs a pod bound to the edge node (Running in the API, hostPort answers) and removes it on kubectl delete', async () => {
    const port = await freePort();
    const manifest = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web', namespace: 'default', labels: { app: 'web' } },
      spec: {
        nodeName: NODE,
        automountServiceAccountToken: false,
        terminationGracePeriodSeconds: 2,
        containers: [
          {
            name: 'web',
            image: BUSYBOX_IMAGE,
            imagePullPolicy: 'IfNotPresent',
            command: [
              'sh',
              '-c',
              'mkdir -p /www && echo hello-kubectl > /www/index.html && exec httpd -f -p 80 -h /www',
            ],
            ports: [{ containerPort: 80, hostPort: port, protocol: 'TCP' }],
          },
        ],
      },
    };
    const applied = Date.now();
    await cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(manifest) });
    let pod: Obj | undefined;
    await waitFor(
      async () => {
        pod = await getJson(['pod', 'web', '-n', 'default']);
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
    expect(await cri.listPodSandbox({ 'io.kubernetes.pod.uid': uid })).toHaveLength(1);

    const deleted = Date.now();
    await cp.kubectl(['delete', 'pod', 'web', '-n', 'default', '--wait=false']);
    await waitFor(async () => (await getJson(['pod', 'web', '-n', 'default'])) === undefined, {
      what: 'pod web gone from the API',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    console.info(`FIGURE kubectl delete -> pod gone from the API: ${Date.now() - deleted} ms`);
    await waitFor(async () => (await cri.listPodSandbox({ 'io.kubernetes.pod.uid': uid })).length === 0, {
      what: 'the sandbox removed',
      timeoutMs: 30_000,
    });
    expect(await cri.listContainers({ 'io.kubernetes.pod.uid': uid })).toHaveLength(0);
    await expect(httpGet(port)).rejects.toThrow();
  }, 180_000);
});
