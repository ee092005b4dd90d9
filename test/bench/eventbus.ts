/**
 * eventBus / deviceTwin benchmarks (issue 4):
 * - twin updates end to end: MQTT publish -> eventBus -> deviceTwin (SQLite) -> the edge_updated
 *   message at the cloud stand-in (module `websocket`), through aedes (mode 0) and mosquitto (mode 2);
 * - broker throughput, QoS 0 and 1: aedes inside an edgecore process (mode 0) side by side with
 *   mosquitto, the same two clients in this process.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { membershipMessage, mqttClient, startEdge, type Edge } from '../helpers/mqtt-edge.js';
import { waitUntil } from '../helpers/kernel.js';
import { startMosquitto } from '../peers/mosquitto.js';
import { cleanup, freePort } from '../peers/util.js';
import { latencyFigures, round, type Figure } from './report.js';

const DEVICE = 'default/bench-1';
const TOPIC = `$hw/events/device/${DEVICE}/twin/update`;
const update = (i: number): string =>
  `{"event_id":"b${i}","timestamp":${Date.now()},"twin":{"temperature":{"actual":{"value":"${i}"},"metadata":{"type":"int"}}}}`;

async function twinEndToEnd(label: string, edge: Edge, url: string): Promise<Figure[]> {
  await edge.connectCloud();
  await edge.fromCloud(membershipMessage([{ id: DEVICE, name: 'bench-1' }]));
  await new Promise((r) => setTimeout(r, 300));
  const app = await mqttClient(url, []);
  const arrivals = new Map<string, bigint>();
  const watch = setInterval(() => undefined, 1000);
  // The cloud stand-in records when each edge_updated arrives, keyed by the reported value.
  const seen = (): number => edge.cloud.length;
  const valueOf = (i: number): string => {
    const m = edge.cloud[i];
    return (m?.content as { twin?: { temperature?: { actual?: { value?: string } } } })?.twin?.temperature
      ?.actual?.value as string;
  };
  let scanned = 0;
  const scan = (): void => {
    const now = process.hrtime.bigint();
    for (; scanned < seen(); scanned++) {
      const v = valueOf(scanned);
      if (v !== undefined) arrivals.set(v, now);
    }
  };
  // latency: one update in flight at a time
  const samples: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t0 = process.hrtime.bigint();
    app.client.publish(TOPIC, update(i), { qos: 1 });
    const key = String(i);
    while (!arrivals.has(key)) {
      await new Promise((r) => setImmediate(r));
      scan();
    }
    samples.push(Number((arrivals.get(key) as bigint) - t0));
  }
  // throughput: N updates pipelined (QoS 1)
  const N = 20_000;
  const base = 100_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) app.client.publish(TOPIC, update(base + i), { qos: 1 });
  const last = String(base + N - 1);
  await waitUntil(
    () => {
      scan();
      return arrivals.has(last);
    },
    120_000,
    `${label}: ${N} twin updates`,
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  clearInterval(watch);
  await app.end();
  return [
    { name: `twin_e2e_${label}_updates_per_s`, value: round(N / secs), unit: 'updates/s', goal: '>= 20000' },
    ...latencyFigures(`twin_e2e_${label}_latency`, samples, 'ms', '<= 5'),
  ];
}

/** Publish N messages from one client, received by another; messages/s. */
async function brokerThroughput(url: string, qos: 0 | 1, n: number): Promise<number> {
  const opts = { protocolVersion: 4 as const, reconnectPeriod: 0 };
  const sub = mqtt.connect(url, opts);
  const pub = mqtt.connect(url, opts);
  await Promise.all([sub, pub].map((c) => new Promise((r) => c.once('connect', r))));
  await sub.subscribeAsync('bench/#', { qos });
  let got = 0;
  sub.on('message', () => void got++);
  const payload = Buffer.alloc(100, 'x');
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) pub.publish('bench/t', payload, { qos });
  await waitUntil(() => got >= n, 120_000, `${n} messages at QoS ${qos}`);
  const rate = n / (Number(process.hrtime.bigint() - t0) / 1e9);
  await Promise.all([sub.endAsync(true), pub.endAsync(true)]);
  return rate;
}

/** edgecore (eventBus mode 0 + deviceTwin) in a process of its own. */
async function startEdgeProcess(): Promise<{ url: string; stop(): void }> {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const js = join(here, '..', '..', 'plugins', 'devicetwin', 'testdata', 'edge-child.js');
  const ts = join(here, '..', '..', 'plugins', 'devicetwin', 'testdata', 'edge-child.ts');
  const dir = mkdtempSync(join(tmpdir(), 'bench-aedes-'));
  const port = await freePort();
  const yaml = join(dir, 'edgecore.yaml');
  writeFileSync(
    yaml,
    `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database: {dataSource: ${JSON.stringify(join(dir, 'edge.db'))}}
modules:
  edged: {enable: false, hostnameOverride: bench}
  edgeHub: {enable: false}
  metaManager: {enable: false}
  deviceTwin: {enable: false}
  eventBus: {enable: true, mqttMode: 0, mqttQOS: 1, mqttServerInternal: "tcp://127.0.0.1:${port}"}
`,
  );
  const args = existsSync(js) ? [js, yaml] : ['--import', 'tsx', ts, yaml];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitUntil(() => out.includes('READY'), 20_000, 'edgecore child');
  return { url: `mqtt://127.0.0.1:${port}`, stop: () => void proc.kill('SIGKILL') };
}

export async function eventbusBench(): Promise<Figure[]> {
  const figures: Figure[] = [];
  // mosquitto's default per-client queue (1000) drops QoS 1 messages of a pipelined burst
  const mosquitto = await startMosquitto({ extraConfig: ['max_queued_messages 1000000'] });
  try {
    // twin updates end to end
    let edge = await startEdge({ mode: 0 });
    try {
      figures.push(...(await twinEndToEnd('aedes', edge, edge.internalUrl)));
    } finally {
      await edge.stop();
    }
    edge = await startEdge({ mode: 2, external: mosquitto.url });
    try {
      await new Promise((r) => setTimeout(r, 500));
      figures.push(...(await twinEndToEnd('mosquitto', edge, mosquitto.url)));
    } finally {
      await edge.stop();
    }
    // broker throughput, side by side
    const aedes = await startEdgeProcess();
    try {
      for (const qos of [0, 1] as const) {
        const n = qos === 0 ? 100_000 : 50_000;
        await brokerThroughput(aedes.url, qos, 5_000);
        await brokerThroughput(mosquitto.mqttUrl, qos, 5_000);
        const a = await brokerThroughput(aedes.url, qos, n);
        const m = await brokerThroughput(mosquitto.mqttUrl, qos, n);
        figures.push(
          { name: `broker_qos${qos}_aedes_msgs_per_s`, value: round(a), unit: 'msg/s' },
          { name: `broker_qos${qos}_mosquitto_msgs_per_s`, value: round(m), unit: 'msg/s' },
          { name: `broker_qos${qos}_aedes_vs_mosquitto`, value: round(a / m), unit: 'x', goal: '>= 0.7' },
        );
      }
    } finally {
      aedes.stop();
    }
  } finally {
    await cleanup();
  }
  return figures;
}
