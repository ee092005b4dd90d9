/**
 * Unit tests of the informer loop and of retries with an in-process fake apiserver (node:http on
 * loopback), for what a real control plane cannot be made to do on demand: a watch answered 410
 * Gone, a watch connection cut, a 429 with Retry-After. The real apiserver is in kube.test.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/peers/util.js';
import { createLogger } from '../log.js';
import { createKubeApi, type KubeApi } from './index.js';

const log = createLogger('fatal');

interface Obj {
  metadata: { name: string; namespace: string; resourceVersion: string };
}
const cm = (name: string, rv: string): Obj => ({ metadata: { name, namespace: 'ns', resourceVersion: rv } });

let server: Server | undefined;
let kube: KubeApi | undefined;
afterEach(async () => {
  kube?.stop();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

async function fakeApiserver(
  handle: (req: IncomingMessage, res: ServerResponse, url: URL) => void,
): Promise<KubeApi> {
  server = createServer((req, res) => handle(req, res, new URL(req.url ?? '/', 'http://x')));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  kube = createKubeApi(
    { master: `http://127.0.0.1:${port}`, kubeConfig: '', contentType: '', qps: 100, burst: 100 },
    log,
  );
  return kube;
}

const json = (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void => {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers }).end(JSON.stringify(body));
};

describe('informer loop', () => {
  it('relists after 410 Gone, resumes after a cut watch, and tells handlers what changed', async () => {
    const lists: string[] = [];
    const watches: string[] = [];
    const api = await fakeApiserver((req, res, url) => {
      if (url.pathname !== '/api/v1/configmaps') return json(res, 404, { message: 'no' });
      if (url.searchParams.get('watch') !== 'true') {
        lists.push(url.search);
        const first = lists.length === 1;
        return json(res, 200, {
          kind: 'ConfigMapList',
          apiVersion: 'v1',
          metadata: { resourceVersion: first ? '10' : '20' },
          items: first ? [cm('a', '1'), cm('b', '1')] : [cm('a', '12'), cm('c', '12')],
        });
      }
      watches.push(url.searchParams.get('resourceVersion') ?? '');
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const send = (type: string, object: unknown): boolean =>
        res.write(`${JSON.stringify({ type, object })}\n`);
      if (watches.length === 1) {
        send('MODIFIED', cm('a', '11'));
        send('ERROR', { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' });
        res.end();
      } else if (watches.length === 2) {
        send('BOOKMARK', { metadata: { resourceVersion: '21' } });
        setImmediate(() => res.socket?.destroy()); // the connection is cut
      } else {
        send('ADDED', cm('d', '22'));
      }
    });
    const events: string[] = [];
    const informer = api.informer<Obj & { kind?: string }>({ version: 'v1', resource: 'configmaps' });
    informer.addHandlers({
      add: (o) => events.push(`add ${o.metadata.name} ${o.metadata.resourceVersion}`),
      update: (o) => events.push(`update ${o.metadata.name} ${o.metadata.resourceVersion}`),
      delete: (o) => events.push(`delete ${o.metadata.name}`),
    });
    await informer.synced;
    expect(informer.get('a', 'ns')?.kind).toBe('ConfigMap'); // list items get the list's kind
    await waitFor(() => events.includes('add d 22'), { what: 'the event of the third watch' });
    expect(events).toEqual([
      'add a 1',
      'add b 1',
      'update a 11',
      // relist after 410: what changed meanwhile
      'delete b',
      'update a 12',
      'add c 12',
      'add d 22',
    ]);
    expect(watches).toEqual(['10', '20', '21']); // the cut watch resumes from the bookmark
    expect(lists).toHaveLength(2);
    expect(informer.list().map((o) => o.metadata.name)).toEqual(['a', 'c', 'd']);
    expect(api.stats()).toMatchObject({ lists: 2, watches: 3, informers: 1 });
  });
});

describe('request', () => {
  it('sends again after 429 with Retry-After and types the final error', async () => {
    let calls = 0;
    const api = await fakeApiserver((req, res, url) => {
      calls++;
      if (url.pathname === '/api/v1/namespaces/x') {
        if (calls === 1)
          return json(res, 429, { message: 'storage is (re)initializing' }, { 'Retry-After': '0' });
        return json(res, 200, { metadata: { name: 'x' } });
      }
      json(res, 404, { kind: 'Status', message: 'namespaces "y" not found', reason: 'NotFound', code: 404 });
    });
    expect(await api.request('GET', '/api/v1/namespaces/x')).toEqual({ metadata: { name: 'x' } });
    expect(api.stats()).toMatchObject({ requests: 2, retries: 1 });
    await expect(api.request('GET', '/api/v1/namespaces/y')).rejects.toMatchObject({
      code: 'EKUBE_API',
      statusCode: 404,
      reason: 'NotFound',
      message: 'GET /api/v1/namespaces/y: 404 namespaces "y" not found',
    });
  });
});
