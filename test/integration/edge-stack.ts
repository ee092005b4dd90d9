/**
 * The full stack of the "kubectl drives the edge" tests: a real control plane with its controllers,
 * a private containerd, a cloud kernel (cloudHub + edgeController on the cloudcore identity) and an
 * edge kernel (edgeHub, metaManager, edged) over real mutual TLS on loopback. Either kernel can
 * be stopped and started again on the same database, certificates and containerd (an edgecore or
 * a cloudcore restart). Options: a TCP proxy between edgeHub and cloudHub's websocket (to cut or
 * saturate the link), KubeEdge's ObjectSync CRDs (syncController's reliable delivery across a
 * cloudcore restart), a short node-monitor grace period in the control plane, the stream tunnel
 * (cloudStream + edgeStream, `kubectl logs/exec/attach`).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig } from '../../kernel/config/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger, type LogLevel } from '../../kernel/log.js';
import { CriClient } from '../../plugins/edged/cri.js';
import { cloudLayout, cloudRegistry, edgeLayout, edgeRegistry } from '../../plugins/registry.js';
import { startContainerd, type ContainerdPeer } from '../peers/containerd.js';
import { startControlPlane, type ControlPlane } from '../peers/kube.js';
import { tempDir, waitFor } from '../peers/util.js';
import { prepareLink, type LinkSetup } from '../helpers/link.js';
import { createServerCert, toPem } from '../../plugins/cloudhub/pki.js';
import { freePort } from '../peers/util.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const logger = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel);

/** Ports of the stream tunnel when the stack has it (`startEdgeStack(name, { stream: true })`). */
export interface StreamPorts {
  tunnelPort: number;
  /** cloudStream's stream server: the kubelet port the node advertises once its tunnel is up. */
  streamPort: number;
  /** edged's kubelet-API server on the edge's loopback. */
  kubeletPort: number;
}

/**
 * cloudStream and edgeStream sections: the tunnel's server certificate from the link's CA (the
 * stream server shows the same one), the cluster CA to verify the API server's kubelet client.
 */
async function streamSections(
  dir: string,
  link: LinkSetup,
  clusterCa: string,
): Promise<{ ports: StreamPorts; cloud: string; edge: string }> {
  const ports = { tunnelPort: await freePort(), streamPort: await freePort(), kubeletPort: await freePort() };
  const server = await createServerCert(link.ca, { advertiseAddress: ['127.0.0.1'], dnsNames: [] });
  await mkdir(join(dir, 'cloud/stream'), { recursive: true });
  const [cert, key] = [join(dir, 'cloud/stream/stream.crt'), join(dir, 'cloud/stream/stream.key')];
  await writeFile(cert, toPem('CERTIFICATE', server.cert));
  await writeFile(key, toPem('EC PRIVATE KEY', server.key), { mode: 0o600 });
  const cloud = `  cloudStream:
    enable: true
    tlsTunnelCAFile: ${join(dir, 'cloud/ca/rootCA.crt')}
    tlsTunnelCertFile: ${cert}
    tlsTunnelPrivateKeyFile: ${key}
    tunnelPort: ${ports.tunnelPort}
    tlsStreamCAFile: ${clusterCa}
    tlsStreamCertFile: ${cert}
    tlsStreamPrivateKeyFile: ${key}
    streamPort: ${ports.streamPort}
`;
  const edge = `  edgeStream:
    enable: true
    server: 127.0.0.1:${ports.tunnelPort}
    tlsTunnelCAFile: ${join(dir, 'edge/ca/rootCA.crt')}
    tlsTunnelCertFile: ${join(dir, 'edge/certs/server.crt')}
    tlsTunnelPrivateKeyFile: ${join(dir, 'edge/certs/server.key')}
`;
  return { ports, cloud, edge };
}

export interface Condition {
  type: string;
  status: string;
}

/** The parts of a Kubernetes object these tests read. */
export interface Obj {
  metadata: {
    name: string;
    uid: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec: Record<string, unknown> & { renewTime?: string; nodeName?: string };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: Condition[];
    containerStatuses?: { name: string; ready: boolean; containerID?: string }[];
  };
}

export interface EdgeStackOptions {
  /** edgeHub dials cloudHub's websocket through a {@link TcpProxy} (`stack.proxy`). */
  proxy?: boolean;
  /**
   * KubeEdge's ObjectSync CRDs (from `crds/`) installed, so cloudHub keeps what the edge
   * acknowledged in the API and syncController (on by default, idle without them) resyncs.
   */
  objectSync?: boolean;
  /** kube-controller-manager's node-monitor grace period (s); default its own (50 s). */
  nodeMonitorGracePeriodSeconds?: number;
  /** cloudStream and edgeStream (`kubectl logs/exec/attach`), edged's kubelet-API server on a free port. */
  stream?: boolean;
  /** More edge modules, started with the three above: config key → its YAML flow mapping. */
  edgeModules?: Record<string, string>;
  /** More lines of edged's `tailoredKubeletConfig`, e.g. `clusterDNS: [192.0.2.2]`. */
  kubelet?: string[];
  /**
   * `false`: no cloud kernel is started; the test runs another cloudcore (KubeEdge's Go one) on
   * `stack.link`'s ports and CA, which the edge dials. Default true.
   */
  cloud?: boolean;
}

export interface EdgeStack {
  readonly nodeName: string;
  /** cloudHub's CA and ports (another edge, e.g. a Go edgecore, can join the same cloud). */
  readonly link: LinkSetup;
  /** Set when the stack runs cloudStream and edgeStream. */
  readonly stream: StreamPorts | undefined;
  readonly cp: ControlPlane;
  readonly cd: ContainerdPeer;
  readonly cri: CriClient;
  readonly dir: string;
  /** The proxy on the edgeHub → cloudHub websocket path (option `proxy`). */
  readonly proxy: TcpProxy | undefined;
  /** The running edge kernel (undefined while stopped). */
  readonly edge: Kernel | undefined;
  /** Starts the edge kernel (the same config, database and containerd each time); resolves once started. */
  startEdge(): Promise<void>;
  stopEdge(): Promise<void>;
  /** The running cloud kernel (undefined while stopped); it runs once startEdgeStack resolves. */
  readonly cloud: Kernel | undefined;
  /** Starts the cloud kernel again (the same config, CA and ports); resolves once started. */
  startCloud(): Promise<void>;
  stopCloud(): Promise<void>;
  /** `kubectl get <args> -o json`; undefined when NotFound. */
  getJson(args: string[]): Promise<Obj | undefined>;
  /** Waits (60 s at most) for the node Ready in the API; resolves with the node. */
  waitNodeReady(what?: string): Promise<Obj>;
  /** `kubectl apply` of these objects. */
  apply(objects: Record<string, unknown>[]): Promise<string>;
  /** Waits (90 s at most) until `ok` holds for pod `name` (undefined while not in the API); resolves with it. */
  waitPod(name: string, what: string, ok: (p: Obj | undefined) => boolean): Promise<Obj>;
  stop(): Promise<void>;
}

export const ready = (o: Obj | undefined): boolean =>
  o?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

export const runningReady = (p: Obj | undefined): boolean => p?.status?.phase === 'Running' && ready(p);

/**
 * GET http://<host>:<port><path> (host 127.0.0.1 by default): the body. Rejects on a connection
 * error, and when the whole answer (body included) takes over 2 s, so a check built on it never
 * hangs a wait.
 */
export async function httpGet(port: number, path = '/', host = '127.0.0.1'): Promise<string> {
  const res = await fetch(`http://${host}:${port}${path}`, { signal: AbortSignal.timeout(2000) });
  return res.text();
}

const CRDS = ['objectsync_v1alpha1.yaml', 'cluster_objectsync_v1alpha1.yaml'];

export async function startEdgeStack(nodeName: string, opts: EdgeStackOptions = {}): Promise<EdgeStack> {
  const [cp, cd] = await Promise.all([
    startControlPlane({
      withControllers: true,
      nodeMonitorGracePeriodSeconds: opts.nodeMonitorGracePeriodSeconds,
    }),
    startContainerd(),
  ]);
  const extraModules = Object.entries(opts.edgeModules ?? {});
  const cri = new CriClient({ runtimeEndpoint: cd.endpoint, timeoutMs: 30_000 });
  const dir = await tempDir(`edge-stack-${nodeName}`);
  const link = await prepareLink(dir);
  const stream = opts.stream ? await streamSections(dir, link, cp.caPath) : undefined;
  const modules = new Set([
    'metaManager',
    'edged',
    'edgeHub',
    ...(stream ? ['edgeStream'] : []),
    ...extraModules.map(([k]) => k),
  ]);
  const proxy = opts.proxy ? await startTcpProxy(link.wsPort) : undefined;
  if (opts.objectSync) {
    for (const f of CRDS) await cp.kubectl(['apply', '-f', join(import.meta.dirname, '../../crds', f)]);
    await cp.waitForCrds([
      'objectsyncs.reliablesyncs.kubeedge.io',
      'clusterobjectsyncs.reliablesyncs.kubeedge.io',
    ]);
  }
  const cloudYaml = `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${cp.cloudcoreKubeconfigPath}
modules:
  edgeController: {enable: true}
${link.cloudHub}${stream?.cloud ?? ''}`;
  const edgeYaml = `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${join(dir, 'edge/edgecore.db')}
modules:
  eventBus: {enable: false}
  deviceTwin: {enable: false}
  metaManager: {enable: true}
${link.edgeHub('', proxy?.address)}  edged:
    enable: true
    hostnameOverride: ${nodeName}
    nodeIP: 127.0.0.1
    rootDirectory: ${JSON.stringify(join(dir, 'kubelet'))}
    tailoredKubeletConfig:
      containerRuntimeEndpoint: ${cd.endpoint}
      imageServiceEndpoint: ${cd.endpoint}
      podLogsDir: ${JSON.stringify(cd.podLogDir)}
      staticPodPath: ${JSON.stringify(join(dir, 'manifests-none'))}
      nodeStatusUpdateFrequency: 2s
      nodeLeaseDurationSeconds: 8
${stream ? `      readOnlyPort: ${stream.ports.kubeletPort}\n` : ''}${(opts.kubelet ?? []).map((l) => `      ${l}\n`).join('')}${stream?.edge ?? ''}${extraModules.map(([k, v]) => `  ${k}: ${v}\n`).join('')}`;
  let cloud: Kernel | undefined;
  let edge: Kernel | undefined;
  const stack: EdgeStack = {
    nodeName,
    link,
    stream: stream?.ports,
    cp,
    cd,
    cri,
    dir,
    proxy,
    get edge() {
      return edge;
    },
    get cloud() {
      return cloud;
    },
    async startCloud() {
      if (cloud) throw new Error('the cloud kernel is running already');
      cloud = new Kernel({
        config: parseConfig(cloudLayout, cloudYaml, 'cloudcore.yaml'),
        registry: cloudRegistry,
        logger,
      });
      await cloud.start();
    },
    async stopCloud() {
      await cloud?.stop();
      cloud = undefined;
    },
    async startEdge() {
      if (edge) throw new Error('the edge kernel is running already');
      edge = new Kernel({
        config: parseConfig(edgeLayout, edgeYaml, join(dir, 'edge/edgecore.yaml')),
        registry: edgeRegistry.filter((e) => modules.has(e.configKey)),
        logger,
      });
      await edge.start();
    },
    async stopEdge() {
      await edge?.stop();
      edge = undefined;
    },
    async getJson(args) {
      try {
        return JSON.parse(await cp.kubectl(['get', ...args, '-o', 'json'])) as Obj;
      } catch (err) {
        if (String(err).includes('NotFound')) return undefined;
        throw err;
      }
    },
    async waitNodeReady(what = `node ${nodeName} Ready`) {
      let node: Obj | undefined;
      await waitFor(async () => ready((node = await stack.getJson(['node', nodeName]))), {
        what,
        timeoutMs: 60_000,
        intervalMs: 250,
        details: () => JSON.stringify(node?.status?.conditions),
      });
      return node!;
    },
    apply(objects) {
      return cp.kubectl(['apply', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') });
    },
    async waitPod(name, what, ok) {
      let p: Obj | undefined;
      await waitFor(async () => ok((p = await stack.getJson(['pod', name]))), {
        what: `pod ${name}: ${what}`,
        timeoutMs: 90_000,
        intervalMs: 250,
        details: () => JSON.stringify(p?.status),
      });
      return p!;
    },
    async stop() {
      cri.close();
      await edge?.stop();
      await cloud?.stop();
      await proxy?.stop();
      await cp.stop();
    },
  };
  if (opts.cloud !== false) await stack.startCloud();
  return stack;
}
