/**
 * eventBus / deviceTwin benchmarks (issues 4 and 10):
 * - twin updates acknowledged = stored: an edgecore process (eventBus mode 0 + deviceTwin on a
 *   SQLite file) and 40 MQTT clients in a publisher process pipelining QoS 1 updates; a PUBACK
 *   means the update is committed. Rate, latency (one in flight, publish -> PUBACK), CPU per update
 *   and the peak resident memory of the edgecore process; then the same load on the Go anchor, a Go
 *   edgecore v1.23.1 (internal broker + deviceTwin + metaManager), and the ratios ours/Go. Go's
 *   broker sends PUBACK on receipt, before its deviceTwin stores the update (ours after the
 *   commit): its rate of stored updates is read from its database;
 * - twin updates end to end through mosquitto (mode 2): MQTT publish -> eventBus -> deviceTwin
 *   (SQLite) -> the edge_updated message at the cloud stand-in (module `websocket`);
 * - broker throughput, QoS 0 and 1: aedes inside an edgecore process (mode 0) side by side with
 *   mosquitto, the same two clients in this process.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import type { Message } from '../../kernel/index.js';
import { membershipMessage, mqttClient, startEdge } from '../helpers/mqtt-edge.js';
import { waitUntil } from '../helpers/kernel.js';
import { startGoTwinEdgecore } from '../peers/kubeedge.js';
import { startMosquitto, type MosquittoPeer } from '../peers/mosquitto.js';
import { cleanup, freePort, sleep } from '../peers/util.js';
import { TwinStore } from '../../plugins/devicetwin/store.js';
import { latencyFigures, round, type Figure } from './report.js';

const DEVICE = 'default/bench-1';
const PUBLISHER_FLAG = '--eventbus-bench-publisher';
const topicOf = (device: string): string => `$hw/events/device/${device}/twin/update`;
const TOPIC = topicOf(DEVICE);
const update = (i: number): string =>
  `{"event_id":"b${i}","timestamp":${Date.now()},"twin":{"temperature":{"actual":{"value":"${i}"},"metadata":{"type":"int"}}}}`;
/** MQTT clients (one device each) of the acknowledged-throughput run, as in issue 10's load. */
const CLIENTS = 40;

type TwinContent = { twin?: { temperature?: { actual?: { value?: string } } } };

/** The stand-in cloud's edge_updated arrivals, keyed by the reported value. */
class Arrivals {
  readonly at = new Map<string, bigint>();
  private waiting: { key: string; resolve: () => void } | undefined;
  count = 0;
  readonly onCloud = (m: Message): void => {
    const v = (m.content as TwinContent | null)?.twin?.temperature?.actual?.value;
    if (v === undefined) return;
    this.count++;
    this.at.set(v, process.hrtime.bigint());
    if (this.waiting?.key === v) this.waiting.resolve();
  };
  next(key: string): Promise<void> {
    if (this.at.has(key)) return Promise.resolve();
    return new Promise((resolve) => (this.waiting = { key, resolve }));
  }
}

/**
 * The publisher of a throughput run, in a process of its own (as mappers are): `clients`
 * connections, one device each (`default/bench-<k>`, or `default/bench-1` for one client), waits
 * for a line on stdin, publishes `n` updates in all at QoS 1 as fast as mqtt.js writes them, prints
 * `DONE <ms>` once every PUBACK is in.
 */
async function publisherChild(url: string, n: number, base: number, clients: number): Promise<void> {
  const cs = await Promise.all(
    Array.from({ length: clients }, async () => {
      const c = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, log: () => undefined });
      await new Promise((r) => c.once('connect', r));
      return c;
    }),
  );
  process.stdout.write('CONNECTED\n');
  await new Promise((r) => process.stdin.once('data', r));
  const t0 = process.hrtime.bigint();
  let acked = 0;
  for (let i = 0; i < n; i++) {
    const k = i % clients;
    const topic = clients === 1 ? TOPIC : topicOf(`default/bench-${k}`);
    (cs[k] as mqtt.MqttClient).publish(topic, update(base + i), { qos: 1 }, () => {
      if (++acked === n) {
        process.stdout.write(`DONE ${Number(process.hrtime.bigint() - t0) / 1e6}\n`);
        void Promise.all(cs.map((c) => c.endAsync(true))).then(() => process.exit(0));
      }
    });
  }
}

async function spawnPublisher(
  url: string,
  n: number,
  base: number,
  clients = 1,
): Promise<{ go(): void; done(): boolean; ms(): number }> {
  const self = fileURLToPath(import.meta.url);
  const args = self.endsWith('.ts') ? ['--import', 'tsx', self] : [self];
  const proc = spawn(
    process.execPath,
    [...args, PUBLISHER_FLAG, url, String(n), String(base), String(clients)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitUntil(() => out.includes('CONNECTED'), 20_000, 'publisher process');
  return {
    go: () => void proc.stdin.write('go\n'),
    done: () => out.includes('DONE'),
    ms: () => Number(/DONE ([\d.]+)/.exec(out)?.[1]),
  };
}

/**
 * `EVENTBUS_BENCH_PROFILE=<dir>`: a CPU profile of this process during the throughput run only
 * (`<dir>/twin-<label>.cpuprofile`, for Chrome DevTools).
 */
async function startProfile(): Promise<{ stop(label: string): Promise<void> } | undefined> {
  const dir = process.env.EVENTBUS_BENCH_PROFILE;
  if (!dir) return undefined;
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return {
    async stop(label) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(join(dir, `twin-${label}.cpuprofile`), JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/** Twin updates end to end through mosquitto (mode 2), arrival of edge_updated at the cloud stand-in. */
async function twinEndToEnd(mosquitto: MosquittoPeer): Promise<Figure[]> {
  const label = 'mosquitto';
  const arrivals = new Arrivals();
  const edge = await startEdge({
    mode: 2,
    external: mosquitto.url,
    cloudAcks: true,
    keepCloud: false,
    onCloud: arrivals.onCloud,
  });
  try {
    const url = mosquitto.mqttUrl;
    await edge.connectCloud();
    await edge.fromCloud(membershipMessage([{ id: DEVICE, name: 'bench-1' }]));
    await mosquitto.waitLog(/ 1 \+\/user\/#$/m); // eventBus subscribed
    // latency: one update in flight at a time, publisher in this process
    const app = await mqttClient(url, []);
    const samples: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const t0 = process.hrtime.bigint();
      app.client.publish(TOPIC, update(i), { qos: 1 });
      const key = String(i);
      await arrivals.next(key);
      samples.push(Number((arrivals.at.get(key) as bigint) - t0));
    }
    await app.end();
    // throughput: N updates pipelined (QoS 1) by a publisher process
    const N = 20_000;
    const base = 100_000;
    const pub = await spawnPublisher(url, N, base);
    const profile = await startProfile();
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    pub.go();
    await arrivals.next(String(base + N - 1));
    const secs = Number((arrivals.at.get(String(base + N - 1)) as bigint) - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    await profile?.stop(label);
    await waitUntil(pub.done, 20_000, `${label}: PUBACKs of ${N} updates`);
    return [
      {
        name: `twin_e2e_${label}_updates_per_s`,
        value: round(N / secs),
        unit: 'updates/s',
        goal: '>= 20000',
      },
      // CPU time of the edgecore process (this one) per update: steadier than the rate on a shared machine
      { name: `twin_e2e_${label}_cpu_per_update`, value: round((cpu.user + cpu.system) / N), unit: 'us' },
      ...latencyFigures(`twin_e2e_${label}_latency`, samples, 'ms', '<= 5'),
    ];
  } finally {
    await edge.stop();
  }
}

/** CPU time (us) and resident memory (MB, now and peak) of a process, from /proc. */
function procStats(pid: number): { cpuUs: number; rssMb: number; peakRssMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime, in USER_HZ (100/s)
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { cpuUs: ticks * 10_000, rssMb: kb('VmRSS') / 1024, peakRssMb: kb('VmHWM') / 1024 };
}

/** The largest `RssAnon` (MB) of process `pid`, sampled every 50 ms until `stop()` (0 once it is gone). */
function anonPeak(pid: number): { stop(): number } {
  const sample = (): number => {
    const status = existsSync(`/proc/${pid}/status`) ? readFileSync(`/proc/${pid}/status`, 'utf8') : '';
    return Number(/^RssAnon:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024;
  };
  let peak = sample();
  const timer = setInterval(() => (peak = Math.max(peak, sample())), 50);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, sample());
    },
  };
}

/**
 * The twin the bench's updates set (`update()`) as stored in `dataSource`, by device id: its
 * actual value and its edge version (one per update applied).
 */
function storedTwins(dataSource: string): Map<string, { actual: string | null; edge: number }> {
  const db = new Database(dataSource, { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare("SELECT deviceid, actual, actual_version FROM device_twin WHERE name = 'temperature'")
      .all() as { deviceid: string; actual: string | null; actual_version: string | null }[];
    return new Map(
      rows.map((r) => [
        r.deviceid,
        { actual: r.actual, edge: (JSON.parse(r.actual_version ?? '{}') as { edge?: number }).edge ?? 0 },
      ]),
    );
  } finally {
    db.close();
  }
}

/** What a twin-acknowledged run measures of one edgecore, ours or Go's. */
interface TwinTarget {
  label: string;
  url: string;
  pid: number;
  dataSource: string;
  /** The goals on its figures (ours). */
  goals?: boolean;
}

/**
 * One twin-acknowledged run against `t`: latency publish -> PUBACK with one update in flight
 * (`DEVICE`), then CLIENTS clients pipelining N QoS 1 updates (`default/bench-<k>`). Once every
 * PUBACK is in, waits until `t`'s database shows every update applied (the work was done, not
 * dropped): the rate of PUBACKs and of stored updates, how many twins hold the last value sent,
 * CPU per update and resident memory (peak of all, `VmHWM`; peak of the anonymous part, sampled)
 * of the edgecore process.
 */
async function twinRun(t: TwinTarget): Promise<Figure[]> {
  const name = `twin_acked_${t.label}`;
  const goal = (g: string): { goal?: string } => (t.goals ? { goal: g } : {});
  const anon = anonPeak(t.pid);
  try {
    const app = await mqttClient(t.url, []);
    const samples: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const t0 = process.hrtime.bigint();
      await app.client.publishAsync(TOPIC, update(i), { qos: 1 });
      samples.push(Number(process.hrtime.bigint() - t0));
    }
    await app.end();
    const N = 40_000;
    const base = 100_000;
    const pub = await spawnPublisher(t.url, N, base, CLIENTS);
    const before = procStats(t.pid);
    const t0 = process.hrtime.bigint();
    pub.go();
    await waitUntil(pub.done, 300_000, `${t.label}: PUBACKs of ${N} updates`);
    // every update applied: the edge versions of the twins add up to all updates sent (latency
    // phase included); polled, not too often (a reader of Go's database holds its lock), until
    // they do or stop moving for 10 s
    const total = samples.length + N;
    let applied = 0;
    let twins = storedTwins(t.dataSource);
    let storedAt = process.hrtime.bigint();
    for (let still = Date.now(); applied < total && Date.now() - still < 10_000; await sleep(200)) {
      twins = storedTwins(t.dataSource);
      const now = [...twins.values()].reduce((sum, tw) => sum + tw.edge, 0);
      if (now !== applied) [applied, still, storedAt] = [now, Date.now(), process.hrtime.bigint()];
    }
    const storedSecs = Number(storedAt - t0) / 1e9;
    // the last update of device k is number N - CLIENTS + k: is it the value stored?
    const lastKept = Array.from({ length: CLIENTS }, (_, k) => k).filter(
      (k) => twins.get(`default/bench-${k}`)?.actual === String(base + N - CLIENTS + k),
    ).length;
    const after = procStats(t.pid);
    const anonPeakMb = anon.stop();
    return [
      {
        name: `${name}_updates_per_s`,
        value: round(N / (pub.ms() / 1000)),
        unit: 'updates/s',
        ...goal('>= 20000'),
      },
      { name: `${name}_stored_per_s`, value: round(N / storedSecs), unit: 'updates/s' },
      { name: `${name}_applied`, value: applied, unit: `of ${total}`, ...goal(`>= ${total}`) },
      { name: `${name}_last_value_kept`, value: lastKept, unit: `of ${CLIENTS} twins` },
      { name: `${name}_cpu_per_update`, value: round((after.cpuUs - before.cpuUs) / N), unit: 'us' },
      ...latencyFigures(`${name}_latency`, samples, 'ms', t.goals ? '<= 5' : undefined),
      { name: `${name}_rss_idle`, value: round(before.rssMb), unit: 'MB' },
      // 1.5x the 80 MB issue 10 quoted for Go; the measured anchor is the ratio below
      { name: `${name}_rss_peak`, value: round(after.peakRssMb), unit: 'MB', ...goal('<= 120') },
      { name: `${name}_rss_anon_peak`, value: round(anonPeakMb), unit: 'MB' },
    ];
  } finally {
    anon.stop();
  }
}

/**
 * Twin updates acknowledged = stored (issue 10's load), ours and the Go anchor one after the
 * other, the same publisher and load: our edgecore process (eventBus mode 0 + deviceTwin), then a
 * Go edgecore v1.23.1 (eventBus with its internal broker, `mqttMode: 0`; deviceTwin; metaManager;
 * KubeEdge's default log level), the same CLIENTS devices in each one's database before it starts.
 * Not the same promise: ours sends PUBACK once the update is committed, Go's broker on receipt,
 * before deviceTwin stores it; hence `stored_per_s` (until the database shows every update
 * applied) beside `updates_per_s` (PUBACKs), and CPU counted until then. Go applies a device's
 * updates out of order (`last_value_kept`). Then ours/Go ratios.
 */
async function twinAcknowledged(): Promise<Figure[]> {
  const devices = Array.from({ length: CLIENTS }, (_, k) => `default/bench-${k}`);
  const ours = await startEdgeProcess({ deviceTwin: true, devices });
  let figures: Figure[];
  try {
    figures = await twinRun({
      label: 'aedes',
      url: ours.url,
      pid: ours.pid,
      dataSource: ours.dataSource,
      goals: true,
    });
  } finally {
    ours.stop();
  }
  const go = await startGoTwinEdgecore({ nodeName: 'bench-go-twin', devices });
  try {
    figures.push(
      ...(await twinRun({ label: 'go', url: go.mqttUrl, pid: go.pid, dataSource: go.dataSource })),
    );
  } finally {
    await go.stop();
  }
  const value = (n: string): number => figures.find((f) => f.name === `twin_acked_${n}`)?.value ?? NaN;
  const ratio = (n: string, unit: string, goal?: string): Figure => ({
    name: `twin_acked_aedes_vs_go_${n}`,
    value: round(value(`aedes_${n}`) / value(`go_${n}`)),
    unit,
    ...(goal !== undefined && { goal }),
  });
  return [
    ...figures,
    ratio('stored_per_s', 'x'),
    ratio('cpu_per_update', 'x'),
    // issue 10: ours at most 1.5x Go's resident memory on this load
    ratio('rss_peak', 'x', '<= 1.5'),
    ratio('rss_anon_peak', 'x'),
  ];
}

/** Publish N messages from one client, received by another; messages/s. */
async function brokerThroughput(url: string, qos: 0 | 1, n: number): Promise<number> {
  const opts = { protocolVersion: 4 as const, reconnectPeriod: 0, log: () => undefined };
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

/**
 * edgecore (eventBus mode 0, deviceTwin if asked, on a SQLite file holding `devices`) in a process
 * of its own.
 */
async function startEdgeProcess(
  o: { deviceTwin?: boolean; devices?: string[] } = {},
): Promise<{ url: string; pid: number; dataSource: string; stop(): void }> {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const js = join(here, '..', '..', 'plugins', 'devicetwin', 'testdata', 'edge-child.js');
  const ts = join(here, '..', '..', 'plugins', 'devicetwin', 'testdata', 'edge-child.ts');
  const dir = mkdtempSync(join(tmpdir(), 'bench-aedes-'));
  const dataSource = join(dir, 'edge.db');
  const db = new Database(dataSource);
  new TwinStore(db).apply({
    addDevices: (o.devices ?? []).map((id) => ({
      id,
      name: id.split('/')[1] ?? id,
      description: '',
      state: '',
      last_online: '',
    })),
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
  edged: {enable: false, hostnameOverride: bench}
  edgeHub: {enable: false}
  metaManager: {enable: false}
  deviceTwin: {enable: ${o.deviceTwin ?? false}}
  eventBus: {enable: true, mqttMode: 0, mqttQOS: 1, mqttServerInternal: "tcp://127.0.0.1:${port}"}
`,
  );
  const args = existsSync(js) ? [js, yaml] : ['--import', 'tsx', ts, yaml];
  // EVENTBUS_BENCH_PROFILE=<dir>: a CPU profile of the edgecore process (written when it stops)
  const profileDir = process.env.EVENTBUS_BENCH_PROFILE;
  const prof = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  // EVENTBUS_BENCH_EDGE_FLAGS: node/V8 flags of the edgecore process (e.g. to try heap limits)
  const extra = (process.env.EVENTBUS_BENCH_EDGE_FLAGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...extra, ...prof, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitUntil(() => out.includes('READY'), 20_000, 'edgecore child');
  return {
    url: `mqtt://127.0.0.1:${port}`,
    pid: proc.pid as number,
    dataSource,
    // a graceful stop lets node write the CPU profile
    stop: () => void proc.kill(profileDir ? 'SIGTERM' : 'SIGKILL'),
  };
}

/** `EVENTBUS_BENCH=aedes,mosquitto,broker` (default: all) runs only those parts, e.g. to profile one. */
const parts = new Set((process.env.EVENTBUS_BENCH ?? 'aedes,mosquitto,broker').split(','));

export async function eventbusBench(): Promise<Figure[]> {
  const figures: Figure[] = [];
  // mosquitto's default per-client queue (1000) drops QoS 1 messages of a pipelined burst
  const mosquitto = await startMosquitto({ extraConfig: ['max_queued_messages 1000000'] });
  try {
    // twin updates end to end
    if (parts.has('aedes')) figures.push(...(await twinAcknowledged()));
    if (parts.has('mosquitto')) figures.push(...(await twinEndToEnd(mosquitto)));
    if (!parts.has('broker')) return figures;
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

if (process.argv[2] === PUBLISHER_FLAG) {
  await publisherChild(
    process.argv[3] ?? '',
    Number(process.argv[4]),
    Number(process.argv[5]),
    Number(process.argv[6] ?? 1),
  );
}
