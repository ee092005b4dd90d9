import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { newMessage, type Message } from '../../kernel/index.js';
import { kernelYaml, startTestKernel, waitUntil, type TestKernel } from '../../test/helpers/kernel.js';

/** The SDK is enough for a new protocol: a standalone virtual mapper attaches to edgecore's DMI socket. */
describe('mapper-virtual (SDK example) as a standalone process', () => {
  let t: TestKernel | undefined;
  let child: ChildProcess | undefined;
  let dir = '';
  afterEach(async () => {
    if (child && child.exitCode === null) {
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
    await t?.kernel.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('registers, reports drifting values and state, applies a desired value, stops on SIGTERM', async () => {
    dir = mkdtempSync(join(tmpdir(), 'ke-virtual-'));
    t = await startTestKernel(kernelYaml('', { deviceTwin: `{enable: true, dmiSockPath: "${dir}/"}` }), [
      {
        configKey: 'deviceTwin',
        specifier: new URL('../../plugins/dmiserver/index.ts', import.meta.url).href,
      },
    ]);
    const twin: { topic: string; payload: Record<string, unknown> }[] = [];
    t.kernel.bus.addModule('twin', 'twin').attach(
      (m: Message) =>
        void twin.push({
          topic: Buffer.from(String(m.route.resource), 'base64').toString(),
          payload: JSON.parse(String(m.content)),
        }),
      () => undefined,
    );
    const send = (operation: string, kind: string, obj: { metadata: { name: string } }) =>
      t!.kernel.bus.send(
        'dmiserver',
        newMessage(
          { source: 'twin', group: 'dmi', operation, resource: `${kind}/default/${obj.metadata.name}` },
          obj,
        ),
      );
    const model = {
      metadata: { name: 'room-model', namespace: 'default' },
      spec: {
        protocol: 'virtual',
        properties: [{ name: 'temperature', type: 'FLOAT', accessMode: 'ReadWrite' }],
      },
    };
    const device = (desired?: string, collectCycle = 100) => ({
      metadata: { name: 'room-1', namespace: 'default' },
      spec: {
        deviceModelRef: { name: 'room-model' },
        protocol: { protocolName: 'virtual', configData: { seed: 7 } },
        properties: [
          {
            name: 'temperature',
            collectCycle,
            reportToCloud: true,
            ...(desired ? { desired: { value: desired } } : {}),
            visitors: { protocolName: 'virtual', configData: { base: 21, jitter: 0.5 } },
          },
        ],
      },
    });
    await send('insert', 'devicemodel', model);
    await send('insert', 'device', device());
    child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        fileURLToPath(new URL('./main.ts', import.meta.url)),
        '--socket',
        join(dir, 'virtual.sock'),
        '--edgecore-sock',
        join(dir, 'dmi.sock'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const values = () =>
      twin
        .filter((e) => e.topic === '$hw/events/device/default/room-1/twin/update')
        .map((e) =>
          Number((e.payload.twin as Record<string, { actual: { value: string } }>).temperature!.actual.value),
        );
    await waitUntil(() => values().length >= 3, 15_000, `virtual reports (stderr: ${stderr})`);
    for (const v of values()) expect(Math.abs(v - 21)).toBeLessThanOrEqual(0.5);
    expect(twin.some((e) => e.topic.endsWith('room-1/state/update') && e.payload.State === 'online')).toBe(
      true,
    );
    await send('update', 'device', device('30'));
    await waitUntil(() => values().at(-1) === 30, 5000, 'desired value applied');
    // another update on the same connection (a new collect cycle): the device keeps running with
    // the value written to it (no reconnect, no new 'online')
    const reportsBefore = values().length;
    await send('update', 'device', device('30', 50));
    await waitUntil(() => values().length >= reportsBefore + 10, 5000, 'reports after the update');
    expect(values().slice(reportsBefore)).toEqual(
      values()
        .slice(reportsBefore)
        .map(() => 30),
    );
    const online = twin.filter(
      (e) => e.topic.endsWith('room-1/state/update') && e.payload.State === 'online',
    );
    expect(online).toHaveLength(1);
    const gone = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await gone).toBe(0);
  });
});
