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
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Message } from '../../kernel/index.js';
import { freePort } from '../peers/util.js';
import { waitUntil } from '../helpers/kernel.js';
import { latencyFigures, round, type Figure } from './report.js';
import {
  benchCa,
  connectAll,
  cpuTicks,
  edgeIdentities,
  rssKb,
  SimEdge,
  sleep,
  startCloudcore,
  stopProcess,
} from './sim-edges.js';

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

/** What one simulated edge got of the bench plugin's messages. */
interface Received {
  count: number;
  latenciesNs: number[];
}

export async function cloudhubBench(): Promise<Figure[]> {
  const links = Number(process.env.BENCH_CLOUDHUB_LINKS ?? 1000);
  const dir = mkdtempSync(join(tmpdir(), 'bench-cloudhub-'));
  const { ca, caPem, cloudHubTls } = await benchCa(dir);
  writeFileSync(join(dir, 'bench-plugin.mjs'), BENCH_PLUGIN);
  const wsPort = await freePort();
  const config = join(dir, 'cloudcore.yaml');
  writeFileSync(
    config,
    `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
modules:
  benchController: {enable: true}
  edgeController: {enable: false}
  cloudHub:
    nodeLimit: ${links + 10}
    advertiseAddress: [127.0.0.1]
${cloudHubTls}    websocket: {enable: true, address: 127.0.0.1, port: ${wsPort}}
    https: {enable: true, address: 127.0.0.1, port: ${await freePort()}}
kernel:
  health: {enable: false}
  plugins:
    - package: ${join(dir, 'bench-plugin.mjs')}
`,
  );

  let cloud: ChildProcess | undefined;
  const nodes = Array.from({ length: links }, (_, i) => `bench-${i}`);
  const identities = await edgeIdentities(ca, nodes);
  const received = new Map<SimEdge, Received>();
  const all = nodes.map((node, i) => {
    const edge = new SimEdge(node, identities[i]!, (e, frame) => {
      const now = performance.timeOrigin + performance.now();
      const r = received.get(e)!;
      r.count++;
      const sent = Number((JSON.parse(frame) as Message<string>).content);
      r.latenciesNs.push((now - sent) * 1e6);
    });
    received.set(edge, { count: 0, latenciesNs: [] });
    return edge;
  });
  const got = (e: SimEdge): Received => received.get(e)!;

  const ask = (edge: SimEdge, content: object): void =>
    edge.send({
      header: { msg_id: randomUUID(), timestamp: Date.now() },
      route: { source: 'edged', group: 'meta', operation: 'bench', resource: 'bench' },
      content: JSON.stringify(content),
    });

  const figures: Figure[] = [];
  try {
    cloud = await startCloudcore(config);
    await sleep(1000);
    const rss0 = rssKb(cloud.pid!);
    figures.push({
      name: 'cloudcore_idle_rss_no_edge',
      value: round(rss0 / 1024),
      unit: 'MB',
      goal: '<= 74',
    });

    // links, 50 handshakes at a time
    await connectAll(all, wsPort, caPem);
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
    await waitUntil(() => got(one).count >= burst, 120_000, 'burst to one edge');
    figures.push({
      name: 'cloudhub_msgs_to_one_edge',
      value: round(burst / (Number(process.hrtime.bigint() - t0) / 1e9)),
      unit: 'msg/s',
      goal: '>= 20000',
    });
    got(one).latenciesNs.length = 0;
    got(one).count = 0;
    ask(one, { n: 2000, nodes: [one.node], gapMs: 1 });
    await waitUntil(() => got(one).count >= 2000, 120_000, 'paced messages');
    figures.push(...latencyFigures('cloudhub_added_latency', got(one).latenciesNs, 'ms', '<= 5'));

    // fan-out to every edge
    for (const e of all) got(e).count = 0;
    const each = 20;
    t0 = process.hrtime.bigint();
    ask(one, { n: each, nodes: all.map((l) => l.node), gapMs: 0 });
    await waitUntil(() => all.every((e) => got(e).count >= each), 120_000, 'fan-out');
    figures.push({
      name: `cloudhub_msgs_fanout_${links}_edges`,
      value: round((each * links) / (Number(process.hrtime.bigint() - t0) / 1e9)),
      unit: 'msg/s',
    });

    // cloudcore restart: every edge back
    t0 = process.hrtime.bigint();
    await stopProcess(cloud);
    cloud = await startCloudcore(config);
    await waitUntil(() => all.every((e) => e.open), 120_000, 'reconnect');
    figures.push({
      name: `cloudhub_reconnect_all_${links}`,
      value: round(Number(process.hrtime.bigint() - t0) / 1e9),
      unit: 's',
      goal: '<= 60',
    });
  } finally {
    for (const e of all) e.stop();
    await stopProcess(cloud);
  }
  return figures;
}
