/**
 * Several cloudcores against one API server (issue 12's distributed case, issue 14's router
 * forwarding): a real control plane with KubeEdge's ObjectSync and router CRDs, two cloud kernels
 * A and B (cloudHub, edgeController, syncController, router on the cloudcore identity, one CA), two
 * edge kernels (edgeHub, metaManager, eventBus on a mosquitto of their own, serviceBus; a recorder
 * in edged's place counts what metaManager applies). Each edge dials a load balancer with failover
 * (`test/helpers/failover-proxy.ts`): edge-a's prefers A, edge-b's prefers B.
 *
 *  - each node is held by one cloudcore: its Node names it (annotations), its pods reach it from
 *    that cloudcore only;
 *  - a REST call at the cloudcore that does not hold the node is forwarded to the one that does
 *    and its answer returned as it is (MQTT at the edge; an edge app's status, headers and body);
 *  - cloudcore A stops: edge-a reconnects to B, what changed while it moved (a pod changed, one
 *    created, one deleted) reaches it, and no message is applied twice over the whole run;
 *  - A started again (not leading) while edge-a was offline and one of its pods deleted: A's
 *    resync sends the delete it never saw;
 *  - a third cloudcore as a process (`dist/bin/cloudcore.js`: `npm run build` first) killed with
 *    SIGKILL: its edge moves to B, gets what changed, and nothing it had is sent again.
 */
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../kernel/config/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger, type LogLevel } from '../../kernel/log.js';
import type { Message } from '../../kernel/index.js';
import { RouterAddressAnnotation } from '../../protocol/index.js';
import { cloudLayout, cloudRegistry, edgeLayout, edgeRegistry } from '../../plugins/registry.js';
import { startFailoverProxy, type FailoverProxy } from '../helpers/failover-proxy.js';
import { prepareLink, type LinkSetup } from '../helpers/link.js';
import { mqttClient, type TestClient } from '../helpers/mqtt-edge.js';
import { edgeNode } from '../helpers/pod.js';
import { rule, ruleEndpoint } from '../helpers/router-stack.js';
import { startControlPlane, type ControlPlane } from '../peers/kube.js';
import { startMosquitto, type MosquittoPeer } from '../peers/mosquitto.js';
import { cleanup, freePort, spawnPeer, tempDir, waitFor, type Peer } from '../peers/util.js';

/** Calls timed for the forwarding figure, at each cloudcore. */
const FIGURE_CALLS = 20;
const logger = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel);
const CRDS = [
  'crds/objectsync_v1alpha1.yaml',
  'crds/cluster_objectsync_v1alpha1.yaml',
  'crds/router_v1_rule.yaml',
  'crds/router_v1_ruleEndpoint.yaml',
];

interface Cloud {
  name: 'A' | 'B';
  kernel: Kernel;
  ws: number;
  https: number;
  routerPort: number;
}

interface Edge {
  node: string;
  kernel: Kernel;
  broker: MosquittoPeer;
  proxy: FailoverProxy;
  /** Pod messages metaManager handed to edged, in order. */
  applied: Message[];
  /** The cert server it bootstrapped from. */
  https: number;
}

let cp: ControlPlane;
let dir: string;
let link: LinkSetup;
let app: Server;
let appPort: number;
const clouds = new Map<'A' | 'B', Cloud>();
/** Cloudcore A once stopped (started again on its ports). */
let formerA: Cloud | undefined;
/** The cloudcore process killed in the last test. */
let killed: Peer | undefined;
const edges: Edge[] = [];
const subs: TestClient[] = [];

function cloudYaml(ws: number, https: number, routerPort: number, extra = ''): string {
  return `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
${extra}kubeAPIConfig:
  kubeConfig: ${cp.cloudcoreKubeconfigPath}
modules:
  edgeController: {enable: true}
  syncController: {enable: true}
  router: {enable: true, address: 127.0.0.1, port: ${routerPort}, restTimeout: 10}
${link.cloudHubOn(ws, https)}`;
}

/** A cloud kernel, on the ports of an earlier one (`again`) or on free ones. */
async function startCloud(name: 'A' | 'B', again?: Cloud): Promise<Cloud> {
  const { ws, https, routerPort } = again ?? {
    ws: await freePort(),
    https: await freePort(),
    routerPort: await freePort(),
  };
  const kernel = new Kernel({
    config: parseConfig(cloudLayout, cloudYaml(ws, https, routerPort), `cloudcore-${name}.yaml`),
    registry: cloudRegistry,
    logger,
  });
  await kernel.start();
  return { name, kernel, ws, https, routerPort };
}

async function startEdge(node: string, prefer: Cloud, other: Cloud): Promise<Edge> {
  const [broker, proxy] = await Promise.all([startMosquitto(), startFailoverProxy([prefer.ws, other.ws])]);
  return edgeKernel({ node, broker, proxy, https: prefer.https });
}

/** An edge kernel (again, for a restart: same database and certificates) and its recorder. */
async function edgeKernel(o: Pick<Edge, 'node' | 'broker' | 'proxy'> & { https: number }): Promise<Edge> {
  const { node, broker, proxy } = o;
  const yaml = `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${join(dir, `${node}.db`)}
modules:
  edged: {enable: false, hostnameOverride: ${node}}
  metaManager: {enable: true}
  deviceTwin: {enable: false}
  eventBus: {enable: true, mqttMode: 2, mqttServerExternal: "${broker.url}"}
  serviceBus: {enable: true, timeout: 5}
${link.edgeHub('', `127.0.0.1:${proxy.port}`, { https: o.https, certDir: node })}`;
  const kernel = new Kernel({
    config: parseConfig(edgeLayout, yaml, join(dir, `${node}.yaml`)),
    registry: edgeRegistry,
    logger,
  });
  // in edged's place: what metaManager applies (it answers edged's requests with nothing)
  const applied: Message[] = [];
  kernel.bus.addModule('edged', 'edged').attach(
    (m) => {
      if ((m.route.resource ?? '').includes('/pod/')) applied.push(m);
    },
    () => undefined,
  );
  await kernel.start();
  await waitFor(() => kernel.cloud.connected, { what: `${node} connected`, timeoutMs: 30_000 });
  return { node, kernel, broker, proxy, applied, https: o.https };
}

interface Obj {
  metadata: { name: string; uid: string; resourceVersion: string; annotations?: Record<string, string> };
}

async function get(args: string[]): Promise<Obj> {
  return JSON.parse(await cp.kubectl(['get', ...args, '-o', 'json'])) as Obj;
}

/** A cloud kernel's metric of a node (`name{...node="<node>"...<extra>...}`), 0 when absent. */
async function nodeMetric(cloud: Cloud, name: string, node: string, extra = ''): Promise<number> {
  const text = await cloud.kernel.metrics.text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${name}{`) && l.includes(`node="${node}"`) && l.includes(extra));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** Messages a cloud kernel wrote to a node. */
const sentTo = (cloud: Cloud, node: string): Promise<number> =>
  nodeMetric(cloud, 'kubeedge_cloudhub_messages_total', node, 'direction="out"');

async function waitForStatus(
  name: string,
  want: { successMessages: number; failMessages: number },
): Promise<void> {
  let status: Record<string, unknown> = {};
  await waitFor(
    async () => {
      const r = JSON.parse(await cp.kubectl(['get', 'rule', name, '-n', 'default', '-o', 'json'])) as {
        status?: Record<string, unknown>;
      };
      status = r.status ?? {};
      return status.successMessages === want.successMessages && status.failMessages === want.failMessages;
    },
    {
      what: `rule ${name} status ${JSON.stringify(want)}`,
      timeoutMs: 15_000,
      intervalMs: 200,
      details: () => JSON.stringify(status),
    },
  );
}

/** Something accepts TCP connections on the port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function resyncPasses(c: Cloud): Promise<number> {
  const text = await c.kernel.metrics.text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('kubeedge_synccontroller_actions_total{action="pass"}'));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

function pod(name: string, node: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: {
      nodeName: node,
      automountServiceAccountToken: false,
      containers: [{ name: 'c', image: 'busybox' }],
    },
  });
}

/** Pod messages applied at an edge for `name`, as `<operation> <resourceversion>`. */
const history = (e: Edge, name: string): string[] =>
  e.applied
    .filter((m) => m.route.resource === `default/pod/${name}`)
    .map((m) => `${m.route.operation} ${m.header.resourceversion ?? ''}`.trim());

const edge = (node: string): Edge => edges.find((e) => e.node === node)!;
const cloud = (name: 'A' | 'B'): Cloud => clouds.get(name)!;

const call = (c: Cloud, path: string, init: RequestInit = {}): Promise<Response> =>
  fetch(`http://127.0.0.1:${c.routerPort}${path}`, { method: 'POST', ...init });

/** Call until the router has the rule (404 before). */
async function callWhenRouted(c: Cloud, path: string, init: RequestInit = {}): Promise<Response> {
  let res: Response | undefined;
  await waitFor(
    async () => {
      res = await call(c, path, init);
      if (res.status === 404 && !res.headers.get('x-app')) await res.arrayBuffer();
      return res.status !== 404 || res.headers.get('x-app') !== null;
    },
    { what: `a rule routing ${path} at cloudcore ${c.name}`, timeoutMs: 30_000 },
  );
  return res!;
}

beforeAll(async () => {
  app = createServer((req, res) => {
    // the edge app: a 404 of its own with a header and a body, as it must reach the caller
    res.writeHead(req.url?.startsWith('/target/here?') ? 201 : 404, {
      'X-App': 'edge-app',
      'Content-Type': 'text/plain',
    });
    res.end(`app saw ${req.method} ${req.url}`);
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  appPort = (app.address() as { port: number }).port;

  cp = await startControlPlane();
  await cp.kubectl(['create', 'serviceaccount', 'default', '-n', 'default']);
  await cp.kubectl(['apply', ...CRDS.flatMap((f) => ['-f', f])]);
  await cp.waitForCrds([
    'objectsyncs.reliablesyncs.kubeedge.io',
    'clusterobjectsyncs.reliablesyncs.kubeedge.io',
    'rules.rules.kubeedge.io',
    'ruleendpoints.rules.kubeedge.io',
  ]);
  for (const node of ['edge-a', 'edge-b', 'edge-c'])
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify(edgeNode(node)),
    });
  dir = await tempDir('multicloud');
  link = await prepareLink(dir);
  // one after the other: the first creates the PKI secrets, the second takes them
  clouds.set('A', await startCloud('A'));
  clouds.set('B', await startCloud('B'));
  edges.push(await startEdge('edge-a', cloud('A'), cloud('B')));
  edges.push(await startEdge('edge-b', cloud('B'), cloud('A')));
  for (const e of edges) subs.push(await mqttClient(e.broker.url, ['test/#']));
}, 600_000);

afterAll(async () => {
  await killed?.stop();
  for (const s of subs) await s.end();
  for (const e of edges) {
    await e.kernel.stop();
    await e.proxy.stop();
    await e.broker.stop();
  }
  for (const c of clouds.values()) await c.kernel.stop();
  await new Promise((r) => app?.close(r));
  await cp?.stop();
  await cleanup();
}, 120_000);

describe('two cloudcores against one API server (real control plane, two cloud and two edge kernels)', () => {
  it('each node is held by one cloudcore: its Node names it, its pods come from it only', async () => {
    for (const [node, holder] of [
      ['edge-a', cloud('A')],
      ['edge-b', cloud('B')],
    ] as const) {
      await waitFor(
        async () =>
          (await get(['node', node])).metadata.annotations?.[RouterAddressAnnotation] ===
          `127.0.0.1:${holder.routerPort}`,
        { what: `${node} annotated as held by cloudcore ${holder.name}`, timeoutMs: 20_000 },
      );
      expect((await get(['node', node])).metadata.annotations?.cloudcore).toBe('127.0.0.1');
    }
    for (const name of ['a0', 'a1', 'a-keep', 'a-gone'])
      await cp.kubectl(['apply', '-f', '-'], { input: pod(name, 'edge-a') });
    await cp.kubectl(['apply', '-f', '-'], { input: pod('b0', 'edge-b') });
    for (const [e, name] of [
      ['edge-a', 'a0'],
      ['edge-a', 'a1'],
      ['edge-b', 'b0'],
    ] as const)
      await waitFor(() => history(edge(e), name).length > 0, {
        what: `${name} applied at ${e}`,
        timeoutMs: 20_000,
      });
    await waitFor(() => history(edge('edge-a'), 'a-gone').length > 0, {
      what: 'a-gone applied at edge-a',
      timeoutMs: 20_000,
    });
    await cp.kubectl(['delete', 'pod', 'a-gone', '--grace-period=0', '--force']);
    await waitFor(() => history(edge('edge-a'), 'a-gone').some((h) => h.startsWith('delete')), {
      what: 'a-gone deleted at edge-a',
      timeoutMs: 20_000,
    });
    expect(await sentTo(cloud('A'), 'edge-a')).toBeGreaterThan(0);
    expect(await sentTo(cloud('B'), 'edge-a')).toBe(0);
    expect(await sentTo(cloud('B'), 'edge-b')).toBeGreaterThan(0);
    expect(await sentTo(cloud('A'), 'edge-b')).toBe(0);
    // what the holder delivered leaves the other cloudcore's queue for the node
    for (const [c, node] of [
      [cloud('B'), 'edge-a'],
      [cloud('A'), 'edge-b'],
    ] as const)
      await waitFor(async () => (await nodeMetric(c, 'kubeedge_cloudhub_queue_depth', node)) === 0, {
        what: `cloudcore ${c.name} queue for ${node} emptied by the holder's acknowledgements`,
        timeoutMs: 20_000,
      });
    // the pods of one node never reach the other
    expect(history(edge('edge-b'), 'a0')).toEqual([]);
    expect(history(edge('edge-a'), 'b0')).toEqual([]);
  }, 120_000);

  it('forwards a REST call to the cloudcore holding the node and returns its answer as it is', async () => {
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          ruleEndpoint('my-rest', 'rest'),
          ruleEndpoint('my-eventbus', 'eventbus'),
          ruleEndpoint('my-servicebus', 'servicebus', { service_port: String(appPort) }),
          rule('to-mqtt', 'my-rest', { path: '/test' }, 'my-eventbus', { topic: 'test' }),
          rule('to-app', 'my-rest', { path: '/source' }, 'my-servicebus', { path: '/target' }),
        ],
      }),
    });
    // rest -> eventbus: at B for edge-a (held by A), and at A for edge-b
    for (const [at, e] of [
      [cloud('B'), edge('edge-a')],
      [cloud('A'), edge('edge-b')],
    ] as const) {
      const res = await callWhenRouted(at, `/${e.node}/default/test`, {
        body: `to ${e.node} via ${at.name}`,
      });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('message delivered\n');
      const [got] = await subs[edges.indexOf(e)]!.waitFor('test', 1, 10_000);
      expect(got!.payload).toBe(`to ${e.node} via ${at.name}`);
    }
    // rest -> servicebus at B for edge-a: the app's own statuses, headers and bodies come back
    const created = await callWhenRouted(cloud('B'), '/edge-a/default/source/here?x=1', {
      method: 'PUT',
      body: 'x',
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('x-app')).toBe('edge-app');
    expect(await created.text()).toBe('app saw PUT /target/here?x=1');
    const missing = await call(cloud('B'), '/edge-a/default/source/nope');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-app')).toBe('edge-app');
    expect(await missing.text()).toBe('app saw POST /target/nope');
    // no cloudcore holds a node that never connected: 503 at once, nothing forwarded
    const nobody = await call(cloud('B'), '/edge-none/default/test', { body: 'x' });
    expect(nobody.status).toBe(503);
    expect(await nobody.text()).toMatch(
      /node edge-none: not delivered: node edge-none is not connected to this cloudcore/,
    );
    // each call counted once, by the router that delivered it, in one status both routers write
    await waitForStatus('to-mqtt', { successMessages: 2, failMessages: 1 });
    await waitForStatus('to-app', { successMessages: 2, failMessages: 0 });

    // figure: a call at the holder, and the same call forwarded (one after the other)
    const median = async (at: Cloud): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < FIGURE_CALLS; i++) {
        const t = performance.now();
        const r = await call(at, '/edge-a/default/test/figure', { body: String(i) });
        await r.arrayBuffer();
        expect(r.status).toBe(200);
        times.push(performance.now() - t);
      }
      return times.sort((x, y) => x - y)[Math.floor(times.length / 2)]!;
    };
    const [local, forwarded] = [await median(cloud('A')), await median(cloud('B'))];
    console.info(
      `FIGURE rest -> eventbus call, median of ${FIGURE_CALLS}: at the holder ${local.toFixed(1)} ms, forwarded ${forwarded.toFixed(1)} ms`,
    );
    await subs[0]!.waitFor('test/figure', 2 * FIGURE_CALLS, 10_000);
  }, 120_000);

  it('cloudcore A stops: edge-a reconnects to B, gets what changed meanwhile, and nothing is applied twice', async () => {
    const a = edge('edge-a');
    const a0 = (await get(['pod', 'a0'])).metadata;
    formerA = cloud('A');
    // figure: from the stop to edge-a connected again (through B)
    let reconnected = 0;
    const off = a.kernel.cloud.onChange((up) => {
      if (up) reconnected = Date.now();
    });
    const stopping = Date.now();
    await formerA.kernel.stop();
    clouds.delete('A');
    // while edge-a moves: a pod changed, one created, one deleted
    await cp.kubectl(['label', 'pod', 'a1', 'moved=yes']);
    await cp.kubectl(['apply', '-f', '-'], { input: pod('a2', 'edge-a') });
    await cp.kubectl(['delete', 'pod', 'a0', '--grace-period=0', '--force']);
    const a1 = (await get(['pod', 'a1'])).metadata.resourceVersion;
    const a2 = (await get(['pod', 'a2'])).metadata.resourceVersion;

    await waitFor(() => a.kernel.cloud.connected && a.proxy.chosen.at(-1) === cloud('B').ws, {
      what: 'edge-a connected through B',
      timeoutMs: 30_000,
    });
    off();
    console.info(
      `FIGURE cloudcore A stop called -> edge-a connected through B: ${reconnected - stopping} ms`,
    );
    await waitFor(
      () =>
        history(a, 'a1').includes(`update ${a1}`) &&
        history(a, 'a2').some((h) => h.endsWith(a2)) &&
        history(a, 'a0').some((h) => h.startsWith('delete')),
      {
        what: 'the change, the new pod and the delete at edge-a',
        timeoutMs: 30_000,
        details: () =>
          JSON.stringify(
            a.applied.map((m) => [m.route.operation, m.route.resource, m.header.resourceversion]),
          ),
      },
    );
    await waitFor(
      async () =>
        (await get(['node', 'edge-a'])).metadata.annotations?.[RouterAddressAnnotation] ===
        `127.0.0.1:${cloud('B').routerPort}`,
      { what: 'edge-a annotated as held by B', timeoutMs: 20_000 },
    );
    // B's router now delivers to edge-a itself
    const res = await call(cloud('B'), '/edge-a/default/test', { body: 'after the move' });
    expect(res.status).toBe(200);
    expect((await subs[0]!.waitFor('test', 2, 10_000))[1]!.payload).toBe('after the move');

    await waitForStatus('to-mqtt', { successMessages: 3 + 2 * FIGURE_CALLS, failMessages: 1 });

    // settled: B (leading now) makes two more resync passes
    const passes = await resyncPasses(cloud('B'));
    await waitFor(async () => (await resyncPasses(cloud('B'))) >= passes + 2, {
      what: 'two resync passes of B',
      timeoutMs: 40_000,
    });
    // each version applied once: the delete of a0 once, a1 and a2 once per version
    expect(history(a, 'a0').filter((h) => h.startsWith('delete'))).toHaveLength(1);
    expect(history(a, 'a0')[0]).toBe(`insert ${a0.resourceVersion}`);
    for (const name of ['a0', 'a1', 'a2', 'a-gone']) {
      const h = history(a, name);
      expect(new Set(h).size, `${name}: ${h.join(', ')}`).toBe(h.length);
    }
    // what edge-a had before the move (B queued it too, while A held the node) is not sent again
    expect(history(a, 'a-keep')).toHaveLength(1);
    expect(history(a, 'a-gone').filter((h) => h.startsWith('delete'))).toHaveLength(1);
  }, 180_000);

  it('a cloudcore that does not lead resyncs the nodes it holds: a delete it never saw reaches its edge', async () => {
    // B leads now; edge-a goes offline, a1 is deleted, A comes back (not leading), edge-a returns to A
    const before = edge('edge-a');
    const a1 = (await get(['pod', 'a1'])).metadata.uid;
    await before.kernel.stop();
    await cp.kubectl(['delete', 'pod', 'a1', '--grace-period=0', '--force']);
    clouds.set('A', await startCloud('A', formerA));
    const back = await edgeKernel(before);
    edges[edges.indexOf(before)] = back;
    expect(back.proxy.chosen.at(-1)).toBe(cloud('A').ws);
    await waitFor(() => history(back, 'a1').some((h) => h.startsWith('delete')), {
      what: 'the delete of a1 at edge-a, through A',
      timeoutMs: 30_000,
      details: () => JSON.stringify(back.applied.map((m) => [m.route.operation, m.route.resource])),
    });
    expect((back.applied.find((m) => m.route.operation === 'delete')!.content as Obj).metadata.uid).toBe(a1);
    expect(await resyncPasses(cloud('A'))).toBeGreaterThan(0);
  }, 180_000);

  it('a cloudcore process killed (SIGKILL): its edge moves to B, gets what changed meanwhile, and nothing is applied twice', async () => {
    // cloudcore C: dist/bin/cloudcore.js on the same cluster, edge-c behind a balancer preferring it
    const [ws, https, routerPort] = [await freePort(), await freePort(), await freePort()];
    const file = join(dir, 'cloudcore-C.yaml');
    await writeFile(file, cloudYaml(ws, https, routerPort, 'kernel:\n  health: {enable: false}\n'));
    const peer = await spawnPeer(
      process.execPath,
      [join(import.meta.dirname, '../../dist/bin/cloudcore.js'), '--config', file],
      { name: 'cloudcore-C' },
    );
    killed = peer;
    await waitFor(() => listening(ws), {
      what: 'cloudcore C listening',
      timeoutMs: 60_000,
      details: () => peer.output(),
    });
    const [broker, proxy] = await Promise.all([startMosquitto(), startFailoverProxy([ws, cloud('B').ws])]);
    const e = await edgeKernel({ node: 'edge-c', broker, proxy, https });
    edges.push(e);
    expect(proxy.chosen.at(-1)).toBe(ws);
    for (const name of ['c0', 'c-keep'])
      await cp.kubectl(['apply', '-f', '-'], { input: pod(name, 'edge-c') });
    await waitFor(() => history(e, 'c0').length > 0 && history(e, 'c-keep').length > 0, {
      what: 'c0 and c-keep applied at edge-c',
      timeoutMs: 20_000,
    });
    // C recorded the acknowledgements (its queue writes them at once, in the background)
    for (const name of ['c0', 'c-keep']) {
      const p = (await get(['pod', name])).metadata;
      await waitFor(
        async () =>
          (
            JSON.parse(
              await cp.kubectl([
                'get',
                'objectsyncs.reliablesyncs.kubeedge.io',
                '-n',
                'default',
                `edge-c.${p.uid}`,
                '-o',
                'json',
              ]),
            ) as { status?: { objectResourceVersion?: string } }
          ).status?.objectResourceVersion === p.resourceVersion,
        { what: `the ObjectSync of ${name} at its version`, timeoutMs: 20_000 },
      );
    }

    process.kill(peer.pid, 'SIGKILL');
    await peer.exited;
    await cp.kubectl(['label', 'pod', 'c0', 'moved=yes']);
    await cp.kubectl(['apply', '-f', '-'], { input: pod('c1', 'edge-c') });
    const c0 = (await get(['pod', 'c0'])).metadata.resourceVersion;
    await waitFor(
      () =>
        proxy.chosen.at(-1) === cloud('B').ws &&
        history(e, 'c0').includes(`update ${c0}`) &&
        history(e, 'c1').length > 0,
      {
        what: 'edge-c through B with the change and the new pod',
        timeoutMs: 60_000,
        details: () =>
          JSON.stringify(
            e.applied.map((m) => [m.route.operation, m.route.resource, m.header.resourceversion]),
          ),
      },
    );
    // settled: two resync passes of B
    const passes = await resyncPasses(cloud('B'));
    await waitFor(async () => (await resyncPasses(cloud('B'))) >= passes + 2, {
      what: 'two resync passes of B',
      timeoutMs: 40_000,
    });
    expect(history(e, 'c-keep')).toHaveLength(1);
    for (const name of ['c0', 'c1']) {
      const h = history(e, name);
      expect(new Set(h).size, `${name}: ${h.join(', ')}`).toBe(h.length);
    }
  }, 240_000);
});
