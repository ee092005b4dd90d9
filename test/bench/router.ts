/**
 * The router's flows on the full stack (issue 14: >= 2,000 msg/s, p99 <= 20 ms on loopback):
 * rest -> eventbus, from the POST to a subscriber of the edge's broker (mosquitto), 16 callers (and one
 * caller: the latency without queueing); rest
 * -> servicebus round trips to an app on the edge node that answers at once: the rate with 16
 * callers, the latency with one (what router, cloudHub, edgeHub and serviceBus add), with edgeHub's
 * outbound limit (`messageQPS`, 30/s by default, as KubeEdge's) raised out of the way.
 *
 * Both kernels run in this process; the callers, the MQTT subscriber and the edge app run in a
 * load process (as cloud apps and `mosquitto_sub` are other processes), so what is measured is
 * the product's work, not the load generator's competing for the same event loop.
 * `ROUTER_BENCH_PROFILE=<file>`: a CPU profile of this process (both kernels) while the load runs.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { mqttClient } from '../helpers/mqtt-edge.js';
import { rule, ruleEndpoint, startRouterStack } from '../helpers/router-stack.js';
import { waitFor } from '../peers/util.js';
import { latencyFigures, round, type Figure } from './report.js';

const NODE = 'bench-router';
const MESSAGES = 3000;
const CALLS = 1500;
/** POSTs in flight at once */
const IN_FLIGHT = 16;
const LOAD_FLAG = '--router-bench-load';
/** Messages and calls of each flow before measuring. */
const WARM_UP = 2000;

/** What the load process measured (latencies in ns). */
interface LoadResult {
  busRate: number;
  busLatency: number[];
  /** one caller: the path's own latency, without the queueing of 16 callers */
  busLatencyOne: number[];
  callRate: number;
  callAdded: number[];
}

/** One call over a keep-alive connection. */
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

/** The load process: the edge app (its port on stdout), then the callers and the subscriber. */
async function loadProcess(base: string, brokerUrl: string): Promise<void> {
  const app = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  process.stdout.write(`APP ${(app.address() as { port: number }).port}\n`);
  await new Promise((r) => process.stdin.once('data', r)); // the rules are routed
  const sub = await mqttClient(brokerUrl, ['bench']);
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  // warm-up: the kernels' code is compiled and their caches filled before anything is measured
  await run(WARM_UP, IN_FLIGHT, async (i) => {
    await call(agent, `${base}/bench`, `w${i}`);
    await call(agent, `${base}/call`);
  });
  process.stdout.write('WARM\n');

  // rest -> eventbus: POST to the subscriber
  const sent = new Map<string, bigint>();
  let busLatency: number[] = [];
  sub.client.on('message', (_t, payload) => {
    const t0 = sent.get(payload.toString());
    if (t0 !== undefined) busLatency.push(Number(process.hrtime.bigint() - t0));
  });
  const t0 = process.hrtime.bigint();
  await run(MESSAGES, IN_FLIGHT, async (i) => {
    sent.set(`m${i}`, process.hrtime.bigint());
    await call(agent, `${base}/bench`, `m${i}`);
  });
  await waitFor(() => busLatency.length >= MESSAGES, {
    what: 'every message at the subscriber',
    timeoutMs: 60_000,
  });
  const busSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write('BUS DONE\n');
  const many = busLatency;
  busLatency = [];
  await run(MESSAGES / 6, 1, async (i) => {
    sent.set(`one${i}`, process.hrtime.bigint());
    await call(agent, `${base}/bench`, `one${i}`);
  });
  await waitFor(() => busLatency.length >= MESSAGES / 6, {
    what: 'every message of one caller at the subscriber',
    timeoutMs: 60_000,
  });

  // rest -> servicebus: round trips/s with IN_FLIGHT callers, then the latency of one caller
  const t1 = process.hrtime.bigint();
  await run(CALLS, IN_FLIGHT, async () => void (await call(agent, `${base}/call`)));
  const callSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
  // the app's own time, measured alone, is taken off each round trip
  const direct = `http://127.0.0.1:${(app.address() as { port: number }).port}/`;
  const own: number[] = [];
  const rounds: number[] = [];
  await run(CALLS / 3, 1, async () => {
    let s = process.hrtime.bigint();
    await call(agent, direct);
    own.push(Number(process.hrtime.bigint() - s));
    s = process.hrtime.bigint();
    await call(agent, `${base}/call`);
    rounds.push(Number(process.hrtime.bigint() - s));
  });
  const ownMedian = [...own].sort((a, b) => a - b)[own.length >> 1] ?? 0;
  const result: LoadResult = {
    busRate: MESSAGES / busSeconds,
    busLatency: many,
    busLatencyOne: busLatency,
    callRate: CALLS / callSeconds,
    callAdded: rounds.map((r) => Math.max(0, r - ownMedian)),
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  agent.destroy();
  await sub.end();
  app.close();
}

/** Start the load process; resolves with its app's port, a go() and the result. */
async function spawnLoad(
  base: string,
  brokerUrl: string,
): Promise<{
  appPort: number;
  go(): void;
  warmedUp: Promise<void>;
  busDone: Promise<void>;
  result: Promise<LoadResult>;
}> {
  const self = fileURLToPath(import.meta.url);
  const args = self.endsWith('.ts') ? ['--import', 'tsx', self] : [self];
  const proc = spawn(process.execPath, [...args, LOAD_FLAG, base, brokerUrl], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  let busDone!: () => void;
  const bus = new Promise<void>((r) => (busDone = r));
  let warm!: () => void;
  const warmedUp = new Promise<void>((r) => (warm = r));
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('WARM\n')) warm();
    if (out.includes('BUS DONE\n')) busDone();
  });
  const result = new Promise<LoadResult>((resolve, reject) => {
    proc.on('exit', (code) => {
      const line = /^RESULT (.*)$/m.exec(out)?.[1];
      if (line) resolve(JSON.parse(line) as LoadResult);
      else reject(new Error(`the router bench load process exited (${code}) without a result`));
    });
  });
  await waitFor(() => /^APP \d+$/m.test(out), { what: 'the load process', timeoutMs: 20_000 });
  return {
    appPort: Number(/^APP (\d+)$/m.exec(out)?.[1]),
    go: () => void proc.stdin.end('go\n'),
    warmedUp,
    busDone: bus,
    result,
  };
}

export async function routerBench(): Promise<Figure[]> {
  const stack = await startRouterStack({
    node: NODE,
    restTimeout: 10,
    serviceBusTimeout: 10,
    // edgeHub's default outbound limit (30 messages/s) would be the figure of serviceBus answers
    messageQPS: 100_000,
  });
  const agent = new Agent({ keepAlive: true });
  try {
    const base = `http://127.0.0.1:${stack.routerPort}/${NODE}/default`;
    const load = await spawnLoad(base, stack.broker.url);
    await stack.apply([
      ruleEndpoint('my-rest', 'rest'),
      ruleEndpoint('my-eventbus', 'eventbus'),
      ruleEndpoint('my-servicebus', 'servicebus', { service_port: String(load.appPort) }),
      rule('bench-eventbus', 'my-rest', { path: '/bench' }, 'my-eventbus', { topic: 'bench' }),
      rule('bench-servicebus', 'my-rest', { path: '/call' }, 'my-servicebus', { path: '/' }),
    ]);
    await waitFor(async () => (await call(agent, `${base}/call`)) === 200, {
      what: 'the bench rules routed',
      timeoutMs: 30_000,
    });
    await waitFor(async () => (await call(agent, `${base}/bench`, 'warm')) === 200, {
      what: 'the eventbus rule routed',
      timeoutMs: 30_000,
    });
    load.go();
    await load.warmedUp;
    const profile = await startProfile();
    const cpu0 = process.cpuUsage();
    await load.busDone;
    const cpu = process.cpuUsage(cpu0);
    const r = await load.result;
    await profile?.();
    return [
      { name: 'router_rest_to_eventbus_rate', value: round(r.busRate), unit: 'msg/s', goal: '>= 2000' },
      ...latencyFigures('router_rest_to_eventbus_latency', r.busLatency, 'ms', '<= 20'),
      ...latencyFigures('router_rest_to_eventbus_one_caller_latency', r.busLatencyOne, 'ms'),
      // the CPU both kernels spend per message (user + system): what the machine's load does not change
      {
        name: 'router_rest_to_eventbus_cpu_per_msg',
        value: round((cpu.user + cpu.system) / MESSAGES),
        unit: 'us',
      },
      { name: 'router_rest_to_servicebus_rate', value: round(r.callRate), unit: 'calls/s' },
      // one caller: what router, cloudHub, edgeHub and serviceBus add to the app's own time
      ...latencyFigures('router_rest_to_servicebus_added', r.callAdded, 'ms', '<= 20'),
    ];
  } finally {
    agent.destroy();
    await stack.stop();
  }
}

/** `ROUTER_BENCH_PROFILE=<file>`: profile this process until the returned function is called. */
async function startProfile(): Promise<(() => Promise<void>) | undefined> {
  const file = process.env.ROUTER_BENCH_PROFILE;
  if (!file) return undefined;
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}

if (process.argv[2] === LOAD_FLAG) await loadProcess(process.argv[3] ?? '', process.argv[4] ?? '');
