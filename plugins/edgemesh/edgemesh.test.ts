/**
 * edgeMesh on a real kernel with metaManager (SQLite file): Services and Endpoints pushed as the
 * cloud pushes them reach edgeMesh through metaManager; `dig` (UDP and TCP) resolves the names;
 * an HTTP GET on the service port is proxied to the endpoint; other names go to the upstream of
 * resolv.conf; no ready endpoint gives an empty answer and a reset connection; after a restart
 * without any cloud the stored services still answer.
 */
import { createSocket } from 'node:dgram';
import { writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../kernel/config/index.js';
import { newMessage } from '../../kernel/index.js';
import { dig } from '../../test/helpers/dig.js';
import { startTestKernel, type TestKernel } from '../../test/helpers/kernel.js';
import { cleanup, freePort, tempDir, waitFor } from '../../test/peers/util.js';
import { httpGet } from '../../test/integration/edge-stack.js';
import { edgeLayout, edgeRegistry } from '../registry.js';

const NAME = 'nginx-svc.default.svc.cluster.local';
/** The stub upstream nameserver (resolv.conf holds addresses only, so it listens on port 53). */
const UPSTREAM = '127.0.0.153';

let dir: string;
let dnsPort: number;
let metaPort: number;
let svcPort: number;
let web: Server;
let webPort: number;
let upstream: { close(): void };
let k: TestKernel | undefined;

const registry = edgeRegistry.filter((e) => ['metaManager', 'edgeMesh'].includes(e.configKey));

async function startEdge(db = 'edgecore.db', meta = metaPort): Promise<TestKernel> {
  const yaml = `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${join(dir, db)}
modules:
  edged: {enable: false}
  edgeHub: {enable: false}
  eventBus: {enable: false}
  deviceTwin: {enable: false}
  metaManager: {enable: true, metaServer: {enable: true, server: "127.0.0.1:${meta}"}}
  edgeMesh: {enable: true, listenAddress: 127.0.0.1, dnsPort: ${dnsPort}, resolvConf: ${join(dir, 'resolv.conf')}}
`;
  return startTestKernel(yaml, registry);
}

const service = (rv: string): object => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'nginx-svc', namespace: 'default', resourceVersion: rv },
  spec: { clusterIP: 'None', ports: [{ name: 'http-0', port: svcPort, protocol: 'TCP', targetPort: 80 }] },
});
const endpoints = (rv: string, ips: string[]): object => ({
  apiVersion: 'v1',
  kind: 'Endpoints',
  metadata: { name: 'nginx-svc', namespace: 'default', resourceVersion: rv },
  subsets: ips.length
    ? [{ addresses: ips.map((ip) => ({ ip })), ports: [{ name: 'http-0', port: webPort }] }]
    : [],
});

/** As edgeController's push arrives through edgeHub: to metaManager, source edgecontroller. */
async function push(operation: string, type: string, obj: object): Promise<void> {
  await k!.kernel.bus.send(
    'metamanager',
    newMessage(
      { source: 'edgecontroller', group: 'resource', operation, resource: `default/${type}/nginx-svc` },
      obj,
    ),
  );
}

/** A stub upstream nameserver: `example.test` A 192.0.2.99, over UDP and TCP. */
function startUpstream(): Promise<{ close(): void }> {
  const answer = (q: Buffer): Buffer => {
    const p = dnsPacket.decode(q);
    return dnsPacket.encode({
      type: 'response',
      id: p.id,
      flags: dnsPacket.RECURSION_AVAILABLE,
      questions: p.questions,
      answers: [{ type: 'A', name: p.questions?.[0]?.name ?? '', ttl: 60, data: '192.0.2.99' }],
    });
  };
  const udp = createSocket('udp4');
  udp.on('message', (q, r) => udp.send(answer(q), r.port, r.address));
  const tcp: TcpServer = createTcpServer((s) =>
    s.once('data', (d: Buffer) => {
      const a = answer(d.subarray(2));
      const head = Buffer.alloc(2);
      head.writeUInt16BE(a.length);
      s.end(Buffer.concat([head, a]));
    }),
  );
  return new Promise((resolve) =>
    udp.bind(53, UPSTREAM, () =>
      tcp.listen(53, UPSTREAM, () =>
        resolve({
          close() {
            udp.close();
            tcp.close();
          },
        }),
      ),
    ),
  );
}

beforeAll(async () => {
  dir = await tempDir('edgemesh');
  [dnsPort, svcPort, metaPort] = [await freePort(), await freePort(), await freePort()];
  await writeFile(join(dir, 'resolv.conf'), `nameserver 127.0.0.1\nnameserver ${UPSTREAM}\n`);
  upstream = await startUpstream();
  // one connection per request (no keep-alive): a GET after a change goes through the proxy again
  web = createHttpServer((_req, res) => res.setHeader('connection', 'close').end('hello-from-nginx\n'));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webPort = (web.address() as { port: number }).port;
  k = await startEdge();
});

afterAll(async () => {
  await k?.kernel.stop();
  upstream?.close();
  web?.close();
  await cleanup();
});

describe('edgeMesh: service names at the edge', () => {
  it('resolves a pushed service over UDP and TCP and proxies its port to the endpoint', async () => {
    await push('insert', 'service', service('10'));
    await push('insert', 'endpoints', endpoints('11', ['127.0.0.1']));
    await waitFor(async () => (await dig('127.0.0.1', dnsPort, NAME)).answers.length === 1, {
      what: `${NAME} answered`,
    });
    expect(await dig('127.0.0.1', dnsPort, NAME)).toEqual({ status: 'NOERROR', answers: ['A 127.0.0.1'] });
    expect(await dig('127.0.0.1', dnsPort, NAME, { tcp: true })).toEqual({
      status: 'NOERROR',
      answers: ['A 127.0.0.1'],
    });
    // the short forms (a host resolver without the pod's search path)
    expect((await dig('127.0.0.1', dnsPort, 'nginx-svc.default')).answers).toEqual(['A 127.0.0.1']);
    expect((await dig('127.0.0.1', dnsPort, 'nginx-svc.default.svc')).answers).toEqual(['A 127.0.0.1']);
    // no AAAA (the mesh address is IPv4), no such service, nothing else in the cluster domain
    expect(await dig('127.0.0.1', dnsPort, NAME, { type: 'AAAA' })).toEqual({
      status: 'NOERROR',
      answers: [],
    });
    expect((await dig('127.0.0.1', dnsPort, 'nope.default.svc.cluster.local')).status).toBe('NXDOMAIN');
    expect((await dig('127.0.0.1', dnsPort, 'a.b.c.cluster.local')).status).toBe('NXDOMAIN');

    expect(await httpGet(svcPort)).toBe('hello-from-nginx\n');
    // metaManager stored both where metaServer lists them
    const list = async (what: string): Promise<string[]> =>
      (
        JSON.parse(await httpGet(metaPort, `/api/v1/namespaces/default/${what}`)) as {
          items: { metadata: { name: string } }[];
        }
      ).items.map((i) => i.metadata.name);
    expect(await list('services')).toEqual(['nginx-svc']);
    expect(await list('endpoints')).toEqual(['nginx-svc']);
  });

  it('forwards other names to the nameservers of resolv.conf (skipping its own address)', async () => {
    expect(await dig('127.0.0.1', dnsPort, 'example.test')).toEqual({
      status: 'NOERROR',
      answers: ['A 192.0.2.99'],
    });
    expect((await dig('127.0.0.1', dnsPort, 'example.test', { tcp: true })).answers).toEqual([
      'A 192.0.2.99',
    ]);
  });

  it('no ready endpoint: the name answers with no address and a connection to the port is reset', async () => {
    await push('update', 'endpoints', endpoints('12', []));
    await waitFor(async () => (await dig('127.0.0.1', dnsPort, NAME)).answers.length === 0, {
      what: `${NAME} without an address`,
    });
    expect(await dig('127.0.0.1', dnsPort, NAME)).toEqual({ status: 'NOERROR', answers: [] });
    await expect(httpGet(svcPort)).rejects.toMatchObject({ cause: { code: 'ECONNRESET' } });
    // an older version arriving late changes nothing
    await push('update', 'endpoints', endpoints('11', ['127.0.0.1']));
    await push('update', 'endpoints', endpoints('13', ['127.0.0.1']));
    await waitFor(async () => (await dig('127.0.0.1', dnsPort, NAME)).answers.length === 1, {
      what: `${NAME} with its endpoint again`,
    });
  });

  it('answers from the store after a restart, ignores bad messages, and closes a deleted service port', async () => {
    await k!.kernel.stop();
    k = await startEdge();
    expect(await dig('127.0.0.1', dnsPort, NAME)).toEqual({ status: 'NOERROR', answers: ['A 127.0.0.1'] });
    expect(await httpGet(svcPort)).toBe('hello-from-nginx\n');

    await k.kernel.bus.send(
      'edgemesh',
      newMessage(
        { source: 'metamanager', group: 'resource', operation: 'update', resource: 'default/service/x' },
        '{',
      ),
    );
    await push('delete', 'service', service('14'));
    await waitFor(async () => (await dig('127.0.0.1', dnsPort, NAME)).status === 'NXDOMAIN', {
      what: `${NAME} gone`,
    });
    await expect(httpGet(svcPort)).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
    expect(k.kernel.host('edgemesh')?.failures).toBe(0);
  });

  it('refuses a bad section naming the field, and a DNS port it cannot bind', async () => {
    const yaml = (section: string): string =>
      `apiVersion: edgecore.config.kubeedge.io/v1alpha2\nkind: EdgeCore\nmodules:\n  edgeMesh: ${section}\n`;
    expect(() =>
      parseConfig(
        edgeLayout,
        yaml('{enable: true, listenAddress: node-1, clusterDomain: "Cluster Local"}'),
        'e.yaml',
      ),
    ).toThrow(
      /modules\.edgeMesh\.listenAddress: expected an IPv4 address, got "node-1"[\s\S]*modules\.edgeMesh\.clusterDomain: expected a DNS domain/,
    );
    // the running instance holds dnsPort: a second one cannot start, and says where
    await expect(startEdge('second.db', await freePort())).rejects.toThrow(
      new RegExp(`modules\\.edgeMesh: DNS cannot listen on 127\\.0\\.0\\.1:${dnsPort}`),
    );
  });
});
