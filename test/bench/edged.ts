/**
 * edged benchmarks on a private containerd (test/peers): edged's own overhead of a pod sync that
 * creates a pod (total sync time minus time spent waiting on CRI calls), the RSS growth of the
 * process driving 0, 10 and 30 pods (edged's pod manager + CRI client in this process), and the
 * idle RSS and CPU of a real `edgecore` process (dist/bin/edgecore.js, metaManager + edged) holding
 * 0, 10 and 30 pods, to compare with the Go edgecore v1.15.4 (83-105 MB on the same machine).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../kernel/config/index.js';
import { newMessage, type Message } from '../../kernel/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger } from '../../kernel/log.js';
import { edgeRegistry } from '../../plugins/registry.js';
import { CriClient } from '../../plugins/edged/cri.js';
import { PodManager } from '../../plugins/edged/podmanager.js';
import type { Pod, PodStatus } from '../../plugins/edged/types.js';
import { BUSYBOX_IMAGE, buildBusyboxImage, startContainerd } from '../peers/containerd.js';
import { cleanup, sleep, spawnPeer, type Peer } from '../peers/util.js';
import { latencyFigures, round, type Figure } from './report.js';
import { edgeLayout } from '../../plugins/registry.js';

export async function edgedBench(): Promise<Figure[]> {
  const figures = await inProcessFigures();
  figures.push(...(await edgecoreProcessFigures()));
  return figures;
}

async function inProcessFigures(): Promise<Figure[]> {
  const cd = await startContainerd();
  const work = await mkdtemp(join(tmpdir(), 'edged-bench-'));
  const cri = new CriClient({ runtimeEndpoint: cd.endpoint, timeoutMs: 60_000 });
  const figures: Figure[] = [];
  try {
    await buildBusyboxImage(cd.socket, BUSYBOX_IMAGE);
    const running = new Set<string>();
    const pm = new PodManager(
      cri,
      {
        podLogsDir: cd.podLogDir,
        rootDirectory: work,
        cgroupDriver: 'cgroupfs',
        cgroupsPerQOS: true,
        dns: { servers: [], searches: [], options: [] },
      },
      {
        log: createLogger('silent'),
        nodeIP: () => '127.0.0.1',
        runtimeName: () => 'containerd',
        networkReady: () => true,
        reportStatus: async (pod: Pod, status: PodStatus) => {
          if (status.phase === 'Running') running.add(pod.metadata.uid ?? '');
        },
        podTerminated: async () => undefined,
        getObject: async () => undefined,
        requestToken: () => Promise.reject(new Error('no service account tokens in this benchmark')),
      },
    );
    pm.start();
    const mkPod = (i: number): Pod => ({
      metadata: {
        name: `bench-${i}`,
        namespace: 'default',
        uid: `bench-0000-4000-8000-${String(i).padStart(12, '0')}`,
      },
      spec: {
        hostNetwork: true,
        terminationGracePeriodSeconds: 0,
        containers: [
          { name: 'c', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sleep', '3600'] },
        ],
      },
    });
    const waitRunning = async (n: number): Promise<void> => {
      const deadline = Date.now() + 120_000;
      while (running.size < n) {
        if (Date.now() > deadline) throw new Error(`only ${running.size}/${n} pods Running`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    for (let i = 0; i < 10; i++) {
      pm.upsert(mkPod(i));
      await waitRunning(i + 1); // one at a time: overhead not inflated by queueing
    }
    for (let i = 10; i < 30; i++) pm.upsert(mkPod(i));
    await waitRunning(30);
    const overheads = pm.syncs.slice(0, 10).map((s) => (s.totalMs - s.criMs) * 1e6);
    figures.push(...latencyFigures('edged_pod_create_overhead', overheads, 'ms', '<= 50'));
    figures.push(
      ...latencyFigures(
        'edged_pod_create_total',
        pm.syncs.slice(0, 10).map((s) => s.totalMs * 1e6),
        'ms',
      ),
    );
    for (const p of pm.list()) pm.remove(p);
    const deadline = Date.now() + 120_000;
    while (pm.list().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await pm.stop();
  } finally {
    cri.close();
    await cleanup();
    await rm(work, { recursive: true, force: true });
  }
  return figures;
}

// ---------------------------------------------------------------------------------------------
// A real edgecore process
// ---------------------------------------------------------------------------------------------

const NODE = 'edge-bench';

/** The built edgecore: dist/bin/edgecore.js, found from this file in dist/ or in the sources. */
function edgecoreScript(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    for (const c of [join(dir, 'bin', 'edgecore.js'), join(dir, 'dist', 'bin', 'edgecore.js')]) {
      if (existsSync(c) && existsSync(join(dirname(dirname(c)), 'plugins', 'registry.js'))) return c;
    }
    dir = dirname(dir);
  }
  throw new Error('dist/bin/edgecore.js not found: run npm run build first');
}

function edgecoreYaml(work: string, endpoint: string, podLogsDir: string, metaOnly = false): string {
  return `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${JSON.stringify(join(work, 'edgecore.db'))}
modules:
  edgeHub: {enable: false}
  eventBus: {enable: false}
  deviceTwin: {enable: false}
  metaManager:
    enable: true
    metaServer: {enable: false}
  edged:
    enable: ${metaOnly ? 'false' : 'true'}
    hostnameOverride: ${NODE}
    nodeIP: 127.0.0.1
    rootDirectory: ${JSON.stringify(join(work, 'kubelet'))}
    tailoredKubeletConfig:
      containerRuntimeEndpoint: ${endpoint}
      imageServiceEndpoint: ${endpoint}
      podLogsDir: ${JSON.stringify(podLogsDir)}
      staticPodPath: ${JSON.stringify(join(work, 'manifests-none'))}
kernel:
  logLevel: error
`;
}

function benchPod(i: number): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `idle-${i}`,
      namespace: 'default',
      uid: `1d1e0000-0000-4000-8000-${String(i).padStart(12, '0')}`,
      resourceVersion: String(100 + i),
      creationTimestamp: '2026-01-01T00:00:00Z',
    },
    spec: {
      nodeName: NODE,
      hostNetwork: true,
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'c', image: BUSYBOX_IMAGE, imagePullPolicy: 'Never', command: ['sleep', '3600'] }],
    },
    status: {},
  };
}

/**
 * Pushes pods `from..to-1` the way the cloud does (`insert default/pod/<name>` from
 * edgecontroller, with `resourceversion`) into the real metaManager on edgecore's database file,
 * and waits for metaManager's ACK of each (the row is committed before the ACK).
 */
async function feedPods(yaml: string, from: number, to: number): Promise<void> {
  if (to <= from) return;
  const config = parseConfig(edgeLayout, yaml, 'edgecore-bench.yaml');
  const kernel = new Kernel({
    config,
    registry: edgeRegistry.filter((e) => e.configKey === 'metaManager'),
    logger: createLogger('silent'),
  });
  const acks = new Set<string>();
  kernel.bus.addModule('websocket', 'hub').attach(
    (m: Message) => {
      if (m.route.operation === 'response' && m.content === 'OK') acks.add(m.header.parent_msg_id ?? '');
    },
    () => undefined,
  );
  kernel.bus.addModule('edged', 'edged').attach(
    () => undefined,
    () => undefined,
  );
  await kernel.start();
  kernel.cloud.set(true);
  try {
    const ids: string[] = [];
    for (let i = from; i < to; i++) {
      const pod = benchPod(i);
      const msg = newMessage(
        {
          source: 'edgecontroller',
          group: 'resource',
          operation: 'insert',
          resource: `default/pod/idle-${i}`,
        },
        pod,
        { resourceVersion: String(100 + i) },
      );
      ids.push(msg.header.msg_id);
      await kernel.bus.send('metamanager', msg);
    }
    const deadline = Date.now() + 30_000;
    while (!ids.every((id) => acks.has(id))) {
      if (Date.now() > deadline) throw new Error(`metaManager acknowledged ${acks.size}/${ids.length} pods`);
      await sleep(20);
    }
  } finally {
    await kernel.stop();
  }
}

async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14 and 15)
}

/**
 * edgecore (dist) with metaManager + edged on the test containerd at 0, 10 and 30 pods: the pods
 * are fed through metaManager as the cloud would (into edgecore's database; edged gets them from
 * metaManager at start, as after a restart), edgecore starts, runs (or adopts) them, then idles
 * 15 s; RSS is the median of 10 samples over the next 10 s, CPU the share of one core meanwhile.
 * No cloud link (edgeHub is not built yet): node registration and status patches are refused
 * by metaManager as "not connected", as on an edge node that lost its cloud.
 */
async function edgecoreProcessFigures(): Promise<Figure[]> {
  const script = edgecoreScript();
  const cd = await startContainerd();
  const work = await mkdtemp(join(tmpdir(), 'edgecore-bench-'));
  const cri = new CriClient({ runtimeEndpoint: cd.endpoint, timeoutMs: 60_000 });
  const figures: Figure[] = [];
  let core: Peer | undefined;
  try {
    await buildBusyboxImage(cd.socket, BUSYBOX_IMAGE);
    const yaml = edgecoreYaml(work, cd.endpoint, cd.podLogDir);
    const configPath = join(work, 'edgecore.yaml');
    await writeFile(configPath, yaml);
    let fed = 0;
    const rssMb = new Map<number, number>();
    for (const n of [0, 10, 30]) {
      await feedPods(edgecoreYaml(work, cd.endpoint, cd.podLogDir, true), fed, n);
      fed = n;
      core = await spawnPeer(process.execPath, [script, '--config', configPath], {
        cwd: work,
        name: 'edgecore',
        graceMs: 10_000,
      });
      const pid = core.pid;
      const deadline = Date.now() + 120_000;
      for (;;) {
        if (!core.running()) throw new Error(`edgecore exited:\n${core.output()}`);
        const running = (await cri.listContainers({})).filter(
          (c) => c.state === 1 && (c.labels['io.kubernetes.pod.name'] ?? '').startsWith('idle-'),
        ).length;
        if (running >= n) break;
        if (Date.now() > deadline) throw new Error(`only ${running}/${n} pods running:\n${core.output()}`);
        await sleep(250);
      }
      await sleep(15_000);
      const t0 = await cpuTicks(pid);
      const s0 = Date.now();
      const samples: number[] = [];
      for (let i = 0; i < 10; i++) {
        samples.push(await rssKb(pid));
        await sleep(1000);
      }
      const cpu = ((await cpuTicks(pid)) - t0) / 100 / ((Date.now() - s0) / 1000);
      samples.sort((a, b) => a - b);
      const median = samples[Math.floor(samples.length / 2)] ?? NaN;
      rssMb.set(n, median / 1024);
      figures.push({ name: `edgecore_rss_${n}_pods`, value: round(median / 1024), unit: 'MB' });
      figures.push({ name: `edgecore_cpu_${n}_pods`, value: round(cpu * 100), unit: '% core' });
      await core.stop();
      core = undefined;
    }
    figures.push({
      name: 'edgecore_rss_per_pod',
      value: round(((rssMb.get(30) ?? NaN) - (rssMb.get(0) ?? NaN)) / 30),
      unit: 'MB',
      goal: '<= 0.5',
    });
  } finally {
    await core?.stop();
    cri.close();
    await cleanup();
    await rm(work, { recursive: true, force: true });
  }
  return figures;
}
