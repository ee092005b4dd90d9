/**
 * The cloud's Kubernetes service against a real control plane (test/peers/kube.ts), as the
 * `cloudcore` ServiceAccount: shared informers (one watch for two users, counted here and by the
 * apiserver), events and cache of real objects, stop, API clients; the kernel registers it for a
 * cloudcore config only; an edgecore process never loads @kubernetes/client-node.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CoreV1Api as CoreV1ApiType, V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultModulesYaml } from '../../test/bench/startup.js';
import { startControlPlane, type ControlPlane } from '../../test/peers/kube.js';
import { cleanup, freePort, tempDir, waitFor } from '../../test/peers/util.js';
import type { LoadedConfig } from '../config/index.js';
import { provideKernelServices } from '../kernel-services.js';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics.js';
import { ServiceRegistry } from '../services.js';
import { CloudConnection, KubeToken } from '../tokens.js';
import { createKubeApi, informerKey, type KubeApi } from './index.js';
import { InFlightLimit, TokenBucket, retryDelay } from './limiter.js';

afterAll(cleanup);

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const log = createLogger('warn');

/** One sample of a Prometheus metric with the given labels (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const m = /^[^{]+\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const have = Object.fromEntries(
      [...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!] as const),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[2]);
  }
  return 0;
}

describe('informerKey', () => {
  it('builds collection paths and keys from group/version/resource or a path', () => {
    expect(informerKey({ version: 'v1', resource: 'nodes' })).toEqual({
      key: '/api/v1/nodes',
      path: '/api/v1/nodes',
    });
    expect(
      informerKey({ group: 'devices.kubeedge.io', version: 'v1beta1', resource: 'devices', namespace: 'ns1' })
        .path,
    ).toBe('/apis/devices.kubeedge.io/v1beta1/namespaces/ns1/devices');
    expect(
      informerKey({ path: '/api/v1/pods/', labelSelector: 'a=b', fieldSelector: 'spec.nodeName=n1' }).key,
    ).toBe('/api/v1/pods?labelSelector=a%3Db&fieldSelector=spec.nodeName%3Dn1');
    expect(() => informerKey({ resource: 'pods' })).toThrow(/give path, or version and resource/);
    expect(() => informerKey({ path: 'api/v1/pods' })).toThrow(/collection path/);
  });
});

describe('TokenBucket', () => {
  afterEach(() => vi.useRealTimers());

  it('lets a burst through at once, then one request per 1/qps seconds, in call order', async () => {
    vi.useFakeTimers();
    const bucket = new TokenBucket(1, 2);
    const done: number[] = [];
    const takes = [1, 2, 3, 4].map((n) => bucket.take().then(() => done.push(n)));
    await vi.advanceTimersByTimeAsync(0);
    expect(done).toEqual([1, 2]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(done).toEqual([1, 2, 3]);
    await vi.advanceTimersByTimeAsync(1000);
    await Promise.all(takes);
    expect(done).toEqual([1, 2, 3, 4]);
  });
});

describe('InFlightLimit', () => {
  it('runs at most max at once, the others in call order as slots free', async () => {
    const limit = new InFlightLimit(2);
    const started: number[] = [];
    const release = new Map<number, () => void>();
    const runs = [1, 2, 3, 4].map((n) =>
      limit.run(
        () =>
          new Promise<number>((resolve) => {
            started.push(n);
            release.set(n, () => resolve(n));
          }),
      ),
    );
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([1, 2]);
    release.get(2)!();
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([1, 2, 3]);
    release.get(1)!();
    release.get(3)!();
    await new Promise((r) => setImmediate(r));
    release.get(4)!();
    expect(await Promise.all(runs)).toEqual([1, 2, 3, 4]);
  });

  it('lets a waiting caller whose signal aborts leave the line: its work never runs', async () => {
    const limit = new InFlightLimit(1);
    let release = (): void => undefined;
    const first = limit.run(() => new Promise<void>((resolve) => (release = resolve)));
    const abort = new AbortController();
    let ran = false;
    const left = limit.run(
      async () => void (ran = true),
      abort.signal,
      () => new Error('left'),
    );
    const next = limit.run(async () => 'next');
    abort.abort();
    await expect(left).rejects.toThrow('left');
    release();
    await first;
    expect(await next).toBe('next');
    expect(ran).toBe(false);
  });
});

describe('retryDelay', () => {
  it('retries 429 and 502/503/504 as client-go does, Retry-After first, else 1 s doubling', () => {
    expect(retryDelay(429, '3', 0)).toBe(3000);
    expect(retryDelay(503, undefined, 2)).toBe(4000);
    expect(retryDelay(504, 'soon', 10)).toBeUndefined();
    expect(retryDelay(500, '1', 0)).toBeUndefined();
    expect(retryDelay(404, '1', 0)).toBeUndefined();
    expect(retryDelay(429, '600', 0)).toBe(30_000);
  });
});

describe('KubeToken registration', () => {
  const deps = (kind: 'edgecore' | 'cloudcore', config: object) => ({
    config: {
      kind,
      file: 'x.yaml',
      apiVersion: '',
      config,
      warnings: [],
      unknownModules: [],
    } as unknown as LoadedConfig,
    log,
    metrics: new Metrics(),
    cloud: new CloudConnection(),
  });

  it('is provided for a cloudcore config only', () => {
    const edge = new ServiceRegistry();
    provideKernelServices(edge, deps('edgecore', {}))();
    expect(edge.has(KubeToken)).toBe(false);
    const cloud = new ServiceRegistry();
    const kubeAPIConfig = {
      master: '',
      contentType: '',
      qps: 7,
      burst: 9,
      kubeConfig: '/nonexistent/kubeconfig',
    };
    const release = provideKernelServices(cloud, deps('cloudcore', { kubeAPIConfig }));
    expect(cloud.has(KubeToken)).toBe(true);
    expect(cloud.get(KubeToken).qps).toBe(7);
    expect(cloud.get(KubeToken)).toBe(cloud.get(KubeToken));
    release();
  });

  it('is not provided for a cloudcore that names no cluster', () => {
    const none = new ServiceRegistry();
    const kubeAPIConfig = { master: '', contentType: '', qps: 0, burst: 0, kubeConfig: '' };
    provideKernelServices(none, deps('cloudcore', { kubeAPIConfig }))();
    expect(none.has(KubeToken)).toBe(false);
  });

  it('names the kubeconfig field when the file cannot be loaded', async () => {
    const kube = createKubeApi(
      { master: '', contentType: '', qps: 0, burst: 0, kubeConfig: '/nonexistent/kubeconfig' },
      log,
    );
    expect(kube.qps).toBe(5);
    await expect(kube.request('GET', '/api')).rejects.toMatchObject({
      code: 'EKUBE_CONFIG',
      message: expect.stringMatching(
        /^kubeAPIConfig\.kubeConfig \(\/nonexistent\/kubeconfig\): cannot load: ENOENT/,
      ),
    });
    const informer = kube.informer({ version: 'v1', resource: 'nodes' });
    await expect(informer.synced).rejects.toThrow(/kubeAPIConfig\.kubeConfig/);
    kube.stop();
  });
});

describe('kube service on a real control plane', () => {
  let plane: ControlPlane;
  let kube: KubeApi;
  let core: CoreV1ApiType;
  const ns = 'kubeedge';

  beforeAll(async () => {
    plane = await startControlPlane();
    kube = createKubeApi(
      {
        master: '',
        contentType: 'application/vnd.kubernetes.protobuf',
        qps: 50,
        burst: 100,
        kubeConfig: plane.cloudcoreKubeconfigPath,
      },
      log,
    );
    const { CoreV1Api } = await import('@kubernetes/client-node');
    core = await kube.api(CoreV1Api);
  }, 3_600_000);

  afterAll(() => kube?.stop());

  /**
   * Watches of configmaps in a namespace open at the apiserver now (`apiserver_longrunning_requests`;
   * v1.34 no longer has `apiserver_registered_watchers`).
   */
  const configMapWatches = async (): Promise<number> => {
    const res = await plane.get('/metrics');
    expect(res.status).toBe(200);
    return sample(res.body, 'apiserver_longrunning_requests', {
      verb: 'WATCH',
      resource: 'configmaps',
      scope: 'namespace',
    });
  };

  it('serves two users of one informer with one list and one watch, and the last stop ends it', async () => {
    const before = kube.stats();
    const baseline = await configMapWatches();
    const a = kube.informer<V1ConfigMap>({ version: 'v1', resource: 'configmaps', namespace: ns });
    const b = kube.informer<V1ConfigMap>({ path: `/api/v1/namespaces/${ns}/configmaps` });
    expect(b.key).toBe(a.key);
    await Promise.all([a.synced, b.synced]);
    // the apiserver sees exactly one more watch of configmaps in a namespace
    await waitFor(async () => (await configMapWatches()) === baseline + 1, {
      what: 'apiserver_longrunning_requests{verb="WATCH",resource="configmaps"} + 1',
    });
    expect(kube.stats().watches - before.watches).toBe(1);
    expect(kube.stats().lists - before.lists).toBe(1);
    expect(kube.stats().informers).toBe(before.informers + 1);

    a.stop();
    expect(kube.stats().informers).toBe(before.informers + 1); // b still uses it
    b.stop();
    expect(kube.stats().informers).toBe(before.informers);
    await waitFor(async () => (await configMapWatches()) === baseline, {
      what: 'the configmaps watch to end at the apiserver',
    });
  });

  it('gives handlers the add, update and delete of real objects and answers get/list from its cache', async () => {
    const events: string[] = [];
    const abort = new AbortController();
    const informer = kube.informer<V1ConfigMap>({
      version: 'v1',
      resource: 'configmaps',
      namespace: ns,
      labelSelector: 'test=informer',
      signal: abort.signal,
    });
    informer.addHandlers({
      add: (o) => events.push(`add ${o.metadata?.name} ${o.data?.k}`),
      update: (o) => events.push(`update ${o.metadata?.name} ${o.data?.k}`),
      delete: (o) => events.push(`delete ${o.metadata?.name}`),
    });
    await informer.synced;
    const body = (k: string): V1ConfigMap => ({
      metadata: { name: 'cm1', namespace: ns, labels: { test: 'informer' } },
      data: { k },
    });
    await core.createNamespacedConfigMap({ namespace: ns, body: body('1') });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'other', namespace: ns }, data: { k: 'x' } },
    });
    await waitFor(() => events.includes('add cm1 1'), { what: 'add cm1' });
    expect(informer.get('cm1', ns)?.data?.k).toBe('1');
    expect(informer.list(ns).map((o) => o.metadata?.name)).toEqual(['cm1']); // the selector filters "other"

    await plane.kubectl(['-n', ns, 'patch', 'configmap', 'cm1', '-p', '{"data":{"k":"2"}}']);
    await waitFor(() => events.includes('update cm1 2'), { what: 'update cm1' });
    expect(informer.get('cm1', ns)?.data?.k).toBe('2');

    // a late user of the same key gets the cache replayed as adds
    const late: string[] = [];
    const second = kube.informer<V1ConfigMap>({
      path: `/api/v1/namespaces/${ns}/configmaps`,
      labelSelector: 'test=informer',
    });
    second.addHandlers({ add: (o) => late.push(o.metadata?.name ?? '') });
    expect(late).toEqual(['cm1']);
    second.stop();

    await core.deleteNamespacedConfigMap({ name: 'cm1', namespace: ns });
    await waitFor(() => events.includes('delete cm1'), { what: 'delete cm1' });
    expect(informer.get('cm1', ns)).toBeUndefined();
    expect(informer.list()).toEqual([]);
    expect(events).toEqual(['add cm1 1', 'update cm1 2', 'delete cm1']);

    const informersBefore = kube.stats().informers;
    abort.abort(); // the AbortSignal stops this user, the last one
    expect(kube.stats().informers).toBe(informersBefore - 1);
  });

  it('sends a priority request before the queued ones; a queued request whose signal aborts is never sent', async () => {
    const own = createKubeApi(
      { master: '', contentType: '', qps: 1000, burst: 1000, kubeConfig: plane.cloudcoreKubeconfigPath },
      log,
    );
    try {
      // every slot held by a request that does not end (a watch read to its end)
      const base = await configMapWatches();
      const held = Array.from({ length: 32 }, () =>
        own
          .request('GET', `/api/v1/namespaces/${ns}/configmaps?watch=true&timeoutSeconds=600`)
          .catch(() => undefined),
      );
      await waitFor(async () => (await configMapWatches()) >= base + 32, { what: '32 requests open' });
      const abort = new AbortController();
      let queuedEnded = false;
      const queued = own
        .request('GET', `/api/v1/namespaces/${ns}/configmaps`, undefined, { signal: abort.signal })
        .finally(() => (queuedEnded = true));
      // the Lease's path: its own bucket, no slot needed
      const lease = await own.request<{ metadata: { name: string } }>(
        'GET',
        `/api/v1/namespaces/${ns}`,
        undefined,
        {
          priority: true,
        },
      );
      expect(lease.metadata.name).toBe(ns);
      expect(queuedEnded).toBe(false);
      abort.abort();
      await expect(queued).rejects.toMatchObject({ code: 'EKUBE_ABANDONED' });
      own.stop();
      await Promise.all(held);
    } finally {
      own.stop();
    }
  }, 60_000);

  it('sends API client calls through its limiter as the cloudcore identity, API errors typed', async () => {
    const before = kube.stats().requests;
    const ns1 = await core.readNamespace({ name: ns });
    expect(ns1.metadata?.name).toBe(ns);
    expect(kube.stats().requests).toBe(before + 1);
    // cloudcore may not delete namespaces (KubeEdge's ClusterRole): the API error comes through
    await expect(core.deleteNamespace({ name: ns })).rejects.toMatchObject({ code: 403 });
    await expect(kube.request('GET', '/api/v1/namespaces/kubeedge/configmaps/absent')).rejects.toMatchObject({
      code: 'EKUBE_API',
      statusCode: 404,
    });
  });
  it("ends its watches when the kernel's services are released (the kernel's stop)", async () => {
    const registry = new ServiceRegistry();
    const release = provideKernelServices(registry, {
      config: {
        kind: 'cloudcore',
        file: 'cloudcore.yaml',
        apiVersion: '',
        config: {
          kubeAPIConfig: {
            master: '',
            contentType: '',
            qps: 0,
            burst: 0,
            kubeConfig: plane.cloudcoreKubeconfigPath,
          },
        },
        warnings: [],
        unknownModules: [],
      } as unknown as LoadedConfig,
      log,
      metrics: new Metrics(),
      cloud: new CloudConnection(),
    });
    const baseline = await configMapWatches();
    const informer = registry
      .get(KubeToken)
      .informer({ version: 'v1', resource: 'configmaps', namespace: 'default' });
    await informer.synced;
    await waitFor(async () => (await configMapWatches()) === baseline + 1, { what: 'the watch to open' });
    release();
    await waitFor(async () => (await configMapWatches()) === baseline, {
      what: 'the watch to end at the apiserver',
    });
    expect(() => registry.get(KubeToken).informer({ version: 'v1', resource: 'pods' })).toThrow(/stopped/);
  });

  it('loads client certificates, tokens, master and in-file data from kubeconfigs', async () => {
    const dir = await tempDir('kubeedge-kubeconfig');
    // the admin kubeconfig: client certificate and key files; master given again
    const admin = createKubeApi(
      { master: plane.server, contentType: '', qps: 0, burst: 0, kubeConfig: plane.kubeconfigPath },
      log,
    );
    expect(
      (await admin.request<{ metadata: { name: string } }>('GET', '/api/v1/namespaces/kube-system')).metadata
        .name,
    ).toBe('kube-system');
    admin.stop();
    // the same with everything inline (-data), and a user that needs exec (refused)
    const { parse, stringify } = await import('yaml');
    const file = parse(readFileSync(plane.kubeconfigPath, 'utf8')) as {
      clusters: { cluster: Record<string, string> }[];
      users: { user: Record<string, unknown> }[];
    };
    const cluster = file.clusters[0]!.cluster;
    cluster['certificate-authority-data'] = readFileSync(cluster['certificate-authority']!).toString(
      'base64',
    );
    delete cluster['certificate-authority'];
    const user = file.users[0]!.user;
    for (const key of ['client-certificate', 'client-key']) {
      user[`${key}-data`] = readFileSync(user[key] as string).toString('base64');
      delete user[key];
    }
    const inline = join(dir, 'inline.kubeconfig');
    await writeFile(inline, stringify(file));
    const viaData = createKubeApi({ master: '', contentType: '', qps: 0, burst: 0, kubeConfig: inline }, log);
    expect(await viaData.request('GET', '/api/v1/namespaces/kube-system')).toMatchObject({
      kind: 'Namespace',
    });
    viaData.stop();
    user.exec = { command: 'aws' };
    const exec = join(dir, 'exec.kubeconfig');
    await writeFile(exec, stringify(file));
    const viaExec = createKubeApi({ master: '', contentType: '', qps: 0, burst: 0, kubeConfig: exec }, log);
    await expect(viaExec.request('GET', '/api')).rejects.toThrow(
      /authenticates with "exec", which cloudcore does not support: use a client certificate or a \(ServiceAccount\) token/,
    );
  });
});

describe('edgecore', () => {
  /**
   * Runs a node child with a module hook that writes `marker` the moment anything resolves into
   * @kubernetes/client-node (trace-client-node.mjs), and returns whether it did.
   */
  const traced = async (args: string[], marker: string, ready?: () => Promise<boolean>): Promise<boolean> => {
    const hook = join(repoRoot, 'kernel', 'kube', 'testdata', 'trace-client-node.mjs');
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', hook, ...args], {
      cwd: repoRoot,
      env: { ...process.env, TRACE_CLIENT_NODE_MARKER: marker },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (ready) {
      await waitFor(ready, {
        what: 'the child to be ready',
        timeoutMs: 60_000,
        details: () => stderr.slice(-2000),
      });
      child.kill('SIGTERM');
    }
    await exited;
    return existsSync(marker);
  };

  it('never loads @kubernetes/client-node (the trace sees it when something does)', async () => {
    const dir = await tempDir('kubeedge-kube-edge');
    // the hook works: importing client-node writes the marker
    expect(
      await traced(
        ['-e', "await import('@kubernetes/client-node')", '--input-type=module'],
        join(dir, 'control'),
      ),
    ).toBe(true);
    const [http, mqtt, health] = [await freePort(), await freePort(), await freePort()];
    const yaml = join(dir, 'edgecore.yaml');
    await writeFile(
      yaml,
      defaultModulesYaml(dir, http, mqtt).replace(
        'health: {enable: false}',
        `health: {enable: true, address: 127.0.0.1, port: ${health}}`,
      ),
    );
    const readyz = async (): Promise<boolean> => {
      const res = await fetch(`http://127.0.0.1:${health}/readyz`);
      return res.status === 200;
    };
    expect(await traced([join('bin', 'edgecore.ts'), '--config', yaml], join(dir, 'edgecore'), readyz)).toBe(
      false,
    );
  }, 120_000);
});
