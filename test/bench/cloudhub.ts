/**
 * cloudHub benchmarks (issue 11): a cloudcore process (dist/bin/cloudcore.js, cloudHub plus a bench
 * plugin playing edgecontroller that sends to the edges when asked) and simulated edges in this
 * process (real TLS websockets, one certificate per node, a keepalive every 15 s):
 * - cloudcore resident memory with no edge and per link with `BENCH_CLOUDHUB_LINKS` links (1000);
 * - cloudcore CPU at idle with the links up;
 * - cloud→edge messages/s to one edge and fanned out to every edge, and the added latency of
 *   cloudHub (bench plugin send → edge receive) at 1 message per ms;
 * - the time for every edge to reconnect after a cloudcore restart (edges retry every 1 s + jitter).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { encodeMessage, type Message } from '../../kernel/index.js';
import {
  CLIENT_AUTH,
  createCa,
  signCertificate,
  toPem,
  type KeyPairDer,
} from '../../plugins/cloudhub/pki.js';
import { freePort } from '../peers/util.js';
import { waitUntil } from '../helpers/kernel.js';
import { latencyFigures, round, type Figure } from './report.js';

const cloudcoreBin = fileURLToPath(new URL('../../bin/cloudcore.js', import.meta.url));

/** The bench plugin: on an edge's `bench` request, sends `n` no-ACK messages to each node named. */
const BENCH_PLUGIN = `
import { randomUUID } from 'node:crypto';
const pause = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  name: 'edgecontroller', group: 'edgecontroller', configKey: 'benchController',
  start(ctx) {
    return {
      async onMessage(msg) {
        if (msg.route.operation !== 'bench') return;
        const { n, nodes, gapMs } = JSON.parse(msg.content);
        for (let i = 0; i < n; i++) {
          for (const node of nodes) {
            const out = {
              header: { msg_id: randomUUID(), timestamp: Date.now() },
              route: { source: 'router_eventbus', group: 'user', operation: 'publish', resource: 'node/' + node + '/bench' },
              content: String(performance.timeOrigin + performance.now()),
            };
            for (;;) {
              try { await ctx.send('cloudhub', out); break; }
              catch (err) { if (err.code !== 'EBUS_QUEUE_FULL') throw err; await pause(1); }
            }
          }
          if (gapMs > 0) await pause(gapMs);
        }
      },
    };
  },
};
`;

interface Link {
  node: string;
  ws: WebSocket | undefined;
  received: number;
  latenciesNs: number[];
  timer?: NodeJS.Timeout;
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function cloudhubBench(): Promise<Figure[]> {
  const links = Number(process.env.BENCH_CLOUDHUB_LINKS ?? 1000);
  const dir = mkdtempSync(join(tmpdir(), 'bench-cloudhub-'));
  const ca = await createCa();
  const caPem = toPem('CERTIFICATE', ca.cert);
  writeFileSync(join(dir, 'rootCA.crt'), caPem);
  writeFileSync(join(dir, 'rootCA.key'), toPem('EC PRIVATE KEY', ca.key), { mode: 0o600 });
  writeFileSync(join(dir, 'bench-plugin.mjs'), BENCH_PLUGIN);
  const wsPort = await freePort();
  const config = join(dir, 'cloudcore.yaml');
  writeFileSync(
    config,
    `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
modules:
  benchController: {enable: true}
  cloudHub:
    nodeLimit: ${links + 10}
    advertiseAddress: [127.0.0.1]
    tlsCAFile: ${join(dir, 'rootCA.crt')}
    tlsCAKeyFile: ${join(dir, 'rootCA.key')}
    tlsCertFile: ${join(dir, 'certs', 'server.crt')}
    tlsPrivateKeyFile: ${join(dir, 'certs', 'server.key')}
    websocket: {enable: true, address: 127.0.0.1, port: ${wsPort}}
    https: {enable: true, address: 127.0.0.1, port: ${await freePort()}}
kernel:
  health: {enable: false}
  plugins:
    - package: ${join(dir, 'bench-plugin.mjs')}
`,
  );

  let cloud: ChildProcess | undefined;
  const startCloud = async (): Promise<ChildProcess> => {
    const child = spawn(process.execPath, [cloudcoreBin, '--config', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
    await waitUntil(
      () => err.includes('"kernel ready"') || child.exitCode !== null,
      30_000,
      'cloudcore ready',
    );
    if (child.exitCode !== null) throw new Error(`cloudcore exited:\n${err}`);
    return child;
  };

  const identities = await Promise.all(
    Array.from({ length: links }, async (_, i) => {
      const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const cert = await signCertificate(ca as KeyPairDer, {
        publicKey: publicKey.export({ type: 'spki', format: 'der' }),
        commonName: `system:node:bench-${i}`,
        organization: ['system:nodes'],
        usages: [CLIENT_AUTH],
        validityDays: 1,
      });
      return {
        cert: toPem('CERTIFICATE', cert),
        key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      };
    }),
  );
  const all: Link[] = identities.map((_, i) => ({
    node: `bench-${i}`,
    ws: undefined,
    received: 0,
    latenciesNs: [],
  }));
  let stopping = false;

  const keepalive = (): string =>
    encodeMessage({
      header: { msg_id: randomUUID(), timestamp: Date.now() },
      route: { source: 'websocket', group: 'resource', operation: 'keepalive', resource: 'node' },
      content: 'ping',
    }) + '\n';

  /** Dial until open (1 s + jitter between tries, as a quick edgeHub would). */
  const connect = (link: Link, i: number): Promise<void> =>
    new Promise((resolve) => {
      const attempt = (): void => {
        const ws = new WebSocket(
          `wss://127.0.0.1:${wsPort}/e632aba927ea4ac2b575ec1603d56f10/${link.node}/events`,
          {
            ca: caPem,
            ...identities[i]!,
            headers: {
              node_id: link.node,
              project_id: 'e632aba927ea4ac2b575ec1603d56f10',
              ConnectionUse: 'msg',
            },
          },
        );
        ws.on('message', (data) => {
          const now = performance.timeOrigin + performance.now();
          link.received++;
          const sent = Number((JSON.parse(data.toString()) as Message<string>).content);
          link.latenciesNs.push((now - sent) * 1e6);
        });
        ws.once('open', () => {
          link.ws = ws;
          ws.send(keepalive());
          clearInterval(link.timer);
          link.timer = setInterval(() => ws.send(keepalive()), 15_000);
          resolve();
        });
        ws.once('close', () => {
          clearInterval(link.timer);
          if (link.ws === ws) link.ws = undefined;
          if (!stopping && link.ws === undefined && ws.readyState !== WebSocket.OPEN) {
            setTimeout(attempt, 1000 + Math.random() * 1000);
          }
        });
        ws.on('error', () => undefined);
      };
      attempt();
    });

  const ask = (link: Link, content: object): void =>
    link.ws!.send(
      encodeMessage({
        header: { msg_id: randomUUID(), timestamp: Date.now() },
        route: { source: 'edged', group: 'meta', operation: 'bench', resource: 'bench' },
        content: JSON.stringify(content),
      }) + '\n',
    );

  const figures: Figure[] = [];
  try {
    cloud = await startCloud();
    await sleep(1000);
    const rss0 = rssKb(cloud.pid!);
    figures.push({
      name: 'cloudcore_idle_rss_no_edge',
      value: round(rss0 / 1024),
      unit: 'MB',
      goal: '<= 74',
    });

    // links, 50 handshakes at a time
    for (let i = 0; i < links; i += 50)
      await Promise.all(all.slice(i, i + 50).map((l, j) => connect(l, i + j)));
    await sleep(2000);
    const rss1 = rssKb(cloud.pid!);
    figures.push({
      name: `cloudhub_rss_per_link_${links}`,
      value: round((rss1 - rss0) / links),
      unit: 'KB',
      goal: '<= 40',
    });
    const ticks0 = cpuTicks(cloud.pid!);
    await sleep(5000);
    figures.push({
      name: `cloudcore_idle_cpu_${links}_links`,
      value: round(((cpuTicks(cloud.pid!) - ticks0) / 100 / 5) * 100),
      unit: '%',
    });

    // one edge: throughput, then latency at 1 message per ms
    const one = all[0]!;
    const burst = 20_000;
    let t0 = process.hrtime.bigint();
    ask(one, { n: burst, nodes: [one.node], gapMs: 0 });
    await waitUntil(() => one.received >= burst, 120_000, 'burst to one edge');
    figures.push({
      name: 'cloudhub_msgs_to_one_edge',
      value: round(burst / (Number(process.hrtime.bigint() - t0) / 1e9)),
      unit: 'msg/s',
      goal: '>= 20000',
    });
    one.latenciesNs.length = 0;
    one.received = 0;
    ask(one, { n: 2000, nodes: [one.node], gapMs: 1 });
    await waitUntil(() => one.received >= 2000, 120_000, 'paced messages');
    figures.push(...latencyFigures('cloudhub_added_latency', one.latenciesNs, 'ms', '<= 5'));

    // fan-out to every edge
    for (const l of all) l.received = 0;
    const each = 20;
    t0 = process.hrtime.bigint();
    ask(one, { n: each, nodes: all.map((l) => l.node), gapMs: 0 });
    await waitUntil(() => all.every((l) => l.received >= each), 120_000, 'fan-out');
    figures.push({
      name: `cloudhub_msgs_fanout_${links}_edges`,
      value: round((each * links) / (Number(process.hrtime.bigint() - t0) / 1e9)),
      unit: 'msg/s',
    });

    // cloudcore restart: every edge back
    t0 = process.hrtime.bigint();
    const closed = new Promise((r) => cloud!.once('exit', r));
    cloud.kill('SIGTERM');
    await closed;
    cloud = await startCloud();
    await waitUntil(() => all.every((l) => l.ws?.readyState === WebSocket.OPEN), 120_000, 'reconnect');
    figures.push({
      name: `cloudhub_reconnect_all_${links}`,
      value: round(Number(process.hrtime.bigint() - t0) / 1e9),
      unit: 's',
      goal: '<= 60',
    });
  } finally {
    stopping = true;
    for (const l of all) {
      clearInterval(l.timer);
      l.ws?.terminate();
    }
    if (cloud !== undefined && cloud.exitCode === null) {
      const exited = new Promise((r) => cloud!.once('exit', r));
      cloud.kill('SIGTERM');
      await exited;
    }
  }
  return figures;
}
