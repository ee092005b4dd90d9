import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newResponse } from '../../../kernel/index.js';
import { freePort, requirePeer } from '../../../test/peers/util.js';
import { cloudMsg, configMap, pod, startMeta, type MetaHarness } from '../testdata/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'metaserver-'));
let h: MetaHarness;
let base: string;
let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;

function kubeConfig(server: string): k8s.KubeConfig {
  const c = new k8s.KubeConfig();
  c.loadFromOptions({
    clusters: [{ name: 'edge', server, skipTLSVerify: true }],
    users: [{ name: 'anon' }],
    contexts: [{ name: 'edge', cluster: 'edge', user: 'anon' }],
    currentContext: 'edge',
  });
  return c;
}

async function feed(msg: ReturnType<typeof cloudMsg>): Promise<void> {
  await h.send(msg);
  await h.waitFor('ack', () => h.cloud.some((m) => m.header.parent_msg_id === msg.header.msg_id));
}

beforeAll(async () => {
  const port = await freePort();
  h = await startMeta({ dataSource: join(dir, 'edgecore.db'), metaServer: `127.0.0.1:${port}` });
  base = `http://127.0.0.1:${port}`;
  kc = kubeConfig(base);
  core = kc.makeApiClient(k8s.CoreV1Api);
  await feed(
    cloudMsg(
      'insert',
      'default/pod/web-1',
      pod('web-1', '10', { labels: { app: 'web', tier: 'front' } }),
      '10',
    ),
  );
  await feed(cloudMsg('insert', 'default/pod/db-1', pod('db-1', '11', { labels: { app: 'db' } }), '11'));
  await feed(
    cloudMsg(
      'insert',
      'kube-system/pod/proxy',
      pod('proxy', '12', { ns: 'kube-system', node: 'edge-2' }),
      '12',
    ),
  );
  await feed(cloudMsg('insert', 'default/configmap/app-config', configMap('app-config', '13'), '13'));
  await feed(
    cloudMsg(
      'update',
      'default/secret/s1',
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 's1', namespace: 'default', resourceVersion: '14' },
        data: { a: 'Yg==' },
      },
      '14',
    ),
  );
  await feed(
    cloudMsg(
      'update',
      'null/node/edge-1',
      { apiVersion: 'v1', kind: 'Node', metadata: { name: 'edge-1', resourceVersion: '15' } },
      '15',
    ),
  );
  await feed(
    cloudMsg(
      'insert',
      'default/service/web',
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web', namespace: 'default', resourceVersion: '16' },
        spec: { ports: [{ port: 80 }] },
      },
      '16',
      'dynamiccontroller',
    ),
  );
  await feed(
    cloudMsg(
      'insert',
      'default/endpoints/web',
      {
        apiVersion: 'v1',
        kind: 'Endpoints',
        metadata: { name: 'web', namespace: 'default', resourceVersion: '17' },
        subsets: [],
      },
      '17',
      'dynamiccontroller',
    ),
  );
  await feed(
    cloudMsg(
      'insert',
      'kube-node-lease/leases/edge-1',
      {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: 'edge-1', namespace: 'kube-node-lease', resourceVersion: '18' },
        spec: { holderIdentity: 'edge-1' },
      },
      '18',
      'dynamiccontroller',
    ),
  );
});

afterAll(async () => {
  await h?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('metaServer with @kubernetes/client-node', () => {
  it('lists pods (all namespaces, one namespace, label and field selectors) as a real PodList', async () => {
    const all = await core.listPodForAllNamespaces();
    expect(all.kind).toBe('PodList');
    expect(all.metadata?.resourceVersion).toBe('18');
    expect(all.items.map((p) => p.metadata?.name).sort()).toEqual(['db-1', 'proxy', 'web-1']);
    const ns = await core.listNamespacedPod({ namespace: 'default' });
    expect(ns.items.map((p) => p.metadata?.name).sort()).toEqual(['db-1', 'web-1']);
    const sel = await core.listNamespacedPod({
      namespace: 'default',
      labelSelector: 'app in (web),tier=front',
    });
    expect(sel.items.map((p) => p.metadata?.name)).toEqual(['web-1']);
    const notdb = await core.listPodForAllNamespaces({ labelSelector: 'app!=db' });
    expect(notdb.items.map((p) => p.metadata?.name).sort()).toEqual(['proxy', 'web-1']);
    const node2 = await core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=edge-2' });
    expect(node2.items.map((p) => p.metadata?.name)).toEqual(['proxy']);
  });

  it('gets configmaps, secrets, services, endpoints, nodes and leases', async () => {
    const cm = await core.readNamespacedConfigMap({ name: 'app-config', namespace: 'default' });
    expect(cm.data).toEqual({ key: 'value-app-config' });
    expect((await core.readNamespacedSecret({ name: 's1', namespace: 'default' })).data).toEqual({
      a: 'Yg==',
    });
    expect(
      (await core.readNamespacedService({ name: 'web', namespace: 'default' })).spec?.ports?.[0]?.port,
    ).toBe(80);
    expect((await core.readNamespacedEndpoints({ name: 'web', namespace: 'default' })).metadata?.name).toBe(
      'web',
    );
    expect((await core.readNode({ name: 'edge-1' })).metadata?.resourceVersion).toBe('15');
    expect((await core.listNode()).items.length).toBe(1);
    const coord = kc.makeApiClient(k8s.CoordinationV1Api);
    expect(
      (await coord.readNamespacedLease({ name: 'edge-1', namespace: 'kube-node-lease' })).spec
        ?.holderIdentity,
    ).toBe('edge-1');
    expect((await core.listNamespacedConfigMap({ namespace: 'default' })).items.length).toBe(1);
  });

  it('a missing object is a 404 Status, as kube-apiserver answers', async () => {
    const err = await core.readNamespacedPod({ name: 'nope', namespace: 'default' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(k8s.ApiException);
    const e = err as k8s.ApiException<string>;
    expect(e.code).toBe(404);
    expect(JSON.parse(e.body)).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'pods "nope" not found',
      reason: 'NotFound',
      details: { name: 'nope', group: '', kind: 'pods' },
      code: 404,
    });
  });

  it('Watch: ADDED for what exists, then live MODIFIED / ADDED / DELETED', async () => {
    const events: [string, string][] = [];
    const watch = new k8s.Watch(kc);
    const ctl = await watch.watch(
      '/api/v1/namespaces/default/pods',
      {},
      (type, obj: k8s.V1Pod) => events.push([type, obj.metadata!.name!]),
      () => undefined,
    );
    await h.waitFor('initial ADDED', () => events.length === 2);
    await feed(
      cloudMsg(
        'update',
        'default/pod/web-1',
        pod('web-1', '20', { labels: { app: 'web', tier: 'front' } }),
        '20',
      ),
    );
    await feed(cloudMsg('insert', 'default/pod/web-2', pod('web-2', '21'), '21'));
    await feed(cloudMsg('insert', 'kube-system/pod/other', pod('other', '22', { ns: 'kube-system' }), '22'));
    await feed(cloudMsg('delete', 'default/pod/web-2', pod('web-2', '23'), '23'));
    await h.waitFor('live events', () => events.length === 5);
    ctl.abort();
    expect(events.slice(0, 2).map((e) => e[0])).toEqual(['ADDED', 'ADDED']);
    expect(events.slice(2)).toEqual([
      ['MODIFIED', 'web-1'],
      ['ADDED', 'web-2'],
      ['DELETED', 'web-2'],
    ]);
  });

  it('an informer lists, then watches from the list resourceVersion', async () => {
    const path = '/api/v1/namespaces/default/configmaps';
    const informer = k8s.makeInformer(kc, path, () => core.listNamespacedConfigMap({ namespace: 'default' }));
    const added: string[] = [];
    informer.on('add', (cm) => added.push(cm.metadata!.name!));
    await informer.start();
    await h.waitFor('initial add', () => added.includes('app-config'));
    await feed(cloudMsg('insert', 'default/configmap/late', configMap('late', '30'), '30'));
    await h.waitFor('watch add', () => added.includes('late'));
    expect(
      informer
        .list('default')
        .map((c) => c.metadata!.name)
        .sort(),
    ).toEqual(['app-config', 'late']);
    await informer.stop();
  });
});

describe('metaServer errors and writes', () => {
  it('unknown resource 404, bad selector / resourceVersion / body 400: Status objects, no stack', async () => {
    const get = async (path: string, init?: RequestInit) => {
      const r = await fetch(base + path, init);
      return { code: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    const unknown = await get('/api/v1/foos');
    expect(unknown).toEqual({
      code: 404,
      body: {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: 'the server could not find the requested resource',
        reason: 'NotFound',
        code: 404,
      },
    });
    const badSel = await get('/api/v1/pods?labelSelector=' + encodeURIComponent('a b c'));
    expect(badSel.code).toBe(400);
    expect(badSel.body).toMatchObject({ kind: 'Status', reason: 'BadRequest', code: 400 });
    const badField = await get('/api/v1/pods?fieldSelector=spec.foo%3Dx');
    expect(badField.body.message).toMatch(/field label not supported: spec\.foo/);
    const badRv = await get('/api/v1/pods?watch=true&resourceVersion=abc');
    expect(badRv).toMatchObject({ code: 400, body: { reason: 'BadRequest' } });
    const badBody = await get('/api/v1/namespaces/default/configmaps', { method: 'POST', body: '{nope' });
    expect(badBody).toMatchObject({ code: 400, body: { reason: 'BadRequest' } });
    expect(JSON.stringify([unknown, badSel, badRv, badBody])).not.toMatch(/ at .*\.ts/);
  });

  it('a watch from a resourceVersion replays what happened after it, then ends at timeoutSeconds', async () => {
    const r = await fetch(
      `${base}/api/v1/namespaces/default/pods?watch=true&resourceVersion=20&timeoutSeconds=1`,
    );
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    const lines = (await r.text())
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as { type: string; object: { metadata: { name: string; resourceVersion: string } } },
      );
    expect(lines.map((l) => [l.type, l.object.metadata.name, l.object.metadata.resourceVersion])).toEqual([
      ['ADDED', 'web-2', '21'],
      ['DELETED', 'web-2', '23'],
    ]);
  });

  it('writes: 500 "connection lost" offline; online an Application to the cloud, its RespBody returned', async () => {
    const body = JSON.stringify(configMap('new', ''));
    h.kernel.cloud.set(false);
    const off = await fetch(`${base}/api/v1/namespaces/default/configmaps`, { method: 'POST', body });
    expect(off.status).toBe(500);
    expect(((await off.json()) as { message: string }).message).toMatch(
      /connection lost between EdgeCore and CloudCore/,
    );
    h.kernel.cloud.set(true);
    h.answer = (req) => {
      const app = req.content as Record<string, unknown>;
      const reply = newResponse(req, {
        ...app,
        Status: 'Approved',
        RespBody: Buffer.from(body).toString('base64'),
      });
      reply.route = {
        source: 'dynamiccontroller',
        group: 'resource',
        operation: 'applicationResponse',
        resource: 'ignore/Application/ignore',
      };
      return reply;
    };
    const cm = await core.createNamespacedConfigMap({
      namespace: 'default',
      body: configMap('new', '') as k8s.V1ConfigMap,
    });
    expect(cm.metadata?.name).toBe('new');
    const sent = h.cloud.find((m) => m.route.source === 'metaserver')!;
    expect(sent.route).toEqual({
      source: 'metaserver',
      group: 'dynamiccontroller',
      operation: 'null',
      resource: 'null',
    });
    expect(sent.content).toMatchObject({
      Key: '/core/v1/configmaps/default/null',
      Verb: 'create',
      Nodename: 'edge-1',
      Status: 'PreApplying',
    });
    h.answer = undefined;
  });
});

describe('metaServer with kubectl', () => {
  let kubectl: string;
  beforeAll(() => {
    try {
      kubectl = requirePeer('kubectl');
    } catch {
      throw new Error(
        'kubectl is not installed: install Debian\'s "kubernetes-client" (or any kubectl on PATH)',
      );
    }
  });

  it('kubectl get pods -A -o json, get configmap, get nodes', async () => {
    // Asynchronous: metaServer runs in this process and must keep serving while kubectl runs.
    const run = async (...args: string[]) =>
      promisify(execFile)(kubectl, ['--server', base, '--cache-dir', join(dir, 'kubectl-cache'), ...args], {
        encoding: 'utf8',
        timeout: 20_000,
      }).then(
        (r) => ({ ...r, status: 0 }),
        (e: { stdout: string; stderr: string; code: number }) => ({
          stdout: e.stdout,
          stderr: e.stderr,
          status: e.code,
        }),
      );
    const pods = await run('get', 'pods', '-A', '-o', 'json');
    expect(pods.stderr).toBe('');
    const list = JSON.parse(pods.stdout) as { kind: string; items: { metadata: { name: string } }[] };
    expect(list.kind).toBe('List');
    expect(list.items.map((p) => p.metadata.name).sort()).toEqual(['db-1', 'other', 'proxy', 'web-1']);
    const cm = await run('get', 'configmap', 'app-config', '-n', 'default', '-o', 'jsonpath={.data.key}');
    expect(cm.stdout).toBe('value-app-config');
    const nodes = await run('get', 'nodes', '-o', 'name');
    expect(nodes.stdout.trim()).toBe('node/edge-1');
    const missing = await run('get', 'pod', 'nope', '-n', 'default');
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/pods "nope" not found/);
  });

  it('kubectl get --watch streams a pod the cloud pushes', async () => {
    const child = spawn(
      kubectl,
      [
        '--server',
        base,
        '--cache-dir',
        join(dir, 'kubectl-cache'),
        'get',
        'pods',
        '-n',
        'default',
        '--watch',
        '-o',
        'name',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await h.waitFor('initial lines', () => out.includes('pod/web-1'), 15_000);
      await feed(cloudMsg('insert', 'default/pod/watched', pod('watched', '40'), '40'));
      await h.waitFor('watched pod', () => out.includes('pod/watched'), 10_000);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
