/* eslint-disable @typescript-eslint/no-explicit-any -- JSON documents recorded from the wire are inspected loosely */
/**
 * A pod's life end to end through the REAL metaManager and edged on a real containerd
 * (test/peers/containerd.ts), on a real SQLite file. A test module named `websocket` in group
 * `hub` plays the cloud (edgeHub's place) and answers the way the recorded session
 * (shared fixtures, `edgecore-v1.15.4-session.jsonl`) and the wire spec (§5.2, §5.3) show:
 *
 *  - edged registers its Node through metaManager; the cloud answers `{"Object":…,"Err":null}`,
 *    metaManager ACKs that reply, and edged uses the answered object (its uid becomes the owner of
 *    the node lease).
 *  - the cloud pushes `insert default/pod/<name>` (header `resourceversion`, `metadata.uid`);
 *    metaManager stores and ACKs it, edged runs it, and the cloud receives `default/podpatch/<name>`
 *    status patches (content a JSON string) going to Running.
 *  - the cloud deletes it; metaManager drops the row and ACKs; edged removes sandbox and containers.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, newMessage, type Message } from '../../kernel/index.js';
import { CriClient } from '../../plugins/edged/cri.js';
import { edgeRegistry } from '../../plugins/registry.js';
import { startTestKernel, type TestKernel } from '../helpers/kernel.js';
import {
  BUSYBOX_IMAGE,
  buildBusyboxImage,
  startContainerd,
  type ContainerdPeer,
} from '../peers/containerd.js';
import { cleanup, freePort, tempDir, waitFor } from '../peers/util.js';

const NODE = 'edge-capture';
const LABEL_POD_UID = 'io.kubernetes.pod.uid';
const registry = edgeRegistry.filter((e) => e.configKey === 'metaManager' || e.configKey === 'edged');

let cd: ContainerdPeer;
let cri: CriClient;
let work: string;

/** KubeEdge's default paths: with every path configured, a test run must not create any of them. */
const SYSTEM_PATHS = [
  '/etc/kubeedge',
  '/var/lib/kubeedge',
  '/var/lib/edged',
  '/var/lib/kubelet',
  '/var/log/pods',
  '/var/lib/kubeedge/edgecore.db',
];
const systemBefore = SYSTEM_PATHS.filter((p) => existsSync(p));

/** Processes whose command line names `text` (containerd, its shims, runc). */
function processesNaming(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

beforeAll(async () => {
  cd = await startContainerd();
  await buildBusyboxImage(cd.socket, BUSYBOX_IMAGE);
  cri = new CriClient({ runtimeEndpoint: cd.endpoint, timeoutMs: 30_000 });
  work = await tempDir('pod-lifecycle');
}, 120_000);

afterAll(async () => {
  cri?.close();
  await cleanup(); // containerd torn down (sandboxes, shims, bridge), temp dirs removed
  // Nothing leaked: containerd and its shims gone, temp dirs removed, no system path created.
  if (cd) {
    expect(processesNaming(cd.dir)).toEqual([]);
    expect(existsSync(cd.dir)).toBe(false);
  }
  if (work) expect(existsSync(work)).toBe(false);
  expect(SYSTEM_PATHS.filter((p) => existsSync(p))).toEqual(systemBefore);
}, 120_000);

function edgecoreYaml(dataSource: string): string {
  return `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${JSON.stringify(dataSource)}
modules:
  edgeHub: {enable: false}
  eventBus: {enable: false}
  deviceTwin: {enable: false}
  metaManager:
    enable: true
    remoteQueryTimeout: 10
  edged:
    enable: true
    hostnameOverride: ${NODE}
    nodeIP: 127.0.0.1
    rootDirectory: ${JSON.stringify(join(work, 'kubelet'))}
    tailoredKubeletConfig:
      containerRuntimeEndpoint: ${cd.endpoint}
      imageServiceEndpoint: ${cd.endpoint}
      podLogsDir: ${JSON.stringify(cd.podLogDir)}
      staticPodPath: ${JSON.stringify(join(work, 'manifests-none'))}
      nodeStatusUpdateFrequency: 1s
      nodeLeaseDurationSeconds: 4
`;
}

/**
 * The cloud end of the websocket: records every message metaManager hands to edgeHub and answers
 * the synchronous ones as cloudcore's edgecontroller does, with replies written as wire JSON.
 */
class Cloud {
  readonly received: Message[] = [];
  readonly replies: Message[] = [];
  readonly objects = new Map<string, Record<string, any>>();
  private seq = 1000;
  readonly nodeUid = '6a1f4c2e-0c9b-4a55-9d36-1c0e5b7f0a01';

  constructor(private readonly t: TestKernel) {}

  handle(m: Message): void {
    // What crossed the websocket is the encoded message: record it as the cloud would parse it.
    this.received.push(decodeMessage(encodeMessage(m)));
    if (!m.header.sync) return;
    const reply = this.answer(m);
    this.replies.push(reply);
    this.t.kernel.bus.respond(reply);
  }

  private wire(req: Message, content: unknown, resourceVersion?: string): Message {
    const header: Record<string, unknown> = {
      msg_id: `resp-${++this.seq}`,
      parent_msg_id: req.header.msg_id,
      timestamp: Date.now(),
      sync: false,
    };
    if (resourceVersion) header.resourceversion = resourceVersion;
    return decodeMessage(
      JSON.stringify({
        header,
        route: {
          source: 'edgecontroller',
          group: 'resource',
          operation: 'response',
          resource: req.route.resource,
        },
        content,
      }),
    );
  }

  private notFound(kind: string, name: string): Record<string, unknown> {
    return {
      ErrStatus: {
        metadata: {},
        status: 'Failure',
        message: `${kind} "${name}" not found`,
        reason: 'NotFound',
        details: { name, kind },
        code: 404,
      },
    };
  }

  private answer(m: Message): Message {
    const op = m.route.operation ?? '';
    const res = m.route.resource ?? '';
    const [, type = '', name = ''] = res.split('/');
    const content = (typeof m.content === 'string' ? JSON.parse(m.content) : m.content) as any;
    if (type === 'node') {
      if (op === 'insert') {
        const node = structuredClone(content);
        node.metadata.uid = this.nodeUid;
        node.metadata.resourceVersion = '4711';
        node.metadata.creationTimestamp = new Date().toISOString();
        node.metadata.annotations = { ...(node.metadata.annotations ?? {}), cloudcore: '127.0.0.1' };
        this.objects.set(res, node);
        return this.wire(m, { Object: node, Err: null });
      }
      const node = this.objects.get(res);
      return this.wire(m, node ?? this.notFound('nodes', name));
    }
    if (type === 'nodepatch') {
      return this.wire(m, { Object: this.objects.get(`null/node/${name}`) ?? null, Err: null }, '4712');
    }
    if (type === 'lease') {
      if (op === 'query') {
        const lease = this.objects.get(res);
        return this.wire(m, { Object: lease ?? null, Err: lease ? null : this.notFound('leases', name) });
      }
      const lease = structuredClone(content);
      lease.metadata.uid ??= 'lease-uid';
      lease.metadata.resourceVersion = String(++this.seq);
      this.objects.set(res, lease);
      return this.wire(m, { Object: lease, Err: null });
    }
    if (type === 'podpatch') {
      return this.wire(m, {
        Object: this.objects.get(`${res.split('/')[0]}/pod/${name}`) ?? null,
        Err: null,
      });
    }
    return this.wire(m, 'OK');
  }

  of(op: string, resource: string, source?: string): Message[] {
    return this.received.filter(
      (m) =>
        m.route.operation === op &&
        m.route.resource === resource &&
        (source === undefined || m.route.source === source),
    );
  }
}

/** The pod push exactly as in the recorded session (only node name, image and port changed). */
function podInsertWire(name: string, uid: string, port: number): string {
  return JSON.stringify({
    header: {
      msg_id: 'pod-2',
      parent_msg_id: '',
      timestamp: 1795629438436,
      resourceversion: '100',
      sync: false,
    },
    route: {
      source: 'edgecontroller',
      group: 'resource',
      operation: 'insert',
      resource: `default/pod/${name}`,
    },
    content: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: 'default',
        uid,
        resourceVersion: '100',
        creationTimestamp: '2026-11-25T17:57:00Z',
      },
      spec: podSpec(port),
      status: {},
    },
  });
}

function podSpec(port: number): Record<string, unknown> {
  return {
    nodeName: NODE,
    hostNetwork: true,
    restartPolicy: 'Always',
    containers: [
      {
        name: 'web',
        image: BUSYBOX_IMAGE,
        imagePullPolicy: 'Never',
        command: ['/bin/httpd', '-f', '-p', String(port)],
        ports: [{ containerPort: port, hostPort: port, protocol: 'TCP' }],
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'File',
        resources: {},
      },
    ],
    enableServiceLinks: true,
    terminationGracePeriodSeconds: 30,
    dnsPolicy: 'ClusterFirst',
    schedulerName: 'default-scheduler',
    securityContext: {},
    priority: 0,
    preemptionPolicy: 'PreemptLowerPriority',
    tolerations: [],
  };
}

/** The delete as in the recorded session: deletionTimestamp, grace 0, resourceversion 101. */
function podDeleteWire(name: string, uid: string, port: number): string {
  return JSON.stringify({
    header: {
      msg_id: 'pod-del-1',
      parent_msg_id: '',
      timestamp: 1795629438436,
      resourceversion: '101',
      sync: false,
    },
    route: {
      source: 'edgecontroller',
      group: 'resource',
      operation: 'delete',
      resource: `default/pod/${name}`,
    },
    content: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: 'default',
        uid,
        resourceVersion: '101',
        creationTimestamp: '2026-11-25T17:57:00Z',
        deletionTimestamp: '2026-11-25T18:14:00Z',
        deletionGracePeriodSeconds: 0,
      },
      spec: podSpec(port),
      status: {},
    },
  });
}

function httpStatus(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function localQuery(t: TestKernel, resource: string): Promise<string[]> {
  const reply = await t.kernel.bus.request(
    'metamanager',
    newMessage({ source: 'tester', group: 'test', operation: 'query', resource }, null),
    5000,
  );
  return reply.content as string[];
}

describe('pod lifecycle through metaManager, edged and containerd', () => {
  it('registers the node through metaManager and edged gets the cloud’s {"Object","Err"} answer', async () => {
    const t = await startTestKernel(edgecoreYaml(join(work, 'register.db')), registry);
    try {
      // edgeHub's part: the cloud link comes up after the modules have started.
      const cloud = new Cloud(t);
      t.kernel.bus.addModule('websocket', 'hub').attach(
        (m) => cloud.handle(m),
        () => undefined,
      );
      t.kernel.cloud.set(true);

      await waitFor(() => cloud.of('insert', `null/node/${NODE}`).length > 0, {
        what: 'node registration at the cloud',
        timeoutMs: 15_000,
      });
      const reg = cloud.of('insert', `null/node/${NODE}`)[0] as Message<any>;
      expect(reg.route).toEqual({
        source: 'edged',
        group: 'meta',
        operation: 'insert',
        resource: `null/node/${NODE}`,
      });
      expect(reg.content.metadata.labels).toMatchObject({
        'node-role.kubernetes.io/edge': '',
        'node-role.kubernetes.io/agent': '',
      });
      // metaManager sent it with a fresh id (processRemote) and ACKs the cloud's reply.
      const answer = cloud.replies.find((r) => r.header.parent_msg_id === reg.header.msg_id) as Message<any>;
      expect(answer.content).toMatchObject({ Object: { metadata: { uid: cloud.nodeUid } }, Err: null });
      await waitFor(
        () =>
          cloud.received.some(
            (m) =>
              m.route.operation === 'response' &&
              m.header.parent_msg_id === answer.header.msg_id &&
              m.content === 'OK',
          ),
        { what: 'ACK of the registration reply', timeoutMs: 5000 },
      );
      const ack = cloud.received.find((m) => m.header.parent_msg_id === answer.header.msg_id) as Message;
      expect(ack.route).toEqual({
        source: 'edgecontroller',
        group: 'resource',
        operation: 'response',
        resource: `null/node/${NODE}`,
      });
      // The answered Node reached edged: its uid owns the lease edged writes next.
      await waitFor(
        () =>
          cloud.received.some(
            (m: Message<any>) =>
              m.route.resource === `kube-node-lease/lease/${NODE}` &&
              (m.route.operation === 'insert' || m.route.operation === 'update') &&
              m.content?.metadata?.ownerReferences?.[0]?.uid === cloud.nodeUid,
          ),
        { what: 'lease owned by the registered node uid', timeoutMs: 15_000 },
      );
      // Node status patches follow the registration, content a JSON string (fixture).
      await waitFor(() => cloud.of('patch', `null/nodepatch/${NODE}`, 'edged').length > 0, {
        what: 'node status patch',
        timeoutMs: 10_000,
      });
      expect(typeof cloud.of('patch', `null/nodepatch/${NODE}`)[0]?.content).toBe('string');
      // metaManager kept the cloud's Node in its store.
      const stored = (await localQuery(t, `null/node/${NODE}`)).map((s) => JSON.parse(s));
      expect(stored[0]?.metadata?.uid).toBe(cloud.nodeUid);
    } finally {
      await t.kernel.stop();
    }
  }, 30_000);

  it('runs a pod the cloud pushes, reports it Running, and removes it when the cloud deletes it', async () => {
    const t = await startTestKernel(edgecoreYaml(join(work, 'pods.db')), registry);
    const name = 'web-1';
    const uid = '11111111-2222-3333-4444-555555555555';
    const port = await freePort();
    try {
      const cloud = new Cloud(t);
      t.kernel.bus.addModule('websocket', 'hub').attach(
        (m) => cloud.handle(m),
        () => undefined,
      );
      t.kernel.cloud.set(true);

      // The push, as edgeHub hands a cloud message to metaManager.
      const push = decodeMessage(podInsertWire(name, uid, port));
      cloud.objects.set(`default/pod/${name}`, push.content as Record<string, any>);
      await t.kernel.bus.send('metamanager', push);

      await waitFor(
        () =>
          cloud.received.some(
            (m) =>
              m.route.operation === 'response' && m.header.parent_msg_id === 'pod-2' && m.content === 'OK',
          ),
        { what: 'ACK of the pod insert', timeoutMs: 5000 },
      );
      const ack = cloud.received.find((m) => m.header.parent_msg_id === 'pod-2') as Message;
      expect(ack.route).toEqual({
        source: 'edgecontroller',
        group: 'resource',
        operation: 'response',
        resource: `default/pod/${name}`,
      });
      const stored = (await localQuery(t, `default/pod/${name}`)).map((s) => JSON.parse(s));
      expect(stored[0]?.metadata).toMatchObject({ uid, resourceVersion: '100' });

      // Status patches reach the cloud through metaManager, going to Running.
      const patches = (): any[] =>
        cloud.of('patch', `default/podpatch/${name}`).map((m) => {
          expect(m.route).toMatchObject({ source: 'edged', group: 'meta' });
          expect(typeof m.content).toBe('string');
          return JSON.parse(m.content as string);
        });
      await waitFor(() => patches().some((p) => p.status?.phase === 'Running'), {
        what: 'a podpatch with phase Running',
        details: () => JSON.stringify(patches()),
        timeoutMs: 20_000,
      });
      const all = patches();
      expect(all.every((p) => p.metadata?.uid === uid)).toBe(true);
      const running = all.find((p) => p.status?.phase === 'Running');
      const web = running.status.containerStatuses.find((c: any) => c.name === 'web');
      expect(web.state.running).toBeTruthy();
      expect(web.containerID).toMatch(/^containerd:\/\/[0-9a-f]{64}$/);
      // The cloud answered each patch with {"Object":…,"Err":null}, straight to edged's waiter.
      const patchIds = new Set(cloud.of('patch', `default/podpatch/${name}`).map((m) => m.header.msg_id));
      expect(
        cloud.replies
          .filter((r) => patchIds.has(r.header.parent_msg_id ?? ''))
          .map((r: any) => r.content.Err),
      ).toContain(null);
      // The container really serves on the host network.
      await waitFor(async () => (await httpStatus(port)) > 0, { what: `httpd on 127.0.0.1:${port}` });
      expect(await cri.listPodSandbox({ [LABEL_POD_UID]: uid })).toHaveLength(1);

      // The cloud deletes it.
      await t.kernel.bus.send('metamanager', decodeMessage(podDeleteWire(name, uid, port)));
      await waitFor(
        () =>
          cloud.received.some(
            (m) =>
              m.route.operation === 'response' &&
              m.header.parent_msg_id === 'pod-del-1' &&
              m.content === 'OK',
          ),
        { what: 'ACK of the pod delete', timeoutMs: 5000 },
      );
      expect(await localQuery(t, `default/pod/${name}`)).toEqual([]);
      await waitFor(
        async () =>
          (await cri.listPodSandbox({ [LABEL_POD_UID]: uid })).length === 0 &&
          (await cri.listContainers({ [LABEL_POD_UID]: uid })).length === 0,
        { what: 'sandbox and containers removed', timeoutMs: 20_000 },
      );
      await expect(httpStatus(port)).rejects.toThrow();
      expect(t.kernel.status().every((s) => s.restarts === 0 && s.state === 'running')).toBe(true);
    } finally {
      await t.kernel.stop();
    }
  }, 45_000);
});
