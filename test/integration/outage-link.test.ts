/**
 * The cloud–edge link broken the ways KubeEdge users report, on the full stack (edge-stack.ts:
 * control plane with controllers, cloudHub + edgeController + syncController with the ObjectSync
 * CRDs, edgeHub + metaManager + edged on containerd), edgeHub dialling cloudHub through a TCP proxy
 * (test/helpers/tcp-proxy.ts):
 *
 *  - the link cut (every connection reset, new ones held in a black hole) while pods change on both
 *    sides: a container killed on the edge (restarted), another that may not restart (Failed), a pod
 *    created and one deleted with kubectl; the node goes NotReady after the grace period; once the
 *    link is back the node is Ready and the API has the latest status of each pod (the restarted
 *    one and one that did not change Ready again, although the node lifecycle controller had
 *    marked them not Ready), the new pod runs, the deleted one is gone with its sandbox;
 *  - a saturated link (2 KB/s each way through the proxy) while pods are created, then freed: every
 *    pod runs, each started once (one sandbox, no container restart), all Ready in the API;
 *  - while the edge is offline (its dials refused until its node is NotReady), a Deployment scaled,
 *    a configmap edited twice and a pod of the Deployment deleted: on reconnect all applied once (the Deployment's pods on the edge, the
 *    deleted one gone with its containers, the others never restarted), the configmap's last value
 *    in every pod's volume.
 *
 * The control plane runs kube-controller-manager with a 10 s node-monitor grace period (instead of
 * 50 s; KubeEdge users see it as 40 s to a few minutes): the same NotReady → Ready cycle as a long
 * outage, in a CI-sized wait. Figures printed as FIGURE lines.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContainerState } from '../../plugins/edged/cri.js';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../peers/containerd.js';
import { cleanup, waitFor } from '../peers/util.js';
import { busyboxPod, configMap, SLEEP_UNTIL_TERM } from '../helpers/pod.js';
import { ready, runningReady, startEdgeStack, type EdgeStack, type Obj } from './edge-stack.js';

const NODE = 'edge-outage';
const GRACE_S = 10;
const RUNNING = ContainerState.CONTAINER_RUNNING;

let s: EdgeStack;

interface PodList {
  items: Obj[];
}

type Status = NonNullable<Obj['status']> & {
  containerStatuses?: {
    name: string;
    ready: boolean;
    containerID?: string;
    restartCount?: number;
    state?: { running?: unknown; terminated?: { exitCode: number } };
  }[];
};

const statusOf = (pod: Obj | undefined): Status | undefined => pod?.status as Status | undefined;

/** A busybox pod on the edge node that sleeps until killed (SIGTERM ends it at once). */
const pod = (name: string, spec?: Record<string, unknown>): Record<string, unknown> =>
  busyboxPod(NODE, name, { command: SLEEP_UNTIL_TERM }, { labels: { test: 'outage' }, spec });

async function podsOf(selector: string): Promise<Obj[]> {
  return (JSON.parse(await s.cp.kubectl(['get', 'pods', '-l', selector, '-o', 'json'])) as PodList).items;
}

async function nodeCondition(): Promise<string | undefined> {
  const node = await s.getJson(['node', NODE]);
  return node?.status?.conditions?.find((c) => c.type === 'Ready')?.status;
}

async function waitNode(status: string, what: string): Promise<void> {
  let seen: string | undefined;
  await waitFor(async () => (seen = await nodeCondition()) === status, {
    what: `node ${NODE} ${what}`,
    timeoutMs: 90_000,
    intervalMs: 250,
    details: () => `Ready=${seen}`,
  });
}

/** The sandboxes and containers containerd has for a pod. */
async function runtimeOf(
  uid: string,
): Promise<{ sandboxes: number; containers: { id: string; state: ContainerState }[] }> {
  const label = { 'io.kubernetes.pod.uid': uid };
  const [sandboxes, containers] = await Promise.all([
    s.cri.listPodSandbox(label),
    s.cri.listContainers(label),
  ]);
  return {
    sandboxes: sandboxes.length,
    containers: containers.map((c) => ({ id: c.id, state: c.state })),
  };
}

/** Each pod started once: one sandbox, one container (a restart leaves the exited one), running; no restart in the API. */
async function startedOnce(p: Obj): Promise<void> {
  const rt = await runtimeOf(p.metadata.uid);
  expect(rt.sandboxes, `sandboxes of ${p.metadata.name}`).toBe(1);
  expect(rt.containers, `containers of ${p.metadata.name}`).toEqual([
    { id: expect.any(String) as string, state: RUNNING },
  ]);
  expect(statusOf(p)?.containerStatuses?.[0]?.restartCount).toBe(0);
}

beforeAll(async () => {
  s = await startEdgeStack(NODE, { proxy: true, objectSync: true, nodeMonitorGracePeriodSeconds: GRACE_S });
  await buildBusyboxImage(s.cd.socket, BUSYBOX_IMAGE);
  await s.startEdge();
  await waitNode('True', 'Ready');
}, 600_000);

afterAll(async () => {
  await s?.stop();
  await cleanup();
}, 120_000);

describe('the cloud–edge link cut, saturated, the edge offline (full stack, TCP proxy)', () => {
  it('link cut while pods change on both sides: NotReady after the grace, then Ready and the latest status of each pod', async () => {
    await s.apply([pod('steady'), pod('keep'), pod('stop', { restartPolicy: 'Never' }), pod('gone')]);
    const steady = await s.waitPod('steady', 'Running and Ready', runningReady);
    const keep = await s.waitPod('keep', 'Running and Ready', runningReady);
    const stop = await s.waitPod('stop', 'Running and Ready', runningReady);
    const gone = await s.waitPod('gone', 'Running and Ready', runningReady);
    const keepRt = await runtimeOf(keep.metadata.uid);
    const stopRt = await runtimeOf(stop.metadata.uid);

    s.proxy!.cut('hold');
    const cut = Date.now();
    // the cloud side changes: a pod created, one deleted
    await s.apply([pod('late')]);
    await s.cp.kubectl(['delete', 'pod', 'gone', '--wait=false']);
    // the edge side changes: both containers killed; `keep` is restarted, `stop` may not be
    await s.cri.stopContainer(keepRt.containers[0]!.id, 0);
    await s.cri.stopContainer(stopRt.containers[0]!.id, 0);
    await waitFor(
      async () => {
        const rt = await runtimeOf(keep.metadata.uid);
        return rt.containers.length === 2 && rt.containers.some((c) => c.state === RUNNING);
      },
      { what: 'the killed container of keep restarted by edged while offline', timeoutMs: 30_000 },
    );
    await waitNode('Unknown', `NotReady (Unknown) after the ${GRACE_S} s grace`);
    console.info(`FIGURE link cut -> node NotReady in the API: ${Date.now() - cut} ms (grace ${GRACE_S} s)`);
    // what the API shows meanwhile: the node lifecycle controller's view, nothing of the edge's
    // (the controller marks the pods not Ready right after the node)
    await s.waitPod('keep', 'marked not Ready', (p) => p !== undefined && !ready(p));
    await s.waitPod('steady', 'marked not Ready', (p) => p !== undefined && !ready(p));
    expect(statusOf(await s.getJson(['pod', 'stop']))?.phase).toBe('Running');
    expect((await s.getJson(['pod', 'late']))?.status?.phase).toBe('Pending');
    expect(s.proxy!.stats().connections).toBeGreaterThan(0); // edgeHub keeps dialling into the black hole

    s.proxy!.restore();
    const restored = Date.now();
    await waitNode('True', 'Ready again');
    console.info(`FIGURE link restored -> node Ready in the API: ${Date.now() - restored} ms`);
    const keepAfter = await s.waitPod(
      'keep',
      'Ready again, restarted once',
      (p) => runningReady(p) && statusOf(p)?.containerStatuses?.[0]?.restartCount === 1,
    );
    console.info(`FIGURE link restored -> restarted pod Ready in the API: ${Date.now() - restored} ms`);
    const now = (await runtimeOf(keep.metadata.uid)).containers.find((c) => c.state === RUNNING)!;
    expect(statusOf(keepAfter)?.containerStatuses?.[0]?.containerID).toBe(`containerd://${now.id}`);
    // nothing changed at the edge for this one: its Ready status must be sent again all the same
    const steadyAfter = await s.waitPod('steady', 'Ready again', runningReady);
    expect(steadyAfter.status?.containerStatuses?.[0]?.containerID).toBe(
      steady.status?.containerStatuses?.[0]?.containerID,
    );
    const stopAfter = await s.waitPod(
      'stop',
      'Failed (killed, restartPolicy Never)',
      (p) => p?.status?.phase === 'Failed',
    );
    expect(statusOf(stopAfter)?.containerStatuses?.[0]?.state?.terminated?.exitCode).toBe(137);
    const late = await s.waitPod('late', 'Running and Ready', runningReady);
    await startedOnce(late);
    await s.waitPod('gone', 'removed from the API', (p) => p === undefined);
    expect(await runtimeOf(gone.metadata.uid)).toEqual({ sandboxes: 0, containers: [] });
    console.info(`FIGURE link restored -> every pod change applied both ways: ${Date.now() - restored} ms`);

    await s.cp.kubectl(['delete', 'pod', 'steady', 'keep', 'stop', 'late', '--wait=false']);
    await waitFor(async () => (await podsOf('test=outage')).length === 0, {
      what: 'the pods of this test removed',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
  }, 240_000);

  it('a saturated link, then freed: every pod created meanwhile runs, started once, Ready in the API', async () => {
    const names = Array.from({ length: 6 }, (_, i) => `sat-${i}`);
    const before = s.proxy!.stats();
    s.proxy!.saturate(2048);
    const saturated = Date.now();
    await s.apply(names.map((n) => pod(n)));
    // the link is the bottleneck: bytes wait in the proxy, yet pods get through
    await waitFor(() => s.proxy!.stats().waiting > 1024, {
      what: 'over 1 KB waiting in the proxy',
      timeoutMs: 30_000,
    });
    const started = async (): Promise<number> =>
      (await s.cri.listPodSandbox()).filter((sb) => names.includes(sb.labels['io.kubernetes.pod.name'] ?? ''))
        .length;
    await waitFor(async () => (await started()) >= names.length / 2, {
      what: 'half of the pods started through the saturated link',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    s.proxy!.restore();
    const freed = Date.now();
    for (const n of names) await startedOnce(await s.waitPod(n, 'Running and Ready', runningReady));
    console.info(
      `FIGURE saturated 2 KB/s for ${freed - saturated} ms, then freed -> ${names.length} pods Ready: ${Date.now() - freed} ms ` +
        `(${s.proxy!.stats().downBytes - before.downBytes} bytes down, ${s.proxy!.stats().upBytes - before.upBytes} up)`,
    );
    await waitNode('True', 'Ready after the saturation');

    await s.cp.kubectl(['delete', 'pod', ...names, '--wait=false']);
    await waitFor(async () => (await podsOf('test=outage')).length === 0, {
      what: 'the pods of this test removed',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
  }, 240_000);

  it('edge offline: Deployment scaled, configmap edited twice, a pod deleted -> all applied on reconnect, once', async () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'app', namespace: 'default' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'offline' } },
        template: {
          metadata: { labels: { app: 'offline' } },
          spec: {
            ...(pod('x').spec as Record<string, unknown>),
            nodeName: undefined,
            nodeSelector: { 'node-role.kubernetes.io/edge': '' },
            volumes: [{ name: 'config', configMap: { name: 'app-config' } }],
            containers: [
              {
                ...((pod('x').spec as { containers: Record<string, unknown>[] }).containers[0] as object),
                volumeMounts: [{ name: 'config', mountPath: '/etc/config' }],
              },
            ],
          },
        },
      },
    };
    const configmap = (v: string): Record<string, unknown> => configMap('app-config', { version: v });
    await s.apply([configmap('1'), deployment]);
    let pods: Obj[] = [];
    await waitFor(async () => (pods = await podsOf('app=offline')).length === 2 && pods.every(runningReady), {
      what: 'the 2 pods of the Deployment Running and Ready',
      timeoutMs: 90_000,
      intervalMs: 250,
    });
    const volumeFile = (p: Obj): Promise<string> =>
      readFile(
        join(s.dir, 'kubelet/pods', p.metadata.uid, 'volumes/kubernetes.io~configmap/config/version'),
        'utf8',
      );
    for (const p of pods) expect(await volumeFile(p)).toBe('1');
    const [kept, deleted] = pods as [Obj, Obj];
    const keptContainer = statusOf(kept)?.containerStatuses?.[0]?.containerID;

    s.proxy!.cut();
    const offline = Date.now();
    await s.cp.kubectl(['scale', 'deployment', 'app', '--replicas=3']);
    await s.apply([configmap('2')]);
    await s.apply([configmap('3')]);
    await s.cp.kubectl(['delete', 'pod', deleted.metadata.name, '--wait=false']);
    // the ReplicaSet replaced the deleted pod and added one: both bound to the edge node
    await waitFor(
      async () =>
        (await podsOf('app=offline')).filter((p) => p.spec.nodeName === NODE && !p.metadata.deletionTimestamp)
          .length === 3,
      {
        what: '3 live pods of the Deployment bound to the edge node while it is offline',
        timeoutMs: 30_000,
        intervalMs: 250,
      },
    );
    expect(await volumeFile(kept)).toBe('1');
    // offline long enough for the node to be NotReady, while edgeHub's dials are refused
    const dials = s.proxy!.stats().accepted;
    await waitNode('Unknown', 'NotReady while offline');
    expect(s.proxy!.stats().accepted).toBeGreaterThan(dials);

    s.proxy!.restore();
    const restored = Date.now();
    await waitNode('True', 'Ready again');
    console.info(
      `FIGURE dials refused for ${restored - offline} ms; restored -> node Ready: ${Date.now() - restored} ms`,
    );
    await waitFor(
      async () => {
        pods = await podsOf('app=offline');
        return pods.length === 3 && pods.every(runningReady);
      },
      {
        what: 'exactly 3 pods of the Deployment Running and Ready (the deleted one gone)',
        timeoutMs: 90_000,
        intervalMs: 250,
        details: () =>
          JSON.stringify(pods.map((p) => [p.metadata.name, p.status?.phase, p.metadata.deletionTimestamp])),
      },
    );
    console.info(
      `FIGURE offline for ${restored - offline} ms; reconnect -> scale, configmap edits and pod delete applied: ${Date.now() - restored} ms`,
    );
    expect(pods.map((p) => p.metadata.name)).not.toContain(deleted.metadata.name);
    expect(await runtimeOf(deleted.metadata.uid)).toEqual({ sandboxes: 0, containers: [] });
    for (const p of pods) {
      if (p.metadata.uid !== kept.metadata.uid) await startedOnce(p);
    }
    // the kept pod was not restarted; every pod has the last configmap value
    expect(
      statusOf(pods.find((p) => p.metadata.uid === kept.metadata.uid))?.containerStatuses?.[0]?.containerID,
    ).toBe(keptContainer);
    await waitFor(async () => (await Promise.all(pods.map(volumeFile))).every((v) => v === '3'), {
      what: "the configmap's last value in every pod's volume",
      timeoutMs: 30_000,
      intervalMs: 250,
    });
  }, 240_000);
});
