import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { newMessage } from '../../kernel/index.js';
import { waitUntil } from '../../test/helpers/kernel.js';
import {
  membershipMessage,
  mqttClient,
  startEdge,
  type Edge,
  type TestClient,
} from '../../test/helpers/mqtt-edge.js';
import { cleanup } from '../../test/peers/util.js';
import { MAX_TWINS_PER_DEVICE } from './engine.js';

afterAll(cleanup);

const DEV = 'default/thermo-1';
const T = `$hw/events/device/${DEV}`;

let edge: Edge | undefined;
let app: TestClient | undefined;
afterEach(async () => {
  await app?.end();
  await edge?.stop();
  app = undefined;
  edge = undefined;
});

/** Edge in mode 0 with one device, the cloud connected, an app subscribed to `$hw/events/#`. */
async function setup(): Promise<{ edge: Edge; app: TestClient }> {
  edge = await startEdge({ mode: 0 });
  app = await mqttClient(edge.internalUrl);
  await edge.connectCloud();
  await edge.fromCloud(membershipMessage([{ id: DEV, name: 'thermo-1', description: 'a thermometer' }]));
  await app.waitFor('$hw/events/node/edge-node-1/membership/updated');
  return { edge, app };
}

const rows = (file: string, sql: string): Record<string, unknown>[] => {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all() as Record<string, unknown>[];
  } finally {
    db.close();
  }
};

describe('deviceTwin membership and the cloud link', () => {
  it('sends membership/detail on cloud_connected exactly as the fixture shows, and re-adds nothing twice', async () => {
    const { edge, app } = await setup();
    const detail = edge.cloud.find((m) => m.route.resource === 'membership/detail')!;
    expect(detail.route).toEqual({
      source: 'twin',
      group: 'resource',
      operation: 'get',
      resource: 'membership/detail',
    });
    expect(typeof detail.content).toBe('string');
    const body = JSON.parse(detail.content as string) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(['event_type', 'event_id', 'group_id', 'operation', 'timestamp']);
    expect(body).toMatchObject({
      event_type: 'group_membership_event',
      group_id: 'edge-node-1',
      operation: 'detail',
    });

    const updated = app.received.find((r) => r.topic.endsWith('/membership/updated'))!.json();
    expect(updated.added_devices).toEqual([{ id: DEV, name: 'thermo-1', description: 'a thermometer' }]);
    expect(updated.removed_devices).toBeNull();
    expect(updated.event_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(rows(edge.dataSource, 'SELECT * FROM device')).toEqual([
      { id: DEV, name: 'thermo-1', description: 'a thermometer', state: '', last_online: '' },
    ]);
  });

  it('membership get lists the devices, and a removal deletes the rows and publishes membership/updated', async () => {
    const { edge, app } = await setup();
    await app.publish('$hw/events/node/any/membership/get', '{"event_id":"g-1","timestamp":1}');
    const [res] = await app.waitFor('$hw/events/node/edge-node-1/membership/get/result');
    expect(res!.json()).toMatchObject({
      event_id: 'g-1',
      devices: [{ id: DEV, name: 'thermo-1', description: 'a thermometer' }],
    });
    await app.publish(
      `${T}/twin/update`,
      '{"event_id":"","timestamp":1,"twin":{"t":{"actual":{"value":"1"}}}}',
    );
    await app.waitFor(`${T}/twin/update/result`);
    await edge.fromCloud(membershipMessage(null, [{ id: DEV, name: 'thermo-1' }]));
    const upd = await app.waitFor('$hw/events/node/edge-node-1/membership/updated', 2);
    expect(upd[1]!.json()).toMatchObject({
      added_devices: null,
      removed_devices: [{ id: DEV, name: 'thermo-1' }],
    });
    expect(rows(edge.dataSource, 'SELECT * FROM device')).toEqual([]);
    expect(rows(edge.dataSource, 'SELECT * FROM device_twin')).toEqual([]);
    expect(edge.dmi.some((m) => m.route.operation === 'delete' && m.route.resource === `device/${DEV}`)).toBe(
      true,
    );
  });

  it('cloud messages are kept until acked; the ack is a twin-group response with parent_msg_id', async () => {
    const { edge, app } = await setup();
    await app.publish(`${T}/state/update`, '{"event_id":"s1","timestamp":1,"state":"online"}');
    await waitUntil(
      () => edge.cloud.some((m) => m.route.resource === `device/${DEV}/state/update`),
      5000,
      'state',
    );
    const sent = edge.cloud.find((m) => m.route.resource === `device/${DEV}/state/update`)!;
    expect(sent.route).toEqual({
      source: 'twin',
      group: 'resource',
      operation: 'update',
      resource: `device/${DEV}/state/update`,
    });
    const edgeUpdated = edge.cloud.filter((m) => m.route.resource?.endsWith('/twin/edge_updated'));
    await edge.fromCloud(
      newMessage(
        { source: 'devicecontroller', group: 'twin', operation: 'response', resource: 'twin' },
        'OK',
        {
          parentId: sent.header.msg_id,
        },
      ),
    );
    // a reconnection sends a new membership/detail, then what is still unconfirmed: not the acked one
    const before = edge.cloud.length;
    const connection = (content: string) =>
      edge.fromCloud(
        newMessage(
          { source: 'edgehub', group: 'twin', operation: 'connect', resource: 'node/connection' },
          content,
        ),
      );
    await connection('cloud_disconnected');
    await connection('cloud_connected');
    await waitUntil(() => edge.cloud.length > before, 5000, 'messages after the reconnection');
    const again = edge.cloud.slice(before);
    expect(again[0]!.route.resource).toBe('membership/detail');
    expect(again.some((m) => m.header.msg_id === sent.header.msg_id)).toBe(false);
    expect(again.slice(1).map((m) => m.header.msg_id)).toEqual(edgeUpdated.map((m) => m.header.msg_id));
  });
});

describe('deviceTwin twin update (spec §5.4)', () => {
  it('adds, then updates a twin: result, document, delta and edge_updated as the spec shows', async () => {
    const { edge, app } = await setup();
    // the desired value first (as a mapper's observedDesired would bring it)
    await app.publish(
      `${T}/twin/update`,
      '{"event_id":"e-0","timestamp":1732550000000,"twin":{"temperature":{"expected":{"value":"30"},"actual":{"value":"24"},"metadata":{"type":"int"}}}}',
    );
    const [r0] = await app.waitFor(`${T}/twin/update/result`);
    const add = r0!.json();
    expect(add.event_id).toBe('e-0');
    const t0 = (add.twin as Record<string, Record<string, unknown>>).temperature!;
    expect(Object.keys(t0)).toEqual(['expected', 'actual', 'optional', 'metadata']);
    expect(t0).toMatchObject({
      expected: { value: '30' },
      actual: { value: '24' },
      optional: true,
      metadata: { type: 'int' },
    });

    // the spec's example update
    await app.publish(
      `${T}/twin/update`,
      '{"event_id":"e-1","timestamp":1732550400000,"twin":{"temperature":{"actual":{"value":"25"},"metadata":{"type":"int"}}}}',
    );
    const results = await app.waitFor(`${T}/twin/update/result`, 2);
    const r1 = results[1]!.json();
    const now = (r1.twin as { temperature: { actual: { metadata: { timestamp: number } } } }).temperature
      .actual.metadata.timestamp;
    expect(r1).toEqual({
      event_id: 'e-1',
      timestamp: r1.timestamp,
      twin: {
        temperature: {
          actual: { value: '25', metadata: { timestamp: now } },
          optional: true,
          metadata: { type: 'int' },
        },
      },
    });
    expect(Object.keys(r1)).toEqual(['event_id', 'timestamp', 'twin']);

    const docs = await app.waitFor(`${T}/twin/update/document`, 2);
    const doc = docs[1]!.json() as {
      event_id: string;
      twin: Record<string, { last: unknown; current: unknown }>;
    };
    expect(doc.event_id).toBe('e-1');
    expect(doc.twin.temperature!.last).toMatchObject({
      expected: { value: '30' },
      actual: { value: '24' },
      optional: true,
      metadata: { type: 'int' },
    });
    expect(doc.twin.temperature!.current).toMatchObject({
      expected: { value: '30' },
      actual: { value: '25', metadata: { timestamp: now } },
      optional: true,
      metadata: { type: 'int' },
    });

    const deltas = await app.waitFor(`${T}/twin/update/delta`, 2);
    const delta = deltas[1]!.json() as { event_id: string; delta: unknown; twin: Record<string, unknown> };
    expect(delta.delta).toEqual({ temperature: '30' });
    expect(delta.event_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(delta.twin.temperature).not.toHaveProperty('actual_version');

    await waitUntil(
      () => edge.cloud.filter((m) => m.route.resource?.endsWith('/twin/edge_updated')).length >= 2,
      5000,
      'edge_updated',
    );
    const up = edge.cloud.filter((m) => m.route.resource === `device/${DEV}/twin/edge_updated`)[1]!;
    expect(up.route).toEqual({
      source: 'twin',
      group: 'resource',
      operation: 'update',
      resource: `device/${DEV}/twin/edge_updated`,
    });
    expect(up.content).toMatchObject({
      twin: {
        temperature: {
          actual: { value: '25', metadata: { timestamp: now } },
          optional: true,
          metadata: { type: 'int' },
          actual_version: { cloud: 0, edge: 2 },
        },
      },
    });
    const row = rows(edge.dataSource, "SELECT * FROM device_twin WHERE name = 'temperature'")[0]!;
    expect(row).toMatchObject({
      deviceid: DEV,
      expected: '30',
      actual: '25',
      actual_meta: JSON.stringify({ timestamp: now }),
      actual_version: '{"cloud":0,"edge":2}',
      expected_version: '{"cloud":0,"edge":1}',
      optional: 1,
      attr_type: 'int',
    });
  });

  it('deletes an optional twin with null; twin get returns only live twins', async () => {
    const { edge, app } = await setup();
    await app.publish(
      `${T}/twin/update`,
      '{"event_id":"a","timestamp":1,"twin":{"k1":{"actual":{"value":"x"}},"k2":{"actual":{"value":"y"}}}}',
    );
    await app.waitFor(`${T}/twin/update/result`);
    await app.publish(`${T}/twin/update`, '{"event_id":"b","timestamp":1,"twin":{"k1":null}}');
    const res = await app.waitFor(`${T}/twin/update/result`, 2);
    expect(res[1]!.json().twin).toEqual({ k1: null });
    const docs = await app.waitFor(`${T}/twin/update/document`, 2);
    expect((docs[1]!.json().twin as Record<string, { current: unknown }>).k1!.current).toBeNull();
    expect(rows(edge.dataSource, "SELECT attr_type, actual FROM device_twin WHERE name='k1'")).toEqual([
      { attr_type: 'deleted', actual: null },
    ]);
    await app.publish(`${T}/twin/get`, '{"event_id":"get-1","timestamp":1}');
    const [get] = await app.waitFor(`${T}/twin/get/result`);
    const g = get!.json() as { event_id: string; twin: Record<string, unknown> };
    expect(g.event_id).toBe('get-1');
    expect(Object.keys(g.twin)).toEqual(['k2']);
    expect(g.twin.k2).toMatchObject({ actual: { value: 'y' }, optional: true, metadata: { type: 'string' } });
  });

  it('caps the twins of one device with a clear 400; nothing is stored', async () => {
    const { edge, app } = await setup();
    const twin = Object.fromEntries(
      Array.from({ length: MAX_TWINS_PER_DEVICE + 1 }, (_, i) => [`k${i}`, { actual: { value: 'x' } }]),
    );
    await app.publish(`${T}/twin/update`, JSON.stringify({ event_id: 'big', timestamp: 1, twin }));
    const [res] = await app.waitFor(`${T}/twin/update/result`);
    expect(res!.json()).toMatchObject({
      event_id: 'big',
      code: 400,
      reason: `Update twin error, device ${DEV} would have ${MAX_TWINS_PER_DEVICE + 1} twins, at most ${MAX_TWINS_PER_DEVICE}`,
    });
    expect(rows(edge.dataSource, 'SELECT name FROM device_twin')).toEqual([]);
  });

  it('twins named __proto__ and constructor are plain twins in every result', async () => {
    const { app } = await setup();
    await app.publish(
      `${T}/twin/update`,
      '{"event_id":"p","timestamp":1,"twin":{"__proto__":{"actual":{"value":"p1"}},"constructor":{"actual":{"value":"c1"}}}}',
    );
    const [res] = await app.waitFor(`${T}/twin/update/result`);
    expect(res!.payload).toContain('"__proto__":{"actual":{"value":"p1"');
    await app.publish(`${T}/twin/get`, '{"event_id":"g","timestamp":1}');
    const [get] = await app.waitFor(`${T}/twin/get/result`);
    const twin = (get!.json() as { twin: Record<string, { actual: { value: string } }> }).twin;
    expect(Object.keys(twin)).toEqual(['__proto__', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(twin, '__proto__')?.value).toMatchObject({
      actual: { value: 'p1' },
    });
    expect(twin['constructor' as string]!.actual.value).toBe('c1');
  });

  it('device state update: result on MQTT and the same JSON string to the cloud', async () => {
    const { edge, app } = await setup();
    await app.publish(`${T}/state/update`, '{"event_id":"","timestamp":1,"State":"online"}');
    const [res] = await app.waitFor(`${T}/state/update/result`);
    const r = res!.json() as { device: Record<string, string> };
    expect(r.device).toEqual({
      name: 'thermo-1',
      state: 'online',
      lastOnlineTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
    });
    await waitUntil(
      () => edge.cloud.some((m) => m.route.resource === `device/${DEV}/state/update`),
      5000,
      'cloud',
    );
    const c = edge.cloud.find((m) => m.route.resource === `device/${DEV}/state/update`)!;
    expect(c.content).toBe(res!.payload);
    expect(rows(edge.dataSource, 'SELECT state, last_online FROM device')).toEqual([
      { state: 'online', last_online: r.device.lastOnlineTime },
    ]);
  });
});

describe('deviceTwin bad input', () => {
  it('publishes the spec error results and stores nothing; the connection stays up', async () => {
    const { edge, app } = await setup();
    await app.publish(`${T}/twin/update`, 'not json');
    const [e1] = await app.waitFor('$hw/events/device//twin/update/result');
    expect(e1!.json()).toMatchObject({
      event_id: '',
      code: 400,
      reason: 'Unmarshal update request body failed, please check the request',
    });

    await app.publish(`${T}/twin/update`, '{"event_id":"x","timestamp":"soon","twin":{}}');
    await app.publish(`${T}/twin/update`, '{"event_id":"x","timestamp":1}');
    await app.publish(
      `${T}/twin/update`,
      '{"event_id":"x","timestamp":1,"twin":{"bad key":{"actual":{"value":"1"}}}}',
    );
    await app.publish(
      `${T}/twin/update`,
      '{"event_id":"x","timestamp":1,"twin":{"k":{"actual":{"value":"a b"}}}}',
    );
    const errs = await app.waitFor('$hw/events/device//twin/update/result', 5);
    expect(errs.map((e) => e.json().reason)).toEqual([
      'Unmarshal update request body failed, please check the request',
      'Unmarshal update request body failed, please check the request',
      'Update twin error, key:twin does not exist',
      expect.stringMatching(/^The key of twin must only include/),
      expect.stringMatching(/^The value of twin must only include/),
    ]);

    await app.publish(
      '$hw/events/device/default/ghost/twin/update',
      '{"event_id":"u","timestamp":1,"twin":{"k":{"actual":{"value":"1"}}}}',
    );
    const [nf] = await app.waitFor('$hw/events/device/default/ghost/twin/update/result');
    expect(nf!.json()).toMatchObject({
      event_id: 'u',
      code: 404,
      reason: 'update rejected due to the device is not existed',
    });

    await app.publish(
      `${T}/twin/update`,
      '{"event_id":"ty","timestamp":1,"twin":{"n":{"actual":{"value":"abc"},"metadata":{"type":"int"}}}}',
    );
    await app.publish(
      `${T}/twin/update`,
      '{"event_id":"ty2","timestamp":1,"twin":{"n":{"actual":{"value":"1"},"metadata":{"type":"double"}}}}',
    );
    await app.publish(`${T}/twin/update`, '{"event_id":"nv","timestamp":1,"twin":{"n":{"actual":{}}}}');
    await app.publish(
      `${T}/twin/update`,
      JSON.stringify({
        event_id: 'big',
        timestamp: 1,
        twin: { k: { actual: { value: 'x'.repeat(1 << 20) } } },
      }),
    );
    const typed = await app.waitFor(`${T}/twin/update/result`, 4);
    expect(typed.map((e) => [e.json().code, e.json().reason])).toEqual([
      [400, 'the value is not int or integer'],
      [400, 'the value type is not allowed'],
      [400, 'Update twin error, twin.n.actual has no value'],
      [400, expect.stringMatching(/^payload too large/)],
    ]);

    await app.publish('$hw/events/device/default/ghost/twin/get', '{"event_id":"g","timestamp":1}');
    const [g] = await app.waitFor('$hw/events/device/default/ghost/twin/get/result');
    expect(g!.json()).toMatchObject({
      event_id: 'g',
      code: 404,
      reason: 'Device default/ghost not found while getting twin',
    });
    await app.publish(`${T}/twin/get`, '[1,2]');
    const [g2] = await app.waitFor(`${T}/twin/get/result`);
    expect(g2!.json()).toMatchObject({ code: 400 });

    // state: unknown device, unknown state, wrong type → logged, no result
    await app.publish(`${T}/state/update`, '{"state":"sleepy"}');
    await app.publish(`${T}/state/update`, '{"state":5}');
    await app.publish('$hw/events/device/default/ghost/state/update', '{"state":"online"}');

    expect(rows(edge.dataSource, 'SELECT * FROM device_twin')).toEqual([]);
    expect(rows(edge.dataSource, 'SELECT state FROM device')).toEqual([{ state: '' }]);
    expect(app.received.some((r) => r.topic.endsWith('/state/update/result'))).toBe(false);
    expect(app.client.connected).toBe(true);
    // and it still works
    await app.publish(
      `${T}/twin/update`,
      '{"event_id":"ok","timestamp":1,"twin":{"n":{"actual":{"value":"7"},"metadata":{"type":"int"}}}}',
    );
    await waitUntil(
      () => app!.received.some((r) => r.topic === `${T}/twin/update/result` && r.json().event_id === 'ok'),
      5000,
      'ok',
    );
  });

  it('a bad cloud membership message is logged and nothing is stored', async () => {
    const { edge } = await setup();
    const twinBox = edge.kernel.bus.mailbox('twin')!;
    const before = twinBox.stats.delivered;
    await edge.fromCloud(
      newMessage(
        { source: 'devicecontroller', group: 'twin', operation: 'update', resource: 'membership' },
        { added_devices: 'x' },
      ),
    );
    await edge.fromCloud(
      newMessage(
        { source: 'devicecontroller', group: 'twin', operation: 'update', resource: 'membership' },
        '{not json',
      ),
    );
    // both are handled synchronously once delivered
    await waitUntil(() => twinBox.stats.delivered >= before + 2, 5000, 'both messages handled');
    expect(rows(edge.dataSource, 'SELECT id FROM device')).toEqual([{ id: DEV }]);
  });
});

describe('deviceTwin <-> dmiserver contract', () => {
  it('forwards Device/DeviceModel objects and membership changes as dmi-group messages', async () => {
    const { edge } = await setup();
    const model = {
      apiVersion: 'devices.kubeedge.io/v1beta1',
      kind: 'DeviceModel',
      metadata: { name: 'm', namespace: 'default' },
      spec: {},
    };
    const device = {
      apiVersion: 'devices.kubeedge.io/v1beta1',
      kind: 'Device',
      metadata: { name: 'thermo-1', namespace: 'default' },
      spec: {
        deviceModelRef: { name: 'm' },
        properties: [{ name: 'temperature', desired: { value: '30' } }],
      },
      status: {},
    };
    const meta = (op: string, resource: string, content: unknown) =>
      newMessage({ source: 'devicecontroller', group: 'resource', operation: op, resource }, content, {
        resourceVersion: '5',
      });
    await edge.fromCloud(meta('insert', 'default/devicemodel/m', model));
    await edge.fromCloud(meta('insert', 'default/device/thermo-1', device));
    await edge.fromCloud(meta('update', 'default/device/thermo-1', JSON.stringify(device)));
    await edge.fromCloud(meta('delete', 'default/devicemodel/m', model));
    await waitUntil(() => edge.dmi.length >= 4, 5000, 'dmi messages');
    expect(edge.dmi.map((m) => [m.route.source, m.route.group, m.route.operation, m.route.resource])).toEqual(
      [
        ['twin', 'dmi', 'insert', 'devicemodel/default/m'],
        ['twin', 'dmi', 'insert', 'device/default/thermo-1'],
        ['twin', 'dmi', 'update', 'device/default/thermo-1'],
        ['twin', 'dmi', 'delete', 'devicemodel/default/m'],
      ],
    );
    expect(edge.dmi[2]!.content).toEqual(device);
  });
});
