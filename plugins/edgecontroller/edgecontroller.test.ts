/**
 * edgeController against a real kube-apiserver (test/peers/kube.ts), a probe module playing
 * cloudHub: the recorded v1.23.1 session's edge requests (node registration, lease, node and pod
 * status, pod deletion, configmap queries) get the recorded reply shapes with the edge's message id
 * as parent, and what changes in the API reaches the probe addressed to the one edge node concerned.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kernel } from '../../kernel/kernel.js';
import { newMessage, type Message } from '../../kernel/index.js';
import { findRecorded } from '../../test/helpers/recorded.js';
import { startControlPlane, type ControlPlane } from '../../test/peers/kube.js';
import { cleanup, waitFor } from '../../test/peers/util.js';
import { startCloudWithHubProbe } from '../../test/helpers/kernel.js';

const NODE = 'edge-rec';

/* eslint-disable @typescript-eslint/no-explicit-any -- API objects and wire contents are inspected loosely */
let cp: ControlPlane;
let kernel: Kernel;
const atHub: Message[] = [];

/** A recorded edge request, for node NODE, with a fresh id and cloudHub's `node/<id>/` prefix. */
function fromEdge(pred: (m: Message) => boolean, content?: unknown): Message {
  const rec = findRecorded('edge->cloud', pred);
  const resource = (rec.route.resource ?? '').replaceAll('edge-1', NODE);
  const body =
    content === undefined ? JSON.parse(JSON.stringify(rec.content).replaceAll('edge-1', NODE)) : content;
  return newMessage({ ...rec.route, resource: `node/${NODE}/${resource}` }, body);
}

const edgeMsg = (operation: string, resource: string, content: unknown): Message =>
  newMessage({ source: 'edged', group: 'meta', operation, resource: `node/${NODE}/${resource}` }, content);

async function ask(msg: Message): Promise<Message> {
  await kernel.bus.send('edgecontroller', msg);
  let reply: Message | undefined;
  await waitFor(
    () => (reply = atHub.find((m) => m.header.parent_msg_id === msg.header.msg_id)) !== undefined,
    {
      what: `the reply to ${msg.route.operation} ${msg.route.resource}`,
      timeoutMs: 15_000,
      intervalMs: 20,
    },
  );
  return reply!;
}

/** The first pushed message (no parent) matching. */
async function pushed(pred: (m: Message) => boolean, what: string): Promise<Message> {
  let hit: Message | undefined;
  await waitFor(() => (hit = atHub.find((m) => !m.header.parent_msg_id && pred(m))) !== undefined, {
    what,
    timeoutMs: 15_000,
    intervalMs: 20,
  });
  return hit!;
}

beforeAll(async () => {
  cp = await startControlPlane();
  await cp.kubectl(['create', 'serviceaccount', 'default', '-n', 'default']);
  const yaml = `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${cp.cloudcoreKubeconfigPath}
modules:
  cloudHub: {enable: false, advertiseAddress: [192.0.2.2]}
  edgeController: {enable: true}
`;
  kernel = await startCloudWithHubProbe(yaml, atHub);
}, 300_000);

afterAll(async () => {
  await kernel?.stop();
  await cp?.stop();
  await cleanup();
}, 60_000);

describe('edgeController (real kube-apiserver, a probe as cloudHub)', () => {
  it('registers the node as the recorded session shows, answers leases and node status, pushes the node', async () => {
    const insert = fromEdge((m) => m.route.operation === 'insert' && m.route.resource === 'null/node/edge-1');
    const reply = await ask(insert);
    expect(reply.route).toEqual({
      source: 'edgecontroller',
      group: 'resource',
      operation: 'response',
      resource: `node/${NODE}/null/node/${NODE}`,
    });
    expect(reply.header.resourceversion).toBeUndefined();
    const content = reply.content as any;
    expect(content.Err).toBeNull();
    expect(content.Object.metadata.labels).toEqual((insert.content as any).metadata.labels);
    expect(content.Object.metadata.annotations.cloudcore).toBe('192.0.2.2');
    const node = JSON.parse(await cp.kubectl(['get', 'node', NODE, '-o', 'json']));
    expect(node.metadata.labels['node-role.kubernetes.io/edge']).toBe('');

    // a second registration: Err AlreadyExists, Object null
    const again = (
      await ask(fromEdge((m) => m.route.operation === 'insert' && m.route.resource === 'null/node/edge-1'))
    ).content as any;
    expect(again.Object).toBeNull();
    expect(again.Err.ErrStatus).toMatchObject({ status: 'Failure', reason: 'AlreadyExists', code: 409 });

    // the edge node is pushed to its node (ACK-mode update with its resourceVersion)
    const push = await pushed(
      (m) => m.route.resource === `node/${NODE}/null/node/${NODE}`,
      'the node pushed',
    );
    expect(push.route).toMatchObject({ source: 'edgecontroller', group: 'resource', operation: 'update' });
    expect(push.header.resourceversion).toBe((push.content as any).metadata.resourceVersion);
    expect(push.content).toMatchObject({ kind: 'Node', apiVersion: 'v1' });

    // lease: NotFound as recorded, then insert and update
    const q = (await ask(edgeMsg('query', `kube-node-lease/lease/${NODE}`, null))).content as any;
    expect(q).toEqual({
      Object: null,
      Err: {
        ErrStatus: {
          metadata: {},
          status: 'Failure',
          message: `lease.coordination.k8s.io "${NODE}" not found`,
          reason: 'NotFound',
          details: { name: NODE, group: 'coordination.k8s.io', kind: 'lease' },
          code: 404,
        },
      },
    });
    const lease = fromEdge(
      (m) => m.route.operation === 'insert' && m.route.resource === 'kube-node-lease/lease/edge-1',
    );
    (lease.content as any).metadata.ownerReferences[0].uid = content.Object.metadata.uid;
    const created = (await ask(lease)).content as any;
    expect(created.Err).toBeNull();
    expect(created.Object.spec.holderIdentity).toBe(NODE);
    const renewed = {
      ...created.Object,
      spec: { ...created.Object.spec, renewTime: new Date().toISOString().replace('Z', '000Z') },
    };
    const updated = (await ask(edgeMsg('update', `kube-node-lease/lease/${NODE}`, renewed))).content as any;
    expect(updated.Err).toBeNull();
    expect(Number(updated.Object.metadata.resourceVersion)).toBeGreaterThan(
      Number(created.Object.metadata.resourceVersion),
    );

    // node status patch (the recorded JSON string): ObjectResp with the new resourceversion
    const patch = await ask(fromEdge((m) => m.route.resource === 'null/nodepatch/edge-1'));
    expect(patch.route.resource).toBe(`node/${NODE}/null/nodepatch/${NODE}`);
    const patched = (patch.content as any).Object;
    expect(patched.status.conditions.find((c: any) => c.type === 'Ready')).toMatchObject({
      status: 'True',
      reason: 'EdgeReady',
    });
    expect(patch.header.resourceversion).toBe(patched.metadata.resourceVersion);
  }, 60_000);

  it('pushes pods bound to the edge node only, answers pod status, configmap queries and the deletion', async () => {
    const pod = (name: string, nodeName: string): string =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'default' },
        spec: {
          nodeName,
          automountServiceAccountToken: false,
          containers: [{ name: 'c', image: 'busybox', envFrom: [{ configMapRef: { name: 'cfg' } }] }],
        },
      });
    await cp.kubectl(['create', 'configmap', 'cfg', '--from-literal=k=v1', '-n', 'default']);
    await cp.kubectl(['apply', '-f', '-'], { input: pod('elsewhere', 'cloud-node') });
    await cp.kubectl(['apply', '-f', '-'], { input: pod('web', NODE) });
    const insert = await pushed((m) => m.route.resource === `node/${NODE}/default/pod/web`, 'the pod pushed');
    expect(insert.route).toMatchObject({ source: 'edgecontroller', group: 'resource', operation: 'insert' });
    expect(insert.content).toMatchObject({ kind: 'Pod', apiVersion: 'v1', spec: { nodeName: NODE } });
    const uid = (insert.content as any).metadata.uid as string;
    expect(insert.header.resourceversion).toBe((insert.content as any).metadata.resourceVersion);
    // the pod of another node (created before) was not sent anywhere
    expect(atHub.filter((m) => m.route.resource?.endsWith('/pod/elsewhere'))).toEqual([]);

    // pod status patch, as the recorded one (JSON string with metadata.uid)
    const podPatch = edgeMsg(
      'patch',
      'default/podpatch/web',
      JSON.stringify({ metadata: { uid }, status: { phase: 'Running', podIP: '10.88.0.5' } }),
    );
    const pr = (await ask(podPatch)).content as any;
    expect(pr.Err).toBeNull();
    expect(pr.Object.status).toMatchObject({ phase: 'Running', podIP: '10.88.0.5' });

    // configmap query: the object (kind set, resourceversion) / NotFound as ErrStatus
    const cm = await ask(edgeMsg('query', 'default/configmap/cfg', null));
    expect(cm.content).toMatchObject({ kind: 'ConfigMap', apiVersion: 'v1', data: { k: 'v1' } });
    expect(cm.header.resourceversion).toBe((cm.content as any).metadata.resourceVersion);
    const missing = (await ask(edgeMsg('query', 'default/configmap/nope', null))).content as any;
    expect(missing.ErrStatus).toMatchObject({ reason: 'NotFound', code: 404 });

    // a referenced configmap's change goes to the node running the pod
    await cp.kubectl(['patch', 'configmap', 'cfg', '-n', 'default', '-p', '{"data":{"k":"v2"}}']);
    const cmPush = await pushed(
      (m) => m.route.resource === `node/${NODE}/default/configmap/cfg` && (m.content as any).data?.k === 'v2',
      'the configmap update pushed',
    );
    expect(cmPush.route.operation).toBe('update');

    // kubectl delete: the pod goes to the edge with its deletionTimestamp; the edge confirms; delete follows
    await cp.kubectl(['delete', 'pod', 'web', '-n', 'default', '--wait=false']);
    await pushed(
      (m) =>
        m.route.resource === `node/${NODE}/default/pod/web` && (m.content as any).metadata.deletionTimestamp,
      'the pod with its deletionTimestamp',
    );
    const confirm = fromEdge(
      (m) => m.route.operation === 'delete' && (m.route.resource ?? '').includes('/pod/'),
      { gracePeriodSeconds: 0, preconditions: { uid } },
    );
    confirm.route.resource = `node/${NODE}/default/pod/web`;
    const ok = await ask(confirm);
    expect(ok.content).toBe('OK');
    expect(ok.route).toMatchObject({ operation: 'response', resource: `node/${NODE}/default/pod/web` });
    const del = await pushed(
      (m) => m.route.resource === `node/${NODE}/default/pod/web` && m.route.operation === 'delete',
      'the pod delete pushed',
    );
    expect((del.content as any).metadata.uid).toBe(uid);
    // the same confirmation again (pod gone) is still "OK"
    expect(
      (await ask({ ...confirm, header: { ...confirm.header, msg_id: crypto.randomUUID() } })).content,
    ).toBe('OK');
  }, 60_000);

  it('sends a configmap or secret only to the edge nodes running a pod that uses it', async () => {
    const two = 'edge-two';
    const reg = fromEdge((m) => m.route.operation === 'insert' && m.route.resource === 'null/node/edge-1');
    const body = JSON.parse(JSON.stringify(reg.content).replaceAll(NODE, two));
    const registered = await ask(
      newMessage({ ...reg.route, resource: `node/${two}/null/node/${two}` }, body),
    );
    expect((registered.content as any).Err).toBeNull();
    const pod = (name: string, node: string, container: object, volumes: object[] = []): string =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'default' },
        spec: {
          nodeName: node,
          automountServiceAccountToken: false,
          containers: [{ name: 'c', image: 'busybox', ...container }],
          volumes,
        },
      });
    await cp.kubectl(['apply', '-f', '-'], {
      input: pod('a', NODE, {
        env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cm-a', key: 'k' } } }],
      }),
    });
    await cp.kubectl(['apply', '-f', '-'], {
      input: pod('b', two, {}, [
        { name: 'v', configMap: { name: 'cm-b' } },
        { name: 's', projected: { sources: [{ secret: { name: 'sec-b' } }] } },
      ]),
    });
    await pushed((m) => m.route.resource === `node/${NODE}/default/pod/a`, 'pod a at its node');
    await pushed((m) => m.route.resource === `node/${two}/default/pod/b`, 'pod b at its node');
    await cp.kubectl(['create', 'configmap', 'cm-a', '--from-literal=k=1']);
    await cp.kubectl(['create', 'secret', 'generic', 'sec-b', '--from-literal=p=1']);
    await cp.kubectl(['create', 'configmap', 'cm-b', '--from-literal=k=1']);
    const cmA = await pushed(
      (m) => m.route.resource === `node/${NODE}/default/configmap/cm-a`,
      'cm-a at edge-rec',
    );
    expect(cmA.route.operation).toBe('insert');
    const secB = await pushed(
      (m) => m.route.resource === `node/${two}/default/secret/sec-b`,
      'sec-b at edge-two',
    );
    expect(secB.route.operation).toBe('update'); // secrets are never inserted
    await pushed((m) => m.route.resource === `node/${two}/default/configmap/cm-b`, 'cm-b at edge-two');
    const leaked = atHub.filter(
      (m) =>
        m.route.resource === `node/${two}/default/configmap/cm-a` ||
        m.route.resource === `node/${NODE}/default/configmap/cm-b` ||
        m.route.resource === `node/${NODE}/default/secret/sec-b`,
    );
    expect(leaked).toEqual([]);
  }, 30_000);

  it('sends services and endpoints to every edge node (insert, update, delete), a new node gets the existing ones', async () => {
    // the API server's own `kubernetes` service reached each node when it became an edge node
    for (const node of [NODE, 'edge-two'])
      await pushed(
        (m) => m.route.resource === `node/${node}/default/service/kubernetes`,
        `kubernetes at ${node}`,
      );
    const svc = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        clusterIP: 'None',
        selector: { app: 'web' },
        ports: [{ name: 'http', port: 18050, targetPort: 80 }],
      },
    };
    const eps = {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'web', namespace: 'default' },
      subsets: [{ addresses: [{ ip: '10.88.0.7' }], ports: [{ name: 'http', port: 80 }] }],
    };
    await cp.kubectl(['apply', '-f', '-'], { input: [svc, eps].map((o) => JSON.stringify(o)).join('\n') });
    for (const node of [NODE, 'edge-two']) {
      const s = await pushed(
        (m) => m.route.resource === `node/${node}/default/service/web`,
        `service web at ${node}`,
      );
      expect(s.route).toMatchObject({ source: 'edgecontroller', group: 'resource', operation: 'insert' });
      expect(s.header.resourceversion).toBe((s.content as any).metadata.resourceVersion);
      expect((s.content as any).kind).toBe('Service');
      const e = await pushed(
        (m) => m.route.resource === `node/${node}/default/endpoints/web`,
        `endpoints web at ${node}`,
      );
      expect(e.route.operation).toBe('insert');
      expect((e.content as any).subsets[0].addresses).toEqual([{ ip: '10.88.0.7' }]);
    }
    await cp.kubectl(['patch', 'endpoints', 'web', '--type=merge', '-p', '{"subsets":[]}']);
    const emptied = await pushed(
      (m) => m.route.resource === `node/${NODE}/default/endpoints/web` && m.route.operation === 'update',
      'endpoints web emptied at edge-rec',
    );
    expect((emptied.content as any).subsets).toBeUndefined();
    await cp.kubectl(['delete', 'service', 'web']);
    await pushed(
      (m) => m.route.resource === `node/edge-two/default/service/web` && m.route.operation === 'delete',
      'service web deleted at edge-two',
    );
  }, 30_000);

  it('takes the legacy pod status: updates a pod, deletes at the edge a pod that is gone', async () => {
    const a = JSON.parse(await cp.kubectl(['get', 'pod', 'a', '-n', 'default', '-o', 'json']));
    const status = { phase: 'Running', podIP: '10.88.0.9', conditions: [{ type: 'Ready', status: 'True' }] };
    const req = edgeMsg('update', 'default/podstatus', [
      { UID: a.metadata.uid, Name: 'a', Status: status },
      { UID: 'old-uid', Name: 'gone', Status: status },
    ]);
    const reply = await ask(req);
    expect(reply.content).toBe('OK');
    expect(reply.route.resource).toBe(`node/${NODE}/default/podstatus`);
    const after = JSON.parse(await cp.kubectl(['get', 'pod', 'a', '-n', 'default', '-o', 'json']));
    expect(after.status).toMatchObject({ phase: 'Running', podIP: '10.88.0.9' });
    const del = await pushed(
      (m) => m.route.resource === `node/${NODE}/default/pod/gone`,
      'the gone pod deleted',
    );
    expect(del.route.operation).toBe('delete');
    expect(del.content).toEqual({ metadata: { namespace: 'default', name: 'gone', uid: 'old-uid' } });
  }, 30_000);

  it('creates service account tokens and events, answers PV queries', async () => {
    const rec = fromEdge((m) => (m.route.resource ?? '').includes('/serviceaccounttoken/'));
    delete (rec.content as any).spec.boundObjectRef;
    const token = await ask(rec);
    expect(token.route.resource).toBe('node/edge-rec/default/serviceaccounttoken/default');
    expect(token.content).toMatchObject({ kind: 'TokenRequest', apiVersion: 'authentication.k8s.io/v1' });
    expect((token.content as any).status.token).toMatch(/^ey/);

    const event = {
      metadata: { name: 'web.1', namespace: 'default' },
      involvedObject: { kind: 'Pod', namespace: 'default', name: 'web' },
      reason: 'Started',
      message: 'Started container web',
      type: 'Normal',
      source: { component: 'kubelet', host: NODE },
    };
    await kernel.bus.send('edgecontroller', edgeMsg('insert', 'default/event/web.1', event));
    await waitFor(
      async () => (await cp.kubectl(['get', 'event', 'web.1', '-n', 'default', '-o', 'name'])) !== '',
      {
        what: 'the event in the API',
      },
    );

    const pv = (await ask(edgeMsg('query', 'null/persistentvolume/pv1', null))).content as any;
    expect(pv.ErrStatus).toMatchObject({
      message: 'persistentvolume "pv1" not found',
      reason: 'NotFound',
      code: 404,
    });
  }, 30_000);

  it('logs and counts malformed and unsupported messages, and keeps answering', async () => {
    await kernel.bus.send('edgecontroller', edgeMsg('patch', `null/nodepatch/${NODE}`, 'not json'));
    await kernel.bus.send('edgecontroller', edgeMsg('insert', 'default/rulestatus/r', {}));
    await kernel.bus.send(
      'edgecontroller',
      newMessage({ source: 'edged', operation: 'query', resource: 'bad' }, null),
    );
    const count = async (reason: string): Promise<number> => {
      const text = await kernel.metrics.text();
      const line = text
        .split('\n')
        .find((l) =>
          l.startsWith(`kubeedge_edgecontroller_dropped_total{direction="upstream",reason="${reason}"}`),
        );
      return Number(line?.split(' ')[1] ?? 0);
    };
    await waitFor(
      async () =>
        (await count('failed')) === 1 &&
        (await count('unsupported')) === 1 &&
        (await count('bad-resource')) === 1,
      {
        what: 'the three drops counted',
      },
    );
    // still answering
    const q = (await ask(edgeMsg('query', `kube-node-lease/lease/${NODE}`, null))).content as any;
    expect(q.Err).toBeNull();
  }, 30_000);
});
