import Database from 'better-sqlite3';
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
import { topicMatches } from './topics.js';

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
  url: string,
  topic: string,
  count: number,
): { ready: Promise<void>; lines: Promise<string[]> } {
  const child = spawn(requirePeer('mosquitto_sub'), [
    '-h',
    '127.0.0.1',
    '-p',
    port(url),
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
  return { ready: new Promise((r) => setTimeout(r, 300)), lines };
}

describe('topics (spec §4.4/§4.5)', () => {
  it('filter matching', () => {
    expect(topicMatches('$hw/events/device/+/+/twin/+', '$hw/events/device/ns/d/twin/update')).toBe(true);
    expect(topicMatches('$hw/events/device/+/+/twin/+', '$hw/events/device/ns/d/twin/update/result')).toBe(
      false,
    );
    expect(topicMatches('+/user/#', 'default/user/a/b')).toBe(true);
    expect(topicMatches('+/user/#', '$hw/user/a')).toBe(false);
    expect(topicMatches('$hw/events/upload/#', '$hw/events/upload')).toBe(true);
  });
});

describe('eventBus mode 2 (external mosquitto)', () => {
  it('MQTT -> beehive: device/node topics to group twin, the rest to group hub; beehive -> MQTT', async () => {
    const broker = await startMosquitto();
    edge = await startEdge({ mode: 2, external: broker.url, deviceTwin: false });
    const twin = twinProbe(edge);
    await new Promise((r) => setTimeout(r, 500)); // subscriber connects and subscribes
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

    const sub = mosquittoSub(broker.url, '#', 4);
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
    await new Promise((r) => setTimeout(r, 300));
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
    await new Promise((r) => setTimeout(r, 300));
    expect(db.prepare('SELECT topic FROM sub_topics').all()).toEqual([]);
    db.close();
    await mosquittoPub(broker.url, 'factory/line1', 'v=2');
    await new Promise((r) => setTimeout(r, 300));
    expect(edge.cloud.length).toBe(1);
  });

  it('broker restart: reconnects, re-subscribes, and delivers what was published meanwhile', async () => {
    const broker: MosquittoPeer = await startMosquitto();
    edge = await startEdge({ mode: 2, external: broker.url, deviceTwin: false });
    const twin = twinProbe(edge);
    await new Promise((r) => setTimeout(r, 400));
    await broker.kill();
    const send = (i: number) =>
      edge!.kernel.bus.send(
        'eventbus',
        newMessage({ source: 'twin', group: 'bus', operation: 'publish', resource: `apps/q/${i}` }, `m${i}`),
      );
    for (let i = 0; i < 20; i++) await send(i);
    await new Promise((r) => setTimeout(r, 300));
    await broker.start();
    const app = await mqttClient(broker.url, ['apps/#']);
    clients.push(app);
    // the queued messages go out once the publisher is back (the app subscribed right after restart)
    await waitUntil(() => app.received.length >= 20, 15_000, '20 queued messages');
    expect(app.received.map((r) => r.payload)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    // and the subscriber re-subscribed
    await waitUntil(
      () => {
        void mosquittoPub(broker.url, '$hw/events/device/default/d/state/update', '{"state":"online"}');
        return twin.length > 0;
      },
      10_000,
      'eventbus re-subscribed',
    );
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
      newMessage({ source: 'twin', group: 'bus', operation: 'publish', resource: 'apps/1' }, 'hello'),
    );
    await app.waitFor('apps/1');
  });

  it('mode 1: both brokers feed beehive and every publish goes to both', async () => {
    const broker = await startMosquitto();
    edge = await startEdge({ mode: 1, external: broker.url, deviceTwin: false });
    const internal = await mqttClient(edge.internalUrl, ['apps/#']);
    const external = await mqttClient(broker.url, ['apps/#']);
    clients.push(internal, external);
    await new Promise((r) => setTimeout(r, 400));
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
      dispatch: async () => undefined,
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
