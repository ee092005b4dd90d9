/**
 * What KubeEdge users report broken, on the full stack (edge-stack.ts: control plane with
 * controllers, cloudHub + edgeController, edgeHub + metaManager + edged on containerd):
 *
 *  - edgecore start → node Ready: edged registers as soon as the cloud link is up (the time is
 *    printed as a FIGURE line);
 *  - `kubectl delete node` while the edge runs: edged registers the node again, the new Node is
 *    Ready with a new uid and a lease owned by it, and the pod statuses are sent again (a pod the
 *    API had marked not Ready comes back Ready);
 *  - edgecore restarted (edge kernel stopped and started on the same database and containerd): the
 *    node is Ready again, the pod keeps its container (same id) and is Ready again in the API, even
 *    after the API marked it not Ready while the edge was away (as the node lifecycle controller
 *    does after the grace period).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../peers/containerd.js';
import { busyboxPod, httpdContainer } from '../helpers/pod.js';
import { cleanup, freePort, waitFor } from '../peers/util.js';
import { httpGet, ready, startEdgeStack, type EdgeStack, type Obj } from './edge-stack.js';

const NODE = 'edge-restarts';

let s: EdgeStack;
let port = 0;

/** The node as the API has it (one GET, no kubectl process: the start figure stays precise). */
async function apiNode(): Promise<Obj | undefined> {
  const r = await s.cp.get(`/api/v1/nodes/${NODE}`);
  return r.status === 200 ? (JSON.parse(r.body) as Obj) : undefined;
}

/** Waits for the node Ready in the API; the ms since `from`. */
async function nodeReadyAfter(from: number, what: string): Promise<number> {
  let node: Obj | undefined;
  await waitFor(async () => ready((node = await apiNode())), {
    what,
    timeoutMs: 60_000,
    intervalMs: 25,
    details: () => JSON.stringify(node?.status?.conditions),
  });
  return Date.now() - from;
}

const podReady = async (): Promise<Obj | undefined> => {
  const pod = await s.getJson(['pod', 'web']);
  return ready(pod) ? pod : undefined;
};

/**
 * What the node lifecycle controller writes on the pods of a node gone NotReady (the patched pod
 * is checked as the API returned it: a connected edge sends its own status again at once).
 */
async function markPodNotReady(): Promise<void> {
  const status = {
    status: {
      conditions: [{ type: 'Ready', status: 'False', reason: 'NodeNotReady', message: 'marked by the test' }],
    },
  };
  const patch = ['patch', 'pod', 'web', '--subresource=status', '-p', JSON.stringify(status)];
  const patched = await s.cp.kubectl([...patch, '-o', 'json']);
  expect(ready(JSON.parse(patched) as Obj)).toBe(false);
}

beforeAll(async () => {
  s = await startEdgeStack(NODE);
  await buildBusyboxImage(s.cd.socket, BUSYBOX_IMAGE);
  port = await freePort();
}, 600_000);

afterAll(async () => {
  await s?.stop();
  await cleanup();
}, 120_000);

describe('the edge recovers by itself (full stack)', () => {
  it('edgecore start → node Ready as soon as the link is up; a pod runs Ready', async () => {
    const started = Date.now();
    await s.startEdge();
    const ms = await nodeReadyAfter(started, `node ${NODE} Ready`);
    console.info(`FIGURE edgecore start (certificate bootstrap included) -> node Ready in the API: ${ms} ms`);

    const pod = busyboxPod(NODE, 'web', httpdContainer('up', port), {
      spec: { terminationGracePeriodSeconds: 2 },
    });
    await s.cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(pod) });
    await waitFor(async () => (await podReady()) !== undefined, {
      what: 'pod web Ready in the API',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    expect((await httpGet(port)).trim()).toBe('up');
  }, 120_000);

  it('kubectl delete node: the edge registers again, its lease follows, the pod is Ready again', async () => {
    const old = (await apiNode())!.metadata.uid;
    await markPodNotReady();
    const deleted = Date.now();
    await s.cp.kubectl(['delete', 'node', NODE, '--wait=false']);
    let node: Obj | undefined;
    await waitFor(
      async () => (node = await apiNode()) !== undefined && node.metadata.uid !== old && ready(node),
      {
        what: `node ${NODE} registered again (new uid) and Ready`,
        timeoutMs: 60_000,
        intervalMs: 100,
        details: () => JSON.stringify(node?.metadata),
      },
    );
    console.info(`FIGURE kubectl delete node -> registered again and Ready: ${Date.now() - deleted} ms`);
    expect(node!.metadata.labels?.['node-role.kubernetes.io/edge']).toBe('');
    const uid = node!.metadata.uid;
    await waitFor(
      async () => {
        const lease = await s.getJson(['lease', '-n', 'kube-node-lease', NODE]);
        const owners = (lease?.metadata as { ownerReferences?: { uid: string }[] } | undefined)
          ?.ownerReferences;
        return owners?.[0]?.uid === uid;
      },
      { what: 'the lease owned by the new Node', timeoutMs: 30_000, intervalMs: 250 },
    );
    await waitFor(async () => (await podReady()) !== undefined, {
      what: 'pod web Ready again in the API',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    expect((await httpGet(port)).trim()).toBe('up');
  }, 120_000);

  it('edgecore restarted on the same database and containerd: node Ready, same container, pod Ready again', async () => {
    const before = (await podReady())!;
    const containerId = before.status!.containerStatuses![0]!.containerID;
    expect(containerId).toMatch(/^containerd:\/\//);

    await s.stopEdge();
    // the API's view once the edge was away for the grace period (what the node lifecycle
    // controller writes), so "Ready again" is the edge's doing
    await markPodNotReady();
    const unknown = {
      status: { conditions: [{ type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown' }] },
    };
    await s.cp.kubectl(['patch', 'node', NODE, '--subresource=status', '-p', JSON.stringify(unknown)]);
    expect(ready(await apiNode())).toBe(false);
    const restarted = Date.now();
    await s.startEdge();
    const ms = await nodeReadyAfter(restarted, `node ${NODE} Ready again`);
    console.info(`FIGURE edgecore restart -> node Ready again in the API: ${ms} ms`);
    let pod: Obj | undefined;
    await waitFor(async () => (pod = await podReady()) !== undefined, {
      what: 'pod web Ready again in the API',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    console.info(`FIGURE edgecore restart -> pod Ready again in the API: ${Date.now() - restarted} ms`);
    expect(pod!.status!.containerStatuses![0]!.containerID).toBe(containerId);
    const running = await s.cri.listContainers({ 'io.kubernetes.pod.uid': pod!.metadata.uid });
    expect(running.map((c) => `containerd://${c.id}`)).toEqual([containerId]);
    expect((await httpGet(port)).trim()).toBe('up');
  }, 120_000);
});
