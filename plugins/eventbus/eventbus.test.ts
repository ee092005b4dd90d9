import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { createLogger } from '../../kernel/log.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { newMessage, type Message } from '../../kernel/index.js';
import { waitUntil } from '../../test/helpers/kernel.js';
import { mqttClient, startEdge, type Edge, type TestClient } from '../../test/helpers/mqtt-edge.js';
import { startMosquitto, type MosquittoPeer } from '../../test/peers/mosquitto.js';
import { cleanup, requirePeer, run } from '../../test/peers/util.js';
import { startInternalBroker } from './sides.js';
import { decodeTopicResource, encodeTopicResource } from '../../protocol/index.js';
import { TopicFilters } from './topics.js';

afterAll(cleanup);
const silentLog = createLogger('silent');

let edge: Edge | undefined;
const clients: TestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.end();
  await edge?.stop();
  edge = undefined;
});

/** A stand-in member of group `twin` (deviceTwin disabled) that records what eventBus sends it. */
function twinProbe(e: Edge): Message[] {
  const got: Message[] = [];
  e.kernel.bus.addModule('twinprobe', 'twin').attach(
    (m) => void got.push(m),
    () => undefined,
  );
  return got;
}

const port = (url: string): string => url.split(':').pop()!;

function mosquittoPub(url: string, topic: string, message: string): Promise<unknown> {
  return run(requirePeer('mosquitto_pub'), [
    '-h',
    '127.0.0.1',
    '-p',
    port(url),
    '-q',
    '1',
    '-t',
    topic,
    '-m',
    message,
  ]);
}

/** mosquitto_sub -C n: resolves with the n lines `topic payload` it printed. */
function mosquittoSub(
  broker: MosquittoPeer,
  topic: string,
  count: number,
): { ready: Promise<void>; lines: Promise<string[]> } {
  const child = spawn(requirePeer('mosquitto_sub'), [
    '-h',
    '127.0.0.1',
    '-p',
    String(broker.port),
    '-i',
    'test-sub',
    '-v',
    '-q',
    '1',
    '-t',
    topic,
    '-t',
    '$hw/#',
    '-C',
    String(count),
  ]);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const lines = new Promise<string[]>((resolve) => child.on('close', () => resolve(out.trim().split('\n'))));
  return { ready: broker.waitLog(/test-sub 1 \$hw\/#$/m), lines };
}

/** eventBus's subscriber has subscribed (its last fixed topic is in the broker's log `n` times). */
const subscribed = (broker: MosquittoPeer, n = 1): Promise<void> =>
  broker.waitLog(new RegExp(`(^.* 1 \\+/user/#$[^]*){${n}}`, 'm'));

describe('topics (spec §4.4/§4.5)', () => {
  it('filter matching (qlobber, MQTT wildcards, `$` topics only by an explicit first level)', () => {
    const matches = (filter: string, topic: string) => new TopicFilters([filter]).matches(topic);
    expect(matches('$hw/events/device/+/+/twin/+', '$hw/events/device/ns/d/twin/update')).toBe(true);
    expect(matches('$hw/events/device/+/+/twin/+', '$hw/events/device/ns/d/twin/update/result')).toBe(false);
    expect(matches('+/user/#', 'default/user/a/b')).toBe(true);
    expect(matches('+/user/#', '$hw/user/a')).toBe(false);
    expect(matches('#', '$SYS/x')).toBe(false);
    expect(matches('$hw/events/upload/#', '$hw/events/upload')).toBe(true);
    expect(matches('a/+/c', 'a//c')).toBe(true);
    expect(matches('#', 'a/'.repeat(200))).toBe(false); // beyond qlobber's 100 levels: no match, no throw
    const f = new TopicFilters(['a/+']);
    expect(f.matches('a/b')).toBe(true);
    f.delete('a/+');
    expect(f.matches('a/b')).toBe(false); // the remembered answer is forgotten
  });
});

describe('eventBus mode 2 (external mosquitto)', () => {
  it('MQTT -> beehive: device/node topics to group twin, the rest to group hub; beehive -> MQTT', async () => {
    const broker = await startMosquitto();
    edge = await startEdge({ mode: 2, external: broker.url, deviceTwin: false });
    const twin = twinProbe(edge);
    await subscribed(broker);
    const payload =
      '{"event_id":"e-1","timestamp":1732550400000,"twin":{"temperature":{"actual":{"value":"25"}}}}';
    await mosquittoPub(broker.url, '$hw/events/device/default/thermo-1/twin/update', payload);
    await mosquittoPub(broker.url, '$hw/events/node/edge-node-1/membership/get', '{}');
    await mosquittoPub(broker.url, 'default/user/hello', 'hi there');
    await mosquittoPub(broker.url, '$hw/events/upload/x', 'up');
    await mosquittoPub(broker.url, 'SYS/dis/upload_records', 'rec');
    await mosquittoPub(broker.url, 'not/subscribed', 'nope');
    await waitUntil(() => twin.length >= 2 && edge!.cloud.length >= 3, 5000, 'dispatch');
    expect(twin[0]!.route).toEqual({
      source: 'bus',
      group: 'user',
      operation: 'response',
      resource: 'JGh3L2V2ZW50cy9kZXZpY2UvZGVmYXVsdC90aGVybW8tMS90d2luL3VwZGF0ZQ==',
    });
    expect(twin[0]!.content).toBe(payload);
    expect(decodeTopicResource(twin[1]!.route.resource!)).toBe('$hw/events/node/edge-node-1/membership/get');
    expect(
      edge.cloud.map((m) => [m.route.source, m.route.group, m.route.operation, m.route.resource, m.content]),
    ).toEqual([
      ['bus', 'user', 'upload', 'default/user/hello', 'hi there'],
      ['bus', 'user', 'upload', '$hw/events/upload/x', 'up'],
      ['bus', 'user', 'upload', 'SYS/dis/upload_records', 'rec'],
    ]);

    const sub = mosquittoSub(broker, '#', 4);
    await sub.ready;
    const send = (op: string, resource: string, content: unknown) =>
      edge!.kernel.bus.send(
        'eventbus',
        newMessage({ source: 'twin', group: 'bus', operation: op, resource }, content),
      );
    await send('publish', 'apps/a', 'text payload');
    await send('publish', 'apps/b', Buffer.from('bytes payload'));
    await send('publish', 'apps/dropped', { not: 'bytes' });
    await send('message', '', { message: { topic: 'apps/c', x: 1 } });
    await send('get_result', 'auth_info', { token: 't' });
    expect(await sub.lines).toEqual([
      'apps/a text payload',
      'apps/b bytes payload',
      'apps/c {"topic":"apps/c","x":1}',
      '$hw/events/node/edge-node-1/authInfo/get/result {"token":"t"}',
    ]);
  });

  it('subscribe / unsubscribe from the rule router are applied and kept in sub_topics', async () => {
    const broker = await startMosquitto();
    edge = await startEdge({ mode: 2, external: broker.url, deviceTwin: false });
    await edge.kernel.bus.send(
      'eventbus',
      newMessage(
        { source: 'router_eventbus', group: 'user', operation: 'subscribe', resource: 'factory/line1' },
        null,
      ),
    );
    await broker.waitLog(/ 1 factory\/line1$/m);
    await mosquittoPub(broker.url, 'factory/line1', 'v=1');
    await waitUntil(() => edge!.cloud.length >= 1, 5000, 'dynamic topic');
    expect(edge.cloud[0]!.route).toMatchObject({ operation: 'upload', resource: 'factory/line1' });
    const db = new Database(edge.dataSource, { readonly: true });
    expect(db.prepare('SELECT topic FROM sub_topics').all()).toEqual([{ topic: 'factory/line1' }]);
    await edge.kernel.bus.send(
      'eventbus',
      newMessage(
        { source: 'router_eventbus', group: 'user', operation: 'unsubscribe', resource: 'factory/line1' },
        null,
      ),
    );
    await broker.waitLog(/: hub-client-sub-\d+ factory\/line1$/m); // an unsubscription: no QoS
    expect(db.prepare('SELECT topic FROM sub_topics').all()).toEqual([]);
    db.close();
    await mosquittoPub(broker.url, 'factory/line1', 'v=2');
    await mosquittoPub(broker.url, 'default/user/marker', 'after');
    await waitUntil(() => edge!.cloud.length >= 2, 5000, 'the marker');
    expect(edge.cloud.map((m) => m.content)).toEqual(['v=1', 'after']);
  });

  it('broker restart: reconnects, re-subscribes, and delivers what was published meanwhile', async () => {
    // persistence: the app's session and subscription survive the restart, so what eventBus
    // publishes once it is back reaches the app whatever the order of the reconnections
    const broker: MosquittoPeer = await startMosquitto({ persistence: true });
    edge = await startEdge({ mode: 2, external: broker.url, deviceTwin: false });
    const twin = twinProbe(edge);
    await subscribed(broker);
    const app = mqtt.connect(broker.mqttUrl, {
      clientId: 'app',
      clean: false,
      reconnectPeriod: 100,
      log: () => undefined,
    });
    const received: string[] = [];
    app.on('message', (_t, p) => received.push(p.toString()));
    await new Promise((r) => app.once('connect', r));
    await app.subscribeAsync('apps/#', { qos: 1 });
    await broker.kill();
    const send = (i: number) =>
      edge!.kernel.bus.send(
        'eventbus',
        newMessage({ source: 'twin', group: 'bus', operation: 'publish', resource: `apps/q/${i}` }, `m${i}`),
      );
    for (let i = 0; i < 20; i++) await send(i);
    await broker.start();
    try {
      await waitUntil(() => received.length >= 20, 15_000, '20 queued messages');
      expect(received).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
      // and the subscriber re-subscribed
      await subscribed(broker);
      await mosquittoPub(broker.url, '$hw/events/device/default/d/state/update', '{"state":"online"}');
      await waitUntil(() => twin.length > 0, 5000, 'the state update after the restart');
    } finally {
      await app.endAsync(true);
    }
  });
});

describe('eventBus mode 0 (internal aedes) and mode 1 (both)', () => {
  it('mode 0: clients of the internal broker reach beehive and get what eventBus publishes', async () => {
    edge = await startEdge({ mode: 0, deviceTwin: false });
    const twin = twinProbe(edge);
    const app = await mqttClient(edge.internalUrl, ['apps/#']);
    clients.push(app);
    await app.publish('$hw/events/device/default/thermo-1/twin/get', '{"event_id":"g"}');
    await app.publish('default/user/x', 'u', 0);
    await waitUntil(() => twin.length >= 1 && edge!.cloud.length >= 1, 5000, 'dispatch');
    expect(twin[0]!.route.resource).toBe(encodeTopicResource('$hw/events/device/default/thermo-1/twin/get'));
    expect(edge.cloud[0]!.route).toMatchObject({
      source: 'bus',
      group: 'user',
      operation: 'upload',
      resource: 'default/user/x',
    });
    await edge.kernel.bus.send(
      'eventbus',
      newMessage({ source: 'twin', group: 'bus', operation: 'publish', resource: 'apps/1' }, 'héllo €'),
    );
    // a string content is handed to aedes as it is and written to the subscriber as UTF-8
    const [got] = await app.waitFor('apps/1');
    expect(got!.payload).toBe('héllo €');
  });

  it('mode 1: both brokers feed beehive and every publish goes to both', async () => {
    const broker = await startMosquitto();
    edge = await startEdge({ mode: 1, external: broker.url, deviceTwin: false });
    const internal = await mqttClient(edge.internalUrl, ['apps/#']);
    const external = await mqttClient(broker.url, ['apps/#']);
    clients.push(internal, external);
    await subscribed(broker);
    await internal.publish('default/user/from-internal', 'i');
    await external.publish('default/user/from-external', 'e');
    await waitUntil(() => edge!.cloud.length >= 2, 5000, 'both sides');
    expect(edge.cloud.map((m) => m.route.resource).sort()).toEqual([
      'default/user/from-external',
      'default/user/from-internal',
    ]);
    await edge.kernel.bus.send(
      'eventbus',
      newMessage({ source: 'twin', group: 'bus', operation: 'publish', resource: 'apps/both' }, 'x'),
    );
    await internal.waitFor('apps/both');
    await external.waitFor('apps/both');
  });

  it('a busy internal address or a bad URL fails start with an error naming the field', async () => {
    const busy = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => busy.once('listening', r));
    const p = (busy.address() as { port: number }).port;
    const hooks = {
      matches: () => false,
      dispatch: () => undefined,
      onDrop: () => undefined,
      log: silentLog,
    };
    const cfg = (url: string) =>
      ({ enable: true, mqttServerInternal: url, mqttQOS: 0, mqttRetain: false }) as never;
    await expect(startInternalBroker(cfg(`tcp://127.0.0.1:${p}`), hooks)).rejects.toThrow(
      `eventbus: cannot start the internal broker on tcp://127.0.0.1:${p}`,
    );
    await expect(startInternalBroker(cfg('127.0.0.1:1884'), hooks)).rejects.toThrow(
      /modules.eventBus.mqttServerInternal: expected tcp:\/\/, ssl:\/\/ or tls:\/\/ with a port|modules.eventBus.mqttServerInternal: expected a URL/,
    );
    busy.close();
  });
});
