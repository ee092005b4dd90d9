import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { newMessage, type Message } from '../../kernel/index.js';
import { startTestKernel, waitUntil, type TestKernel } from '../../test/helpers/kernel.js';
import { startModbusRtu, startModbusTcp, type ModbusTcpOptions } from '../../test/peers/modbus.js';
import { cleanup } from '../../test/peers/util.js';
import { Mapper } from '../../sdk/mapper/index.js';
import { createModbusDriver } from './driver.js';

afterAll(cleanup);

/** dmiserver and mapper-modbus from their registry specifiers (no import of another plugin). */
const registry = [
  { configKey: 'deviceTwin', specifier: new URL('../dmiserver/index.ts', import.meta.url).href },
  { configKey: 'mapperModbus', specifier: new URL('./index.ts', import.meta.url).href },
];

function yaml(dir: string, runAs: 'inprocess' | 'process' = 'inprocess', mapper = true): string {
  return `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: "${dir}/edge.db"
modules:
  edged: {enable: false}
  edgeHub: {enable: false}
  eventBus: {enable: false}
  metaManager: {enable: false}
  deviceTwin: {enable: true, dmiSockPath: "${dir}/"}
  mapperModbus: {enable: ${mapper}, runAs: ${runAs}, reconnectInitialMs: 200, reconnectMaxMs: 1000}
kernel:
  restart: {maxRestarts: 5, initialBackoff: 100ms, maxBackoff: 500ms}
`;
}

interface TwinEvent {
  topic: string;
  payload: Record<string, unknown>;
}

/** Plays deviceTwin: records what dmiserver sends (the MQTT-shaped twin/state updates). */
class FakeTwin {
  readonly events: TwinEvent[] = [];
  constructor(readonly t: TestKernel) {
    const box = t.kernel.bus.addModule('twin', 'twin');
    box.attach(
      (m: Message) => {
        const topic = Buffer.from(String(m.route.resource), 'base64').toString('utf8');
        this.events.push({ topic, payload: JSON.parse(String(m.content)) as Record<string, unknown> });
      },
      () => undefined,
    );
  }
  /** Sends a contract message (deviceTwin -> dmiserver). */
  push(
    operation: 'insert' | 'update' | 'delete',
    kind: 'device' | 'devicemodel',
    obj: Record<string, unknown>,
  ) {
    const meta = obj.metadata as { name: string; namespace?: string };
    return this.t.kernel.bus.send(
      'dmiserver',
      newMessage(
        {
          source: 'twin',
          group: 'dmi',
          operation,
          resource: `${kind}/${meta.namespace ?? 'default'}/${meta.name}`,
        },
        obj,
      ),
    );
  }
  actual(device: string, prop: string): string | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i] as TwinEvent;
      if (e.topic !== `$hw/events/device/default/${device}/twin/update`) continue;
      const twin = (e.payload.twin as Record<string, { actual?: { value: string } }>)[prop];
      if (twin?.actual) return twin.actual.value;
    }
    return undefined;
  }
  states(device: string): string[] {
    return this.events
      .filter((e) => e.topic === `$hw/events/device/default/${device}/state/update`)
      .map((e) => e.payload.State as string);
  }
  waitActual(device: string, prop: string, value: string, timeoutMs = 8000) {
    return waitUntil(
      () => this.actual(device, prop) === value,
      timeoutMs,
      `${device}.${prop} = ${value} (last: ${this.actual(device, prop)})`,
    );
  }
}

const model = {
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'DeviceModel',
  metadata: { name: 'thermo-model', namespace: 'default' },
  spec: {
    protocol: 'modbus',
    properties: [
      { name: 'temp', type: 'FLOAT', accessMode: 'ReadOnly' },
      { name: 'setpoint', type: 'INT', accessMode: 'ReadWrite' },
      { name: 'alarm', type: 'BOOLEAN', accessMode: 'ReadWrite' },
      { name: 'pressure', type: 'FLOAT', accessMode: 'ReadWrite' },
      { name: 'counter', type: 'INT', accessMode: 'ReadOnly' },
    ],
  },
};

const visitor = (configData: Record<string, unknown>) => ({ protocolName: 'modbus', configData });

function device(
  name: string,
  port: number,
  opts: { setpoint?: string; pressure?: string; extra?: unknown[] } = {},
) {
  return {
    apiVersion: 'devices.kubeedge.io/v1beta1',
    kind: 'Device',
    metadata: { name, namespace: 'default' },
    spec: {
      deviceModelRef: { name: 'thermo-model' },
      nodeName: 'node1',
      protocol: { protocolName: 'modbus', configData: { ip: '127.0.0.1', port, slaveID: 1, timeout: 1000 } },
      properties: [
        {
          name: 'temp',
          collectCycle: 100,
          reportToCloud: true,
          visitors: visitor({ register: 'InputRegister', offset: 0, limit: 1, scale: 0.1 }),
        },
        {
          name: 'setpoint',
          collectCycle: 100,
          reportToCloud: true,
          ...(opts.setpoint ? { desired: { value: opts.setpoint } } : {}),
          visitors: visitor({ register: 'HoldingRegister', offset: 3, limit: 1 }),
        },
        {
          name: 'alarm',
          collectCycle: 100,
          reportToCloud: true,
          visitors: visitor({ register: 'CoilRegister', offset: 2, limit: 1 }),
        },
        {
          name: 'pressure',
          collectCycle: 100,
          reportToCloud: true,
          ...(opts.pressure ? { desired: { value: opts.pressure } } : {}),
          visitors: visitor({ register: 'HoldingRegister', offset: 10, limit: 2, isRegisterSwap: true }),
        },
        {
          name: 'counter',
          collectCycle: 100,
          reportToCloud: true,
          visitors: visitor({
            register: 'HoldingRegister',
            offset: 20,
            limit: 2,
            isRegisterSwap: true,
            isSwap: true,
          }),
        },
        ...(opts.extra ?? []),
      ],
      stateReport: { reportToCloud: false },
    },
  };
}

const maps: ModbusTcpOptions = {
  inputRegisters: [235],
  holdingRegisters: { 3: 0, 10: 0x0000, 11: 0x41bc, 20: 0x1234, 21: 0x5678 },
  coils: [0, 0, 1, 0],
  discreteInputs: [0, 0, 0, 1],
};

describe('mapper-modbus through dmiserver (Modbus TCP, pymodbus)', () => {
  let t: TestKernel | undefined;
  let dir = '';
  afterEach(async () => {
    await t?.kernel.stop();
    t = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const start = async (runAs: 'inprocess' | 'process' = 'inprocess') => {
    dir = mkdtempSync(join(tmpdir(), 'ke-dmi-'));
    t = await startTestKernel(yaml(dir, runAs), registry);
    return new FakeTwin(t);
  };

  it('reads every register type into twin reports and writes desired values', async () => {
    const sim = await startModbusTcp(maps);
    const twin = await start();
    await twin.push('insert', 'devicemodel', model);
    await twin.push('insert', 'device', device('thermo-1', sim.port, { setpoint: '42' }));
    await twin.waitActual('thermo-1', 'temp', '23.500000'); // 235 x 0.1, a FLOAT on one register
    await twin.waitActual('thermo-1', 'alarm', 'true');
    await twin.waitActual('thermo-1', 'pressure', '23.500000'); // CDAB float32
    await twin.waitActual('thermo-1', 'counter', '2018915346'); // spec §4.4 worked example
    await twin.waitActual('thermo-1', 'setpoint', '42');
    expect(await sim.read('holdingRegisters', 3)).toEqual([42]);
    expect(twin.states('thermo-1')).toContain('online');
    // the sensor changes
    await sim.write('inputRegisters', 0, 250);
    await twin.waitActual('thermo-1', 'temp', '25.000000');
    // a new desired value from the cloud: an update of the device
    await twin.push(
      'update',
      'device',
      device('thermo-1', sim.port, { setpoint: '7000', pressure: '-12.25' }),
    );
    await twin.waitActual('thermo-1', 'setpoint', '7000');
    expect(await sim.read('holdingRegisters', 3)).toEqual([7000]);
    await twin.waitActual('thermo-1', 'pressure', '-12.250000');
    // the report carries the desired value as expected (observedDesired)
    const last = twin.events.filter((e) => e.topic.endsWith('thermo-1/twin/update')).at(-1) as TwinEvent;
    expect(last.payload).toMatchObject({ event_id: '' });
    expect(typeof last.payload.timestamp).toBe('number');
    // removal stops the reports: dmiserver handles its messages in order, so once a device
    // inserted after the delete reports, thermo-1 is gone; five of its reads later, still nothing
    await twin.push('delete', 'device', { metadata: { name: 'thermo-1', namespace: 'default' } });
    await twin.push('insert', 'device', device('thermo-after', sim.port));
    const reportsOf = (name: string) => twin.events.filter((e) => e.topic.includes(`/${name}/twin/`)).length;
    await waitUntil(() => reportsOf('thermo-after') >= 1, 8000, 'a report of the next device');
    const n = reportsOf('thermo-1');
    await waitUntil(() => reportsOf('thermo-after') >= 6, 8000, 'five more reports of the next device');
    expect(reportsOf('thermo-1')).toBe(n);
  });

  it('a desired-value update with configData in another key order keeps the connection and leaks nothing', async () => {
    const sim = await startModbusTcp(maps);
    dir = mkdtempSync(join(tmpdir(), 'ke-dmi-'));
    t = await startTestKernel(yaml(dir, 'inprocess', false), registry);
    const twin = new FakeTwin(t);
    const driver = await createModbusDriver();
    const mapper = await Mapper.start({
      name: 'modbus-in-test',
      driver,
      socketPath: join(dir, 'modbus.sock'),
      edgecoreSocket: join(dir, 'dmi.sock'),
    });
    try {
      await mapper.whenRegistered;
      await twin.push('insert', 'devicemodel', model);
      await twin.push('insert', 'device', device('thermo-5', sim.port, { setpoint: '42' }));
      await twin.waitActual('thermo-5', 'setpoint', '42');
      // Go sends map entries in random order: the same connection, its keys reversed, new desired values
      for (const setpoint of ['43', '44', '45']) {
        const d = device('thermo-5', sim.port, { setpoint });
        const reversed = Object.fromEntries(Object.entries(d.spec.protocol.configData).reverse());
        await twin.push('update', 'device', {
          ...d,
          spec: { ...d.spec, protocol: { ...d.spec.protocol, configData: reversed } },
        });
        await twin.waitActual('thermo-5', 'setpoint', setpoint);
      }
      expect(await sim.read('holdingRegisters', 3)).toEqual([45]);
      expect(twin.states('thermo-5')).toEqual(['online']); // never dropped and reconnected
      expect(driver.connections()).toBe(1);
      // removed: the last user of the connection closes it (a leaked user would keep it open)
      await twin.push('delete', 'device', { metadata: { name: 'thermo-5', namespace: 'default' } });
      await waitUntil(() => mapper.devices.size === 0, 5000, 'device removed from the mapper');
      expect(driver.connections()).toBe(0);
    } finally {
      await mapper.stop();
    }
  });

  it('reconnects after the device goes away: offline, then online again', async () => {
    const sim = await startModbusTcp(maps);
    const twin = await start();
    await twin.push('insert', 'devicemodel', model);
    await twin.push('insert', 'device', device('thermo-2', sim.port));
    await twin.waitActual('thermo-2', 'temp', '23.500000');
    await sim.restart({ downMs: 1500 });
    await waitUntil(() => twin.states('thermo-2').includes('offline'), 8000, 'offline state');
    await sim.write('inputRegisters', 0, 300);
    await twin.waitActual('thermo-2', 'temp', '30.000000', 10_000);
    expect(twin.states('thermo-2').slice(-1)).toEqual(['online']);
  });

  it('a Modbus exception fails one property, a bad config one device; the rest keeps working', async () => {
    const sim = await startModbusTcp(maps);
    const twin = await start();
    await twin.push('insert', 'devicemodel', model);
    const bad = device('thermo-bad', sim.port);
    (bad.spec.properties[0] as { visitors: unknown }).visitors = visitor({
      register: 'WeirdRegister',
      offset: 0,
    });
    await twin.push('insert', 'device', bad);
    const unknownAddr = {
      name: 'counter',
      collectCycle: 100,
      reportToCloud: true,
      visitors: visitor({ register: 'HoldingRegister', offset: 500, limit: 2 }),
    };
    const ok = device('thermo-3', sim.port);
    ok.spec.properties = [
      ...ok.spec.properties.filter((p) => (p as { name: string }).name !== 'counter'),
      unknownAddr,
    ];
    await twin.push('insert', 'device', ok);
    const badOffset = device('thermo-offset', sim.port);
    (badOffset.spec.properties[1] as { visitors: unknown }).visitors = visitor({
      register: 'HoldingRegister',
      offset: -4,
    });
    await twin.push('insert', 'device', badOffset);
    await twin.waitActual('thermo-3', 'temp', '23.500000');
    await waitUntil(() => twin.states('thermo-bad').includes('unhealthy'), 5000, 'bad device unhealthy');
    await waitUntil(() => twin.states('thermo-offset').includes('unhealthy'), 5000, 'bad offset unhealthy');
    await sim.write('inputRegisters', 0, 111);
    await twin.waitActual('thermo-3', 'temp', '11.100000');
    expect(twin.actual('thermo-3', 'counter')).toBeUndefined(); // exception 2 every time
    expect(twin.states('thermo-3')).toEqual(['online']);
    expect(twin.actual('thermo-bad', 'temp')).toBeUndefined();
  });

  it('a killed mapper process is restarted by the kernel and gets its devices again', async () => {
    const sim = await startModbusTcp(maps);
    const twin = await start('process');
    await twin.push('insert', 'devicemodel', model);
    await waitUntil(
      () => (t?.kernel.host('mapper-modbus') as unknown as { pid?: number })?.pid !== undefined,
      10_000,
      'mapper process',
    );
    // registered or not yet: dmiserver keeps the device and hands it over at registration
    await twin.push('insert', 'device', device('thermo-4', sim.port, { setpoint: '5' }));
    await twin.waitActual('thermo-4', 'setpoint', '5', 15_000);
    const pid = (t?.kernel.host('mapper-modbus') as unknown as { pid: number }).pid;
    process.kill(pid, 'SIGKILL');
    await sim.write('holdingRegisters', 3, 9);
    // restarted: registers with withData and gets thermo-4 back, which writes the desired 5 again
    await waitUntil(
      () => (t?.kernel.host('mapper-modbus') as unknown as { pid?: number })?.pid !== pid,
      15_000,
      'restart',
    );
    await waitUntil(
      () => twin.states('thermo-4').filter((s) => s === 'online').length >= 2,
      15_000,
      'online again',
    );
    await twin.waitActual('thermo-4', 'setpoint', '5', 10_000);
    expect(await sim.read('holdingRegisters', 3)).toEqual([5]);
  });
});

describe('mapper-modbus as a standalone program', () => {
  let t: TestKernel | undefined;
  let child: import('node:child_process').ChildProcess | undefined;
  let dir = '';
  afterEach(async () => {
    if (child && child.exitCode === null) {
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
    await t?.kernel.stop();
    t = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('attaches to a running edgecore through dmi.sock with a KubeEdge-style config file', async () => {
    const sim = await startModbusTcp(maps);
    dir = mkdtempSync(join(tmpdir(), 'ke-dmi-'));
    t = await startTestKernel(yaml(dir).replace(/ {2}mapperModbus: .*\n/, ''), registry);
    const twin = new FakeTwin(t);
    await twin.push('insert', 'devicemodel', model);
    await twin.push('insert', 'device', device('thermo-sa', sim.port, { setpoint: '11' }));
    const { writeFileSync } = await import('node:fs');
    const { spawn } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const cfg = join(dir, 'config.yaml');
    writeFileSync(
      cfg,
      `grpc_server: {socket_path: ${join(dir, 'modbus.sock')}}\ncommon: {name: modbus-standalone, edgecore_sock: ${join(dir, 'dmi.sock')}}\n`,
    );
    child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('./main.ts', import.meta.url)), '--config', cfg],
      {
        stdio: 'ignore',
      },
    );
    await twin.waitActual('thermo-sa', 'temp', '23.500000', 15_000);
    await twin.waitActual('thermo-sa', 'setpoint', '11');
    expect(await sim.read('holdingRegisters', 3)).toEqual([11]);
    const gone = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await gone).toBe(0);
  });
});

describe('mapper-modbus over Modbus RTU (socat pty + pymodbus)', () => {
  let t: TestKernel | undefined;
  let dir = '';
  afterEach(async () => {
    await t?.kernel.stop();
    t = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("the user's v1alpha2 device (serial, slave 1, coil and discrete input) works", async () => {
    const sim = await startModbusRtu({ coils: [0, 0, 1, 0], discreteInputs: [0, 0, 0, 1], baudRate: 115200 });
    dir = mkdtempSync(join(tmpdir(), 'ke-dmi-'));
    t = await startTestKernel(yaml(dir), registry);
    const twin = new FakeTwin(t);
    const { parse } = await import('yaml');
    const { readFileSync } = await import('node:fs');
    const examples = new URL('../../test/fixtures/notes/', import.meta.url); // the user's examples
    const userModel = parse(readFileSync(new URL('device-model-v1alpha2.yaml', examples), 'utf8'));
    const userDevice = parse(readFileSync(new URL('device-instance-v1alpha2.yaml', examples), 'utf8'));
    userDevice.metadata.namespace = 'default';
    userModel.spec.protocol = undefined;
    // The pty stands for the serial line; even parity cannot be set on a pty (see driver tests).
    userDevice.spec.protocol.common.com.serialPort = sim.devicePath;
    userDevice.spec.protocol.common.com.parity = 'none';
    await twin.push('insert', 'devicemodel', userModel);
    await twin.push('insert', 'device', userDevice);
    await twin.waitActual('sensor-tag-instance-01', 'temperature-enable', '1');
    // temperature: desired 15 (int) on a coil = ON; the coil reads back 1
    await twin.waitActual('sensor-tag-instance-01', 'temperature', '1');
    await sim.write('discreteInputs', 3, 0);
    await twin.waitActual('sensor-tag-instance-01', 'temperature-enable', '0');
  });

  it('the same device as v1beta1, and the serial device going silent and coming back', async () => {
    const sim = await startModbusRtu({ coils: [0, 0, 0, 0], discreteInputs: [0, 0, 0, 1], baudRate: 115200 });
    dir = mkdtempSync(join(tmpdir(), 'ke-dmi-'));
    t = await startTestKernel(yaml(dir), registry);
    const twin = new FakeTwin(t);
    await twin.push('insert', 'devicemodel', {
      apiVersion: 'devices.kubeedge.io/v1beta1',
      kind: 'DeviceModel',
      metadata: { name: 'sensor-tag-model', namespace: 'default' },
      spec: {
        protocol: 'modbus',
        properties: [
          {
            name: 'temperature',
            type: 'INT',
            accessMode: 'ReadWrite',
            maximum: '100',
            unit: 'degree celsius',
          },
          { name: 'temperature-enable', type: 'STRING', accessMode: 'ReadWrite' },
        ],
      },
    });
    const swaps = { limit: 1, scale: 1, isSwap: true, isRegisterSwap: true };
    await twin.push('insert', 'device', {
      apiVersion: 'devices.kubeedge.io/v1beta1',
      kind: 'Device',
      metadata: { name: 'sensor-tag-beta', namespace: 'default' },
      spec: {
        deviceModelRef: { name: 'sensor-tag-model' },
        nodeName: 'node1',
        protocol: {
          protocolName: 'modbus',
          configData: {
            serialPort: sim.devicePath,
            baudRate: 115200,
            dataBits: 8,
            parity: 'none',
            stopBits: 1,
            slaveID: 1,
            timeout: 300,
          },
        },
        properties: [
          {
            name: 'temperature',
            reportToCloud: true,
            collectCycle: 100,
            desired: { value: '1', metadata: { type: 'int' } },
            visitors: {
              protocolName: 'modbus',
              configData: { register: 'CoilRegister', offset: 2, ...swaps },
            },
          },
          {
            name: 'temperature-enable',
            reportToCloud: true,
            collectCycle: 100,
            visitors: {
              protocolName: 'modbus',
              configData: { register: 'DiscreteInputRegister', offset: 3, ...swaps },
            },
          },
        ],
      },
    });
    await twin.waitActual('sensor-tag-beta', 'temperature', '1');
    expect(await sim.read('coils', 2)).toEqual([1]);
    await twin.waitActual('sensor-tag-beta', 'temperature-enable', '1');
    await sim.restart({ downMs: 1200 });
    await waitUntil(() => twin.states('sensor-tag-beta').includes('offline'), 8000, 'offline');
    await sim.write('discreteInputs', 3, 0);
    await twin.waitActual('sensor-tag-beta', 'temperature-enable', '0', 10_000);
    expect(twin.states('sensor-tag-beta').at(-1)).toBe('online');
  });
});
