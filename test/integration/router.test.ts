/**
 * The router end to end: a real control plane with KubeEdge's router CRDs, a cloud kernel (cloudHub
 * + router on the cloudcore identity's kubeconfig) and an edge kernel (edgeHub, eventBus on a real
 * mosquitto, serviceBus) over real mutual TLS on loopback, an HTTP app on the edge node and an HTTP
 * server in the cloud.
 *
 *  - the notes' example (RuleEndpoints my-rest/my-eventbus, Rule my-rule): a POST on
 *    `/<node>/default/test` reaches an MQTT subscriber of `test` at the edge, `successMessages` goes up;
 *  - eventbus -> rest: a publish on `default/ke-up` at the edge reaches the cloud HTTP server;
 *  - rest -> servicebus: the app's 200 (headers, body, query), 404 and a slow app (504);
 *  - servicebus -> rest: an edge app calls the edge serviceBus's local server and gets the cloud
 *    HTTP server's answer; a URL no rule allows and an unreachable cloud URL are answered so;
 *  - 12 MiB passes, 12 MiB + 1 byte is refused with 413;
 *  - a node not connected fails at once (503) and `failMessages` goes up;
 *  - a deleted rule stops routing.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES } from '../../plugins/router/router.js';
import { mqttClient, type TestClient } from '../helpers/mqtt-edge.js';
import { rule, ruleEndpoint, startRouterStack, type RouterStack } from '../helpers/router-stack.js';
import { cleanup, requirePeer, spawnPeer, waitFor } from '../peers/util.js';

const NODE = 'edge-router';
const NOTES_EXAMPLE = join('test', 'fixtures', 'notes', 'rule-rest-eventbus.yaml');

let stack: RouterStack;
let sub: TestClient | undefined;
/** the HTTP app on the edge node */
let app: Server;
let appPort: number;
/** requests the slow route holds (answered at the end) */
const held: (() => void)[] = [];
/** the cloud HTTP server of eventbus -> rest */
let sink: Server;
let sinkPort: number;
const sunk: { path: string; body: string }[] = [];

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
  );
}

interface RuleStatus {
  successMessages?: number;
  failMessages?: number;
  errors?: string[];
}

async function ruleStatus(name: string): Promise<RuleStatus> {
  const got = JSON.parse(await stack.cp.kubectl(['get', 'rule', name, '-n', 'default', '-o', 'json'])) as {
    status?: RuleStatus;
  };
  return got.status ?? {};
}

const post = (path: string, body: string): Promise<Response> =>
  fetch(`http://127.0.0.1:${stack.routerPort}${path}`, { method: 'POST', body });
const get = (path: string): Promise<Response> => fetch(`http://127.0.0.1:${stack.routerPort}${path}`);

/** POST until the router has the rule (404 before); returns the first other answer. */
async function postWhenRouted(path: string, body: string): Promise<Response> {
  let res: Response | undefined;
  await waitFor(
    async () => {
      res = await post(path, body);
      if (res.status === 404) await res.arrayBuffer();
      return res.status !== 404;
    },
    { what: `a rule routing ${path}`, timeoutMs: 30_000, intervalMs: 100 },
  );
  return res as Response;
}

beforeAll(async () => {
  app = createServer((req, res) => {
    void readAll(req).then((body) => {
      const url = new URL(req.url ?? '/', 'http://app');
      if (url.pathname === '/target/ok') {
        res.writeHead(200, { 'Content-Type': 'application/json', 'X-App': 'yes' });
        res.end(
          JSON.stringify({
            method: req.method,
            query: url.search,
            body: body.toString(),
            xid: req.headers['x-id'],
          }),
        );
      } else if (url.pathname === '/target/slow') {
        held.push(() => res.end('late'));
      } else {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end(`no ${url.pathname} here`);
      }
    });
  });
  sink = createServer((req, res) => {
    void readAll(req).then((body) => {
      sunk.push({ path: req.url ?? '', body: body.toString() });
      res.end('ok');
    });
  });
  [appPort, sinkPort] = await Promise.all([listen(app), listen(sink)]);

  stack = await startRouterStack({ node: NODE, restTimeout: 10, serviceBusTimeout: 2 });
  sub = await mqttClient(stack.broker.url, ['test/#']);
}, 600_000);

afterAll(async () => {
  for (const release of held) release();
  await sub?.end();
  await stack?.stop();
  await Promise.all([app, sink].map((s) => new Promise((r) => s?.close(r))));
  await cleanup();
}, 120_000);

describe('router (real control plane and CRDs, cloudHub + router, edgeHub + eventBus on mosquitto + serviceBus)', () => {
  it("the notes' example: POST /<node>/default/test reaches mosquitto_sub -t test at the edge; successMessages goes up", async () => {
    // as the notes do it: mosquitto_sub -t test at the edge (one message, then it exits)
    const mosquittoSub = await spawnPeer(
      requirePeer('mosquitto_sub'),
      ['-h', '127.0.0.1', '-p', String(stack.broker.port), '-t', 'test', '-C', '1', '-i', 'notes-sub'],
      { name: 'mosquitto_sub' },
    );
    await stack.broker.waitLog(/notes-sub 0 test$/m);
    await stack.cp.kubectl(['apply', '-n', 'default', '-f', NOTES_EXAMPLE]);
    const res = await postWhenRouted(`/${NODE}/default/test`, 'hello edge');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('message delivered\n');
    expect((await mosquittoSub.exited).code).toBe(0);
    expect(mosquittoSub.output()).toBe('hello edge\n');
    const [got] = await sub!.waitFor('test', 1, 10_000);
    expect(got!.payload).toBe('hello edge');

    // a sub-path is published on the topic's sub-topic; a path that only starts alike is not routed
    const deeper = await post(`/${NODE}/default/test/room1`, 'deeper');
    expect(deeper.status).toBe(200);
    expect((await sub!.waitFor('test/room1', 1, 10_000))[0]!.payload).toBe('deeper');
    const loose = await post(`/${NODE}/default/testing`, 'no');
    expect(loose.status).toBe(404);
    expect(await loose.text()).toMatch(/no rule of namespace default has a rest source/);

    let status: RuleStatus = {};
    await waitFor(async () => ((status = await ruleStatus('my-rule')).successMessages ?? 0) >= 2, {
      what: 'my-rule status.successMessages >= 2',
      timeoutMs: 15_000,
      intervalMs: 200,
      details: () => JSON.stringify(status),
    });
    expect(status.failMessages).toBe(0);
  }, 120_000);

  it('12 MiB passes to the edge; 12 MiB + 1 byte is refused with 413', async () => {
    const big = 'x'.repeat(MAX_MESSAGE_BYTES);
    const ok = await post(`/${NODE}/default/test/big`, big);
    expect(ok.status).toBe(200);
    const [got] = await sub!.waitFor('test/big', 1, 30_000);
    expect(got!.payload.length).toBe(MAX_MESSAGE_BYTES);

    const tooBig = await post(`/${NODE}/default/test/big`, `${big}x`);
    expect(tooBig.status).toBe(413);
    expect(await tooBig.text()).toMatch(/request body too large: at most 12582912 bytes/);
  }, 120_000);

  it('eventbus -> rest: a publish on default/ke-up at the edge reaches the cloud HTTP server', async () => {
    await stack.apply([
      rule('my-rule-eventbus-rest', 'my-eventbus', { topic: 'ke-up', node_name: NODE }, 'my-rest', {
        resource: `http://127.0.0.1:${sinkPort}/ke-up`,
      }),
    ]);
    // the edge's eventBus subscribes default/ke-up on the broker
    await stack.broker.waitLog(/ 1 default\/ke-up$/m, 30_000);
    await sub!.publish('default/ke-up', 'temperature=21');
    await waitFor(() => sunk.some((s) => s.body === 'temperature=21'), {
      what: 'the payload at the cloud HTTP server',
      timeoutMs: 15_000,
    });
    expect(sunk.find((s) => s.body === 'temperature=21')!.path).toBe('/ke-up');
    await waitFor(async () => ((await ruleStatus('my-rule-eventbus-rest')).successMessages ?? 0) >= 1, {
      what: 'my-rule-eventbus-rest status.successMessages >= 1',
      timeoutMs: 15_000,
      intervalMs: 200,
    });
  }, 120_000);

  it("rest -> servicebus: the edge app's 200 (headers, body, query) and 404 pass through; a slow app is a 504", async () => {
    await stack.apply([
      ruleEndpoint('my-servicebus', 'servicebus', { service_port: String(appPort) }),
      rule('my-rule-rest-servicebus', 'my-rest', { path: '/source' }, 'my-servicebus', { path: '/target' }),
    ]);

    const first = await postWhenRouted(`/${NODE}/default/source/ok?x=1`, '{"a":1}');
    expect(first.status).toBe(200);
    expect(first.headers.get('x-app')).toBe('yes');
    expect(await first.json()).toEqual({ method: 'POST', query: '?x=1', body: '{"a":1}' });

    const put = await fetch(`http://127.0.0.1:${stack.routerPort}/${NODE}/default/source/ok`, {
      method: 'PUT',
      body: 'b',
      headers: { 'X-Id': '42' },
    });
    expect(await put.json()).toEqual({ method: 'PUT', query: '', body: 'b', xid: '42' });

    const missing = await get(`/${NODE}/default/source/missing`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe('no /target/missing here');

    const slow = await get(`/${NODE}/default/source/slow`);
    expect(slow.status).toBe(504);
    expect(await slow.text()).toMatch(/did not answer within 2 s \(modules\.serviceBus\.timeout\)/);

    let status: RuleStatus = {};
    await waitFor(
      async () => {
        status = await ruleStatus('my-rule-rest-servicebus');
        return (status.successMessages ?? 0) >= 3 && (status.failMessages ?? 0) >= 1;
      },
      {
        what: 'my-rule-rest-servicebus: 3 successes, 1 failure',
        timeoutMs: 15_000,
        intervalMs: 200,
        details: () => JSON.stringify(status),
      },
    );
    expect(status.errors?.[0]).toMatch(/did not answer within 2 s/);
  }, 120_000);

  it("servicebus -> rest: an edge app's call through serviceBus's local server reaches the cloud HTTP server and gets its answer", async () => {
    const allowed = 'http://cloud.example/in';
    const broken = 'http://cloud.example/broken';
    await stack.apply([
      ruleEndpoint('my-sb-source', 'servicebus'),
      rule('my-rule-servicebus-rest', 'my-sb-source', { target_url: allowed, node_name: NODE }, 'my-rest', {
        resource: `http://127.0.0.1:${sinkPort}/from-app`,
      }),
      // a closed port: the cloud cannot call it
      rule('my-rule-servicebus-broken', 'my-sb-source', { target_url: broken, node_name: NODE }, 'my-rest', {
        resource: 'http://127.0.0.1:1/nowhere',
      }),
    ]);
    /** The edge app: POST to serviceBus's local server (KubeEdge's request and answer shapes). */
    const callCloud = async (targetURL: string): Promise<{ code: number; msg: string; body?: string }> => {
      const res = await fetch(`http://127.0.0.1:${stack.serviceBusPort}/`, {
        method: 'POST',
        body: JSON.stringify({ method: 'POST', targetURL, payload: { t: 21 } }),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as { code: number; msg: string; body?: string };
    };
    // the server listens once the rule's `start` reached the edge; the URL is allowed with it
    let answer: { code: number; msg: string; body?: string } | undefined;
    await waitFor(
      async () => {
        answer = await callCloud(allowed).catch(() => undefined);
        return answer?.code === 200;
      },
      {
        what: 'the edge app answered through serviceBus',
        timeoutMs: 30_000,
        details: () => JSON.stringify(answer),
      },
    );
    expect(answer).toEqual({ code: 200, msg: 'receive response from cloud successfully', body: 'ok' });
    const got = sunk.find((s) => s.path === '/from-app');
    expect(JSON.parse(got!.body)).toEqual({ method: 'POST', targetURL: allowed, payload: { t: 21 } });

    expect(await callCloud('http://cloud.example/other')).toEqual({
      code: 400,
      msg: 'url http://cloud.example/other is not allowed and please make a rule for this url in the cloud',
    });
    let failed: { code: number; msg: string } | undefined;
    await waitFor(async () => (failed = await callCloud(broken)).code !== 400, {
      what: 'the broken URL allowed at the edge',
      timeoutMs: 15_000,
    });
    expect(failed!.code).toBe(502);
    expect(failed!.msg).toMatch(new RegExp(`^servicebus ${NODE} ${broken}: `));

    await waitFor(async () => ((await ruleStatus('my-rule-servicebus-rest')).successMessages ?? 0) >= 1, {
      what: 'my-rule-servicebus-rest status.successMessages >= 1',
      timeoutMs: 15_000,
      intervalMs: 200,
    });
    await waitFor(async () => ((await ruleStatus('my-rule-servicebus-broken')).failMessages ?? 0) >= 1, {
      what: 'my-rule-servicebus-broken status.failMessages >= 1',
      timeoutMs: 15_000,
      intervalMs: 200,
    });

    // both rules deleted: their URLs are no longer allowed and the local server closes
    await stack.cp.kubectl([
      'delete',
      'rule',
      'my-rule-servicebus-rest',
      'my-rule-servicebus-broken',
      '-n',
      'default',
    ]);
    await waitFor(async () => (await callCloud(allowed).catch(() => undefined)) === undefined, {
      what: 'the local server closed',
      timeoutMs: 15_000,
    });
  }, 120_000);

  it('a node not connected to this cloudcore fails at once with 503, and failMessages goes up', async () => {
    const before = (await ruleStatus('my-rule-rest-servicebus')).failMessages ?? 0;
    const res = await post('/edge-offline/default/source/ok', 'x');
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(
      /node edge-offline: not delivered: node edge-offline is not connected to this cloudcore/,
    );
    let status: RuleStatus = {};
    await waitFor(
      async () => ((status = await ruleStatus('my-rule-rest-servicebus')).failMessages ?? 0) > before,
      {
        what: 'failMessages up',
        timeoutMs: 15_000,
        intervalMs: 200,
      },
    );
    expect(status.errors?.[0]).toMatch(/edge-offline is not connected/);
  }, 60_000);

  it('a deleted rule stops routing', async () => {
    await stack.cp.kubectl(['delete', 'rule', 'my-rule', '-n', 'default']);
    await waitFor(
      async () => {
        const res = await post(`/${NODE}/default/test`, 'after delete');
        await res.arrayBuffer();
        return res.status === 404;
      },
      { what: 'POST /test answered 404 after the rule was deleted', timeoutMs: 15_000 },
    );
  }, 60_000);

  it('a rule naming a missing endpoint gets a status error naming the field', async () => {
    await stack.apply([rule('broken', 'my-rest', { path: '/b' }, 'nope', { topic: 't' })]);
    let status: RuleStatus = {};
    await waitFor(async () => ((status = await ruleStatus('broken')).errors ?? []).length > 0, {
      what: 'status.errors of rule broken',
      timeoutMs: 15_000,
      intervalMs: 200,
    });
    expect(status.errors).toEqual(['spec.target: RuleEndpoint "nope" not found in namespace default']);
  }, 60_000);
});
