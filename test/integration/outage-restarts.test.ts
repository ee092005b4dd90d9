/**
 * Restarts KubeEdge users report the edge does not survive, on the full stack (edge-stack.ts:
 * control plane with controllers, cloudHub + edgeController + syncController with the ObjectSync
 * CRDs, edgeHub + metaManager + edged on containerd). edgecore alone restarted and the Node
 * deleted are edge-restarts.test.ts; here:
 *
 *  - kube-apiserver restarted (same etcd, same port): the cloud's informers recover, the node's
 *    status and lease are written again (node Ready with a heartbeat after the restart), a pod
 *    created and a configmap edited after the restart reach the edge;
 *  - cloudcore and edgecore both down, changes made meanwhile (a pod created, one deleted, a
 *    configmap edited), then started again in either order (cloudcore first, edgecore first): the
 *    node Ready, the running pod keeps its container and is Ready, each change applied once.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContainerState } from '../../plugins/edged/cri.js';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../peers/containerd.js';
import { cleanup, waitFor } from '../peers/util.js';
import { busyboxPod, configMap, SLEEP_UNTIL_TERM } from '../helpers/pod.js';
import { ready, runningReady, startEdgeStack, type EdgeStack, type Obj } from './edge-stack.js';

const NODE = 'edge-restart-all';

let s: EdgeStack;

interface ContainerStatus {
  containerID?: string;
  restartCount?: number;
}

const containerOf = (p: Obj | undefined): ContainerStatus | undefined =>
  p?.status?.containerStatuses?.[0] as ContainerStatus | undefined;

/** A busybox pod on the edge node mounting configmap `conf`, sleeping until killed. */
const pod = (name: string): Record<string, unknown> =>
  busyboxPod(
    NODE,
    name,
    { command: SLEEP_UNTIL_TERM, volumeMounts: [{ name: 'conf', mountPath: '/etc/conf' }] },
    { labels: { test: 'restarts' }, spec: { volumes: [{ name: 'conf', configMap: { name: 'conf' } }] } },
  );

const configmap = (v: string): Record<string, unknown> => configMap('conf', { version: v });

/**
 * The node Ready and its lease (the node's heartbeat) renewed after `since`, by the edge through
 * the cloud; the ms since `since`.
 */
async function nodeBackSince(since: number, what: string): Promise<number> {
  let node: Obj | undefined;
  let lease: Obj | undefined;
  await waitFor(
    async () => {
      lease = await s.getJson(['lease', '-n', 'kube-node-lease', NODE]);
      if (!(Date.parse(lease?.spec.renewTime ?? '') >= since)) return false;
      return ready((node = await s.getJson(['node', NODE])));
    },
    {
      what,
      timeoutMs: 90_000,
      intervalMs: 250,
      details: () => `lease renewTime ${lease?.spec.renewTime}; ${JSON.stringify(node?.status?.conditions)}`,
    },
  );
  return Date.now() - since;
}

/** The configmap's `version` as the edge wrote it into a pod's volume. */
const volumeFile = (p: Obj): Promise<string> =>
  readFile(
    join(s.dir, 'kubelet/pods', p.metadata.uid, 'volumes/kubernetes.io~configmap/conf/version'),
    'utf8',
  ).catch(() => '');

async function runtimeOf(
  uid: string,
): Promise<{ sandboxes: number; containers: { id: string; state: ContainerState }[] }> {
  const label = { 'io.kubernetes.pod.uid': uid };
  const [sandboxes, containers] = await Promise.all([
    s.cri.listPodSandbox(label),
    s.cri.listContainers(label),
  ]);
  return { sandboxes: sandboxes.length, containers: containers.map((c) => ({ id: c.id, state: c.state })) };
}

/** Started once: one sandbox, one running container (a restart would leave the exited one too). */
async function startedOnce(p: Obj): Promise<void> {
  const rt = await runtimeOf(p.metadata.uid);
  expect(rt.sandboxes, `sandboxes of ${p.metadata.name}`).toBe(1);
  expect(
    rt.containers.map((c) => c.state),
    `containers of ${p.metadata.name}`,
  ).toEqual([ContainerState.CONTAINER_RUNNING]);
  expect(containerOf(p)?.restartCount).toBe(0);
}

beforeAll(async () => {
  s = await startEdgeStack(NODE, { objectSync: true });
  await buildBusyboxImage(s.cd.socket, BUSYBOX_IMAGE);
  await s.startEdge();
  await s.apply([configmap('1'), pod('web')]);
  await s.waitPod('web', 'Running and Ready', runningReady);
}, 600_000);

afterAll(async () => {
  await s?.stop();
  await cleanup();
}, 120_000);

describe('restarts of the API server, cloudcore and edgecore (full stack)', () => {
  it('kube-apiserver restarted: informers recover, node Ready again, a change made after reaches the edge', async () => {
    const web = (await s.getJson(['pod', 'web']))!;
    const restarted = Date.now();
    await s.cp.restartApiServer();
    console.info(`FIGURE kube-apiserver stopped and ready again: ${Date.now() - restarted} ms`);
    const ms = await nodeBackSince(Date.now(), 'node Ready, its lease renewed after the API server restart');
    console.info(`FIGURE kube-apiserver back -> node lease renewed: ${ms} ms`);

    const changed = Date.now();
    await s.apply([configmap('2'), pod('after')]);
    const after = await s.waitPod('after', 'Running and Ready', runningReady);
    await startedOnce(after);
    await waitFor(async () => (await volumeFile(web)) === '2', {
      what: "the configmap edit in the running pod's volume",
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    console.info(`FIGURE change after the API server restart -> at the edge: ${Date.now() - changed} ms`);
    expect(containerOf(await s.getJson(['pod', 'web']))?.containerID).toBe(containerOf(web)?.containerID);
    await s.cp.kubectl(['delete', 'pod', 'after', '--wait=false']);
    await s.waitPod('after', 'removed', (p) => p === undefined);
  }, 240_000);

  for (const first of ['cloudcore', 'edgecore'] as const) {
    it(`cloudcore and edgecore both down, changes meanwhile, ${first} started first: node Ready, each change applied once`, async () => {
      const version = first === 'cloudcore' ? '3' : '4';
      await s.apply([pod('doomed')]);
      const doomed = await s.waitPod('doomed', 'Running and Ready', runningReady);
      const web = (await s.getJson(['pod', 'web']))!;

      await s.stopCloud();
      await s.stopEdge();
      await s.apply([configmap(version), pod('fresh')]);
      await s.cp.kubectl(['delete', 'pod', 'doomed', '--wait=false']);

      const started = Date.now();
      if (first === 'cloudcore') {
        await s.startCloud();
        await s.startEdge();
      } else {
        await s.startEdge();
        await s.startCloud();
      }
      const ms = await nodeBackSince(started, 'node Ready again, its lease renewed');
      console.info(`FIGURE both restarted (${first} first) -> node Ready: ${ms} ms`);
      const fresh = await s.waitPod('fresh', 'Running and Ready', runningReady);
      await s.waitPod('doomed', 'removed from the API', (p) => p === undefined);
      const webAfter = await s.waitPod('web', 'Running and Ready', runningReady);
      await waitFor(async () => (await volumeFile(web)) === version, {
        what: "the configmap edit in the running pod's volume",
        timeoutMs: 30_000,
        intervalMs: 250,
      });
      console.info(
        `FIGURE both restarted (${first} first) -> every change at the edge: ${Date.now() - started} ms`,
      );
      await startedOnce(fresh);
      expect(await volumeFile(fresh)).toBe(version);
      expect(containerOf(webAfter)?.containerID).toBe(containerOf(web)?.containerID);
      expect(await runtimeOf(doomed.metadata.uid)).toEqual({ sandboxes: 0, containers: [] });

      await s.cp.kubectl(['delete', 'pod', 'fresh', '--wait=false']);
      await s.waitPod('fresh', 'removed', (p) => p === undefined);
    }, 240_000);
  }
});
