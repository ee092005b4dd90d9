/**
 * deviceController benchmarks (issue 13), against the test control plane with KubeEdge's device CRDs
 * and a cloud kernel (cloudHub + deviceController) in this process:
 * - `kubectl patch` of a desired value -> the simulator's holding register holds it: a real edge
 *   kernel (edgeHub, metaManager, deviceTwin + dmiserver, mapper-modbus) over the real link, the
 *   pymodbus simulator over Modbus TCP; the patch is sent as kubectl's (a JSON patch of the Device),
 *   the register is polled through the simulator's control channel (2 ms);
 * - reported twin -> visible in the API server: `BENCH_DEVICES` devices (1000) on 10 simulated edges
 *   (./sim-edges.ts, acknowledging the device messages); every edge
 *   sends `twin/edge_updated` reports at `BENCH_DEVICES_RATE` (2000) reports/s in all for
 *   `BENCH_DEVICES_SECONDS` (10) s; the latency is from the report's send to the DeviceStatus watch
 *   event showing its value (a report merged into a newer one is not a sample), the rate is the
 *   reports confirmed `OK` (stored) per second; the mirror's lag is from the report's send to the
 *   Device watch event showing its value (the Device's status, what v1alpha2 readers see), and the
 *   cost is what kube-apiserver (and etcd) spent, and the requests cloudcore made, per report until
 *   the mirror caught up with the last one. `BENCH_DEVICES_ADMISSION=1`: with the admission plugin
 *   (conversion and validating webhooks, as `keadm init` sets cloudcore up).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { parseConfig } from '../../kernel/config/index.js';
import { KubeToken, decodeMessage, newResponse } from '../../kernel/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger } from '../../kernel/log.js';
import { toPem } from '../../plugins/cloudhub/pki.js';
import { cloudLayout, cloudRegistry, edgeLayout, edgeRegistry } from '../../plugins/registry.js';
import { applyDeviceCrds } from '../helpers/device-crds.js';
import { prepareLink } from '../helpers/link.js';
import { startControlPlane } from '../peers/kube.js';
import { startModbusTcp } from '../peers/modbus.js';
import { freePort, removeTempDir, sleep, tempDir, waitFor } from '../peers/util.js';
import { latencyFigures, round, type Figure } from './report.js';
import { SimEdge, connectAll, cpuTicks, edgeIdentities, loadAverage } from './sim-edges.js';

const API = '/apis/devices.kubeedge.io/v1beta1/namespaces/default';
const EDGES = 10;
const PATCHES = 50;

interface StatusObj {
  metadata?: { name?: string };
  status?: { twins?: { propertyName: string; reported?: { value: string } }[] };
}

const model = {
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'DeviceModel',
  metadata: { name: 'bench-model', namespace: 'default' },
  spec: { protocol: 'modbus', properties: [{ name: 'setpoint', type: 'INT', accessMode: 'ReadWrite' }] },
};
const device = (name: string, node: string, port: number, offset: number) => ({
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'Device',
  metadata: { name, namespace: 'default' },
  spec: {
    deviceModelRef: { name: 'bench-model' },
    nodeName: node,
    protocol: { protocolName: 'modbus', configData: { ip: '127.0.0.1', port, slaveID: 1 } },
    properties: [
      {
        name: 'setpoint',
        collectCycle: 1000,
        reportToCloud: true,
        desired: { value: '0' },
        visitors: { protocolName: 'modbus', configData: { register: 'HoldingRegister', offset, limit: 1 } },
      },
    ],
  },
});

export async function devicesBench(): Promise<Figure[]> {
  const total = Number(process.env.BENCH_DEVICES ?? 1000);
  const rate = Number(process.env.BENCH_DEVICES_RATE ?? 2000);
  const seconds = Number(process.env.BENCH_DEVICES_SECONDS ?? 10);
  // the admission webhooks on, as keadm init has them: kube-apiserver calls them on Device writes
  const admission = process.env.BENCH_DEVICES_ADMISSION === '1';
  const logger = createLogger('silent');
  const plane = await startControlPlane();
  const sim = await startModbusTcp({ holdingRegisters: { 0: 0 } });
  const dir = await tempDir('bench-devices');
  const link = await prepareLink(dir);
  let cloud: Kernel | undefined;
  let edge: Kernel | undefined;
  const edges: SimEdge[] = [];
  const figures: Figure[] = [];
  try {
    await applyDeviceCrds(plane);
    cloud = new Kernel({
      config: parseConfig(
        cloudLayout,
        `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${plane.cloudcoreKubeconfigPath}
modules:
  edgeController: {enable: false}
  deviceController: {enable: true}
  admission: {enable: ${admission}, address: 127.0.0.1, port: ${await freePort()}}
${link.cloudHub}`,
        'cloudcore.yaml',
      ),
      registry: cloudRegistry,
      logger,
    });
    await cloud.start();
    const kube = cloud.services.get(KubeToken);
    await kube.request('POST', `${API}/devicemodels`, model);

    // 1. kubectl patch desired -> register written (a real edge)
    edge = new Kernel({
      config: parseConfig(
        edgeLayout,
        `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${join(dir, 'edge/edgecore.db')}
modules:
  edged: {enable: false, hostnameOverride: bench-edge}
  metaManager: {enable: true}
  eventBus: {enable: true, mqttMode: 0, mqttServerInternal: "tcp://127.0.0.1:${await freePort()}"}
  deviceTwin: {enable: true, dmiSockPath: ${JSON.stringify(dir + '/')}}
  mapperModbus: {enable: true, reconnectInitialMs: 200}
${link.edgeHub()}`,
        join(dir, 'edge/edgecore.yaml'),
      ),
      registry: edgeRegistry,
      logger,
    });
    await edge.start();
    await kube.request('POST', `${API}/devices`, device('bench-real', 'bench-edge', sim.port, 0));
    const register = async (): Promise<number> => (await sim.read('holdingRegisters', 0))[0] ?? -1;
    const patchTo = (v: number): Promise<unknown> =>
      kube.request(
        'PATCH',
        `${API}/devices/bench-real`,
        [{ op: 'replace', path: '/spec/properties/0/desired/value', value: String(v) }],
        { contentType: 'application/json-patch+json' },
      );
    // warm-up: the device registered and a first desired value written
    await patchTo(1);
    await waitFor(async () => (await register()) === 1, { what: 'first desired value', timeoutMs: 60_000 });
    const patchNs: number[] = [];
    for (let i = 2; i < PATCHES + 2; i++) {
      const t0 = process.hrtime.bigint();
      await patchTo(i);
      await waitFor(async () => (await register()) === i, {
        what: `desired ${i}`,
        intervalMs: 2,
        timeoutMs: 30_000,
      });
      patchNs.push(Number(process.hrtime.bigint() - t0));
    }
    figures.push(...latencyFigures('devices_patch_desired_to_register', patchNs, 'ms', '<= 200'));
    await edge.stop();
    edge = undefined;

    // 2. reported twins from `total` devices on EDGES simulated edges -> DeviceStatus in the API
    const nodes = Array.from({ length: EDGES }, (_, i) => `bench-sim-${i}`);
    const names = Array.from({ length: total }, (_, i) => `bench-d${i}`);
    const nodeOf = (i: number): string => nodes[i % EDGES]!;
    /** Report send times (ms) by `${device}/${value}`, and the latencies (ns) seen, per resource. */
    const watched = (resource: 'devicestatuses' | 'devices') => {
      const sent = new Map<string, number>();
      const samples: number[] = [];
      const last = new Map<string, string>(); // the newest reported value each object shows
      const informer = kube.informer<StatusObj>({
        group: 'devices.kubeedge.io',
        version: 'v1beta1',
        resource,
      });
      informer.addHandlers({
        update: (s) => {
          const v = s.status?.twins?.[0]?.reported?.value;
          if (v === undefined) return;
          last.set(s.metadata?.name ?? '', v);
          const t0 = sent.get(`${s.metadata?.name}/${v}`);
          if (t0 !== undefined) {
            samples.push((performance.timeOrigin + performance.now() - t0) * 1e6);
            sent.delete(`${s.metadata?.name}/${v}`);
          }
        },
      });
      return { sent, samples, last, informer };
    };
    const recorded = watched('devicestatuses');
    const mirrored = watched('devices');
    const samples = recorded.samples;
    let confirmed = 0;
    const identities = await edgeIdentities(link.ca, nodes);
    for (const [i, node] of nodes.entries()) {
      edges.push(
        new SimEdge(node, identities[i]!, (e, frame) => {
          const m = decodeMessage(frame);
          if (m.route.operation === 'response' && m.content === 'OK') confirmed++;
          // acknowledge what cloudHub sends in ACK mode (devices, models)
          else if (m.header.resourceversion || m.route.operation === 'delete') e.send(newResponse(m, 'OK'));
        }),
      );
    }
    await connectAll(edges, link.wsPort, toPem('CERTIFICATE', link.ca.cert));
    // the devices, 8 requests at a time, and their DeviceStatuses (created by deviceController)
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < total) {
          const i = next++;
          await kube.request('POST', `${API}/devices`, device(names[i]!, nodeOf(i), 502, 0));
        }
      }),
    );
    await waitFor(() => recorded.informer.list().length >= total + 1, {
      what: `${total} DeviceStatuses`,
      timeoutMs: 120_000,
    });
    // the API server's own pace, the ceiling of what follows: merge patches that change a
    // DeviceStatus, 32 at once (the client's bound), each device twice
    let probed = 0;
    const probeStart = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let k = probed++; k < 2 * total; k = probed++)
          await kube.request(
            'PATCH',
            `${API}/devicestatuses/${names[k % total]!}`,
            { status: { lastOnlineTime: new Date(1e12 + k * 1000).toISOString() } },
            { contentType: 'application/merge-patch+json' },
          );
      }),
    );
    figures.push({
      name: 'devices_api_merge_patches_per_s',
      value: round((2 * total) / ((performance.now() - probeStart) / 1000)),
      unit: '/s',
    });

    const report = (i: number, value: number): void => {
      const name = names[i]!;
      const now = performance.timeOrigin + performance.now();
      recorded.sent.set(`${name}/${value}`, now);
      mirrored.sent.set(`${name}/${value}`, now);
      edges[i % EDGES]!.send({
        header: { msg_id: randomUUID(), timestamp: Date.now() },
        route: {
          source: 'twin',
          group: 'resource',
          operation: 'update',
          resource: `device/default/${name}/twin/edge_updated`,
        },
        content: {
          event_id: randomUUID(),
          timestamp: Date.now(),
          twin: {
            setpoint: {
              actual: { value: String(value), metadata: { timestamp: Math.floor(now) } },
              optional: true,
              metadata: { type: 'int' },
            },
          },
        },
      });
    };
    const count = rate * seconds;
    const { apiserver, etcd } = { apiserver: plane.pids['kube-apiserver']!, etcd: plane.pids.etcd! };
    const ticks0 = cpuTicks(apiserver) + cpuTicks(etcd);
    const requests0 = kube.stats().requests;
    const started = performance.now();
    for (let k = 0; k < count; k++) {
      // open loop: report k is due at started + k / rate
      const due = started + (k * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      report(k % total, k);
    }
    // until every report is confirmed, or none was for 30 s (a report not stored is re-sent by a
    // real edge after 60 s: counted as unconfirmed here, its cause in the drop counter)
    let last = -1;
    let lastAt = performance.now();
    await waitFor(
      () => {
        if (confirmed !== last) [last, lastAt] = [confirmed, performance.now()];
        return confirmed >= count || performance.now() - lastAt > 30_000;
      },
      { what: 'the reports confirmed', timeoutMs: 600_000, intervalMs: 20 },
    );
    const elapsed = (lastAt - started) / 1000;
    const load = loadAverage();
    // then until every Device's status (the mirror) shows its device's last report
    const lastValue = (i: number): string => String(count - 1 - ((count - 1 - i) % total));
    const mirroredAll = (): boolean =>
      names.every((n, i) => i >= count || mirrored.last.get(n) === lastValue(i));
    await waitFor(mirroredAll, { what: 'the mirror caught up', timeoutMs: 300_000, intervalMs: 20 });
    const drained = (performance.now() - lastAt) / 1000;
    const ticks = cpuTicks(apiserver) + cpuTicks(etcd) - ticks0;
    const requests = kube.stats().requests - requests0;
    const metricsText = await cloud.metrics.text();
    // reports cloudHub could not hand to deviceController (its mailbox full)
    const refused = [
      ...metricsText.matchAll(
        /^kubeedge_cloudhub_undeliverable_total\{[^}]*target="devicecontroller"[^}]*\} (\d+)/gm,
      ),
    ].reduce((n, m) => n + Number(m[1]), 0);
    const failed = [
      ...metricsText.matchAll(
        /^kubeedge_devicecontroller_dropped_total\{[^}]*reason="failed"[^}]*\} (\d+)/gm,
      ),
    ].reduce((n, m) => n + Number(m[1]), 0);
    figures.push(
      ...latencyFigures('devices_reported_to_api', samples, 'ms', '<= 100'),
      {
        name: 'devices_reported_updates_per_s',
        value: round(confirmed / elapsed),
        unit: '/s',
        goal: '>= 2000',
      },
      { name: 'devices_reported_unconfirmed', value: count - confirmed, unit: 'reports' },
      { name: 'devices_reported_not_stored', value: failed, unit: 'reports' },
      { name: 'devices_reported_refused_mailbox_full', value: refused, unit: 'reports' },
      { name: 'devices_reported_samples', value: samples.length, unit: 'reports' },
      ...latencyFigures('devices_mirror_lag', mirrored.samples, 'ms'),
      { name: 'devices_mirror_behind_after_last_confirmed', value: round(drained), unit: 's' },
      { name: 'devices_mirror_samples', value: mirrored.samples.length, unit: 'reports' },
      {
        name: 'devices_api_cpu_per_report',
        value: round(((ticks / 100) * 1e6) / count),
        unit: 'us (apiserver+etcd)',
      },
      { name: 'devices_api_requests_per_report', value: round(requests / count), unit: 'requests' },
      { name: 'devices_load_average', value: load, unit: '(1 min)' },
    );
    return figures;
  } finally {
    for (const e of edges) e.stop();
    await edge?.stop();
    await cloud?.stop();
    await sim.stop();
    await plane.stop();
    await removeTempDir(dir);
  }
}
