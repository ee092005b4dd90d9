import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { newMessage } from '../../kernel/index.js';
import { edgeRegistry } from '../registry.js';
import { startTestKernel, waitUntil, type TestKernel } from '../../test/helpers/kernel.js';
import { startModbusTcp } from '../../test/peers/modbus.js';
import { cleanup, freePort } from '../../test/peers/util.js';

afterAll(cleanup);

/**
 * End to end with the real deviceTwin and eventBus: device pushed to edgecore -> mapper reads the
 * simulator -> reported values in deviceTwin's tables and on the MQTT twin topics -> a desired value
 * from the cloud is written to the simulator's register and read back.
 */
describe('device -> mapper-modbus -> deviceTwin -> MQTT, and desired values back', () => {
  let t: TestKernel | undefined;
  let dir = '';
  let client: mqtt.MqttClient | undefined;
  afterEach(async () => {
    await client?.endAsync();
    await t?.kernel.stop();
    t = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reported values reach deviceTwin and MQTT; a cloud desired value reaches the register', async () => {
    const sim = await startModbusTcp({ inputRegisters: [235], holdingRegisters: { 3: 7 } });
    dir = mkdtempSync(join(tmpdir(), 'ke-e2e-'));
    const port = await freePort();
    const dataSource = join(dir, 'edgecore.db');
    t = await startTestKernel(
      `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${JSON.stringify(dataSource)}
modules:
  edged: {enable: false, hostnameOverride: edge-node-1}
  edgeHub: {enable: false}
  metaManager: {enable: false}
  eventBus: {enable: true, mqttMode: 0, mqttServerInternal: "tcp://127.0.0.1:${port}"}
  deviceTwin: {enable: true, dmiSockPath: ${JSON.stringify(dir + '/')}}
  mapperModbus: {enable: true, reconnectInitialMs: 200}
`,
      edgeRegistry,
    );
    const topics: { topic: string; payload: string }[] = [];
    client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`);
    client.on('message', (topic, payload) => topics.push({ topic, payload: payload.toString() }));
    await client.subscribeAsync('$hw/events/device/#');

    const kernel = t.kernel;
    // the cloud: membership, then the model and the device through metaManager (source meta)
    await kernel.bus.sendToGroup(
      'twin',
      newMessage(
        { source: 'devicecontroller', group: 'twin', operation: 'update', resource: 'membership' },
        {
          event_id: 'm-1',
          timestamp: Date.now(),
          added_devices: [{ id: 'default/thermo-e2e', name: 'thermo-e2e' }],
          removed_devices: null,
        },
      ),
    );
    const model = {
      apiVersion: 'devices.kubeedge.io/v1beta1',
      kind: 'DeviceModel',
      metadata: { name: 'thermo-model', namespace: 'default' },
      spec: {
        protocol: 'modbus',
        properties: [
          { name: 'temp', type: 'FLOAT', accessMode: 'ReadOnly' },
          { name: 'setpoint', type: 'INT', accessMode: 'ReadWrite' },
        ],
      },
    };
    const device = (desired?: string) => ({
      apiVersion: 'devices.kubeedge.io/v1beta1',
      kind: 'Device',
      metadata: { name: 'thermo-e2e', namespace: 'default' },
      spec: {
        deviceModelRef: { name: 'thermo-model' },
        nodeName: 'edge-node-1',
        protocol: { protocolName: 'modbus', configData: { ip: '127.0.0.1', port: sim.port, slaveID: 1 } },
        properties: [
          {
            name: 'temp',
            collectCycle: 200,
            reportToCloud: true,
            visitors: {
              protocolName: 'modbus',
              configData: { register: 'InputRegister', offset: 0, scale: 0.1 },
            },
          },
          {
            name: 'setpoint',
            collectCycle: 200,
            reportToCloud: true,
            ...(desired ? { desired: { value: desired } } : {}),
            visitors: {
              protocolName: 'modbus',
              configData: { register: 'HoldingRegister', offset: 3, limit: 1 },
            },
          },
        ],
      },
    });
    const meta = (operation: string, kind: string, obj: unknown) =>
      kernel.bus.send(
        'twin',
        newMessage(
          {
            source: 'meta',
            group: 'twin',
            operation,
            resource: `default/${kind}/thermo-${kind === 'device' ? 'e2e' : 'model'}`,
          },
          obj,
        ),
      );
    await meta('insert', 'devicemodel', model);
    await meta('insert', 'device', device());

    const db = new Database(dataSource, { readonly: true, fileMustExist: true });
    const actual = (name: string): string | undefined =>
      (
        db
          .prepare('SELECT actual FROM device_twin WHERE deviceid = ? AND name = ?')
          .get('default/thermo-e2e', name) as { actual: string | null } | undefined
      )?.actual ?? undefined;
    try {
      await waitUntil(() => actual('temp') === '23.500000', 10_000, 'temp in device_twin');
      await waitUntil(() => actual('setpoint') === '7', 10_000, 'setpoint in device_twin');
      await waitUntil(
        () =>
          topics.some(
            (m) =>
              m.topic === '$hw/events/device/default/thermo-e2e/twin/update/result' &&
              m.payload.includes('23.500000'),
          ),
        5000,
        'twin/update/result on MQTT',
      );
      await waitUntil(
        () => topics.some((m) => m.topic === '$hw/events/device/default/thermo-e2e/state/update/result'),
        5000,
        'state/update/result on MQTT',
      );
      const state = db.prepare('SELECT state FROM device WHERE id = ?').get('default/thermo-e2e') as {
        state: string;
      };
      expect(state.state).toBe('online');

      // the cloud sets a desired value: an update of the Device (spec.properties[].desired)
      await meta('update', 'device', device('64'));
      await waitUntil(() => actual('setpoint') === '64', 10_000, 'setpoint 64 in device_twin');
      expect(await sim.read('holdingRegisters', 3)).toEqual([64]);
      await sim.write('inputRegisters', 0, 199);
      await waitUntil(() => actual('temp') === '19.900000', 10_000, 'new temp in device_twin');
    } finally {
      db.close();
    }
  });
});
