/**
 * The router's flows on the full stack (issue 14: >= 2,000 msg/s, p99 <= 20 ms on loopback):
 * rest -> eventbus, from the POST to a subscriber of the edge's broker (mosquitto), 16 callers; rest
 * -> servicebus round trips to an app on the edge node that answers at once: the rate with 16
 * callers, the latency with one (what router, cloudHub, edgeHub and serviceBus add), with edgeHub's
 * outbound limit (`messageQPS`, 30/s by default, as KubeEdge's) raised out of the way. Both kernels,
 * the broker's subscriber and the HTTP callers share this process.
 */
import { Agent, createServer, request } from 'node:http';
import { mqttClient } from '../helpers/mqtt-edge.js';
import { rule, ruleEndpoint, startRouterStack } from '../helpers/router-stack.js';
import { waitFor } from '../peers/util.js';
import { latencyFigures, round, type Figure } from './report.js';

const NODE = 'bench-router';
const MESSAGES = 3000;
const CALLS = 1500;
/** POSTs in flight at once */
const IN_FLIGHT = 16;

/** One call over a keep-alive connection (node:http: lighter than fetch, the client shares the CPU). */
function call(agent: Agent, url: string, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, method: body === undefined ? 'GET' : 'POST' }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function run(count: number, inFlight: number, one: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await one(next++);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

export async function routerBench(): Promise<Figure[]> {
  const app = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as { port: number }).port;
  const stack = await startRouterStack({
    node: NODE,
    restTimeout: 10,
    serviceBusTimeout: 10,
    // edgeHub's default outbound limit (30 messages/s) would be the figure of serviceBus answers
    messageQPS: 100_000,
  });
  const sub = await mqttClient(stack.broker.url, ['bench']);
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  try {
    await stack.apply([
      ruleEndpoint('my-rest', 'rest'),
      ruleEndpoint('my-eventbus', 'eventbus'),
      ruleEndpoint('my-servicebus', 'servicebus', { service_port: String(appPort) }),
      rule('bench-eventbus', 'my-rest', { path: '/bench' }, 'my-eventbus', { topic: 'bench' }),
      rule('bench-servicebus', 'my-rest', { path: '/call' }, 'my-servicebus', { path: '/' }),
    ]);
    const base = `http://127.0.0.1:${stack.routerPort}/${NODE}/default`;
    await waitFor(async () => (await call(agent, `${base}/call`)) === 200, {
      what: 'the bench rules routed',
      timeoutMs: 30_000,
    });
    await waitFor(async () => (await call(agent, `${base}/bench`, 'warm')) === 200, {
      what: 'the eventbus rule routed',
      timeoutMs: 30_000,
    });

    // rest -> eventbus: POST to the subscriber
    const sent = new Map<string, bigint>();
    const samples: number[] = [];
    sub.client.on('message', (_t, payload) => {
      const t0 = sent.get(payload.toString());
      if (t0 !== undefined) samples.push(Number(process.hrtime.bigint() - t0));
    });
    const t0 = process.hrtime.bigint();
    await run(MESSAGES, IN_FLIGHT, async (i) => {
      sent.set(`m${i}`, process.hrtime.bigint());
      await call(agent, `${base}/bench`, `m${i}`);
    });
    await waitFor(() => samples.length >= MESSAGES, {
      what: 'every message at the subscriber',
      timeoutMs: 60_000,
    });
    const busSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

    // rest -> servicebus: round trips/s with IN_FLIGHT callers, then the latency of one caller
    const t1 = process.hrtime.bigint();
    await run(CALLS, IN_FLIGHT, async () => void (await call(agent, `${base}/call`)));
    const callSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
    const calls: number[] = [];
    await run(CALLS / 3, 1, async () => {
      const s = process.hrtime.bigint();
      await call(agent, `${base}/call`);
      calls.push(Number(process.hrtime.bigint() - s));
    });
    return [
      {
        name: 'router_rest_to_eventbus_rate',
        value: round(MESSAGES / busSeconds),
        unit: 'msg/s',
        goal: '>= 2000',
      },
      ...latencyFigures('router_rest_to_eventbus_latency', samples, 'ms', '<= 20'),
      { name: 'router_rest_to_servicebus_rate', value: round(CALLS / callSeconds), unit: 'calls/s' },
      // one caller: what router, cloudHub, edgeHub and serviceBus add to the app's own time
      ...latencyFigures('router_rest_to_servicebus_added', calls, 'ms', '<= 20'),
    ];
  } finally {
    agent.destroy();
    await sub.end();
    await stack.stop();
    app.close();
  }
}
