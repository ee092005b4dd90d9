/**
 * What an acknowledgement from the internal broker (aedes) means, under load, with the real
 * eventBus and deviceTwin on a SQLite file; NUL / invalid UTF-8 topics side by side with mosquitto.
 */
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../../test/helpers/kernel.js';
import { membershipMessage, startEdge, type Edge } from '../../test/helpers/mqtt-edge.js';
import { startMosquitto } from '../../test/peers/mosquitto.js';
import { cleanup } from '../../test/peers/util.js';

afterAll(cleanup);

let edge: Edge | undefined;
const clients: MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await edge?.stop();
  edge = undefined;
});

const topic = (k: number, suffix: string): string => `$hw/events/device/default/d${k}/${suffix}`;
const update = (i: number): string =>
  JSON.stringify({ event_id: `e${i}`, timestamp: i, twin: { v: { actual: { value: String(i) } } } });

/** An edge (mode 0) with devices d0..d(n-1) and one connected MQTT client per device. */
async function edgeWithDevices(n: number, opts: mqtt.IClientOptions = {}): Promise<MqttClient[]> {
  edge = await startEdge({ mode: 0 });
  const devices = Array.from({ length: n }, (_, k) => ({ id: `default/d${k}`, name: `d${k}` }));
  await edge.fromCloud(membershipMessage(devices));
  await waitUntil(() => rows(edge!.dataSource, 'SELECT id FROM device').length === n, 5000, 'devices');
  const url = edge.internalUrl.replace(/^tcp:/, 'mqtt:');
  return Promise.all(
    devices.map(async () => {
      const c = mqtt.connect(url, { log: () => undefined, reconnectPeriod: 100, ...opts });
      clients.push(c);
      await new Promise((r) => c.once('connect', r));
      return c;
    }),
  );
}

function rows(file: string, sql: string, ...args: unknown[]): Record<string, unknown>[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all(...args) as Record<string, unknown>[];
  } finally {
    db.close();
  }
}
const storedValue = (file: string, k: number): unknown =>
  rows(file, "SELECT actual FROM device_twin WHERE deviceid = ? AND name = 'v'", `default/d${k}`)[0]?.actual;

/** Publishes update 1..n from every client at `qos`, pipelined; resolves when all are acknowledged. */
function flood(cs: MqttClient[], n: number, qos: 1 | 2): Promise<void> {
  return Promise.all(
    cs.map(
      (c, k) =>
        new Promise<void>((resolve, reject) => {
          let acked = 0;
          for (let i = 1; i <= n; i++)
            c.publish(topic(k, 'twin/update'), update(i), { qos }, (err) => {
              if (err) reject(err);
              else if (++acked === n) resolve();
            });
        }),
    ),
  ).then(() => undefined);
}

describe('acknowledged means stored (internal broker)', () => {
  it('40 clients flooding QoS 1 twin updates: every acknowledged update is in SQLite', async () => {
    const cs = await edgeWithDevices(40);
    await flood(cs, 300, 1);
    // read at once, after the last PUBACK: nothing may be missing
    for (let k = 0; k < 40; k++) expect(storedValue(edge!.dataSource, k), `device d${k}`).toBe('300');
  });

  it('the same at QoS 2, and a burst of 2000 QoS 2 messages from one client completes without a reconnect', async () => {
    const cs = await edgeWithDevices(20);
    let closes = 0;
    for (const c of cs) c.on('close', () => closes++);
    await flood(cs, 100, 2);
    for (let k = 0; k < 20; k++) expect(storedValue(edge!.dataSource, k), `device d${k}`).toBe('100');
    // aedes' default maxInflightInbound (1000) disconnected such a client at every attempt
    await flood(cs.slice(0, 1), 2000, 2);
    expect(storedValue(edge!.dataSource, 0)).toBe('2000');
    expect(closes).toBe(0);
  });

  it('a QoS 0 flood from 40 clients: the latest value of every twin survives', async () => {
    const cs = await edgeWithDevices(40);
    const got = await Promise.all(
      cs.map(async (c, k) => {
        await c.subscribeAsync(topic(k, 'twin/get/result'), { qos: 1 });
        const result = new Promise<string>((resolve) => c.once('message', (_t, p) => resolve(p.toString())));
        for (let i = 1; i <= 300; i++) c.publish(topic(k, 'twin/update'), update(i), { qos: 0 });
        await c.publishAsync(topic(k, 'twin/get'), '{"event_id":"g"}', { qos: 1 });
        return result;
      }),
    );
    for (const [k, text] of got.entries()) {
      const twin = (JSON.parse(text) as { twin: { v: { actual: { value: string } } } }).twin;
      expect(twin.v.actual.value, `device d${k}`).toBe('300');
      expect(storedValue(edge!.dataSource, k)).toBe('300');
    }
  });

  it('a failed group commit is retried with back-off, answered 500 and not acknowledged; the client resends', async () => {
    const [app, other] = await edgeWithDevices(2);
    const results: { topic: string; body: { code?: number } }[] = [];
    other!.on('message', (t, p) =>
      results.push({ topic: t, body: JSON.parse(p.toString()) as { code?: number } }),
    );
    await other!.subscribeAsync([topic(0, 'twin/update/result'), topic(1, 'twin/get/result')], { qos: 1 });
    // a real SQLite failure: every write of a twin row aborts
    const db = new Database(edge!.dataSource);
    db.exec(`CREATE TRIGGER no_insert BEFORE INSERT ON device_twin BEGIN SELECT RAISE(ABORT, 'disk full'); END;
             CREATE TRIGGER no_update BEFORE UPDATE ON device_twin BEGIN SELECT RAISE(ABORT, 'disk full'); END;`);
    let closed = 0;
    app!.on('close', () => closed++);
    let acked = false;
    const twinBox = edge!.kernel.bus.mailbox('twin')!;
    const delivered = twinBox.stats.delivered;
    app!.publish(topic(0, 'twin/update'), update(7), { qos: 1 }, () => (acked = true));
    await waitUntil(() => twinBox.stats.delivered > delivered, 5000, 'the update to reach deviceTwin');
    // while the commit is retried, the event loop serves other clients (no busy wait)
    await other!.publishAsync(topic(1, 'twin/get'), '{"event_id":"g"}', { qos: 1 });
    await waitUntil(() => results.some((r) => r.body.code === 500), 10_000, 'the 500 result');
    expect(results[0]!.topic).toBe(topic(1, 'twin/get/result'));
    expect(acked).toBe(false);
    await waitUntil(() => closed > 0, 5000, 'the broker to close the connection instead of acknowledging');
    db.exec('DROP TRIGGER no_insert; DROP TRIGGER no_update;');
    db.close();
    await waitUntil(() => acked, 10_000, 'the resent update to be acknowledged');
    expect(storedValue(edge!.dataSource, 0)).toBe('7');
  });

  it('no answer from deviceTwin within 10 s: no acknowledgement, the connection is closed', async () => {
    edge = await startEdge({ mode: 0, deviceTwin: false });
    // a module `twin` that takes the request and never answers
    const got: unknown[] = [];
    edge.kernel.bus.addModule('twin', 'twin').attach(
      (m) => void got.push(m),
      () => undefined,
    );
    const c = mqtt.connect(edge.internalUrl.replace(/^tcp:/, 'mqtt:'), {
      log: () => undefined,
      reconnectPeriod: 0,
    });
    clients.push(c);
    await new Promise((r) => c.once('connect', r));
    let acked = false;
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    c.publish(topic(0, 'twin/update'), update(1), { qos: 1 }, (err) => (acked = !err));
    await closed;
    expect(got).toHaveLength(1);
    expect(acked).toBe(false);
  }, 20_000);
});

describe('no recursion in the broker under load', () => {
  it('a subscriber that stops reading, then thousands of publishes nobody subscribes to: no stack overflow', async () => {
    const errors: unknown[] = [];
    const record = (err: unknown): void => void errors.push(err);
    process.on('uncaughtException', record);
    try {
      edge = await startEdge({ mode: 0, deviceTwin: false });
      const port = Number(edge.internalUrl.split(':').pop());
      // a subscriber of apps/# that reads nothing: aedes' deliveries to it wait for 'drain'
      const stuck = await rawClient(port);
      stuck.socket.write(subscribePacket(Buffer.from('apps/#')));
      stuck.socket.pause();
      const url = edge.internalUrl.replace(/^tcp:/, 'mqtt:');
      const pubs = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const c = mqtt.connect(url, { log: () => undefined });
          clients.push(c);
          await new Promise((r) => c.once('connect', r));
          return c;
        }),
      );
      const big = Buffer.alloc(16_000, 'x');
      for (const c of pubs) for (let i = 0; i < 40; i++) c.publish('apps/big', big, { qos: 0 });
      for (const c of pubs) for (let i = 0; i < 3000; i++) c.publish('nobody/listens', 'x', { qos: 0 });
      // every publisher is served to the end once the subscriber reads again
      stuck.socket.resume();
      await Promise.all(pubs.map((c) => c.publishAsync('nobody/listens', 'last', { qos: 1 })));
      stuck.socket.destroy();
      expect(errors).toEqual([]);
    } finally {
      process.off('uncaughtException', record);
    }
  });
});

/** A raw MQTT 3.1.1 connection (to send bytes mqtt.js would never produce). */
async function rawClient(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('data', () => undefined);
  socket.on('error', () => undefined);
  const id = Buffer.from('raw');
  const body = Buffer.concat([
    Buffer.from([0, 4]),
    Buffer.from('MQTT'),
    Buffer.from([4, 2, 0, 60, 0, id.length]),
    id,
  ]);
  socket.write(Buffer.concat([Buffer.from([0x10, body.length]), body]));
  return { socket, closed };
}
const publishPacket = (topicBytes: Buffer): Buffer => {
  const body = Buffer.concat([Buffer.from([0, topicBytes.length]), topicBytes, Buffer.from('x')]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
};
const subscribePacket = (filter: Buffer): Buffer => {
  const body = Buffer.concat([Buffer.from([0, 1, 0, filter.length]), filter, Buffer.from([0])]);
  return Buffer.concat([Buffer.from([0x82, body.length]), body]);
};

describe('topics with NUL or invalid UTF-8 are refused as mosquitto refuses them', () => {
  const bad = {
    'NUL in a PUBLISH topic': publishPacket(Buffer.from('default/user/a\u0000b')),
    'invalid UTF-8 in a PUBLISH topic': publishPacket(
      Buffer.from([0x64, 0x2f, 0x75, 0x73, 0x65, 0x72, 0x2f, 0xff]),
    ),
    'NUL in a SUBSCRIBE filter': subscribePacket(Buffer.from('a/\u0000')),
  };
  it('both brokers close the connection; eventBus hands nothing to beehive', async () => {
    const broker = await startMosquitto();
    edge = await startEdge({ mode: 0, deviceTwin: false });
    const internalPort = Number(edge.internalUrl.split(':').pop());
    for (const [what, packet] of Object.entries(bad)) {
      for (const port of [broker.port, internalPort]) {
        const raw = await rawClient(port);
        raw.socket.write(packet);
        await expect(raw.closed, `${what} on port ${port}`).resolves.toBeUndefined();
      }
    }
    // a valid publish afterwards is the only one that reached the cloud stand-in
    const ok = mqtt.connect(edge.internalUrl.replace(/^tcp:/, 'mqtt:'), { log: () => undefined });
    clients.push(ok);
    await ok.publishAsync('default/user/ok', 'fine', { qos: 1 });
    await waitUntil(() => edge!.cloud.length > 0, 5000, 'the valid message');
    expect(edge.cloud.map((m) => m.route.resource)).toEqual(['default/user/ok']);
  });
});
