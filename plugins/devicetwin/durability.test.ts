import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../test/helpers/kernel.js';
import { membershipMessage, mqttClient, startEdge } from '../../test/helpers/mqtt-edge.js';
import { startMosquitto } from '../../test/peers/mosquitto.js';
import { cleanup, freePort, requirePeer, run } from '../../test/peers/util.js';
import { TwinStore } from './store.js';

afterAll(cleanup);

const child = fileURLToPath(new URL('./testdata/edge-child.ts', import.meta.url));

describe('durability', () => {
  it('a QoS 1 twin update acknowledged by the internal broker survives kill -9 of edgecore', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'twin-kill-'));
    const dataSource = join(dir, 'edgecore.db');
    const db = new Database(dataSource);
    new TwinStore(db).apply({
      addDevices: [{ id: 'default/pump', name: 'pump', description: '', state: '', last_online: '' }],
    });
    db.close();
    const port = await freePort();
    const yaml = join(dir, 'edgecore.yaml');
    writeFileSync(
      yaml,
      `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database: {dataSource: ${JSON.stringify(dataSource)}}
modules:
  edged: {enable: false, hostnameOverride: edge-kill}
  edgeHub: {enable: false}
  metaManager: {enable: false}
  deviceTwin: {enable: true}
  eventBus: {enable: true, mqttMode: 0, mqttServerInternal: "tcp://127.0.0.1:${port}"}
`,
    );
    const proc = spawn(process.execPath, ['--import', 'tsx', child, yaml], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => proc.once('exit', r));
    try {
      await waitUntil(() => out.includes('READY'), 20_000, `edge child to start: ${out}`);
      const app = await mqttClient(`tcp://127.0.0.1:${port}`, []);
      const N = 50;
      for (let i = 1; i <= N; i++) {
        await app.publish(
          '$hw/events/device/default/pump/twin/update',
          JSON.stringify({
            event_id: `e${i}`,
            timestamp: i,
            twin: { speed: { actual: { value: String(i) } } },
          }),
          1,
        );
      }
      proc.kill('SIGKILL'); // right after the last PUBACK
      await exited;
      await app.end();
    } finally {
      proc.kill('SIGKILL');
    }
    const check = new Database(dataSource, { readonly: true });
    const row = check.prepare("SELECT actual, actual_version FROM device_twin WHERE name = 'speed'").get();
    check.close();
    expect(row).toEqual({ actual: '50', actual_version: '{"cloud":0,"edge":50}' });
  });
});

describe('deviceTwin over mosquitto (mode 2) with mosquitto_pub / mosquitto_sub', () => {
  it('the spec example payloads, end to end', async () => {
    const broker = await startMosquitto();
    const edge = await startEdge({ mode: 2, external: broker.url });
    try {
      await edge.fromCloud(membershipMessage([{ id: 'default/thermo-1', name: 'thermo-1' }]));
      await broker.waitLog(/ 1 \+\/user\/#$/m); // eventBus subscribed (its last fixed topic)
      const port = String(broker.port);
      const sub = spawn(requirePeer('mosquitto_sub'), [
        ...[
          '-h',
          '127.0.0.1',
          '-p',
          port,
          '-v',
          '-t',
          '$hw/events/device/default/thermo-1/twin/update/#',
          '-C',
          '4',
          '-i',
          'spec-sub',
        ],
      ]);
      let lines = '';
      sub.stdout.on('data', (d: Buffer) => (lines += d.toString()));
      const done = new Promise((r) => sub.once('close', r));
      await broker.waitLog(/spec-sub 0 \$hw\/events\/device\/default\/thermo-1\/twin\/update\/#$/m);
      const pub = (m: string) =>
        run(requirePeer('mosquitto_pub'), [
          ...[
            '-h',
            '127.0.0.1',
            '-p',
            port,
            '-q',
            '1',
            '-t',
            '$hw/events/device/default/thermo-1/twin/update',
          ],
          ...['-m', m],
        ]);
      await pub(
        '{"event_id":"e-1","timestamp":1732550400000,"twin":{"temperature":{"expected":{"value":"30"},"actual":{"value":"25"},"metadata":{"type":"int"}}}}',
      );
      await done;
      const got = lines
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('$hw/events/device/default/thermo-1/twin/update '));
      expect(got.map((l) => l.split(' ')[0])).toEqual([
        '$hw/events/device/default/thermo-1/twin/update/result',
        '$hw/events/device/default/thermo-1/twin/update/document',
        '$hw/events/device/default/thermo-1/twin/update/delta',
      ]);
      const delta = JSON.parse(got[2]!.slice(got[2]!.indexOf(' ') + 1)) as { delta: unknown };
      expect(delta.delta).toEqual({ temperature: '30' });
    } finally {
      await edge.stop();
    }
  });
});

describe('a retained twin update on the external broker', () => {
  it('is not applied again at the next start (no roll-back to the retained value)', async () => {
    const broker = await startMosquitto();
    const dataSource = join(mkdtempSync(join(tmpdir(), 'twin-retained-')), 'edgecore.db');
    const topic = '$hw/events/device/default/pump/twin/update';
    const value = (v: string) =>
      JSON.stringify({ event_id: v, timestamp: 1, twin: { speed: { actual: { value: v } } } });
    const stored = () => {
      const db = new Database(dataSource, { readonly: true });
      try {
        return db.prepare("SELECT actual, actual_version FROM device_twin WHERE name = 'speed'").get();
      } finally {
        db.close();
      }
    };
    const app = await mqttClient(broker.url, ['$hw/events/device/default/pump/twin/update/result']);
    let edge = await startEdge({ mode: 2, external: broker.url, dataSource });
    try {
      await edge.fromCloud(membershipMessage([{ id: 'default/pump', name: 'pump' }]));
      await broker.waitLog(/ 1 \+\/user\/#$/m);
      // a live publish with retain set is applied once, as any live publish
      await app.client.publishAsync(topic, value('1'), { qos: 1, retain: true });
      await app.waitFor(`${topic}/result`, 1);
      await app.publish(topic, value('2'));
      await app.waitFor(`${topic}/result`, 2);
      expect(stored()).toEqual({ actual: '2', actual_version: '{"cloud":0,"edge":2}' });
      await edge.stop();
      edge = await startEdge({ mode: 2, external: broker.url, dataSource });
      await broker.waitLog(/ 1 \+\/user\/#\n[^]* 1 \+\/user\/#$/m); // subscribed again
      // the broker replays the retained "1" at the subscription; a live "3" follows it
      await app.publish(topic, value('3'));
      const results = await app.waitFor(`${topic}/result`, 3);
      expect(results.map((r) => r.json().event_id)).toEqual(['1', '2', '3']);
      expect(stored()).toEqual({ actual: '3', actual_version: '{"cloud":0,"edge":3}' });
    } finally {
      await app.end();
      await edge.stop();
    }
  });
});
