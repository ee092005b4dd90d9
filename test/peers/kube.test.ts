/**
 * Proves the Kubernetes control plane of test/peers/kube.ts: built at the pinned version, serving
 * KubeEdge's CRDs, usable by @kubernetes/client-node as the `cloudcore` identity, scheduling a pod
 * onto an edge node, and gone without a trace after stop(). If the binaries cannot be built, every
 * test here fails (nothing is skipped).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1Node,
  type V1Pod,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KUBE_VERSION, startControlPlane, type ControlPlane } from './kube.js';
import { cleanup, peerAsset, waitFor } from './util.js';

afterAll(cleanup);

const CRD_DIR = join('test', 'fixtures', 'kubeedge-crds');
const OBJECTS_DIR = join('test', 'fixtures', 'kubeedge', 'kubeedge-v1.23-objects');

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('kube build script', () => {
  it('fails with a clear message when no Go toolchain is found', async () => {
    const cache = join(tmpdir(), `kubeedge-kube-nogo-${process.pid}`);
    const res = spawnSync('bash', [peerAsset('kube/build.sh')], {
      encoding: 'utf8',
      env: { ...process.env, GO: '/nonexistent/go', KUBEEDGE_TS_KUBE_CACHE: cache },
    });
    rmSync(cache, { recursive: true, force: true });
    expect(res.status).not.toBe(0);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain('no Go toolchain found');
  });
});

describe('kube control plane (etcd, kube-apiserver, controller-manager, scheduler)', () => {
  // A failed start (e.g. the binaries cannot be built) fails every test below with its error.
  let started: { kube: ControlPlane; cloudcore: KubeConfig } | { error: unknown } = {
    error: new Error('not started'),
  };
  const plane = (): { kube: ControlPlane; cloudcore: KubeConfig } => {
    if ('error' in started) throw started.error;
    return started;
  };

  beforeAll(async () => {
    try {
      const kube = await startControlPlane({ withControllers: true });
      const cloudcore = new KubeConfig();
      cloudcore.loadFromFile(kube.cloudcoreKubeconfigPath);
      started = { kube, cloudcore };
    } catch (error) {
      started = { error };
    }
  }, 3_600_000); // the first run on a machine builds the binaries (~1,300 CPU-seconds)

  it('serves /version at the pinned version', async () => {
    const { kube } = plane();
    const res = await kube.get('/version');
    expect(res.status).toBe(200);
    const version = JSON.parse(res.body) as { gitVersion: string; major: string; minor: string };
    expect(version.gitVersion).toBe(KUBE_VERSION);
    expect(`v${version.major}.${version.minor}`).toBe(KUBE_VERSION.replace(/\.\d+$/, ''));
    expect(await kube.kubectl(['version', '--client', '-o', 'json'])).toContain(
      `"gitVersion": "${KUBE_VERSION}"`,
    );
  });

  it("applies KubeEdge v1.23.1's CRDs, which become Established and listable", async () => {
    const { kube } = plane();
    const files = readdirSync(CRD_DIR).filter((f) => f.startsWith('v1.23.1_'));
    expect(files.length).toBe(7);
    await kube.kubectl(['apply', ...files.flatMap((f) => ['-f', join(CRD_DIR, f)])]);
    const names = files.map(
      (f) =>
        (
          parseAllDocuments(readFileSync(join(CRD_DIR, f), 'utf8'))[0]?.toJSON() as {
            metadata: { name: string };
          }
        ).metadata.name,
    );
    expect(names).toContain('devices.devices.kubeedge.io');
    await kube.waitForCrds(names);
    const established = await kube.kubectl([
      'get',
      'crd',
      ...names,
      '-o',
      'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Established")].status}{"\\n"}{end}',
    ]);
    expect(established.trim().split('\n')).toEqual(names.map(() => 'True'));
  });

  it('lets the cloudcore identity list nodes and create and read a Device with @kubernetes/client-node', async () => {
    const { cloudcore } = plane();
    const core = cloudcore.makeApiClient(CoreV1Api);
    const custom = cloudcore.makeApiClient(CustomObjectsApi);
    expect((await core.listNode()).items).toEqual([]);

    // the recorded DeviceModel + Device a real KubeEdge v1.23 user applied
    const docs = parseAllDocuments(readFileSync(join(OBJECTS_DIR, 'applied', 'device.yaml'), 'utf8')).map(
      (d) => d.toJSON() as { kind: string; metadata: { name: string; namespace: string } },
    );
    for (const [kind, plural] of [
      ['DeviceModel', 'devicemodels'],
      ['Device', 'devices'],
    ] as const) {
      const body = docs.find((d) => d.kind === kind);
      expect(body).toBeDefined();
      await custom.createNamespacedCustomObject({
        group: 'devices.kubeedge.io',
        version: 'v1beta1',
        namespace: 'default',
        plural,
        body,
      });
    }
    const device = (await custom.getNamespacedCustomObject({
      group: 'devices.kubeedge.io',
      version: 'v1beta1',
      namespace: 'default',
      plural: 'devices',
      name: 'sensor-tag-instance-01',
    })) as { spec: { nodeName: string; deviceModelRef: { name: string }; properties: { name: string }[] } };
    expect(device.spec.nodeName).toBe('edge-1');
    expect(device.spec.deviceModelRef.name).toBe('sensor-tag-model');
    expect(device.spec.properties.map((p) => p.name)).toEqual(['temperature', 'temperature-enable']);

    // and no more than KubeEdge's ClusterRole: cloudcore cannot delete nodes or list RBAC roles
    await expect(core.deleteNode({ name: 'no-such-node' })).rejects.toThrow(/403/);
    await expect(cloudcore.makeApiClient(RbacAuthorizationV1Api).listClusterRole()).rejects.toThrow(/403/);
  });

  it('schedules a pod onto an edge node the cloudcore identity registered', async () => {
    const { kube, cloudcore } = plane();
    const core = cloudcore.makeApiClient(CoreV1Api);
    const now = new Date();
    const resources = { cpu: '2', memory: '4Gi', pods: '110' };
    const node: V1Node = {
      metadata: {
        name: 'edge-1',
        labels: { 'node-role.kubernetes.io/edge': '', 'kubernetes.io/hostname': 'edge-1' },
      },
      status: {
        capacity: resources,
        allocatable: resources,
        addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'EdgeReady',
            lastHeartbeatTime: now,
            lastTransitionTime: now,
          },
        ],
      },
    };
    await core.createNode({ body: node });

    const pod: V1Pod = {
      metadata: { name: 'nginx', namespace: 'default' },
      spec: {
        nodeSelector: { 'node-role.kubernetes.io/edge': '' },
        containers: [{ name: 'nginx', image: 'nginx:alpine' }],
      },
    };
    await kube.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Pod', ...pod }),
    });

    // the scheduler binds it once the node-lifecycle controller has lifted the not-ready taint
    await waitFor(
      async () =>
        (await core.readNamespacedPod({ name: 'nginx', namespace: 'default' })).spec?.nodeName === 'edge-1',
      {
        what: 'pod default/nginx scheduled to edge-1',
        timeoutMs: 60_000,
        intervalMs: 250,
        details: () => kube.output('kube-scheduler').slice(-2_000),
      },
    );
    const onNode = await core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=edge-1' });
    expect(onNode.items.map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`)).toEqual([
      'default/nginx',
    ]);
  });

  it('stops every process by pid and removes its temp dir', async () => {
    const { kube } = plane();
    const pids = Object.entries(kube.pids);
    expect(pids.map(([name]) => name).sort()).toEqual([
      'etcd',
      'kube-apiserver',
      'kube-controller-manager',
      'kube-scheduler',
    ]);
    expect(pids.every(([, pid]) => pidAlive(pid))).toBe(true);
    expect(existsSync(kube.dir)).toBe(true);
    await kube.stop();
    expect(pids.filter(([, pid]) => pidAlive(pid))).toEqual([]);
    expect(existsSync(kube.dir)).toBe(false);
  });
});
