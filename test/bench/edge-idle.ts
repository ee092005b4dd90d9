/**
 * Issue 11's edge idle memory, side by side with its anchor in one run: our edgecore
 * (dist/bin/edgecore.js, or `EDGECORE_BIN`) and KubeEdge's own Go edgecore v1.23.1 (built from its
 * Go module, test/peers/kubeedge.ts), each joined in turn with a token to the same cloudcore
 * (dist/bin/cloudcore.js: cloudHub, edgeController) on a real control plane, edged on the same
 * private containerd, 0 pods, KubeEdge's default modules (edgeHub, edged, metaManager, eventBus with
 * its internal broker, deviceTwin; metaServer off). Each is measured `BENCH_EDGE_IDLE_S` (10) s
 * after its Node is Ready: resident memory (all, anonymous, file pages: mostly the binary, the node
 * executable for ours and the 97 MB Go executable for KubeEdge's), peak, and CPU over 5 s. Go's
 * edgecore is also measured with edgeHub, metaManager and edged only. The ratio ours/Go is given
 * for all memory and for anonymous memory.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createToken } from '../../plugins/cloudhub/token.js';
import { startContainerd, type ContainerdPeer } from '../peers/containerd.js';
import { startControlPlane, type ControlPlane } from '../peers/kube.js';
import { KUBEEDGE_VERSION, startGoEdgecore } from '../peers/kubeedge.js';
import { freePort, sleep, spawnPeer, waitFor } from '../peers/util.js';
import { round, type Figure } from './report.js';
import {
  benchCa,
  cpuTicks,
  edgeCloudcoreYaml,
  loadAverage,
  startCloudcore,
  stopProcess,
} from './sim-edges.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url)).replace(/dist\/$/, '');

interface Idle {
  rss: number;
  anon: number;
  file: number;
  peak: number;
  cpu: number;
}

/** A joined edge under test: its pid, its recent output, and how to stop it. */
interface RunningEdge {
  pid: number;
  output(): string;
  stop(): Promise<void>;
}

/** Waits for `node` Ready, idles, and reads the edge's memory (MB) and CPU (%) from /proc. */
async function measureIdle(plane: ControlPlane, edge: RunningEdge, node: string): Promise<Idle> {
  await waitFor(
    async () => {
      const res = await plane.get(`/api/v1/nodes/${node}`);
      if (res.status !== 200) return false;
      const n = JSON.parse(res.body) as { status?: { conditions?: { type: string; status: string }[] } };
      return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    },
    { what: `the edge node ${node} Ready`, timeoutMs: 120_000, details: () => edge.output().slice(-4000) },
  );
  await sleep(Number(process.env.BENCH_EDGE_IDLE_S ?? 10) * 1000);
  const ticks0 = cpuTicks(edge.pid);
  await sleep(5000);
  const cpu = ((cpuTicks(edge.pid) - ticks0) / 100 / 5) * 100;
  const status = readFileSync(`/proc/${edge.pid}/status`, 'utf8');
  const mb = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1]) / 1024;
  return { rss: mb('VmRSS'), anon: mb('RssAnon'), file: mb('RssFile'), peak: mb('VmHWM'), cpu };
}

const figuresOf = (name: string, m: Idle): Figure[] => [
  { name: `${name}_rss`, value: round(m.rss), unit: 'MB' },
  { name: `${name}_rss_anon`, value: round(m.anon), unit: 'MB' },
  { name: `${name}_rss_file`, value: round(m.file), unit: 'MB' },
  { name: `${name}_peak_rss`, value: round(m.peak), unit: 'MB' },
  { name: `${name}_cpu`, value: round(m.cpu), unit: '%' },
];

/** Our edgecore process with KubeEdge's default modules, joined with a token. */
async function startOurs(
  dir: string,
  cd: ContainerdPeer,
  node: string,
  token: string,
  ports: { ws: number; https: number },
): Promise<RunningEdge> {
  const edgeDir = join(dir, 'edge');
  mkdirSync(edgeDir);
  const config = join(edgeDir, 'edgecore.yaml');
  writeFileSync(
    config,
    `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${join(edgeDir, 'edgecore.db')}
modules:
  edgeHub:
    enable: true
    httpServer: https://127.0.0.1:${ports.https}
    token: ${token}
    tlsCaFile: ${join(edgeDir, 'ca', 'rootCA.crt')}
    tlsCertFile: ${join(edgeDir, 'certs', 'server.crt')}
    tlsPrivateKeyFile: ${join(edgeDir, 'certs', 'server.key')}
    websocket: {enable: true, server: "127.0.0.1:${ports.ws}"}
  edged:
    enable: true
    hostnameOverride: ${node}
    nodeIP: 127.0.0.1
    rootDirectory: ${JSON.stringify(join(edgeDir, 'kubelet'))}
    tailoredKubeletConfig:
      containerRuntimeEndpoint: ${cd.endpoint}
      imageServiceEndpoint: ${cd.endpoint}
      podLogsDir: ${JSON.stringify(cd.podLogDir)}
      staticPodPath: ${JSON.stringify(join(edgeDir, 'manifests-none'))}
  metaManager: {enable: true}
  eventBus: {enable: true, mqttMode: 0, mqttServerInternal: "tcp://127.0.0.1:${await freePort()}"}
  deviceTwin: {enable: true, dmiSockPath: "${edgeDir}/"}
kernel:
  health: {enable: false}
`,
  );
  return spawnPeer(
    process.execPath,
    [process.env.EDGECORE_BIN ?? join(repoRoot, 'dist', 'bin', 'edgecore.js'), '--config', config],
    { name: 'edgecore', cwd: edgeDir },
  );
}

export async function edgeIdleBench(): Promise<Figure[]> {
  const [plane, cd] = await Promise.all([startControlPlane(), startContainerd()]);
  const dir = mkdtempSync(join(tmpdir(), 'bench-edge-idle-'));
  let cloud: Awaited<ReturnType<typeof startCloudcore>> | undefined;
  let edge: RunningEdge | undefined;
  try {
    const { ca, cloudHubTls } = await benchCa(dir);
    const ports = { ws: await freePort(), https: await freePort() };
    const config = join(dir, 'cloudcore.yaml');
    writeFileSync(
      config,
      edgeCloudcoreYaml({
        kubeConfig: plane.cloudcoreKubeconfigPath,
        cloudHubTls,
        ports,
        syncController: false,
      }),
    );
    cloud = await startCloudcore(config);
    const goEdge = (node: string, defaultModules: boolean): Promise<RunningEdge> =>
      startGoEdgecore({
        nodeName: node,
        server: `127.0.0.1:${ports.ws}`,
        httpServer: `https://127.0.0.1:${ports.https}`,
        token: createToken(ca, 12),
        containerd: cd,
        defaultModules,
      });
    const runs: [string, string, () => Promise<RunningEdge>][] = [
      [
        'edgecore_idle_connected_default_modules',
        'idle-ours',
        () => startOurs(dir, cd, 'idle-ours', createToken(ca, 12), ports),
      ],
      [
        `go_edgecore_${KUBEEDGE_VERSION}_idle_default_modules`,
        'idle-go-default',
        () => goEdge('idle-go-default', true),
      ],
      [
        `go_edgecore_${KUBEEDGE_VERSION}_idle_edged_edgehub_only`,
        'idle-go-min',
        () => goEdge('idle-go-min', false),
      ],
    ];
    const measured: Idle[] = [];
    const figures: Figure[] = [];
    for (const [name, node, start] of runs) {
      edge = await start();
      const m = await measureIdle(plane, edge, node);
      await edge.stop();
      edge = undefined;
      measured.push(m);
      figures.push(...figuresOf(name, m));
    }
    const [ours, go] = measured as [Idle, Idle];
    figures.push(
      { name: 'edgecore_idle_rss_vs_go', value: round(ours.rss / go.rss), unit: 'x', goal: '<= 0.6' },
      { name: 'edgecore_idle_rss_anon_vs_go', value: round(ours.anon / go.anon), unit: 'x' },
      { name: 'edge_idle_loadavg_1m', value: loadAverage(), unit: '' },
    );
    return figures;
  } finally {
    await edge?.stop();
    await stopProcess(cloud);
    await cd.stop();
    await plane.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
