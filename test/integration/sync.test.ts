/**
 * Reliable delivery across a cloudcore restart, against a real kube-apiserver with KubeEdge's
 * ObjectSync/ClusterObjectSync CRDs (v1.23.1 manifests from the fixtures): a cloud kernel (cloudHub,
 * edgeController, syncController on the cloudcore identity) and an edge playing edgeHub (a
 * mutual-TLS websocket with a node certificate, acknowledging every ACK-mode message as
 * metaManager does).
 *
 *  - the edge acknowledges pods: each gets its ObjectSync `<node>.<uid>` with the pod's
 *    resourceVersion;
 *  - the cloud kernel stopped, a pod changed and another deleted in the API, the cloud kernel
 *    started again: the edge gets exactly the change and the delete, once each, and nothing it had;
 *    the deleted pod's ObjectSync is gone once the edge acknowledged the delete; the record of a
 *    node that no longer exists is collected;
 *  - two cloud kernels: both resync, the holder of the Lease collects the records of vanished
 *    nodes; the leader stops and the other takes over.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parseConfig } from '../../kernel/config/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger, type LogLevel } from '../../kernel/log.js';
import { encodeMessage, newResponse, type Message } from '../../kernel/index.js';
import {
  CLIENT_AUTH,
  createCa,
  signCertificate,
  toPem,
  type KeyPairDer,
} from '../../plugins/cloudhub/pki.js';
import { cloudLayout, cloudRegistry } from '../../plugins/registry.js';
import { startControlPlane, type ControlPlane } from '../peers/kube.js';
import { cleanup, freePort, tempDir, waitFor } from '../peers/util.js';
import { busyboxPod, edgeNode } from '../helpers/pod.js';

const NODE = 'edge-sync';
const PROJECT = 'e632aba927ea4ac2b575ec1603d56f10';
const logger = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel);
const CRDS = [
  'test/fixtures/kubeedge-crds/v1.23.1_objectsync_v1alpha1.yaml',
  'test/fixtures/kubeedge-crds/v1.23.1_cluster_objectsync_v1alpha1.yaml',
];

let cp: ControlPlane;
let dir: string;
let ca: KeyPairDer;
let caPem: string;
let wsPort: number;
let httpsPort: number;
let cloud: Kernel | undefined;
let edge: Edge | undefined;
let identity: { cert: string; key: string };

interface Obj {
  metadata: { name: string; namespace?: string; uid: string; resourceVersion: string };
  spec?: { holderIdentity?: string; objectKind?: string; objectAPIVersion?: string; objectName?: string };
  status?: { objectResourceVersion?: string };
}

async function get(args: string[]): Promise<Obj | undefined> {
  try {
    return JSON.parse(await cp.kubectl(['get', ...args, '-o', 'json'])) as Obj;
  } catch (err) {
    if (String(err).includes('NotFound')) return undefined;
    throw err;
  }
}

function cloudYaml(ws: number, https: number, modules = ''): string {
  return `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${cp.cloudcoreKubeconfigPath}
modules:
  edgeController: {enable: true}
  cloudHub:
    advertiseAddress: [127.0.0.1]
    tlsCAFile: ${join(dir, 'ca/rootCA.crt')}
    tlsCAKeyFile: ${join(dir, 'ca/rootCA.key')}
    tlsCertFile: ${join(dir, `certs-${ws}/server.crt`)}
    tlsPrivateKeyFile: ${join(dir, `certs-${ws}/server.key`)}
    websocket: {enable: true, address: 127.0.0.1, port: ${ws}}
    https: {enable: true, address: 127.0.0.1, port: ${https}}
${modules}`;
}

async function startCloud(yaml: string, only?: readonly string[]): Promise<Kernel> {
  const kernel = new Kernel({
    config: parseConfig(cloudLayout, yaml, 'cloudcore.yaml'),
    registry: only ? cloudRegistry.filter((e) => only.includes(e.configKey)) : cloudRegistry,
    logger,
  });
  await kernel.start();
  return kernel;
}

/** The edge: a websocket as edgeHub dials it, acknowledging every ACK-mode message. */
interface Edge {
  inbox: Message[];
  stop(): void;
}

function dial(): Promise<Edge> {
  const ws = new WebSocket(`wss://127.0.0.1:${wsPort}/${PROJECT}/${NODE}/events`, {
    ca: caPem,
    ...identity,
    headers: { node_id: NODE, project_id: PROJECT, ConnectionUse: 'msg' },
  });
  const inbox: Message[] = [];
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString()) as Message;
    inbox.push(msg);
    if (msg.route.group === 'resource' && msg.route.operation !== 'response')
      ws.send(encodeMessage(newResponse(msg, 'OK')) + '\n');
  });
  const keepalive = setInterval(
    () =>
      ws.readyState === WebSocket.OPEN &&
      ws.send(
        encodeMessage({
          header: { msg_id: crypto.randomUUID(), timestamp: Date.now() },
          route: { source: 'edgehub', group: 'resource', operation: 'keepalive', resource: 'node/keepalive' },
          content: 'ping',
        }) + '\n',
      ),
    1000,
  );
  return new Promise((resolve, reject) => {
    ws.once('open', () =>
      resolve({
        inbox,
        stop: () => {
          clearInterval(keepalive);
          ws.close();
        },
      }),
    );
    ws.once('error', (err) => {
      clearInterval(keepalive);
      reject(err);
    });
  });
}

/** Dial until the cloud answers (it may be starting). */
async function connect(): Promise<Edge> {
  let e: Edge | undefined;
  await waitFor(async () => (e = await dial()) !== undefined, {
    what: 'the edge connected',
    timeoutMs: 30_000,
  });
  return e!;
}

const podMsgs = (inbox: Message[], name: string): Message[] =>
  inbox.filter((m) => m.route.resource === `default/pod/${name}` && m.route.operation !== 'response');

const pod = (name: string): string => JSON.stringify(busyboxPod(NODE, name, {}));

async function metric(kernel: Kernel, action: string): Promise<number> {
  const text = await kernel.metrics.text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`kubeedge_synccontroller_actions_total{action="${action}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

async function objectSync(uid: string): Promise<Obj | undefined> {
  return get(['objectsyncs.reliablesyncs.kubeedge.io', '-n', 'default', `${NODE}.${uid}`]);
}

beforeAll(async () => {
  cp = await startControlPlane();
  await cp.kubectl(['create', 'serviceaccount', 'default', '-n', 'default']);
  for (const f of CRDS) await cp.kubectl(['apply', '-f', f]);
  await cp.waitForCrds([
    'objectsyncs.reliablesyncs.kubeedge.io',
    'clusterobjectsyncs.reliablesyncs.kubeedge.io',
  ]);
  await cp.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify(edgeNode(NODE)),
  });

  dir = await tempDir('sync');
  ca = await createCa();
  caPem = toPem('CERTIFICATE', ca.cert);
  await mkdir(join(dir, 'ca'), { recursive: true });
  await writeFile(join(dir, 'ca/rootCA.crt'), caPem);
  await writeFile(join(dir, 'ca/rootCA.key'), toPem('EC PRIVATE KEY', ca.key), { mode: 0o600 });
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = await signCertificate(ca, {
    publicKey: publicKey.export({ type: 'spki', format: 'der' }),
    commonName: `system:node:${NODE}`,
    organization: ['system:nodes'],
    usages: [CLIENT_AUTH],
    validityDays: 1,
  });
  identity = {
    cert: toPem('CERTIFICATE', der),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
  [wsPort, httpsPort] = [await freePort(), await freePort()];
  cloud = await startCloud(cloudYaml(wsPort, httpsPort));
  edge = await connect();
}, 600_000);

afterAll(async () => {
  edge?.stop();
  await cloud?.stop();
  await cp?.stop();
  await cleanup();
}, 120_000);

describe('syncController and ObjectSync bookkeeping (real kube-apiserver, KubeEdge v1.23.1 CRDs)', () => {
  const uids = new Map<string, string>();

  it('records what the edge acknowledged: ObjectSync <node>.<uid> with the pod resourceVersion', async () => {
    for (const name of ['keep', 'change', 'gone'])
      await cp.kubectl(['apply', '-f', '-'], { input: pod(name) });
    for (const name of ['keep', 'change', 'gone']) {
      const p = (await get(['pod', name]))!;
      uids.set(name, p.metadata.uid);
      await waitFor(() => podMsgs(edge!.inbox, name).length > 0, {
        what: `pod ${name} at the edge`,
        timeoutMs: 20_000,
      });
      let sync: Obj | undefined;
      await waitFor(
        async () => {
          const now = (await get(['pod', name]))!;
          sync = await objectSync(p.metadata.uid);
          return sync?.status?.objectResourceVersion === now.metadata.resourceVersion;
        },
        {
          what: `ObjectSync of pod ${name} at its resourceVersion`,
          timeoutMs: 20_000,
          details: () => JSON.stringify(sync),
        },
      );
      expect(sync!.spec).toEqual({ objectAPIVersion: 'v1', objectKind: 'Pod', objectName: name });
    }
    // the edge Node itself is tracked by a ClusterObjectSync
    const node = (await get(['node', NODE]))!;
    await waitFor(
      async () =>
        (await get(['clusterobjectsyncs.reliablesyncs.kubeedge.io', `${NODE}.${node.metadata.uid}`]))?.spec
          ?.objectKind === 'Node',
      { what: 'the ClusterObjectSync of the node', timeoutMs: 20_000 },
    );
  }, 120_000);

  it('after a cloudcore restart sends exactly what changed and what was deleted meanwhile, once each', async () => {
    const before = (await get(['pod', 'change']))!.metadata.resourceVersion;
    await cloud!.stop();
    cloud = undefined;
    edge!.stop();
    await cp.kubectl(['label', 'pod', 'change', 'changed=yes']);
    await cp.kubectl(['delete', 'pod', 'gone', '--grace-period=0', '--force']);
    // the record of a node that no longer exists: the new leader collects it
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'reliablesyncs.kubeedge.io/v1alpha1',
        kind: 'ObjectSync',
        metadata: { name: 'vanished-node.0c1d', namespace: 'default' },
        spec: { objectAPIVersion: 'v1', objectKind: 'Pod', objectName: 'keep' },
      }),
    });
    const changed = (await get(['pod', 'change']))!.metadata.resourceVersion;
    expect(BigInt(changed)).toBeGreaterThan(BigInt(before));

    const restarted = Date.now();
    cloud = await startCloud(cloudYaml(wsPort, httpsPort));
    edge = await connect();
    const { inbox } = edge;
    await waitFor(() => podMsgs(inbox, 'change').length > 0 && podMsgs(inbox, 'gone').length > 0, {
      what: 'the change and the delete at the edge',
      timeoutMs: 30_000,
      details: () => JSON.stringify(inbox.map((m) => [m.route.operation, m.route.resource])),
    });
    console.info(
      `FIGURE cloud kernel start -> the edge has the change and the delete: ${Date.now() - restarted} ms`,
    );
    // settled: both acknowledged and recorded, then two more resync passes of the leader
    await waitFor(async () => (await objectSync(uids.get('gone')!)) === undefined, {
      what: 'the deleted pod ObjectSync removed',
      timeoutMs: 20_000,
    });
    await waitFor(
      async () => (await objectSync(uids.get('change')!))?.status?.objectResourceVersion === changed,
      {
        what: 'the changed pod ObjectSync at its new version',
        timeoutMs: 20_000,
      },
    );
    await waitFor(
      async () =>
        (await get(['objectsyncs.reliablesyncs.kubeedge.io', '-n', 'default', 'vanished-node.0c1d'])) ===
        undefined,
      { what: 'the record of a vanished node collected', timeoutMs: 20_000 },
    );
    expect(await metric(cloud, 'collected')).toBe(1);
    const passes = await metric(cloud, 'pass');
    await waitFor(async () => (await metric(cloud!, 'pass')) >= passes + 2, {
      what: 'two more resync passes',
      timeoutMs: 30_000,
    });

    const change = podMsgs(inbox, 'change');
    expect(change).toHaveLength(1);
    expect(change[0]!.header.resourceversion).toBe(changed);
    const gone = podMsgs(inbox, 'gone');
    expect(gone).toHaveLength(1);
    expect(gone[0]!.route.operation).toBe('delete');
    expect((gone[0]!.content as Obj).metadata.uid).toBe(uids.get('gone'));
    expect(podMsgs(inbox, 'keep')).toHaveLength(0);
    // nothing else the edge had: no other object was pushed
    expect(inbox.filter((m) => !m.header.parent_msg_id && m.route.operation !== 'response')).toHaveLength(2);
  }, 180_000);

  it('resyncs in every cloud kernel, collects in one: the holder of the Lease; the other takes over when it stops', async () => {
    const [ws2, https2] = [await freePort(), await freePort()];
    const second = await startCloud(cloudYaml(ws2, https2), ['cloudHub', 'syncController']);
    const vanished = async (name: string): Promise<void> => {
      await cp.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'reliablesyncs.kubeedge.io/v1alpha1',
          kind: 'ClusterObjectSync',
          metadata: { name },
          spec: { objectAPIVersion: 'v1', objectKind: 'Node', objectName: 'gone' },
        }),
      });
      // a record is collected when a Node is deleted: one comes and goes
      await cp.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name: `tmp-${name.split('.')[0]}` },
        }),
      });
      await cp.kubectl(['delete', 'node', `tmp-${name.split('.')[0]}`]);
      await waitFor(
        async () => (await get(['clusterobjectsyncs.reliablesyncs.kubeedge.io', name])) === undefined,
        { what: `the record ${name} collected`, timeoutMs: 20_000 },
      );
    };
    try {
      const lease = async (): Promise<string | undefined> =>
        (await get(['lease', '-n', 'kubeedge', 'cloudcore-synccontroller']))?.spec?.holderIdentity;
      const holder = await lease();
      expect(holder).toBeTruthy();
      // both resync (each cloudHub sends to the nodes it holds)
      const passes = await metric(second, 'pass');
      await waitFor(async () => (await metric(second, 'pass')) >= passes + 2, {
        what: 'the second kernel resyncing',
        timeoutMs: 30_000,
      });
      // the first kernel leads: it collects, the second does not
      const collected = await metric(cloud!, 'collected');
      await vanished('vanished-1.0c1d');
      await waitFor(async () => (await metric(cloud!, 'collected')) === collected + 1, {
        what: 'the leader counting it',
      });
      expect(await metric(second, 'collected')).toBe(0);
      expect(await lease()).toBe(holder);

      edge!.stop();
      await cloud!.stop();
      cloud = undefined;
      await waitFor(async () => ((await lease()) ?? holder) !== holder, {
        what: 'the second kernel leading',
        timeoutMs: 30_000,
      });
      await vanished('vanished-2.0c1d');
      await waitFor(async () => (await metric(second, 'collected')) === 1, {
        what: 'the new leader counting it',
      });
    } finally {
      await second.stop();
    }
  }, 180_000);
});
