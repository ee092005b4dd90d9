import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { defaultConfig, loadConfigFile, parseConfig } from './index.js';
import { edgeLayout, cloudLayout } from '../../plugins/registry.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const example = (name: string) => path.resolve(repoRoot, 'test/fixtures/notes', name);

type Tree = Record<string, unknown>;
const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The user's notes merge the snippet into the main file: a deep merge, snippet values win. */
function deepMerge(base: Tree, over: Tree): Tree {
  const out: Tree = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isTree(b) && isTree(v) ? deepMerge(b, v) : v;
  }
  return out;
}

describe("the user's v1alpha1 edgecore.yaml", () => {
  it('loads with its values mapped onto v1alpha2', () => {
    const r = loadConfigFile(edgeLayout, example('edgecore-v1alpha1.yaml'));
    expect(r.apiVersion).toBe('edgecore.config.kubeedge.io/v1alpha1');
    expect(r.config.apiVersion).toBe('edgecore.config.kubeedge.io/v1alpha2');
    const { edged, edgeHub, eventBus } = r.config.modules;
    const tkc = edged.tailoredKubeletConfig;

    expect(edged.hostnameOverride).toBe('node35');
    expect(edged.nodeIP).toBe('10.8.30.35');
    expect(edged.podSandboxImage).toBe('kubeedge/pause:3.1');
    expect(edged.runtimeType).toBe('docker'); // kept: edged refuses it later with a clear message
    expect(edged.dockerAddress).toBe('unix:///var/run/docker.sock');
    expect(tkc.cgroupDriver).toBe('systemd');
    expect(tkc.cgroupsPerQOS).toBe(true);
    expect(tkc.registerNode).toBe(true);
    expect(tkc.containerRuntimeEndpoint).toBe('unix:///var/run/dockershim.sock');
    expect(tkc.imageServiceEndpoint).toBe('unix:///var/run/dockershim.sock');
    // empty legacy strings were v1alpha1 defaults and do not override v1alpha2 defaults
    expect(tkc.clusterDomain).toBe('cluster.local');
    expect(tkc.clusterDNS).toBeUndefined();

    expect(edgeHub.httpServer).toBe('https://10.8.30.38:10002');
    expect(edgeHub.websocket.server).toBe('10.8.30.38:10000');
    expect(edgeHub.token.split('.')).toHaveLength(4);
    expect(eventBus.mqttMode).toBe(2);

    expect(r.warnings).toEqual([
      {
        path: 'modules.edged.devicePluginEnabled',
        line: 28,
        message:
          'modules.edged.devicePluginEnabled: legacy field with no equivalent in v1alpha2; ignored (edgecore-v1alpha1.yaml:28)',
      },
      {
        path: 'modules.edged.gpuPluginEnabled',
        line: 32,
        message:
          'modules.edged.gpuPluginEnabled: legacy field with no equivalent in v1alpha2; ignored (edgecore-v1alpha1.yaml:32)',
      },
    ]);
    expect(r.unknownModules).toEqual([]);
  });

  it('with the containerd snippet merged on top', () => {
    const main = parse(readFileSync(example('edgecore-v1alpha1.yaml'), 'utf8')) as Tree;
    const snippet = parse(readFileSync(example('edgecore-containerd-snippet.yaml'), 'utf8')) as Tree;
    const r = parseConfig(edgeLayout, stringify(deepMerge(main, snippet)), 'edgecore.yaml');
    const edged = r.config.modules.edged;
    const tkc = edged.tailoredKubeletConfig;
    expect(tkc.containerRuntimeEndpoint).toBe('unix:///var/run/containerd/containerd.sock');
    expect(tkc.imageServiceEndpoint).toBe('unix:///var/run/containerd/containerd.sock');
    expect(tkc.runtimeRequestTimeout).toBe('2m0s'); // 2 = minutes in v1alpha1's edged
    expect(edged.podSandboxImage).toBe('k8s.gcr.io/pause:3.2');
    expect(edged.runtimeType).toBe('remote');
    expect(tkc.cgroupDriver).toBe('systemd');
    expect(edged.hostnameOverride).toBe('node35');
  });
});

describe('legacy key mapping', () => {
  it('maps every v1alpha1 edged key with an equivalent', () => {
    const r = parseConfig(
      edgeLayout,
      [
        'apiVersion: edgecore.config.kubeedge.io/v1alpha1',
        'kind: EdgeCore',
        'modules:',
        '  edged:',
        '    labels: {zone: a}',
        '    taints:',
        '    - {key: dedicated, value: edge, effect: NoSchedule}',
        '    nodeStatusUpdateFrequency: 20',
        '    runtimeRequestTimeout: 3',
        '    volumeStatsAggPeriod: 60000000000',
        '    clusterDNS: "10.96.0.10, 10.96.0.11"',
        '    clusterDomain: edge.local',
        '    imageGCHighThreshold: 90',
        '    imageGCLowThreshold: 70',
        '    maximumDeadContainersPerPod: 3',
        '    edgeCoreCgroups: /kubeedge',
        '    systemCgroups: /system',
        '    cgroupRoot: /pods',
        '    cgroupsPerQOS: false',
        '    registerNode: false',
        '    edgedMemoryCapacity: 7852396000',
        '    annotations: {}',
        '  metaManager:',
        '    podStatusSyncInterval: 60',
      ].join('\n'),
      'edgecore.yaml',
    );
    const edged = r.config.modules.edged;
    const tkc = edged.tailoredKubeletConfig;
    expect(edged.nodeLabels).toEqual({ zone: 'a' });
    expect(tkc.registerWithTaints).toEqual([{ key: 'dedicated', value: 'edge', effect: 'NoSchedule' }]);
    expect(tkc.nodeStatusUpdateFrequency).toBe('20s');
    expect(tkc.runtimeRequestTimeout).toBe('3m0s');
    expect(tkc.volumeStatsAggPeriod).toBe('1m0s');
    expect(tkc.clusterDNS).toEqual(['10.96.0.10', '10.96.0.11']);
    expect(tkc.clusterDomain).toBe('edge.local');
    expect(tkc.imageGCHighThresholdPercent).toBe(90);
    expect(tkc.imageGCLowThresholdPercent).toBe(70);
    expect(edged.maxPerPodContainerCount).toBe(3);
    expect(tkc.kubeletCgroups).toBe('/kubeedge');
    expect(tkc.systemCgroups).toBe('/system');
    expect(tkc.cgroupRoot).toBe('/pods');
    expect(tkc.cgroupsPerQOS).toBe(false);
    expect(tkc.registerNode).toBe(false);
    expect(r.warnings.map((w) => w.path)).toEqual([
      'modules.edged.edgedMemoryCapacity',
      'modules.edged.annotations',
      'modules.metaManager.podStatusSyncInterval',
    ]);
  });

  it('maps the v1.12-v1.17 flattened keys of v1alpha2 files', () => {
    const r = parseConfig(
      edgeLayout,
      [
        'apiVersion: edgecore.config.kubeedge.io/v1alpha2',
        'modules:',
        '  edged:',
        '    containerRuntime: remote',
        '    remoteRuntimeEndpoint: unix:///run/crio/crio.sock',
        '    remoteImageEndpoint: unix:///run/crio/crio.sock',
        '    cniBinDir: /opt/cni/bin',
      ].join('\n'),
      'edgecore.yaml',
    );
    const edged = r.config.modules.edged;
    expect(edged.runtimeType).toBe('remote');
    expect(edged.tailoredKubeletConfig.containerRuntimeEndpoint).toBe('unix:///run/crio/crio.sock');
    expect(edged.tailoredKubeletConfig.imageServiceEndpoint).toBe('unix:///run/crio/crio.sock');
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]?.message).toBe(
      'modules.edged.cniBinDir: legacy field with no equivalent in v1alpha2 (CNI is configured in the container runtime since v1.18); ignored (edgecore.yaml:7)',
    );
  });

  it('the v1alpha2 key wins over its legacy spelling, with a warning', () => {
    const r = parseConfig(
      edgeLayout,
      [
        'modules:',
        '  edged:',
        '    remoteRuntimeEndpoint: unix:///old.sock',
        '    tailoredKubeletConfig:',
        '      containerRuntimeEndpoint: unix:///new.sock',
      ].join('\n'),
      'edgecore.yaml',
    );
    expect(r.config.modules.edged.tailoredKubeletConfig.containerRuntimeEndpoint).toBe('unix:///new.sock');
    expect(r.warnings.map((w) => w.message)).toEqual([
      'modules.edged.remoteRuntimeEndpoint: legacy field ignored because modules.edged.tailoredKubeletConfig.containerRuntimeEndpoint is also set (edgecore.yaml:3)',
    ]);
  });

  it('reports a bad legacy value like any type error', () => {
    expect(() =>
      parseConfig(edgeLayout, 'modules:\n  edged:\n    nodeStatusUpdateFrequency: often\n', 'edgecore.yaml'),
    ).toThrow(
      'modules.edged.nodeStatusUpdateFrequency: expected integer (seconds) or duration, got "often" (edgecore.yaml:3)',
    );
  });

  it('does not touch the defaults of fields the legacy file leaves out', () => {
    const r = parseConfig(edgeLayout, 'modules:\n  edged:\n    cgroupDriver: systemd\n', 'edgecore.yaml');
    const expected = defaultConfig(edgeLayout);
    expected.modules.edged.tailoredKubeletConfig.cgroupDriver = 'systemd';
    expect(r.config).toEqual(expected);
  });
});

describe("the user's cloudcore.yaml", () => {
  it('loads, with AdjustCloudCoreConfig applied for nodeLimit 1000', () => {
    const r = loadConfigFile(cloudLayout, example('cloudcore-v1alpha1.yaml'));
    expect(r.warnings).toEqual([]);
    expect(r.apiVersion).toBe('cloudcore.config.kubeedge.io/v1alpha1');
    const { cloudHub, router, edgeController } = r.config.modules;
    expect(r.config.kubeAPIConfig).toMatchObject({
      kubeConfig: '/root/.kube/config',
      master: '',
      qps: 5000,
      burst: 10000,
    });
    expect(cloudHub.advertiseAddress).toEqual(['10.8.30.38']);
    expect(cloudHub.nodeLimit).toBe(1000);
    expect(cloudHub.https).toEqual({ enable: true, address: '0.0.0.0', port: 10002 });
    expect(cloudHub.websocket).toEqual({ enable: true, address: '0.0.0.0', port: 10000 });
    expect(cloudHub.unixsocket).toEqual({ enable: true, address: 'unix:///var/lib/kubeedge/kubeedge.sock' });
    expect(cloudHub.quic.enable).toBe(false);
    expect(cloudHub.tlsCertFile).toBe('/etc/kubeedge/certs/edge.crt');
    expect(cloudHub.tlsPrivateKeyFile).toBe('/etc/kubeedge/certs/edge.key');
    expect(cloudHub.keepaliveInterval).toBe(30);
    expect(cloudHub.tokenRefreshDuration).toBe(12);
    expect(router).toEqual({
      enable: true,
      runAs: 'inprocess',
      address: '0.0.0.0',
      port: 9443,
      restTimeout: 60,
    });
    expect(edgeController.load.queryNodeWorkers).toBe(1000);
    expect(edgeController.load.patchNodeWorkers).toBe(120);
    expect(edgeController.buffer.queryNode).toBe(2024);
    expect(r.config.kernel.socket).toBe('');
  });

  it('validates cloudHub when enabled', () => {
    expect(() =>
      parseConfig(
        cloudLayout,
        'modules:\n  cloudHub:\n    websocket: {port: 70000, address: nowhere}\n    unixSocket: {address: /run/x.sock}\n',
        'cloudcore.yaml',
      ),
    ).toThrow(
      [
        'modules.cloudHub.websocket.port: must be a port between 1 and 65535, got 70000 (cloudcore.yaml:3)',
        'modules.cloudHub.websocket.address: must be a valid IP address, got "nowhere" (cloudcore.yaml:3)',
        'modules.cloudHub.unixsocket.address: must start with "unix://", got "/run/x.sock" (cloudcore.yaml:4)',
      ].join('\n'),
    );
  });
});
