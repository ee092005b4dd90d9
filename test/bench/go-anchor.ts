/**
 * The Go anchor of issue 11, measured instead of quoted: KubeEdge's own edgecore (v1.23.1, built
 * from its Go module, test/peers/kubeedge.ts) joined with a token to our cloudcore
 * (dist/bin/cloudcore.js: cloudHub, edgeController) on a real control plane, edged on a private
 * containerd, KubeEdge's default modules (eventBus with its internal broker, deviceTwin, metaServer
 * off), 0 pods: its resident memory and CPU after `BENCH_EDGE_IDLE_S` (10) idle seconds once its
 * Node is Ready, as `scale`'s edgeIdle measures ours.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createToken } from '../../plugins/cloudhub/token.js';
import { startContainerd } from '../peers/containerd.js';
import { KUBEEDGE_VERSION, startGoEdgecore } from '../peers/kubeedge.js';
import { startControlPlane } from '../peers/kube.js';
import { freePort, waitFor } from '../peers/util.js';
import { round, type Figure } from './report.js';
import { benchCa, cpuTicks, loadAverage, sleep, startCloudcore, stopProcess } from './sim-edges.js';

const NODE = 'go-anchor-edge';

export async function goAnchorBench(): Promise<Figure[]> {
  const [plane, cd] = await Promise.all([startControlPlane(), startContainerd()]);
  const dir = mkdtempSync(join(tmpdir(), 'bench-go-anchor-'));
  let cloud: Awaited<ReturnType<typeof startCloudcore>> | undefined;
  let edge: Awaited<ReturnType<typeof startGoEdgecore>> | undefined;
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
    edge = await startGoEdgecore({
      nodeName: NODE,
      server: `127.0.0.1:${wsPort}`,
      httpServer: `https://127.0.0.1:${httpsPort}`,
      token: createToken(ca, 12),
      containerd: cd,
      defaultModules: true,
    });
    const go = edge;
    await waitFor(
      async () => {
        const res = await plane.get(`/api/v1/nodes/${NODE}`);
        if (res.status !== 200) return false;
        const node = JSON.parse(res.body) as { status?: { conditions?: { type: string; status: string }[] } };
        return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
      },
      { what: `the Go edge node ${NODE} Ready`, timeoutMs: 120_000, details: () => go.output().slice(-4000) },
    );
    await sleep(Number(process.env.BENCH_EDGE_IDLE_S ?? 10) * 1000);
    const ticks0 = cpuTicks(go.pid);
    await sleep(5000);
    const idleCpu = ((cpuTicks(go.pid) - ticks0) / 100 / 5) * 100;
    const rss = (await go.rssBytes()) / 1024 / 1024;
    const tag = `go_edgecore_${KUBEEDGE_VERSION}`;
    return [
      { name: `${tag}_idle_rss_connected_default_modules`, value: round(rss), unit: 'MB' },
      { name: `${tag}_idle_cpu_connected`, value: round(idleCpu), unit: '%' },
      { name: 'go_anchor_loadavg_1m', value: loadAverage(), unit: '' },
    ];
  } finally {
    await edge?.stop();
    await stopProcess(cloud);
    await cd.stop();
    await plane.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
