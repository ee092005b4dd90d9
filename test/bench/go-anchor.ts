/**
 * The Go anchor of issue 11, measured instead of quoted: KubeEdge's own edgecore (v1.23.1, built
 * from its Go module, test/peers/kubeedge.ts) joined with a token to our cloudcore
 * (dist/bin/cloudcore.js: cloudHub, edgeController) on a real control plane, edged on a private
 * containerd, 0 pods: its resident memory (all, and its anonymous part) and CPU after
 * `BENCH_EDGE_IDLE_S` (10) idle seconds once its Node is Ready, as `scale`'s edgeIdle measures
 * ours. Twice: with KubeEdge's default modules (eventBus with its internal broker, deviceTwin;
 * metaServer off), then with edgeHub, metaManager and edged only.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createToken } from '../../plugins/cloudhub/token.js';
import { startContainerd } from '../peers/containerd.js';
import type { ControlPlane } from '../peers/kube.js';
import { startControlPlane } from '../peers/kube.js';
import { KUBEEDGE_VERSION, startGoEdgecore, type GoEdgecore } from '../peers/kubeedge.js';
import { freePort, waitFor } from '../peers/util.js';
import { round, type Figure } from './report.js';
import { benchCa, cpuTicks, loadAverage, sleep, startCloudcore, stopProcess } from './sim-edges.js';

const NODE = 'go-anchor-edge';

/** One Go edgecore's figures once its Node is Ready and it idled `BENCH_EDGE_IDLE_S` seconds. */
async function idle(plane: ControlPlane, go: GoEdgecore, node: string, tag: string): Promise<Figure[]> {
  await waitFor(
    async () => {
      const res = await plane.get(`/api/v1/nodes/${node}`);
      if (res.status !== 200) return false;
      const n = JSON.parse(res.body) as { status?: { conditions?: { type: string; status: string }[] } };
      return n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
    },
    { what: `the Go edge node ${node} Ready`, timeoutMs: 120_000, details: () => go.output().slice(-4000) },
  );
  await sleep(Number(process.env.BENCH_EDGE_IDLE_S ?? 10) * 1000);
  const ticks0 = cpuTicks(go.pid);
  await sleep(5000);
  const idleCpu = ((cpuTicks(go.pid) - ticks0) / 100 / 5) * 100;
  const mem = await go.memoryKb();
  const name = `go_edgecore_${KUBEEDGE_VERSION}_idle_${tag}`;
  return [
    { name: `${name}_rss`, value: round(mem.VmRSS / 1024), unit: 'MB' },
    { name: `${name}_rss_anon`, value: round(mem.RssAnon / 1024), unit: 'MB' },
    { name: `${name}_cpu`, value: round(idleCpu), unit: '%' },
  ];
}

export async function goAnchorBench(): Promise<Figure[]> {
  const [plane, cd] = await Promise.all([startControlPlane(), startContainerd()]);
  const dir = mkdtempSync(join(tmpdir(), 'bench-go-anchor-'));
  let cloud: Awaited<ReturnType<typeof startCloudcore>> | undefined;
  let edge: GoEdgecore | undefined;
  try {
    const { ca, cloudHubTls } = await benchCa(dir);
    const [wsPort, httpsPort] = [await freePort(), await freePort()];
    const config = join(dir, 'cloudcore.yaml');
    writeFileSync(
      config,
      `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${plane.cloudcoreKubeconfigPath}
modules:
  cloudHub:
    advertiseAddress: [127.0.0.1]
${cloudHubTls}    websocket: {enable: true, address: 127.0.0.1, port: ${wsPort}}
    https: {enable: true, address: 127.0.0.1, port: ${httpsPort}}
  edgeController: {enable: true}
  syncController: {enable: false}
  deviceController: {enable: false}
  dynamicController: {enable: false}
  taskManager: {enable: false}
kernel:
  health: {enable: false}
`,
    );
    cloud = await startCloudcore(config);
    const figures: Figure[] = [];
    for (const [tag, defaultModules] of [
      ['default_modules', true],
      ['edged_edgehub_only', false],
    ] as const) {
      const node = `${NODE}-${defaultModules ? 'default' : 'min'}`;
      edge = await startGoEdgecore({
        nodeName: node,
        server: `127.0.0.1:${wsPort}`,
        httpServer: `https://127.0.0.1:${httpsPort}`,
        token: createToken(ca, 12),
        containerd: cd,
        defaultModules,
      });
      figures.push(...(await idle(plane, edge, node, tag)));
      await edge.stop();
      edge = undefined;
    }
    figures.push({ name: 'go_anchor_loadavg_1m', value: loadAverage(), unit: '' });
    return figures;
  } finally {
    await edge?.stop();
    await stopProcess(cloud);
    await cd.stop();
    await plane.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
