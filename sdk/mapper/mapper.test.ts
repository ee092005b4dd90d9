import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createChannel, createClient } from 'nice-grpc';
import { afterEach, describe, expect, it } from 'vitest';
import { newMessage, type Message } from '../../kernel/index.js';
import { kernelYaml, startTestKernel, waitUntil, type TestKernel } from '../../test/helpers/kernel.js';
import { DeviceMapperServiceDefinition } from '../../proto/gen/dmi/v1beta1/api.js';
import { DeviceOfflineError, Mapper, type DeviceSpec, type ProtocolDriver } from './index.js';
import { sameConnection } from './spec.js';

/** A driver whose device can be switched off, and whose `broken` property cannot be written. */
function flakyDriver() {
  const state = { up: true, reads: 0, writes: [] as string[] };
  const driver: ProtocolDriver = {
    protocol: 'flaky',
    createDevice(spec: DeviceSpec) {
      void spec;
      return {
        async connect() {
          if (!state.up) throw new Error('device switched off');
        },
        async readProperty(p) {
          if (!state.up) throw new DeviceOfflineError('link lost');
          state.reads++;
          return p.name === 'counter' ? String(state.reads) : 'x';
        },
        async writeProperty(p, value) {
          if (p.name === 'broken') throw new Error('register is read-only in this firmware');
          state.writes.push(`${p.name}=${value}`);
        },
      };
    },
  };
  return { driver, state };
}

describe('sameConnection', () => {
  const spec = (protocol: DeviceSpec['protocol'], protocolName = 'p'): DeviceSpec => ({
    id: 'default/d',
    name: 'd',
    namespace: 'default',
    model: 'm',
    protocolName,
    protocol,
    properties: [],
    stateReport: { reportToCloud: false, cycleMs: 1000 },
  });
  it('compares configData by value, whatever the key order', () => {
    const a = spec({ ip: '10.0.0.1', port: 502, slaveID: 1 });
    expect(sameConnection(a, spec({ slaveID: 1, port: 502, ip: '10.0.0.1' }))).toBe(true);
    expect(sameConnection(a, spec({ slaveID: 1, port: 503, ip: '10.0.0.1' }))).toBe(false);
    expect(sameConnection(a, spec({ ip: '10.0.0.1', port: 502 }))).toBe(false);
    expect(sameConnection(a, spec({ ip: '10.0.0.1', port: 502, slaveID: 1 }, 'q'))).toBe(false);
  });
});

describe('mapper SDK', () => {
  let t: TestKernel | undefined;
  let mapper: Mapper | undefined;
  let dir = '';
  afterEach(async () => {
    await mapper?.stop();
    await t?.kernel.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reports, throttles by reportCycle, survives a failed write, goes offline and back, answers GetDevice', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ke-sdk-'));
    t = await startTestKernel(kernelYaml('', { deviceTwin: `{enable: true, dmiSockPath: "${dir}/"}` }), [
      {
        configKey: 'deviceTwin',
        specifier: new URL('../../plugins/dmiserver/index.ts', import.meta.url).href,
      },
    ]);
    const reports: { topic: string; payload: Record<string, unknown> }[] = [];
    t.kernel.bus.addModule('twin', 'twin').attach(
      (m: Message) =>
        void reports.push({
          topic: Buffer.from(String(m.route.resource), 'base64').toString(),
          payload: JSON.parse(String(m.content)),
        }),
      () => undefined,
    );
    const { driver, state } = flakyDriver();
    mapper = await Mapper.start({
      name: 'flaky-mapper',
      driver,
      socketPath: join(dir, 'flaky.sock'),
      edgecoreSocket: join(dir, 'dmi.sock'),
      reconnect: { initialMs: 50, maxMs: 100 },
    });
    await mapper.whenRegistered;
    const send = (
      operation: string,
      kind: string,
      obj: { metadata: { name: string; namespace?: string }; [k: string]: unknown },
    ) =>
      t!.kernel.bus.send(
        'dmiserver',
        newMessage(
          { source: 'twin', group: 'dmi', operation, resource: `${kind}/default/${obj.metadata.name}` },
          obj,
        ),
      );
    await send('insert', 'devicemodel', {
      metadata: { name: 'fm', namespace: 'default' },
      spec: {
        protocol: 'flaky',
        properties: [
          { name: 'counter', type: 'INT', accessMode: 'ReadOnly' },
          { name: 'slow', type: 'STRING', accessMode: 'ReadOnly' },
          { name: 'broken', type: 'STRING', accessMode: 'ReadWrite' },
        ],
      },
    });
    const vis = { protocolName: 'flaky', configData: { a: 1 } };
    await send('insert', 'device', {
      metadata: { name: 'f1', namespace: 'default' },
      spec: {
        deviceModelRef: { name: 'fm' },
        protocol: { protocolName: 'flaky', configData: {} },
        properties: [
          { name: 'counter', collectCycle: 20, reportToCloud: true, visitors: vis },
          { name: 'slow', collectCycle: 20, reportCycle: 400, reportToCloud: true, visitors: vis },
          { name: 'broken', collectCycle: 20, reportToCloud: true, desired: { value: 'on' }, visitors: vis },
        ],
      },
    });
    const twinReports = () => reports.filter((r) => r.topic.endsWith('/f1/twin/update'));
    const count = (name: string) => twinReports().filter((r) => name in (r.payload.twin as object)).length;
    await waitUntil(() => count('counter') >= 20, 5000, 'counter reports');
    // one request per tick: counter and broken travel together
    expect(twinReports().some((r) => Object.keys(r.payload.twin as object).length >= 2)).toBe(true);
    expect(count('slow')).toBeLessThanOrEqual(Math.ceil(count('counter') / 10) + 1);
    expect(count('broken')).toBeGreaterThan(5); // its write failed, it is still read
    expect((twinReports().at(-1)!.payload.twin as Record<string, unknown>).broken).toEqual({
      expected: { value: 'on' },
      actual: { value: 'x' },
    });

    const states = () =>
      reports.filter((r) => r.topic.endsWith('/f1/state/update')).map((r) => r.payload.State);
    state.up = false;
    await waitUntil(() => states().includes('offline'), 3000, 'offline');
    state.up = true;
    await waitUntil(() => states().at(-1) === 'online' && states().length >= 3, 3000, 'online again');

    const channel = createChannel(`unix://${join(dir, 'flaky.sock')}`);
    const res = await createClient(DeviceMapperServiceDefinition, channel).getDevice({
      deviceName: 'f1',
      deviceNamespace: 'default',
    });
    channel.close();
    const twins = res.device!.status!.twins;
    expect(twins.map((x) => x.propertyName)).toEqual(['counter', 'slow', 'broken']);
    expect(Number(twins[0]!.reported!.value)).toBeGreaterThan(0);
    expect(twins[0]!.reported!.metadata.type).toBe('int');
  });
});
