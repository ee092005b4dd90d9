/**
 * Mapper benchmarks: Modbus reads through mapper-modbus against the pymodbus simulator (reads/s and
 * the latency the mapper adds over a bare modbus-serial request on the same wire), and twin values
 * reported over DMI (ReportDeviceStatus) into deviceTwin's tables.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { parseConfig } from '../../kernel/config/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger } from '../../kernel/log.js';
import { edgeRegistry } from '../../plugins/registry.js';
import { createModbusDriver } from '../../plugins/mapper-modbus/driver.js';
import type { DeviceSpec } from '../../sdk/mapper/index.js';
import { newMessage } from '../../kernel/bus/message.js';
import { startModbusTcp } from '../peers/modbus.js';
import { cleanup, freePort } from '../peers/util.js';
import { latencyFigures, percentile, round, type Figure } from './report.js';
import { edgeLayout } from '../../plugins/registry.js';

const READS = 2000;

async function modbusReads(): Promise<Figure[]> {
  const sim = await startModbusTcp({ holdingRegisters: [0x41bc, 0x0000, 250] });
  try {
    const { default: ModbusRTU } = (await import('modbus-serial')) as unknown as {
      default: new () => import('modbus-serial/ModbusRTU.js').ModbusRTU;
    };
    // bare wire time: modbus-serial alone
    const raw = new ModbusRTU();
    await raw.connectTCP('127.0.0.1', { port: sim.port });
    raw.setID(1);
    raw.setTimeout(2000);
    for (let i = 0; i < 100; i++) await raw.readHoldingRegisters(0, 2);
    const wire: number[] = [];
    for (let i = 0; i < READS; i++) {
      const t0 = process.hrtime.bigint();
      await raw.readHoldingRegisters(0, 2);
      wire.push(Number(process.hrtime.bigint() - t0));
    }
    await new Promise<void>((r) => raw.close(() => r()));

    // the mapper's read path: lock, unit id, request, swap + decode to the property type
    const driver = await createModbusDriver();
    const spec: DeviceSpec = {
      id: 'default/bench',
      name: 'bench',
      namespace: 'default',
      model: 'm',
      protocolName: 'modbus',
      protocol: { ip: '127.0.0.1', port: sim.port, slaveID: 1 },
      properties: [
        {
          name: 'temp',
          type: 'float',
          accessMode: 'ReadOnly',
          visitor: { register: 'HoldingRegister', offset: 0, limit: 2 },
          collectCycleMs: 1000,
          reportCycleMs: 0,
          reportToCloud: true,
        },
      ],
      stateReport: { reportToCloud: false, cycleMs: 1000 },
    };
    const handle = driver.createDevice(spec);
    await handle.connect();
    const prop = spec.properties[0]!;
    for (let i = 0; i < 100; i++) await handle.readProperty(prop);
    const mapper: number[] = [];
    const start = process.hrtime.bigint();
    for (let i = 0; i < READS; i++) {
      const t0 = process.hrtime.bigint();
      await handle.readProperty(prop);
      mapper.push(Number(process.hrtime.bigint() - t0));
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    await handle.close?.();
    const p50 = (xs: number[]) =>
      percentile(
        [...xs].sort((a, b) => a - b),
        50,
      );
    return [
      { name: 'modbus_tcp_reads_per_s', value: round(READS / seconds), unit: 'reads/s' },
      ...latencyFigures('modbus_wire_read', wire, 'ms'),
      ...latencyFigures('modbus_mapper_read', mapper, 'ms'),
      {
        name: 'modbus_mapper_added_latency_p50',
        value: round((p50(mapper) - p50(wire)) / 1e6),
        unit: 'ms',
        goal: '<= 1',
      },
    ];
  } finally {
    await sim.stop();
  }
}

/** `props` twins per ReportDeviceStatus (the SDK batches a device's tick; a Go mapper sends 1). */
async function dmiIntoTwin(PROPS: number, ROUNDS: number, name: string): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-dmi-'));
  const port = await freePort();
  const dataSource = join(dir, 'edgecore.db');
  const config = parseConfig(
    edgeLayout,
    `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database: {dataSource: ${JSON.stringify(dataSource)}}
modules:
  edged: {enable: false}
  edgeHub: {enable: false}
  metaManager: {enable: false}
  eventBus: {enable: true, mqttMode: 0, mqttServerInternal: "tcp://127.0.0.1:${port}"}
  deviceTwin: {enable: true, dmiSockPath: ${JSON.stringify(dir + '/')}}
`,
    'bench.yaml',
  );
  const kernel = new Kernel({ config, registry: edgeRegistry, logger: createLogger('silent') });
  await kernel.start();
  const { createChannel, createClient } = await import('nice-grpc');
  const api = await import('../../proto/gen/dmi/v1beta1/api.js');
  const channel = createChannel(`unix://${dir}/dmi.sock`);
  const client = createClient(api.DeviceManagerServiceDefinition, channel);
  const require = createRequire(import.meta.url);
  const Database = require('better-sqlite3') as typeof BetterSqlite3;
  try {
    kernel.bus.addModule('bench', 'bench');
    await kernel.bus.sendToGroup(
      'twin',
      newMessage(
        { source: 'devicecontroller', group: 'twin', operation: 'update', resource: 'membership' },
        {
          event_id: 'b',
          timestamp: Date.now(),
          added_devices: [{ id: 'default/bench', name: 'bench' }],
          removed_devices: null,
        },
      ),
    );
    await new Promise((r) => setTimeout(r, 300));
    const report = (round: number): Promise<boolean> =>
      client
        .reportDeviceStatus({
          deviceName: 'bench',
          deviceNamespace: 'default',
          reportedDevice: {
            twins: Array.from({ length: PROPS }, (_, i) => ({
              propertyName: `p${i}`,
              reported: { value: `v${round}`, metadata: {} },
            })),
          },
        })
        .then(
          () => true,
          () => false,
        );
    const db = new Database(dataSource, { readonly: true });
    const count = db.prepare('SELECT count(*) AS n FROM device_twin WHERE deviceid = ? AND actual = ?');
    const t0 = process.hrtime.bigint();
    let sent = 0;
    for (let r = 0; r < ROUNDS; r++) {
      while (!(await report(r))) await new Promise((res) => setTimeout(res, 5)); // twin mailbox full: retry
      sent += PROPS;
    }
    const last = `v${ROUNDS - 1}`;
    const deadline = Date.now() + 120_000;
    while ((count.get('default/bench', last) as { n: number }).n < PROPS && Date.now() < deadline)
      await new Promise((res) => setTimeout(res, 10));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    db.close();
    return [
      { name, value: round(sent / seconds), unit: 'values/s', ...(PROPS > 1 ? { goal: '>= 5000' } : {}) },
    ];
  } finally {
    channel.close();
    await kernel.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function mapperBench(): Promise<Figure[]> {
  try {
    return [
      ...(await modbusReads()),
      ...(await dmiIntoTwin(100, 200, 'dmi_twin_values_into_devicetwin_per_s')),
      ...(await dmiIntoTwin(1, 3000, 'dmi_twin_values_into_devicetwin_1_per_request_per_s')),
    ];
  } finally {
    await cleanup();
  }
}
