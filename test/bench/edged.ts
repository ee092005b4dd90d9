/**
 * edged benchmarks on a private containerd (test/peers): edged's own overhead of a pod sync that
 * creates a pod (total sync time minus time spent waiting on CRI calls), and the RSS growth of the
 * process driving 0, 10 and 30 pods (edged's pod manager + CRI client in this process).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../kernel/log.js';
import { CriClient } from '../../plugins/edged/cri.js';
import { PodManager } from '../../plugins/edged/podmanager.js';
import type { Pod, PodStatus } from '../../plugins/edged/types.js';
import { BUSYBOX_IMAGE, buildBusyboxImage, startContainerd } from '../peers/containerd.js';
import { cleanup } from '../peers/util.js';
import { latencyFigures, round, type Figure } from './report.js';

export async function edgedBench(): Promise<Figure[]> {
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
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    for (let i = 0; i < 10; i++) {
      pm.upsert(mkPod(i));
      await waitRunning(i + 1); // one at a time: overhead not inflated by queueing
    }
    global.gc?.();
    const rss10 = process.memoryUsage().rss;
    for (let i = 10; i < 30; i++) pm.upsert(mkPod(i));
    await waitRunning(30);
    await new Promise((r) => setTimeout(r, 2000));
    global.gc?.();
    const rss30 = process.memoryUsage().rss;
    const overheads = pm.syncs.slice(0, 10).map((s) => (s.totalMs - s.criMs) * 1e6);
    figures.push(...latencyFigures('edged_pod_create_overhead', overheads, 'ms', '<= 50'));
    figures.push(
      ...latencyFigures(
        'edged_pod_create_total',
        pm.syncs.slice(0, 10).map((s) => s.totalMs * 1e6),
        'ms',
      ),
    );
    figures.push({ name: 'edged_rss_0_pods', value: round(rss0 / 2 ** 20), unit: 'MB' });
    figures.push({ name: 'edged_rss_10_pods', value: round(rss10 / 2 ** 20), unit: 'MB' });
    figures.push({ name: 'edged_rss_30_pods', value: round(rss30 / 2 ** 20), unit: 'MB' });
    figures.push({
      name: 'edged_rss_per_pod',
      value: round((rss30 - rss0) / 30 / 2 ** 20),
      unit: 'MB',
      goal: '<= 0.5',
    });
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
