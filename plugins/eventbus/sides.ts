/**
 * The two MQTT sides of eventBus: the internal broker (aedes, spec §4.2) and the external broker
 * clients (mqtt.js against mosquitto or any broker, spec §4.3). Loaded inside start() only.
 */
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes } from 'aedes';
import { createRequire } from 'node:module';
import type { IClientOptions, MqttClient } from 'mqtt';
import { KernelError, errorText, type Logger } from '../../kernel/index.js';
import type { EventBusConfig } from './index.js';
import { TwinGroup } from '../../protocol/index.js';
import { destinationOf } from './topics.js';
import { ReadGate } from './readlimit.js';

export interface SideHooks {
  /** Does eventBus subscribe to this topic? */
  matches(topic: string): boolean;
  /**
   * Hand an MQTT message to beehive; `done` is called when it may be acknowledged, with an error
   * when it must not be (a twin-bound message deviceTwin did not store).
   */
  dispatch(topic: string, payload: Buffer, qos: number, done: (err?: Error) => void): void;
  /** A message bound for MQTT could not be kept (logged and counted by the caller). */
  onDrop(topic: string, why: string): void;
  log: Logger;
}

export interface BrokerSide {
  readonly kind: 'internal' | 'external';
  /** A string payload is written to subscribers as UTF-8. */
  publish(topic: string, payload: Buffer | string): void;
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  close(): Promise<void>;
}

function parseServerUrl(field: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new KernelError(
      'EEVENTBUS_CONFIG',
      `modules.eventBus.${field}: expected a URL like tcp://127.0.0.1:1883, got ${JSON.stringify(value)}`,
    );
  }
  if (!['tcp:', 'ssl:', 'tls:', 'mqtt:', 'mqtts:'].includes(url.protocol) || !url.port) {
    throw new KernelError(
      'EEVENTBUS_CONFIG',
      `modules.eventBus.${field}: expected tcp://, ssl:// or tls:// with a port, got ${JSON.stringify(value)}`,
    );
  }
  return url;
}

const isTlsScheme = (url: URL): boolean => ['ssl:', 'tls:', 'mqtts:'].includes(url.protocol);

function readTls(cfg: EventBusConfig): { ca: Buffer; cert: Buffer; key: Buffer } {
  const t = cfg.eventBusTLS;
  const read = (field: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new KernelError(
        'EEVENTBUS_CONFIG',
        `modules.eventBus.eventBusTLS.${field}: cannot read ${path}: ${errorText(err)}`,
      );
    }
  };
  return {
    ca: read('tlsMqttCAFile', t.tlsMqttCAFile),
    cert: read('tlsMqttCertFile', t.tlsMqttCertFile),
    key: read('tlsMqttPrivateKeyFile', t.tlsMqttPrivateKeyFile),
  };
}

/**
 * Why aedes must refuse a topic (name or filter), or undefined. Mosquitto refuses U+0000 and
 * invalid UTF-8 (disconnecting the client); aedes' packet parser decodes invalid UTF-8 to U+FFFD
 * before any hook sees it, so U+FFFD stands for it here (a literal U+FFFD is refused too).
 */
export function badTopic(topic: string): string | undefined {
  if (topic.includes('\u0000')) return 'contains U+0000';
  if (topic.includes('\uFFFD')) return 'is not valid UTF-8';
  return undefined;
}

/**
 * aedes options chosen for eventBus (see README "Performance"):
 * - `concurrency: 0`: aedes' mqemitter never queues publishes. Its queue, once longer than a few
 *   thousand messages nobody subscribes to, is drained recursively and overflows the stack
 *   (`RangeError: Maximum call stack size exceeded` in qlobber's match and in the hooks it calls).
 *   What is in flight stays bounded: aedes reads a publisher's next packets only once the current
 *   ones are done, and twin-bound ones wait for deviceTwin.
 * - `maxInflightInbound: 65535`: aedes 1.2 disconnects a client with more than 1000 QoS 2 messages
 *   awaiting PUBREL (its default), so a burst of 2000 QoS 2 publishes from one client never
 *   completes (each reconnect resends them all); 65535 is MQTT's packet-id space, the bound the
 *   protocol already sets (mosquitto sets none).
 */
export const AEDES_OPTIONS = { concurrency: 0, maxInflightInbound: 65535 } as const;

/**
 * MQTT packets aedes is handed per read of a connection (see readlimit.ts): what one publisher
 * has parsed and waiting for deviceTwin at most, instead of a whole socket read (~500).
 */
const READ_PACKETS = 16;

/**
 * aedes' packet writer (mqtt-packet) fills a cache of 65 536 two-byte Buffers, one per packet id,
 * at its first packet: +6.6 MB of heap (+11 MB RSS) in an edgecore as soon as one MQTT client
 * connects. Its documented switch writes the two bytes when needed instead (mqtt.js offers the same
 * as `writeCache: false`). aedes' own instance is the one to switch.
 */
function noPacketIdCache(): void {
  const packet = createRequire(import.meta.resolve('aedes'))('mqtt-packet') as {
    writeToStream: { cacheNumbers: boolean };
  };
  packet.writeToStream.cacheNumbers = false;
}

/** The built-in broker on `mqttServerInternal`; eventBus observes what clients publish into it. */
export async function startInternalBroker(cfg: EventBusConfig, hooks: SideHooks): Promise<BrokerSide> {
  const url = parseServerUrl('mqttServerInternal', cfg.mqttServerInternal);
  noPacketIdCache();
  const qos = Math.min(Math.max(cfg.mqttQOS ?? 0, 0), 2) as 0 | 1 | 2;
  const retain = cfg.mqttRetain ?? false;
  const broker = await Aedes.createBroker({
    ...AEDES_OPTIONS,
    // per-client queue length of the internal broker (mqttSessionQueueSize)
    queueLimit: Math.max(cfg.mqttSessionQueueSize || 100, 1),
    authorizePublish(client, packet, callback) {
      // Messages eventBus itself injects do not pass here (client === null), so there is no loop.
      if (!client) return callback(null);
      const bad = badTopic(packet.topic);
      if (bad) return callback(new Error(`PUBLISH topic ${JSON.stringify(packet.topic)} ${bad}`));
      if (!hooks.matches(packet.topic)) return callback(null);
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      // aedes writes the PUBACK / PUBREC after this callback, and the connection's gate reads no
      // further packet while READ_PACKETS of them wait here: holding the callback holds the
      // publisher. An error closes the connection without an acknowledgement (MQTT 3.1.1 has no
      // negative PUBACK); the client resends.
      const gate = gates.get(client.conn);
      gate?.take();
      hooks.dispatch(packet.topic, payload, packet.qos, (err) => {
        gate?.release();
        callback(err && packet.qos > 0 ? err : null);
      });
    },
    authorizeSubscribe(client, sub, callback) {
      const bad = badTopic(sub.topic);
      if (bad) return callback(new Error(`SUBSCRIBE filter ${JSON.stringify(sub.topic)} ${bad}`), null);
      callback(null, sub);
    },
  });
  const gates = new WeakMap<object, ReadGate>();
  const handle = (s: Socket): void => {
    gates.set(s, new ReadGate(s, READ_PACKETS));
    broker.handle(s);
  };
  const server: Server = isTlsScheme(url)
    ? createTlsServer(
        cfg.eventBusTLS.enable
          ? { ...readTls(cfg), requestCert: true, rejectUnauthorized: true }
          : { cert: readTls(cfg).cert, key: readTls(cfg).key },
        handle,
      )
    : createNetServer(handle);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(url.port), url.hostname, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    broker.close();
    throw new KernelError(
      'EEVENTBUS_BROKER',
      `eventbus: cannot start the internal broker on ${cfg.mqttServerInternal}: ${errorText(err)}`,
    );
  }
  hooks.log.info({ url: cfg.mqttServerInternal }, 'eventbus: internal MQTT broker listening');
  const sockets = new Set<import('node:net').Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  return {
    kind: 'internal',
    publish(topic, payload) {
      broker.publish({ cmd: 'publish', topic, payload, qos, retain, dup: false }, (err) => {
        if (err) hooks.onDrop(topic, `internal broker: ${errorText(err)}`);
      });
    },
    // The internal side observes by topic set (hooks.matches); nothing to do per broker.
    subscribe() {},
    unsubscribe() {},
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `hub-client-<kind>-<first 10 digits of the Unix time in ms>` (spec §4.3). */
function generatedClientId(kind: 'sub' | 'pub'): string {
  return `hub-client-${kind}-${String(Date.now()).slice(0, 10)}`;
}

const RECONNECT_MIN_MS = 200;
/** Messages from the external broker handed to beehive before waiting for the oldest. */
const DISPATCH_WINDOW = 256;
/** KubeEdge retries every 5 s; the back-off grows to that. */
const RECONNECT_MAX_MS = 5_000;

/**
 * The external broker: one subscribing and one publishing client (clean sessions, QoS 1, retain
 * false), re-connecting with back-off and re-subscribing; what is published while the broker is
 * unreachable waits in a bounded queue.
 */
export function startExternalClient(
  cfg: EventBusConfig,
  hooks: SideHooks,
  initialTopics: string[],
  queueLimit: number,
): BrokerSide {
  const url = parseServerUrl('mqttServerExternal', cfg.mqttServerExternal);
  const tls = isTlsScheme(url);
  const brokerUrl = `${tls ? 'mqtts' : 'mqtt'}://${url.hostname}:${url.port}`;
  const base: IClientOptions = {
    protocolVersion: 4,
    reconnectPeriod: RECONNECT_MIN_MS,
    connectTimeout: 10_000,
    keepalive: 30,
    queueQoSZero: false,
  };
  // mqtt.js formats a debug line several times per packet; unless DEBUG asks for them, skip that work
  if (!/mqttjs/.test(process.env.DEBUG ?? '')) base.log = () => undefined;
  if (cfg.mqttUsername) {
    base.username = cfg.mqttUsername;
    if (cfg.mqttPassword) base.password = cfg.mqttPassword;
  }
  if (tls) {
    if (cfg.eventBusTLS?.enable) Object.assign(base, readTls(cfg), { rejectUnauthorized: true });
    else base.rejectUnauthorized = false;
  }
  // mqtt.js is loaded only for an external broker (~70 ms and ~5 MB at start with mqttMode 0).
  const mqtt = createRequire(import.meta.url)('mqtt') as typeof import('mqtt');
  const subId = cfg.mqttSubClientID || generatedClientId('sub');
  const pubId = cfg.mqttPubClientID || generatedClientId('pub');
  // A pinned subscriber id gets a persistent session, so the broker keeps QoS 1 messages for
  // eventBus while edgecore is down (KubeEdge always uses clean sessions; see README).
  const sub = mqtt.connect(brokerUrl, { ...base, clientId: subId, clean: !cfg.mqttSubClientID });
  const pub = mqtt.connect(brokerUrl, { ...base, clientId: pubId, clean: true });
  const topics = new Set(initialTopics);

  const backoff = (client: MqttClient, name: string): void => {
    client.on('connect', () => {
      client.options.reconnectPeriod = RECONNECT_MIN_MS;
      hooks.log.info(
        { url: cfg.mqttServerExternal, client: name },
        'eventbus: connected to the external broker',
      );
    });
    client.on('reconnect', () => {
      client.options.reconnectPeriod = Math.min(
        (client.options.reconnectPeriod ?? RECONNECT_MIN_MS) * 2,
        RECONNECT_MAX_MS,
      );
    });
    client.on('offline', () =>
      hooks.log.warn({ url: cfg.mqttServerExternal, client: name }, 'eventbus: external broker unreachable'),
    );
    client.on('error', (err) =>
      hooks.log.warn({ url: cfg.mqttServerExternal, client: name, err: err.message }, 'eventbus: MQTT error'),
    );
  };
  backoff(sub, 'sub');
  backoff(pub, 'pub');

  // Every message goes through handleMessage; mqtt.js sends the PUBACK when its callback runs and
  // reads the next message only then. With a persistent session (pinned client id) the ack waits
  // until deviceTwin has stored a twin update, so the broker re-delivers it if edgecore dies. With a
  // clean session there is nothing to re-deliver after a crash, so up to DISPATCH_WINDOW messages
  // are handed over without waiting (order kept: each is queued synchronously).
  // A message deviceTwin could not store is handed over again after a back-off: the broker already
  // acknowledged it to its publisher, so it must not be lost here.
  const deliver = (
    topic: string,
    payload: Buffer,
    qos: number,
    done: () => void,
    delay = RECONNECT_MIN_MS,
  ): void =>
    hooks.dispatch(topic, payload, qos, (err) => {
      if (!err) return done();
      setTimeout(() => deliver(topic, payload, qos, done, Math.min(delay * 2, RECONNECT_MAX_MS)), delay);
    });
  const durable = Boolean(cfg.mqttSubClientID);
  let inflight = 0;
  const blocked: (() => void)[] = [];
  let retainedSkipped = 0;
  sub.handleMessage = (packet, callback) => {
    // A retained message is replayed by the broker at every (re)subscription: a twin update or get
    // from then would be applied again at each start, rolling newer values back. Only live ones count.
    if (packet.retain && destinationOf(packet.topic) === TwinGroup) {
      if (retainedSkipped++ === 0)
        hooks.log.warn(
          { topic: packet.topic },
          `eventbus: retained message on ${packet.topic} ignored (device and node events are applied only when published live)`,
        );
      return callback();
    }
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    if (durable) return deliver(packet.topic, payload, packet.qos, () => callback());
    inflight++;
    deliver(packet.topic, payload, packet.qos, () => {
      inflight--;
      blocked.shift()?.();
    });
    if (inflight < DISPATCH_WINDOW) callback();
    else blocked.push(() => callback());
  };
  sub.on('connect', () => {
    if (topics.size === 0) return;
    sub.subscribe([...topics], { qos: 1 }, (err) => {
      if (err) hooks.log.error({ err: err.message }, 'eventbus: subscribe failed on the external broker');
    });
  });

  const queue: { topic: string; payload: Buffer | string }[] = [];
  const send = (topic: string, payload: Buffer | string): void => {
    pub.publish(topic, payload, { qos: 1, retain: false }, (err) => {
      if (err) hooks.onDrop(topic, `external broker: ${err.message}`);
    });
  };
  pub.on('connect', () => {
    while (queue.length > 0 && pub.connected) {
      const next = queue.shift()!;
      send(next.topic, next.payload);
    }
  });

  return {
    kind: 'external',
    publish(topic, payload) {
      if (pub.connected && queue.length === 0) return send(topic, payload);
      if (queue.length >= queueLimit) {
        const dropped = queue.shift()!;
        hooks.onDrop(dropped.topic, `external broker unreachable and ${queueLimit} messages already queued`);
      }
      queue.push({ topic, payload });
    },
    subscribe(topic) {
      topics.add(topic);
      if (sub.connected) sub.subscribe(topic, { qos: 1 });
    },
    unsubscribe(topic) {
      topics.delete(topic);
      if (sub.connected) sub.unsubscribe(topic);
    },
    async close() {
      if (queue.length > 0) {
        hooks.log.warn({ queued: queue.length }, 'eventbus: stopping with messages still queued for MQTT');
      }
      await Promise.all([sub.endAsync(false), pub.endAsync(false)]);
    },
  };
}
