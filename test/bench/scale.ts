/**
 * cloudcore at scale (issue 12), against a real control plane (kube-apiserver + etcd, KubeEdge's
 * ObjectSync CRDs from `crds/`): a cloudcore process (dist/bin/cloudcore.js: cloudHub,
 * edgeController, syncController) and `BENCH_SCALE_EDGES` (100) simulated edges (./sim-edges.ts)
 * that acknowledge every ACK-mode message as edgeHub + metaManager do.
 * - `BENCH_SCALE_PODS` (50) pods per edge created at once (32 requests in flight): the time from the
 *   first create until every edge has acknowledged all its pods (and the part of it after the last
 *   create answered: what cloudcore adds to kube-apiserver's own pace); cloudcore's CPU over that
 *   time and its peak resident memory.
 *   Then the time from the first create until every pod's ObjectSync holds the acknowledged
 *   version (cloudHub writes them in the background; a cloudcore restart relies on them).
 * - Resync: every edge disconnected, `BENCH_SCALE_CHANGED` (1000) of those pods changed (a label),
 *   the edges back: the time from the first reconnect until every edge has acknowledged the
 *   changed version of each of its changed pods. The outage lasts as long as the changes take
 *   (seconds, not the 10 minutes: nothing in cloudcore expires with time meanwhile).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeMessage, newResponse } from '../../kernel/index.js';
import { createKubeApi } from '../../kernel/kube/index.js';
import { createLogger } from '../../kernel/log.js';
import { edgeNode } from '../helpers/pod.js';
import { startControlPlane } from '../peers/kube.js';
import { freePort, sleep, waitFor } from '../peers/util.js';
import { round, type Figure } from './report.js';
import {
  benchCa,
  connectAll,
  cpuTicks,
  edgeCloudcoreYaml,
  edgeIdentities,
  loadAverage,
  rssKb,
  SimEdge,
  startCloudcore,
  stopProcess,
} from './sim-edges.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url)).replace(/dist\/$/, '');
const CRDS = ['objectsync_v1alpha1.yaml', 'cluster_objectsync_v1alpha1.yaml'];
/** Pod creates (and patches) in flight at once. */
const IN_FLIGHT = 32;

/** What one edge acknowledged: pod name → the `round` label of the newest version acked. */
type Acked = Map<string, string>;

/** Runs `work` on every item, `IN_FLIGHT` at a time. */
async function inFlight<T>(items: readonly T[], work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

const seconds = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

export async function scaleBench(): Promise<Figure[]> {
  const edges = Number(process.env.BENCH_SCALE_EDGES ?? 100);
  const podsPerEdge = Number(process.env.BENCH_SCALE_PODS ?? 50);
  const changed = Math.min(edges * podsPerEdge, Number(process.env.BENCH_SCALE_CHANGED ?? 1000));
  const plane = await startControlPlane();
  const dir = mkdtempSync(join(tmpdir(), 'bench-scale-'));
  const admin = createKubeApi(
    { master: '', contentType: '', qps: 100_000, burst: 100_000, kubeConfig: plane.kubeconfigPath },
    createLogger('silent'),
  );
  let cloud: ChildProcess | undefined;
  const nodes = Array.from({ length: edges }, (_, i) => `scale-${i}`);
  const sims: SimEdge[] = [];
  try {
    await plane.kubectl(['create', 'serviceaccount', 'default', '-n', 'default']);
    for (const f of CRDS) await plane.kubectl(['apply', '-f', join(repoRoot, 'crds', f)]);
    await plane.waitForCrds([
      'objectsyncs.reliablesyncs.kubeedge.io',
      'clusterobjectsyncs.reliablesyncs.kubeedge.io',
    ]);
    await inFlight(nodes, (name) => admin.request('POST', '/api/v1/nodes', edgeNode(name)));

    const { ca, caPem, cloudHubTls } = await benchCa(dir);
    const [wsPort, httpsPort] = [await freePort(), await freePort()];
    const config = join(dir, 'cloudcore.yaml');
    writeFileSync(
      config,
      edgeCloudcoreYaml({
        kubeConfig: plane.cloudcoreKubeconfigPath,
        cloudHubTls,
        ports: { ws: wsPort, https: httpsPort },
        nodeLimit: edges + 10,
        syncController: true,
      }),
    );
    cloud = await startCloudcore(config);
    const figures: Figure[] = [];

    const acked = new Map<SimEdge, Acked>();
    const identities = await edgeIdentities(ca, nodes);
    for (const [i, node] of nodes.entries()) {
      const sim = new SimEdge(node, identities[i]!, (e, frame) => {
        const msg = decodeMessage(frame);
        if (msg.route.group !== 'resource' || msg.route.operation === 'response') return;
        e.send(newResponse(msg, 'OK'));
        const pod = /^default\/pod\/(.+)$/.exec(msg.route.resource ?? '')?.[1];
        const labels = (msg.content as { metadata?: { labels?: Record<string, string> } } | null)?.metadata
          ?.labels;
        if (pod !== undefined && msg.route.operation !== 'delete')
          acked.get(e)!.set(pod, labels?.round ?? '');
      });
      acked.set(sim, new Map());
      sims.push(sim);
    }
    await connectAll(sims, wsPort, caPem);

    // 1. every edge's pods created at once
    const pods = sims.flatMap((s) =>
      Array.from({ length: podsPerEdge }, (_, j) => ({ node: s.node, name: `${s.node}-p${j}` })),
    );
    const allAcked = (round: string, of: (s: SimEdge) => readonly string[]): boolean =>
      sims.every((s) => of(s).every((name) => acked.get(s)!.get(name) === round));
    const podsOf = (s: SimEdge): string[] => pods.filter((p) => p.node === s.node).map((p) => p.name);
    const mine = new Map(sims.map((s) => [s, podsOf(s)]));
    const ticks0 = cpuTicks(cloud.pid!);
    const t0 = process.hrtime.bigint();
    await inFlight(pods, ({ node, name }) =>
      admin.request('POST', '/api/v1/namespaces/default/pods', {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, labels: { round: '1' } },
        spec: {
          nodeName: node,
          automountServiceAccountToken: false,
          containers: [{ name: 'c', image: 'busybox' }],
        },
      }),
    );
    const created = seconds(t0);
    await waitFor(() => allAcked('1', (s) => mine.get(s)!), {
      what: `${pods.length} pods acknowledged by their edges`,
      timeoutMs: 300_000,
      intervalMs: 20,
    });
    const total = seconds(t0);
    const cpu = (cpuTicks(cloud.pid!) - ticks0) / 100;
    const load = loadAverage();
    const tag = `${edges}x${podsPerEdge}`;
    figures.push(
      { name: `scale_pods_created_${tag}`, value: round(created), unit: 's' },
      { name: `scale_pods_all_acked_${tag}`, value: round(total), unit: 's', goal: '<= 10' },
      { name: `scale_pods_acked_after_last_create_${tag}`, value: round(total - created), unit: 's' },
      { name: `scale_cloudcore_cpu_${tag}`, value: round(cpu), unit: 'cpu-s' },
      {
        name: `scale_cloudcore_peak_rss_${tag}`,
        value: round(rssKb(cloud.pid!, 'VmHWM') / 1024),
        unit: 'MB',
        goal: '<= 150',
      },
      { name: 'scale_loadavg_1m_after_create', value: load, unit: '' },
    );
    // the acknowledged versions recorded in the ObjectSyncs (cloudHub writes them in the background)
    const recorded = async (): Promise<number> => {
      const list = await admin.request<{ items: { status?: { objectResourceVersion?: string } }[] }>(
        'GET',
        '/apis/reliablesyncs.kubeedge.io/v1alpha1/namespaces/default/objectsyncs',
      );
      return list.items.filter((o) => (o.status?.objectResourceVersion ?? '0') !== '0').length;
    };
    await waitFor(async () => (await recorded()) >= pods.length, {
      what: `${pods.length} ObjectSyncs with the acknowledged version`,
      timeoutMs: 600_000,
      intervalMs: 1000,
    });
    figures.push({ name: `scale_objectsyncs_recorded_${tag}`, value: round(seconds(t0)), unit: 's' });

    // 3. resync after an outage: every edge gone, `changed` pods changed, every edge back
    for (const s of sims) s.stop();
    const changes = pods.filter((_, i) => i % Math.floor(pods.length / changed) === 0).slice(0, changed);
    await inFlight(changes, ({ name }) =>
      admin.request(
        'PATCH',
        `/api/v1/namespaces/default/pods/${name}`,
        { metadata: { labels: { round: '2' } } },
        {
          contentType: 'application/merge-patch+json',
        },
      ),
    );
    const changedOf = new Map(
      sims.map((s) => [s, changes.filter((p) => p.node === s.node).map((p) => p.name)]),
    );
    const ticks1 = cpuTicks(cloud.pid!);
    const t1 = process.hrtime.bigint();
    await connectAll(sims, wsPort, caPem);
    await waitFor(() => allAcked('2', (s) => changedOf.get(s)!), {
      what: `${changed} changed pods acknowledged after the outage`,
      timeoutMs: 300_000,
      intervalMs: 20,
    });
    figures.push(
      { name: `scale_resync_${edges}_edges_${changed}_changed`, value: round(seconds(t1)), unit: 's' },
      {
        name: `scale_resync_cloudcore_cpu_${edges}_edges`,
        value: round((cpuTicks(cloud.pid!) - ticks1) / 100),
        unit: 'cpu-s',
      },
      {
        name: 'scale_cloudcore_peak_rss_after_resync',
        value: round(rssKb(cloud.pid!, 'VmHWM') / 1024),
        unit: 'MB',
        goal: '<= 150',
      },
      { name: 'scale_loadavg_1m_after_resync', value: loadAverage(), unit: '' },
    );
    // once idle, V8's memory reducer gives back what the bursts grew the heap to
    await sleep(15_000);
    figures.push({
      name: 'scale_cloudcore_rss_idle_15s_after',
      value: round(rssKb(cloud.pid!) / 1024),
      unit: 'MB',
    });
    return figures;
  } finally {
    for (const s of sims) s.stop();
    await stopProcess(cloud);
    admin.stop();
    await plane.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
