import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createChannel, createClient, createServer, type Channel, type Client, type Server } from 'nice-grpc';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../kernel/config/index.js';
import { newMessage, type Message } from '../../kernel/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger } from '../../kernel/log.js';
import { edgeLayout } from '../registry.js';
import { startTestKernel, waitUntil, type TestKernel } from '../../test/helpers/kernel.js';
import {
  NOTES_DEVICE,
  NOTES_MODEL,
  notesDeviceV1beta1Spec,
  notesFixture,
} from '../../test/helpers/notes-devices.js';
import {
  DeviceManagerServiceDefinition,
  DeviceMapperServiceDefinition,
  type Device,
  type DeviceModel,
} from '../../proto/gen/dmi/v1beta1/api.js';
import { anyMapToScalars, scalarToAny, anyToScalar } from '../../proto/dmi/v1beta1/values.js';
import { encodeTopicResource, type DeviceObject } from '../../protocol/index.js';
import { MAX_MAPPERS, RATE_LIMIT_ENV, freeSocketPath } from './index.js';

const registry = [{ configKey: 'deviceTwin', specifier: new URL('./index.ts', import.meta.url).href }];

const yaml = (dir: string, extra = '') => `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: "${dir}/edge.db"
modules:
  edged: {enable: false}
  edgeHub: {enable: false}
  eventBus: {enable: false}
  metaManager: {enable: false}
  deviceTwin: {enable: true, dmiSockPath: "${dir}/"${extra}}
`;

type Call = [string, unknown];

/** A DeviceMapperService like a Go mapper's, recording every call edgecore makes. */
async function fakeMapper(socket: string): Promise<{ calls: Call[]; server: Server }> {
  const calls: Call[] = [];
  const server = createServer();
  const rec =
    <Res>(name: string, res: Res) =>
    async (request: unknown): Promise<Res> => {
      calls.push([name, request]);
      return res;
    };
  server.add(DeviceMapperServiceDefinition, {
    registerDevice: rec('RegisterDevice', { deviceName: 'x', deviceNamespace: 'default' }),
    removeDevice: rec('RemoveDevice', {}),
    updateDevice: rec('UpdateDevice', {}),
    createDeviceModel: rec('CreateDeviceModel', { deviceModelName: 'm', deviceModelNamespace: 'default' }),
    removeDeviceModel: rec('RemoveDeviceModel', {}),
    updateDeviceModel: rec('UpdateDeviceModel', {}),
    getDevice: rec('GetDevice', {}),
  });
  await server.listen(`unix://${socket}`);
  return { calls, server };
}

type ManagerClient = Client<typeof DeviceManagerServiceDefinition>;
type ManagerMethod = 'reportDeviceStatus' | 'reportDeviceStates' | 'mapperRegister';

/** One call of edgecore's DeviceManagerService, the request given as a partial message. */
function unary<Res>(client: ManagerClient, method: ManagerMethod, partial: object): Promise<Res> {
  const call = client[method] as (req: object) => Promise<unknown>;
  return call(partial) as Promise<Res>;
}

const model = {
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'DeviceModel',
  metadata: { name: 'beta1-model', namespace: 'default' },
  spec: {
    protocol: 'modbus',
    protocolConfigData: { timeout: 2000 },
    properties: [
      {
        name: 'temp',
        type: 'INT',
        accessMode: 'ReadWrite',
        minimum: '0',
        maximum: '100',
        visitors: { protocolName: 'modbus', configData: { register: 'HoldingRegister', limit: 1 } },
      },
    ],
  },
};

const device = (desired = '30') => ({
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'Device',
  metadata: { name: 'beta1-device', namespace: 'default' },
  spec: {
    deviceModelRef: { name: 'beta1-model' },
    nodeName: 'worker-node1',
    protocol: { protocolName: 'modbus', configData: { ip: '172.17.0.3', port: 1502 } },
    properties: [
      {
        name: 'temp',
        collectCycle: 2000,
        reportCycle: 2000,
        reportToCloud: true,
        desired: { value: desired },
        visitors: { protocolName: 'modbus', configData: { offset: 2, scale: 1, isSwap: true } },
      },
    ],
  },
});

describe('dmiserver', () => {
  let t: TestKernel | undefined;
  let dir = '';
  let mapper: Server | undefined;
  let channel: Channel | undefined;
  afterEach(async () => {
    channel?.close();
    mapper?.forceShutdown();
    await t?.kernel.stop();
    t = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const start = async (extra = '') => {
    dir = mkdtempSync(join(tmpdir(), 'ke-dmiserver-'));
    t = await startTestKernel(yaml(dir, extra), registry);
    const twin: Message[] = [];
    const box = t.kernel.bus.addModule('twin', 'twin');
    box.attach(
      (m) => void twin.push(m),
      () => undefined,
    );
    channel = createChannel(`unix://${dir}/dmi.sock`);
    const client = createClient(DeviceManagerServiceDefinition, channel);
    const push = (op: string, kind: string, o: { metadata: { name: string } }) =>
      t!.kernel.bus.send(
        'dmiserver',
        newMessage(
          { source: 'twin', group: 'dmi', operation: op, resource: `${kind}/default/${o.metadata.name}` },
          o,
        ),
      );
    return { twin, push, client };
  };

  it('turns ReportDeviceStatus / ReportDeviceStates into the eventBus messages of the MQTT topics', async () => {
    const { twin, client } = await start();
    await unary(client, 'reportDeviceStatus', {
      deviceName: 'thermo-1',
      deviceNamespace: 'default',
      reportedDevice: {
        twins: [
          {
            propertyName: 'temperature',
            reported: { value: '25', metadata: { type: 'int', timestamp: '1' } },
            observedDesired: { value: '30', metadata: {} },
          },
          { propertyName: 'humidity', reported: { value: '61', metadata: {} } },
          { propertyName: 'label', reported: { value: 'has space', metadata: {} } },
        ],
      },
    });
    await unary(client, 'reportDeviceStates', {
      deviceName: 'thermo-1',
      deviceNamespace: 'default',
      state: 'online',
    });
    await waitUntil(() => twin.length === 3, 5000, 'three messages to twin');
    // the twins deviceTwin accepts go as one update; one it would refuse goes alone
    const [a, b, c] = twin as [Message, Message, Message];
    const topic = '$hw/events/device/default/thermo-1/twin/update';
    expect(a.route).toEqual({
      source: 'bus',
      group: 'user',
      operation: 'response',
      resource: encodeTopicResource(topic),
    });
    expect(Buffer.from(a.route.resource as string, 'base64').toString()).toBe(topic);
    const pa = JSON.parse(a.content as string);
    expect(Object.keys(pa)).toEqual(['event_id', 'timestamp', 'twin']);
    expect(pa.twin).toEqual({
      temperature: { expected: { value: '30' }, actual: { value: '25' } },
      humidity: { actual: { value: '61' } },
    });
    expect(JSON.parse(b.content as string).twin).toEqual({ label: { actual: { value: 'has space' } } });
    expect(Buffer.from(c.route.resource as string, 'base64').toString()).toBe(
      '$hw/events/device/default/thermo-1/state/update',
    );
    const pc = JSON.parse(c.content as string);
    expect(pc).toMatchObject({ event_id: '', State: 'online' });
  });

  it('refuses bad requests with a clear error and keeps serving', async () => {
    const { client, twin } = await start();
    await expect(
      unary(client, 'reportDeviceStatus', { deviceName: 'x', reportedDevice: { twins: [] } }),
    ).rejects.toThrow(/INVALID_ARGUMENT: ReportDeviceStatusRequest does not have twin data/);
    await expect(unary(client, 'reportDeviceStates', { deviceName: 'x', state: '' })).rejects.toThrow(
      /state: required/,
    );
    await expect(
      unary(client, 'mapperRegister', {
        withData: true,
        mapper: { name: 'm', protocol: '', address: Buffer.alloc(0) },
      }),
    ).rejects.toThrow(/mapper.protocol: required/);
    expect(twin).toHaveLength(0);
    await unary(client, 'reportDeviceStates', { deviceName: 'x', state: 'ok' });
    await waitUntil(() => twin.length === 1, 5000, 'the good report delivered to twin');
    expect(JSON.parse(String(twin[0]?.content))).toMatchObject({ State: 'ok' });
  });

  it('registers a Go-style mapper, answers with its devices and pushes changes to it', async () => {
    const { push, client } = await start();
    await push('insert', 'devicemodel', model);
    await push('insert', 'device', device());
    const sock = join(dir, 'modbus.sock');
    const fake = await fakeMapper(sock);
    mapper = fake.server;
    const res = await unary<{ deviceList: Device[]; modelList: DeviceModel[] }>(client, 'mapperRegister', {
      withData: true,
      mapper: {
        name: 'modbus-mapper',
        version: 'v1',
        apiVersion: 'v1beta1',
        protocol: 'modbus',
        address: Buffer.from(sock),
        state: 'ok',
      },
    });
    expect(res.modelList.map((m) => m.name)).toEqual(['beta1-model']);
    expect(res.modelList[0]!.spec!.properties[0]).toMatchObject({
      name: 'temp',
      type: 'INT',
      minimum: '0',
      maximum: '100',
    });
    const d = res.deviceList[0]!;
    expect(d).toMatchObject({ name: 'beta1-device', namespace: 'default' });
    expect(d.spec!.deviceModelReference).toBe('beta1-model');
    // model defaults merged under the instance (1.22+): protocolConfigData and visitors
    expect(anyMapToScalars(d.spec!.protocol!.configData!.data)).toEqual({
      timeout: 2000,
      ip: '172.17.0.3',
      port: 1502,
    });
    const p = d.spec!.properties[0]!;
    expect(anyMapToScalars(p.visitors!.configData!.data)).toEqual({
      register: 'HoldingRegister',
      limit: 1,
      offset: 2,
      scale: 1,
      isSwap: true,
    });
    expect(d.spec!.protocol!.configData!.data.port!.typeUrl).toBe(
      'type.googleapis.com/google.protobuf.FloatValue',
    );
    expect(p).toMatchObject({
      collectCycle: 2000,
      reportCycle: 2000,
      reportToCloud: true,
      desired: { value: '30' },
    });

    // desired value changed in the cloud -> UpdateDevice; the same spec again -> nothing
    await push('update', 'device', device('45'));
    await push('update', 'device', device('45'));
    await push('delete', 'device', { metadata: { name: 'beta1-device' } });
    await push('delete', 'devicemodel', { metadata: { name: 'beta1-model' } });
    await waitUntil(() => fake.calls.length >= 3, 5000, 'calls');
    // in order: a call for the second, unchanged update would come before RemoveDevice
    expect(fake.calls.map((c) => c[0])).toEqual(['UpdateDevice', 'RemoveDevice', 'RemoveDeviceModel']);
    const upd = fake.calls[0]![1] as { device: Device };
    expect(upd.device.spec!.properties[0]!.desired!.value).toBe('45');
    expect(fake.calls[1]![1]).toEqual({ deviceName: 'beta1-device', deviceNamespace: 'default' });

    // a new device after registration: the model first, then RegisterDevice
    await push('insert', 'devicemodel', model);
    await push('insert', 'device', device());
    await waitUntil(() => fake.calls.length >= 5, 5000, 'register calls');
    expect(fake.calls.map((c) => c[0])).toEqual([
      'UpdateDevice',
      'RemoveDevice',
      'RemoveDeviceModel',
      'CreateDeviceModel',
      'RegisterDevice',
    ]);
  });

  it(`refuses mapper ${MAX_MAPPERS + 1}, and takes a known mapper registering again`, async () => {
    const { client } = await start();
    const register = (i: number) =>
      unary(client, 'mapperRegister', {
        withData: false,
        mapper: { name: `m${i}`, protocol: `p${i}`, address: Buffer.from(`${dir}/m${i}.sock`) },
      });
    for (let i = 0; i < MAX_MAPPERS; i++) await register(i);
    await expect(register(MAX_MAPPERS)).rejects.toThrow(
      new RegExp(`RESOURCE_EXHAUSTED.*${MAX_MAPPERS} mappers are registered already`),
    );
    await register(7);
  });

  it(`reloads only the ${MAX_MAPPERS} most recent of more stored registrations`, async () => {
    dir = mkdtempSync(join(tmpdir(), 'ke-dmiserver-'));
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(join(dir, 'edge.db'));
    db.exec(
      'CREATE TABLE dmi_mapper (name TEXT PRIMARY KEY, protocol TEXT NOT NULL, address TEXT NOT NULL, info TEXT NOT NULL)',
    );
    const insert = db.prepare('INSERT INTO dmi_mapper (name, protocol, address, info) VALUES (?, ?, ?, ?)');
    for (let i = 0; i < MAX_MAPPERS + 50; i++) {
      const rec = {
        name: `m${i}`,
        version: '',
        apiVersion: 'v1beta1',
        protocol: `p${i}`,
        address: `${dir}/m${i}.sock`,
        state: 'ok',
      };
      insert.run(rec.name, rec.protocol, rec.address, JSON.stringify(rec));
    }
    db.close();
    t = await startTestKernel(yaml(dir), registry);
    channel = createChannel(`unix://${dir}/dmi.sock`);
    const client = createClient(DeviceManagerServiceDefinition, channel);
    const register = (name: string) =>
      unary(client, 'mapperRegister', {
        withData: false,
        mapper: { name, protocol: name, address: Buffer.from(`${dir}/${name}.sock`) },
      });
    await register(`m${MAX_MAPPERS + 49}`); // reloaded: known
    await expect(register('m0')).rejects.toThrow(/RESOURCE_EXHAUSTED/); // the oldest was not reloaded
    await expect(register('new')).rejects.toThrow(/RESOURCE_EXHAUSTED/);
  });

  it('refuses a regular file or a live socket at the DMI socket path; removes only a stale socket', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ke-dmisock-'));
    const path = join(dir, 'dmi.sock');
    writeFileSync(path, 'keep me');
    await expect(freeSocketPath(path)).rejects.toMatchObject({
      code: 'EDMI_SOCKET_PATH',
      message: expect.stringMatching(
        /dmi\.sock \(modules\.deviceTwin\.dmiSockPath\) exists and is not a socket but a regular file/,
      ),
    });
    expect(readFileSync(path, 'utf8')).toBe('keep me');
    rmSync(path);

    const live = createNetServer();
    await new Promise<void>((resolve) => live.listen(path, resolve));
    await expect(freeSocketPath(path)).rejects.toMatchObject({ code: 'EDMI_SOCKET_IN_USE' });
    await new Promise((resolve) => live.close(resolve));

    // a socket left by a process that died: bound, nobody listening
    execFileSync('python3', [
      '-c',
      'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
      path,
    ]);
    expect(existsSync(path)).toBe(true);
    await freeSocketPath(path);
    expect(existsSync(path)).toBe(false);
  });

  it('does not start over a regular file at the DMI socket path', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ke-dmiserver-'));
    writeFileSync(join(dir, 'dmi.sock'), 'keep me');
    // Refused when the config is loaded...
    await expect(startTestKernel(yaml(dir), registry)).rejects.toMatchObject({
      code: 'ECONFIG_INVALID',
      message: expect.stringMatching(/dmi\.sock is a regular file; refusing to replace it/),
    });
    // ...and by the plugin when the file appears after that.
    rmSync(join(dir, 'dmi.sock'));
    const config = parseConfig(edgeLayout, yaml(dir), 'edgecore.yaml');
    writeFileSync(join(dir, 'dmi.sock'), 'keep me');
    const kernel = new Kernel({ config, registry, logger: createLogger('silent') });
    try {
      // A plugin that cannot start fails the boot, naming itself.
      await expect(kernel.start()).rejects.toMatchObject({
        code: 'EPLUGIN_START',
        message: expect.stringMatching(
          /^plugin "dmiserver" failed to start: .*dmi\.sock \(modules\.deviceTwin\.dmiSockPath\) exists and is not a socket/,
        ),
      });
      expect(kernel.host('dmiserver')?.state).toBe('failed');
    } finally {
      await kernel.stop();
    }
    expect(readFileSync(join(dir, 'dmi.sock'), 'utf8')).toBe('keep me');
  });

  it('rate-limits like KubeEdge when configured', async () => {
    process.env[RATE_LIMIT_ENV] = '1,2';
    const { client } = await start().finally(() => delete process.env[RATE_LIMIT_ENV]);
    const req = { deviceName: 'x', state: 'ok' };
    await unary(client, 'reportDeviceStates', req);
    await unary(client, 'reportDeviceStates', req);
    await expect(unary(client, 'reportDeviceStates', req)).rejects.toThrow(/too many request/);
  });

  it('logs and skips a device whose configData is not flat', async () => {
    const { push, client } = await start();
    await push('insert', 'devicemodel', model);
    const bad = device();
    (bad.spec.protocol.configData as Record<string, unknown>).nested = { a: 1 };
    await push('insert', 'device', bad);
    const good = device();
    good.metadata = { ...good.metadata, name: 'good-device' };
    await push('insert', 'device', good);
    const res = await unary<{ deviceList: Device[] }>(client, 'mapperRegister', {
      withData: true,
      mapper: { name: 'm', protocol: 'modbus', address: Buffer.from(join(dir, 'none.sock')) },
    });
    expect(res.deviceList.map((d) => d.name)).toEqual(['good-device']);
  });

  it("sends the notes' v1alpha2 device as admission's conversion maps it; a nested value refuses a device of either version", async () => {
    const { parse } = await import('yaml');
    const { push, client } = await start();
    const notesModel = parse(notesFixture(NOTES_MODEL)) as { metadata: { name: string } };
    const notesDevice = parse(notesFixture(NOTES_DEVICE)) as DeviceObject & { metadata: { name: string } };
    await push('insert', 'devicemodel', notesModel);
    await push('insert', 'device', notesDevice);
    // the same device with a nested value: refused (spec §3.3), as when stored as v1beta1
    const nested = structuredClone(notesDevice);
    nested.metadata.name = 'nested';
    (nested.spec!.protocol as { common: { customizedValues: object } }).common.customizedValues = {
      a: { b: 1 },
    };
    await push('insert', 'device', nested);
    const res = await unary<{ deviceList: Device[]; modelList: DeviceModel[] }>(client, 'mapperRegister', {
      withData: true,
      mapper: { name: 'm', protocol: 'modbus', address: Buffer.from(join(dir, 'none.sock')) },
    });
    expect(res.deviceList.map((d) => d.name)).toEqual(['sensor-tag-instance-01']);
    const d = res.deviceList[0]!;
    expect(d.spec!.protocol!.protocolName).toBe('modbus');
    expect(anyMapToScalars(d.spec!.protocol!.configData!.data)).toEqual(
      notesDeviceV1beta1Spec.protocol.configData,
    );
    expect(
      d.spec!.properties.map((p) => ({
        name: p.name,
        configData: anyMapToScalars(p.visitors!.configData!.data),
        desired: p.desired?.value,
        reportToCloud: p.reportToCloud,
      })),
    ).toEqual(
      notesDeviceV1beta1Spec.properties.map((p) => ({
        name: p.name,
        configData: p.visitors.configData,
        desired: p.desired?.value,
        reportToCloud: true,
      })),
    );
    // the model's protocol is that of its devices (v1alpha2 models before 1.12 name none)
    expect(res.modelList.map((m) => m.spec!.properties.map((p) => p.type))).toEqual([['INT', 'STRING']]);
  });
});

describe('DMI values and conversions', () => {
  it('encodes configData scalars as edgecore does and decodes them back', () => {
    expect(anyToScalar(scalarToAny('HoldingRegister'))).toBe('HoldingRegister');
    expect(anyToScalar(scalarToAny(1502))).toBe(1502);
    expect(anyToScalar(scalarToAny(0.1))).toBe(0.1);
    expect(anyToScalar(scalarToAny(true))).toBe(true);
    expect(anyToScalar(scalarToAny(false))).toBe(false);
    expect(() => scalarToAny({ a: 1 }, 'def3')).toThrow(
      /configData.def3: expected a string, number or boolean/,
    );
  });
});
