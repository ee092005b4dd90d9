/**
 * Helpers for eventBus / deviceTwin tests: an edge kernel with both plugins on a temp SQLite file,
 * stand-in "cloud" (module `websocket`, group `hub`) and "dmiserver" modules that record what they
 * get, and an MQTT client that collects what it receives.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { newMessage, pluginSpecifier, type Message, type PluginEntry } from '../../kernel/index.js';
import { freePort } from '../peers/util.js';
import { startTestKernel, waitUntil, type TestKernel } from './kernel.js';

export const edgeMqttRegistry: PluginEntry[] = [
  { configKey: 'eventBus', specifier: pluginSpecifier(import.meta.url, '../../plugins/eventbus/index') },
  { configKey: 'deviceTwin', specifier: pluginSpecifier(import.meta.url, '../../plugins/devicetwin/index') },
];

export interface EdgeOptions {
  mode: 0 | 1 | 2;
  external?: string;
  internalPort?: number;
  deviceTwin?: boolean;
  dataSource?: string;
  node?: string;
  extraEventBus?: string;
  /**
   * The stand-in cloud confirms every message it gets (a `twin`-group response whose parent_msg_id
   * is the message's id), as cloudcore does; without it deviceTwin keeps them for its re-send.
   */
  cloudAcks?: boolean;
  /** Do not record what reaches the stand-in cloud (long benchmarks); `onCloud` still sees it. */
  keepCloud?: boolean;
  onCloud?: (msg: Message) => void;
}

export interface Edge extends TestKernel {
  dataSource: string;
  internalUrl: string;
  /** What reached the stand-in cloud (module `websocket`). */
  cloud: Message[];
  /** What reached the stand-in DMI server (module `dmiserver`). */
  dmi: Message[];
  /** Deliver a cloud -> edge message to group `twin`, as edgeHub does. */
  fromCloud(msg: Message): Promise<void>;
  connectCloud(): Promise<void>;
  stop(): Promise<void>;
}

export async function startEdge(o: EdgeOptions): Promise<Edge> {
  const dataSource = o.dataSource ?? join(mkdtempSync(join(tmpdir(), 'edge-mqtt-')), 'edgecore.db');
  const internalPort = o.internalPort ?? (await freePort());
  const internalUrl = `tcp://127.0.0.1:${internalPort}`;
  const yaml = `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${JSON.stringify(dataSource)}
modules:
  edged: {enable: false, hostnameOverride: ${o.node ?? 'edge-node-1'}}
  edgeHub: {enable: false}
  metaManager: {enable: false}
  deviceTwin: {enable: ${o.deviceTwin ?? true}}
  eventBus:
    enable: true
    mqttMode: ${o.mode}
    mqttServerInternal: ${internalUrl}
    mqttServerExternal: ${o.external ?? 'tcp://127.0.0.1:1'}
${o.extraEventBus ?? ''}`;
  const t = await startTestKernel(yaml, edgeMqttRegistry);
  const cloud: Message[] = [];
  const dmi: Message[] = [];
  const ws = t.kernel.bus.addModule('websocket', 'hub');
  const keep = o.keepCloud ?? true;
  ws.attach(
    (m) => {
      if (keep) cloud.push(m);
      o.onCloud?.(m);
      if (o.cloudAcks)
        void t.kernel.bus
          .sendToGroup(
            'twin',
            newMessage(
              { source: 'devicecontroller', group: 'twin', operation: 'response', resource: 'twin' },
              'OK',
              { parentId: m.header.msg_id },
            ),
          )
          .catch(() => undefined);
    },
    () => undefined,
  );
  const dm = t.kernel.bus.addModule('dmiserver', 'dmi');
  dm.attach(
    (m) => void dmi.push(m),
    () => undefined,
  );
  return {
    ...t,
    dataSource,
    internalUrl,
    cloud,
    dmi,
    fromCloud: (msg) => t.kernel.bus.sendToGroup('twin', msg),
    connectCloud: () =>
      t.kernel.bus.sendToGroup(
        'twin',
        newMessage(
          { source: 'edgehub', group: 'twin', operation: 'connect', resource: 'node/connection' },
          'cloud_connected',
        ),
      ),
    stop: () => t.kernel.stop(),
  };
}

/** The devicecontroller's membership update (spec wire-cloud-edge §5.12 a), after cloudhub's trim. */
export function membershipMessage(
  added: { id: string; name: string; description?: string }[] | null,
  removed: { id: string; name: string }[] | null = null,
): Message {
  return newMessage(
    { source: 'devicecontroller', group: 'twin', operation: 'update', resource: 'membership' },
    { event_id: 'mem-1', timestamp: Date.now(), added_devices: added, removed_devices: removed },
  );
}

export interface Received {
  topic: string;
  payload: string;
  json(): Record<string, unknown>;
}

export interface TestClient {
  client: MqttClient;
  received: Received[];
  waitFor(topic: string, count?: number, timeoutMs?: number): Promise<Received[]>;
  publish(topic: string, payload: string | Buffer, qos?: 0 | 1): Promise<void>;
  end(): Promise<void>;
}

export async function mqttClient(url: string, subscribe: string[] = ['$hw/events/#']): Promise<TestClient> {
  const client = mqtt.connect(url.replace(/^tcp:/, 'mqtt:'), {
    reconnectPeriod: 100,
    protocolVersion: 4,
    // mqtt.js calls its `debug` logger several times per packet; a no-op saves that work
    log: () => undefined,
  });
  const received: Received[] = [];
  client.on('message', (topic, payload) => {
    const text = payload.toString('utf8');
    received.push({ topic, payload: text, json: () => JSON.parse(text) as Record<string, unknown> });
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  if (subscribe.length) await client.subscribeAsync(subscribe, { qos: 1 });
  return {
    client,
    received,
    async waitFor(topic, count = 1, timeoutMs = 5000) {
      const pick = () => received.filter((r) => r.topic === topic);
      await waitUntil(() => pick().length >= count, timeoutMs, `${count} message(s) on ${topic}`);
      return pick();
    },
    async publish(topic, payload, qos = 1) {
      await client.publishAsync(topic, payload, { qos });
    },
    end: () => client.endAsync(true),
  };
}
