/**
 * cloudHub benchmarks (issue 11): a cloudcore process (dist/bin/cloudcore.js, cloudHub plus a bench
 * plugin playing edgecontroller that sends to the edges when asked) and `BENCH_CLOUDHUB_LINKS`
 * (1000) simulated edges spread over `BENCH_EDGE_WORKERS` (4) processes (real TLS websockets, one
 * certificate per node, a keepalive every 15 s):
 * - cloudcore resident memory with no edge and per link;
 * - cloudcore CPU at idle with the links up, over one keepalive period;
 * - cloud→edge messages/s to one edge and fanned out to every edge, and the added latency of
 *   cloudHub (bench plugin send → edge receive) at 1 message per ms;
 * - the time for every edge to reconnect after a cloudcore restart (edges redial with edgeHub's back-off).
 * The 1-minute load average is printed beside them (a shared machine).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { freePort, sleep } from '../peers/util.js';
import { toPem } from '../../plugins/cloudhub/pki.js';
import { latencyFigures, round, type Figure } from './report.js';
import {
  benchCa,
  cpuTicks,
  EdgeFleet,
  loadAverage,
  rssKb,
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

export async function cloudhubBench(): Promise<Figure[]> {
  const links = Number(process.env.BENCH_CLOUDHUB_LINKS ?? 1000);
  const workers = Number(process.env.BENCH_EDGE_WORKERS ?? 4);
  const fds = Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }));
  if (fds < links + 1000)
    throw new Error(
      `${links} links need more open files than ulimit -n (${fds}): raise it (ulimit -n ${links + 1000})`,
    );
  const dir = mkdtempSync(join(tmpdir(), 'bench-cloudhub-'));
  const { ca, cloudHubTls } = await benchCa(dir);
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
  let fleet: EdgeFleet | undefined;
  const nodes = Array.from({ length: links }, (_, i) => `bench-${i}`);
  const one = nodes[0]!;
  const ask = (content: object): Promise<void> =>
    fleet!.send(one, {
      header: { msg_id: randomUUID(), timestamp: Date.now() },
      route: { source: 'edged', group: 'meta', operation: 'bench', resource: 'bench' },
      content: JSON.stringify(content),
    });
  const wall = (): number => performance.timeOrigin + performance.now();
  const load = (when: string): Figure => ({
    name: `load_average_1m_${when}`,
    value: loadAverage(),
    unit: '',
  });

  const figures: Figure[] = [load('start')];
  const connectCpu = (what: string, cloudTicks: number, edgesMs: number): Figure[] => [
    { name: `cloudcore_cpu_per_${what}`, value: round((cloudTicks * 10) / links), unit: 'ms' },
    { name: `edges_cpu_per_${what}`, value: round(edgesMs / links), unit: 'ms' },
  ];
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

    // links, 50 handshakes at a time in each edge process
    fleet = await EdgeFleet.start({ ca, nodes, workers });
    const edgeCpu0 = (await fleet.stats()).cpuMs;
    let t0 = wall();
    let cpu0 = cpuTicks(cloud.pid!);
    await fleet.connect(wsPort, toPem('CERTIFICATE', ca.cert));
    figures.push(
      { name: `cloudhub_connect_all_${links}`, value: round((wall() - t0) / 1000), unit: 's' },
      // CPU per connection: TLS handshake, upgrade, session (holds under load, unlike the time)
      ...connectCpu('connect', cpuTicks(cloud.pid!) - cpu0, (await fleet.stats()).cpuMs - edgeCpu0),
    );
    await sleep(2000);
    const rss1 = rssKb(cloud.pid!);
    figures.push({
      name: `cloudhub_rss_per_link_${links}`,
      value: round((rss1 - rss0) / links),
      unit: 'KB',
      goal: '<= 40',
    });
    // one keepalive period (15 s): CPU-ms per second, i.e. per mille of a core
    const ticks0 = cpuTicks(cloud.pid!);
    await sleep(15_000);
    figures.push({
      name: `cloudcore_idle_cpu_${links}_links`,
      value: round(((cpuTicks(cloud.pid!) - ticks0) / 100 / 15) * 100),
      unit: '%',
    });
    figures.push(load('idle'));

    // one edge: throughput, then latency at 1 message per ms
    const burst = 20_000;
    t0 = wall();
    await ask({ n: burst, nodes: [one], gapMs: 0 });
    let s = await fleet.until((x) => x.received >= burst, 120_000, 'burst to one edge');
    figures.push({
      name: 'cloudhub_msgs_to_one_edge',
      value: round(burst / ((s.lastReceivedAt - t0) / 1000)),
      unit: 'msg/s',
      goal: '>= 20000',
    });
    await fleet.reset();
    await ask({ n: 2000, nodes: [one], gapMs: 1 });
    await fleet.until((x) => x.received >= 2000, 120_000, 'paced messages');
    s = await fleet.stats(true);
    figures.push(...latencyFigures('cloudhub_added_latency', s.latenciesNs, 'ms', '<= 5'));

    // fan-out to every edge
    await fleet.reset();
    const each = 20;
    t0 = wall();
    await ask({ n: each, nodes, gapMs: 0 });
    s = await fleet.until((x) => x.minReceived >= each, 300_000, 'fan-out');
    figures.push({
      name: `cloudhub_msgs_fanout_${links}_edges`,
      value: round((each * links) / ((s.lastReceivedAt - t0) / 1000)),
      unit: 'msg/s',
    });

    // cloudcore restart: every edge back
    t0 = wall();
    await stopProcess(cloud);
    const edgeCpu1 = (await fleet.stats()).cpuMs;
    cloud = await startCloudcore(config);
    cpu0 = cpuTicks(cloud.pid!);
    s = await fleet.until((x) => x.open === links && x.lastOpenAt > t0, 300_000, 'reconnect');
    figures.push(...connectCpu('reconnect', cpuTicks(cloud.pid!) - cpu0, s.cpuMs - edgeCpu1));
    figures.push({
      name: `cloudhub_reconnect_all_${links}`,
      value: round((s.lastOpenAt - t0) / 1000),
      unit: 's',
      goal: '<= 60',
    });
    figures.push(load('end'));
  } finally {
    await fleet?.stop();
    await stopProcess(cloud);
  }
  return figures;
}
