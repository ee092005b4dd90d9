/**
 * deviceController against a real kube-apiserver with KubeEdge's device CRDs, a probe module playing
 * cloudHub: what kubectl does to Devices reaches the probe as KubeEdge's messages (resources,
 * operations, contents, resource versions) for the one node concerned; the edge's reports become
 * the DeviceStatus, confirmed `OK`, never overwritten by an older report, and the Device's status
 * follows it (the mirror), also after a restart between the two writes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kernel } from '../../kernel/kernel.js';
import { KubeToken, newMessage, type Message } from '../../kernel/index.js';
import { startControlPlane, type ControlPlane } from '../../test/peers/kube.js';
import { cleanup, waitFor } from '../../test/peers/util.js';
import { applyDeviceCrds } from '../../test/helpers/device-crds.js';
import { startCloudWithHubProbe } from '../../test/helpers/kernel.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- API objects and wire contents are inspected loosely */
let cp: ControlPlane;
let kernel: Kernel;
const atHub: Message[] = [];

const model = (name: string) => ({
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'DeviceModel',
  metadata: { name, namespace: 'default' },
  spec: { protocol: 'modbus', properties: [{ name: 'temp', type: 'INT', accessMode: 'ReadWrite' }] },
});
const device = (name: string, node: string, desired = '1') => ({
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'Device',
  metadata: { name, namespace: 'default', labels: { description: 'thermometer' } },
  spec: {
    deviceModelRef: { name: 'thermo' },
    nodeName: node,
    protocol: { protocolName: 'modbus', configData: { ip: '127.0.0.1', port: 502 } },
    properties: [{ name: 'temp', reportToCloud: true, desired: { value: desired } }],
  },
});
const apply = (obj: unknown) => cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) });
const getJson = async (args: string[]): Promise<any> =>
  JSON.parse(await cp.kubectl(['get', ...args, '-o', 'json']));
/** Waits until the Device's status (the mirror) satisfies `check`; returns it. */
async function deviceStatus(name: string, check: (status: any) => boolean, what: string): Promise<any> {
  let status: any;
  await waitFor(async () => check((status = (await getJson(['device', name])).status ?? {})), {
    what: `the Device status of ${name}: ${what}`,
    intervalMs: 50,
  });
  return status;
}

/** Messages pushed (no parent) for `node` since index `from`, as `operation resource-after-node`. */
function pushedTo(node: string, from: number): string[] {
  return atHub
    .slice(from)
    .filter((m) => !m.header.parent_msg_id && m.route.resource?.startsWith(`node/${node}/`))
    .map((m) => `${m.route.operation} ${m.route.resource!.slice(`node/${node}/`.length)}`);
}

async function fromEdge(node: string, resource: string, content: unknown): Promise<Message> {
  const msg = newMessage(
    { source: 'twin', group: 'resource', operation: 'update', resource: `node/${node}/${resource}` },
    content,
  );
  await kernel.bus.send('devicecontroller', msg);
  let reply: Message | undefined;
  await waitFor(
    () => (reply = atHub.find((m) => m.header.parent_msg_id === msg.header.msg_id)) !== undefined,
    {
      what: `the reply to ${resource}`,
      intervalMs: 20,
    },
  );
  return reply!;
}

const cloudYaml = (): string => `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${cp.cloudcoreKubeconfigPath}
modules:
  cloudHub: {enable: false}
  edgeController: {enable: false}
  deviceController: {enable: true}
`;

/** Before the CRDs exist: the plugin stays idle and counts what it drops. */
let noCrds = '';

beforeAll(async () => {
  cp = await startControlPlane();
  const idle = await startCloudWithHubProbe(cloudYaml(), []);
  try {
    await waitFor(
      async () => {
        const report = newMessage(
          {
            source: 'twin',
            group: 'resource',
            operation: 'update',
            resource: 'node/n/device/default/d/twin/edge_updated',
          },
          { twin: {} },
        );
        await idle.bus.send('devicecontroller', report);
        noCrds = await idle.metrics.text();
        return noCrds.includes('reason="no-crds"');
      },
      { what: 'a report dropped for want of the CRDs', intervalMs: 200, timeoutMs: 30_000 },
    );
  } finally {
    await idle.stop();
  }
  await applyDeviceCrds(cp);
  kernel = await startCloudWithHubProbe(cloudYaml(), atHub);
}, 300_000);

afterAll(async () => {
  await kernel?.stop();
  await cp?.stop();
  await cleanup();
}, 60_000);

describe('deviceController (real kube-apiserver, a probe as cloudHub)', () => {
  it('without the device CRDs: idle, reports dropped and counted (cloudcore keeps running)', () => {
    expect(noCrds).toMatch(/kubeedge_devicecontroller_dropped_total\{[^}]*reason="no-crds"[^}]*\} [1-9]/);
  });

  it('a device bound to a node: membership, its model, the device, as KubeEdge sends them', async () => {
    const from = atHub.length;
    await apply(model('thermo'));
    await apply(device('thermo-1', 'node-a'));
    await waitFor(() => pushedTo('node-a', from).length === 3, { what: 'three messages to node-a' });
    expect(pushedTo('node-a', from)).toEqual([
      'update membership',
      'insert default/devicemodel/thermo',
      'insert default/device/thermo-1',
    ]);
    const [membership, m, d] = atHub.slice(from).filter((x) => x.route.resource?.startsWith('node/node-a/'));
    expect(membership!.route).toMatchObject({ source: 'devicecontroller', group: 'twin' });
    expect(membership!.content).toMatchObject({
      added_devices: [{ id: 'default/thermo-1', name: 'thermo-1', description: 'thermometer' }],
      removed_devices: null,
    });
    expect(m!.route).toMatchObject({ source: 'devicecontroller', group: 'resource' });
    const apiModel = await getJson(['devicemodel', 'thermo']);
    expect(m!.header.resourceversion).toBe(apiModel.metadata.resourceVersion);
    expect(m!.content).toMatchObject({ apiVersion: 'devices.kubeedge.io/v1beta1', kind: 'DeviceModel' });
    const apiDevice = await getJson(['device', 'thermo-1']);
    expect(d!.header.resourceversion).toBe(apiDevice.metadata.resourceVersion);
    expect((d!.content as any).metadata.uid).toBe(apiDevice.metadata.uid);
    // its DeviceStatus, owned by the Device
    await waitFor(async () => (await cp.kubectl(['get', 'devicestatus'])).includes('thermo-1'), {
      what: 'the DeviceStatus',
    });
    const status = await getJson(['devicestatus', 'thermo-1']);
    expect(status.metadata.ownerReferences[0]).toMatchObject({
      apiVersion: 'devices.kubeedge.io/v1beta1',
      kind: 'Device',
      uid: apiDevice.metadata.uid,
      controller: true,
    });

    // a second device of the same model on the same node: no second model insert
    const from2 = atHub.length;
    await apply(device('thermo-2', 'node-a'));
    await waitFor(() => pushedTo('node-a', from2).length === 2, { what: 'two more messages' });
    expect(pushedTo('node-a', from2)).toEqual(['update membership', 'insert default/device/thermo-2']);
  });

  it('a desired value changed: the model and the device as updates; a metadata-only change sends nothing', async () => {
    const from = atHub.length;
    await apply(device('thermo-1', 'node-a', '42'));
    await waitFor(() => pushedTo('node-a', from).length === 2, { what: 'model and device updates' });
    expect(pushedTo('node-a', from)).toEqual([
      'update default/devicemodel/thermo',
      'update default/device/thermo-1',
    ]);
    const d = atHub.slice(from).find((x) => x.route.resource?.endsWith('/device/thermo-1'));
    expect((d!.content as any).spec.properties[0].desired.value).toBe('42');
    await cp.kubectl(['label', 'device', 'thermo-1', 'extra=1']);
    const marker = atHub.length;
    // a change of another device proves the label change was handled (events are in order)
    await apply(device('thermo-2', 'node-a', '7'));
    await waitFor(() => pushedTo('node-a', marker).length === 2, { what: 'thermo-2 updates' });
    expect(pushedTo('node-a', marker)).toEqual([
      'update default/devicemodel/thermo',
      'update default/device/thermo-2',
    ]);
  });

  it('a device moved to another node: removed from the old node, added to the new one', async () => {
    const from = atHub.length;
    await apply(device('thermo-2', 'node-b', '7'));
    await waitFor(() => pushedTo('node-a', from).length === 2 && pushedTo('node-b', from).length === 3, {
      what: 'removal from node-a and addition to node-b',
    });
    // thermo-1 still uses the model on node-a: the model stays there
    expect(pushedTo('node-a', from)).toEqual(['update membership', 'delete default/device/thermo-2']);
    expect(pushedTo('node-b', from)).toEqual([
      'update membership',
      'insert default/devicemodel/thermo',
      'insert default/device/thermo-2',
    ]);
    const removal = atHub.slice(from).find((x) => x.route.resource === 'node/node-a/membership');
    expect(removal!.content).toMatchObject({
      added_devices: null,
      removed_devices: [{ id: 'default/thermo-2' }],
    });
  });

  it('reported twins into the DeviceStatus, confirmed OK, then mirrored into the Device status; an older report never overwrites a newer one', async () => {
    const now = Date.now();
    const twin = (value: string, ts: number) => ({
      event_id: '',
      timestamp: ts,
      twin: {
        temp: {
          actual: { value, metadata: { timestamp: ts } },
          expected: { value: '42', metadata: { timestamp: ts } },
          optional: true,
          metadata: { type: 'int' },
        },
        unknown: { actual: { value: 'x', metadata: { timestamp: ts } } },
      },
    });
    const reply = await fromEdge('node-a', 'device/default/thermo-1/twin/edge_updated', twin('25', now));
    expect(reply.route).toEqual({
      source: 'devicecontroller',
      group: 'twin',
      operation: 'response',
      resource: 'node/node-a/twin',
    });
    expect(reply.content).toBe('OK');
    const status = await getJson(['devicestatus', 'thermo-1']);
    expect(status.status.twins).toEqual([
      {
        propertyName: 'temp',
        reported: { value: '25', metadata: { timestamp: String(now), type: 'int' } },
        observedDesired: { value: '42', metadata: { timestamp: String(now), type: 'int' } },
      },
    ]);
    // the mirror follows
    await deviceStatus(
      'thermo-1',
      (s) => JSON.stringify(s.twins) === JSON.stringify(status.status.twins),
      'the reported twin',
    );

    // the same report again (the edge re-sends what it saw no confirmation of): confirmed, no patch
    const requests = kernel.services.get(KubeToken).stats().requests;
    expect(
      (await fromEdge('node-a', 'device/default/thermo-1/twin/edge_updated', twin('25', now))).content,
    ).toBe('OK');
    expect(kernel.services.get(KubeToken).stats().requests).toBe(requests);

    // an older report arriving late (the edge re-sends unconfirmed messages): confirmed, not stored
    expect(
      (await fromEdge('node-a', 'device/default/thermo-1/twin/edge_updated', twin('20', now - 1000))).content,
    ).toBe('OK');
    expect((await getJson(['devicestatus', 'thermo-1'])).status.twins[0].reported.value).toBe('25');
    // reports in a burst end with the newest
    const burst = [1, 2, 3, 4, 5].map((i) =>
      fromEdge('node-a', 'device/default/thermo-1/twin/edge_updated', twin(String(25 + i), now + i)),
    );
    await Promise.all(burst);
    expect((await getJson(['devicestatus', 'thermo-1'])).status.twins[0].reported.value).toBe('30');
    await deviceStatus('thermo-1', (s) => s.twins?.[0]?.reported?.value === '30', 'the newest value 30');
  });

  it('device state (a JSON string, as the edge sends it) into the DeviceStatus and the mirror; an empty lastOnlineTime keeps the stored one', async () => {
    const state = (s: string, last: string, ts: number) =>
      JSON.stringify({
        event_id: '',
        timestamp: ts,
        device: { name: 'thermo-1', state: s, lastOnlineTime: last },
      });
    const now = Date.now();
    await fromEdge(
      'node-a',
      'device/default/thermo-1/state/update',
      state('online', '2026-01-01T10:00:00Z', now),
    );
    let status = await getJson(['devicestatus', 'thermo-1']);
    expect(status.status).toMatchObject({ state: 'online', lastOnlineTime: '2026-01-01T10:00:00Z' });
    await fromEdge('node-a', 'device/default/thermo-1/state/update', state('offline', '', now + 1));
    status = await getJson(['devicestatus', 'thermo-1']);
    expect(status.status).toMatchObject({ state: 'offline', lastOnlineTime: '2026-01-01T10:00:00Z' });
    await deviceStatus(
      'thermo-1',
      (s) => s.state === 'offline' && s.lastOnlineTime === '2026-01-01T10:00:00Z',
      'offline, lastOnlineTime kept',
    );
    // an older state: not stored
    await fromEdge('node-a', 'device/default/thermo-1/state/update', state('online', '', now - 5));
    expect((await getJson(['devicestatus', 'thermo-1'])).status.state).toBe('offline');
  });

  it('a twin side stored newer by another writer (a cloudcore the edge used before) is not written back older', async () => {
    const ts = Date.now() + 3_600_000;
    await cp.kubectl([
      'patch',
      'devicestatus',
      'thermo-1',
      '--type',
      'merge',
      '-p',
      JSON.stringify({
        status: {
          twins: [
            {
              propertyName: 'temp',
              reported: { value: '30', metadata: { timestamp: '1', type: 'int' } },
              observedDesired: { value: '44', metadata: { timestamp: String(ts), type: 'int' } },
            },
          ],
        },
      }),
    ]);
    // deviceController's DeviceStatus informer (shared with this handle) has the change
    const statuses = kernel.services
      .get(KubeToken)
      .informer<any>({ group: 'devices.kubeedge.io', version: 'v1beta1', resource: 'devicestatuses' });
    await waitFor(
      () => statuses.get('thermo-1', 'default')?.status?.twins?.[0]?.observedDesired?.value === '44',
      {
        what: 'the informer sees the other writer',
      },
    );
    statuses.stop();
    const now = Date.now();
    const reply = await fromEdge('node-a', 'device/default/thermo-1/twin/edge_updated', {
      event_id: '',
      timestamp: now,
      twin: {
        temp: {
          actual: { value: '35', metadata: { timestamp: now } },
          expected: { value: '42', metadata: { timestamp: now } },
          metadata: { type: 'int' },
        },
      },
    });
    expect(reply.content).toBe('OK');
    const twin = (await getJson(['devicestatus', 'thermo-1'])).status.twins[0];
    expect(twin.reported.value).toBe('35');
    expect(twin.observedDesired).toEqual({ value: '44', metadata: { timestamp: String(ts), type: 'int' } });
  });

  it("membership/detail is answered with the node's complete set; a report of an unknown device is confirmed", async () => {
    const msg = newMessage(
      { source: 'twin', group: 'resource', operation: 'get', resource: 'node/node-a/membership/detail' },
      JSON.stringify({
        event_type: 'group_membership_event',
        event_id: 'd-1',
        group_id: 'node-a',
        operation: 'detail',
        timestamp: 1,
      }),
    );
    await kernel.bus.send('devicecontroller', msg);
    let reply: Message | undefined;
    await waitFor(
      () => (reply = atHub.find((m) => m.header.parent_msg_id === msg.header.msg_id)) !== undefined,
      {
        what: 'the detail answer',
      },
    );
    expect(reply!.route).toEqual({
      source: 'devicecontroller',
      group: 'twin',
      operation: 'response',
      resource: 'node/node-a/membership/detail',
    });
    expect(reply!.content).toMatchObject({
      event_id: 'd-1',
      devices: [{ id: 'default/thermo-1', name: 'thermo-1', description: 'thermometer' }],
    });
    const unknown = await fromEdge('node-a', 'device/default/nope/twin/edge_updated', { twin: {} });
    expect(unknown.content).toBe('OK');
  });

  it('kubectl delete device: membership removal, the model (last user on the node), the device', async () => {
    const from = atHub.length;
    await cp.kubectl(['delete', 'device', 'thermo-2']);
    await waitFor(() => pushedTo('node-b', from).length === 3, { what: 'removal from node-b' });
    expect(pushedTo('node-b', from)).toEqual([
      'update membership',
      'delete default/devicemodel/thermo',
      'delete default/device/thermo-2',
    ]);
    const del = atHub.slice(from).find((x) => x.route.resource === 'node/node-b/default/devicemodel/thermo');
    expect((del!.content as any).metadata.uid).toBeTruthy();
  });

  it('stopped between the two writes: at start the Device status catches up with its DeviceStatus, never going back', async () => {
    await kernel.stop();
    // what a cloudcore stopped right after a DeviceStatus patch leaves: the Device status behind,
    // except one twin side newer in the Device (written there by someone else)
    const ts = Date.now() + 60_000;
    const side = (value: string, t: number) => ({ value, metadata: { timestamp: String(t), type: 'int' } });
    const merge = (kind: string, status: unknown) =>
      cp.kubectl(['patch', kind, 'thermo-1', '--type', 'merge', '-p', JSON.stringify({ status })]);
    await merge('devicestatus', {
      state: 'online',
      twins: [{ propertyName: 'temp', reported: side('31', ts), observedDesired: side('42', ts) }],
    });
    await merge('device', {
      state: 'offline',
      twins: [{ propertyName: 'temp', reported: side('30', ts - 1), observedDesired: side('43', ts + 1) }],
    });
    kernel = await startCloudWithHubProbe(cloudYaml(), atHub);
    const status = await deviceStatus('thermo-1', (s) => s.state === 'online', 'state online again');
    expect(status.twins).toEqual([
      { propertyName: 'temp', reported: side('31', ts), observedDesired: side('43', ts + 1) },
    ]);
  });
});
