/**
 * edgeMesh (issue 15): DNS answers/s (32 queries in flight on one UDP socket) and the latency of
 * one query at a time; HTTP requests/s through the proxy (16 keep-alive callers) and what the
 * proxy adds to one caller's p99 over the same requests sent straight to the endpoint (goal
 * <= 1 ms). A kernel with metaManager and edgeMesh on loopback; the service is pushed as the cloud
 * pushes it; the endpoint is an HTTP server in this process, as are the clients.
 */
import { createSocket } from 'node:dgram';
import { Agent, createServer, request } from 'node:http';
import dnsPacket from 'dns-packet';
import { newMessage } from '../../kernel/index.js';
import { edgeRegistry } from '../../plugins/registry.js';
import { startTestKernel } from '../helpers/kernel.js';
import { freePort, waitFor } from '../peers/util.js';
import { latencyFigures, round, type Figure } from './report.js';

const NAME = 'bench-svc.default.svc.cluster.local';
const QUERIES = 20_000;
const DNS_IN_FLIGHT = 32;
const LATENCY_QUERIES = 3000;
const REQUESTS = 4000;
const HTTP_IN_FLIGHT = 16;
const LATENCY_REQUESTS = 2000;

function get(agent: Agent, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      res.resume();
      res.on('end', () =>
        res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

async function run(count: number, inFlight: number, one: () => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next++ < count) await one();
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

export async function edgemeshBench(): Promise<Figure[]> {
  const web = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  const webPort = (web.address() as { port: number }).port;
  const [dnsPort, svcPort] = [await freePort(), await freePort()];
  const k = await startTestKernel(
    `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ":memory:"
modules:
  edged: {enable: false}
  edgeHub: {enable: false}
  eventBus: {enable: false}
  deviceTwin: {enable: false}
  metaManager: {enable: true}
  edgeMesh: {enable: true, listenAddress: 127.0.0.1, dnsPort: ${dnsPort}, resolvConf: /dev/null}
`,
    edgeRegistry.filter((e) => ['metaManager', 'edgeMesh'].includes(e.configKey)),
  );
  const udp = createSocket('udp4');
  const agent = new Agent({ keepAlive: true, maxSockets: HTTP_IN_FLIGHT });
  try {
    const meta = { name: 'bench-svc', namespace: 'default', resourceVersion: '1' };
    const push = (type: string, obj: object): Promise<void> =>
      k.kernel.bus.send(
        'metamanager',
        newMessage(
          {
            source: 'edgecontroller',
            group: 'resource',
            operation: 'insert',
            resource: `default/${type}/bench-svc`,
          },
          obj,
        ),
      );
    await push('service', {
      kind: 'Service',
      apiVersion: 'v1',
      metadata: meta,
      spec: { ports: [{ name: 'http', port: svcPort }] },
    });
    await push('endpoints', {
      kind: 'Endpoints',
      apiVersion: 'v1',
      metadata: meta,
      subsets: [{ addresses: [{ ip: '127.0.0.1' }], ports: [{ name: 'http', port: webPort }] }],
    });

    // DNS: one socket, queries told apart by id
    const waiting = new Map<number, () => void>();
    udp.on('message', (m) => waiting.get(m.readUInt16BE(0))?.());
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    let id = 0;
    const query = (): Promise<void> =>
      new Promise((resolve) => {
        id = (id + 1) & 0xffff;
        const mine = id;
        waiting.set(mine, () => {
          waiting.delete(mine);
          resolve();
        });
        udp.send(
          dnsPacket.encode({
            type: 'query',
            id: mine,
            flags: dnsPacket.RECURSION_DESIRED,
            questions: [{ type: 'A', name: NAME }],
          }),
          dnsPort,
          '127.0.0.1',
        );
      });
    await waitFor(() => get(agent, svcPort).then(() => true), { what: 'the bench service proxied' });
    await run(500, DNS_IN_FLIGHT, query); // warm-up
    const t0 = process.hrtime.bigint();
    await run(QUERIES, DNS_IN_FLIGHT, query);
    const dnsSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const dnsLatency: number[] = [];
    await run(LATENCY_QUERIES, 1, async () => {
      const s = process.hrtime.bigint();
      await query();
      dnsLatency.push(Number(process.hrtime.bigint() - s));
    });

    // HTTP: rate through the proxy, then one caller alternating direct and proxied requests
    await run(500, HTTP_IN_FLIGHT, () => get(agent, svcPort));
    const t1 = process.hrtime.bigint();
    await run(REQUESTS, HTTP_IN_FLIGHT, () => get(agent, svcPort));
    const proxiedSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
    const t2 = process.hrtime.bigint();
    await run(REQUESTS, HTTP_IN_FLIGHT, () => get(agent, webPort));
    const directSeconds = Number(process.hrtime.bigint() - t2) / 1e9;
    const direct: number[] = [];
    const proxied: number[] = [];
    await run(LATENCY_REQUESTS, 1, async () => {
      for (const [port, out] of [
        [webPort, direct],
        [svcPort, proxied],
      ] as const) {
        const s = process.hrtime.bigint();
        await get(agent, port);
        out.push(Number(process.hrtime.bigint() - s));
      }
    });
    const [directP50, directP99] = latencyFigures('x', direct, 'ms').map((f) => f.value) as [number, number];
    const [proxiedP50, proxiedP99] = latencyFigures('x', proxied, 'ms').map((f) => f.value) as [
      number,
      number,
    ];
    return [
      { name: 'edgemesh_dns_answers_rate', value: round(QUERIES / dnsSeconds), unit: 'answers/s' },
      ...latencyFigures('edgemesh_dns_answer', dnsLatency, 'ms'),
      { name: 'edgemesh_proxied_http_rate', value: round(REQUESTS / proxiedSeconds), unit: 'req/s' },
      { name: 'edgemesh_direct_http_rate', value: round(REQUESTS / directSeconds), unit: 'req/s' },
      { name: 'edgemesh_proxy_added_p50', value: round(proxiedP50 - directP50), unit: 'ms' },
      { name: 'edgemesh_proxy_added_p99', value: round(proxiedP99 - directP99), unit: 'ms', goal: '<= 1' },
    ];
  } finally {
    agent.destroy();
    udp.close();
    await k.kernel.stop();
    web.close();
  }
}
