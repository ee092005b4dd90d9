/**
 * cloudcore.yaml (apiVersion cloudcore.config.kubeedge.io/v1alpha1, kind CloudCore): types, schema,
 * defaults, --minconfig object and validation.
 *
 * Sources (kubeedge/kubeedge, v1.23 layout):
 *   staging/src/github.com/kubeedge/api/apis/componentconfig/cloudcore/v1alpha1/types.go
 *   staging/src/github.com/kubeedge/api/apis/componentconfig/cloudcore/v1alpha1/default.go
 *     (NewDefaultCloudCoreConfig, NewMinCloudCoreConfig, AdjustCloudCoreConfig)
 *   staging/src/github.com/kubeedge/api/apis/componentconfig/cloudcore/v1alpha1/validation/validation.go
 *   staging/src/github.com/kubeedge/api/apis/common/constants/default.go, default_others.go
 *   (older releases: pkg/apis/componentconfig/cloudcore/v1alpha1/)
 */
import { isIP } from 'node:net';
import path from 'node:path';
import { localIP } from './host.js';
import {
  CLOUDCORE_HEALTH_PORT,
  defaultKernelConfig,
  enableSchema,
  kernelSchema,
  runAsSchema,
  type KernelConfig,
} from './kernel-section.js';
import type { ModuleBase } from './edgecore-types.js';
import type { Reporter } from './types.js';
import { bool, int, list, map, obj, ptrObj, str, type ObjectSchemaOf } from './schema.js';

export const CLOUDCORE_API_VERSION = 'cloudcore.config.kubeedge.io/v1alpha1';
export const CLOUDCORE_API_VERSIONS = [CLOUDCORE_API_VERSION] as const;
export const CLOUDCORE_KIND = 'CloudCore';
export const CLOUDCORE_FEATURE_GATES = [
  'requireAuthorization',
  'moduleRestart',
  'disableNodeTaskV1alpha2',
  'disableCSI',
  'AllAlpha',
  'AllBeta',
] as const;

const CA_FILE = '/etc/kubeedge/ca/rootCA.crt';
const CA_KEY_FILE = '/etc/kubeedge/ca/rootCA.key';
const CERT_FILE = '/etc/kubeedge/certs/server.crt';
const KEY_FILE = '/etc/kubeedge/certs/server.key';
const DEFAULT_NODE_LIMIT = 500;

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

export interface CloudCoreCommonConfig {
  tunnelPort: number;
  monitorServer: { bindAddress: string; enableProfiling: boolean };
}

export interface KubeAPIConfig {
  master: string;
  contentType: string;
  qps: number;
  burst: number;
  kubeConfig: string;
}

export interface CloudHubQUIC {
  enable: boolean;
  address: string;
  port: number;
  maxIncomingStreams: number;
}

export interface CloudHubUnixSocket {
  enable: boolean;
  address: string;
}

export interface CloudHubServer {
  enable: boolean;
  address: string;
  port: number;
}

export interface CloudHubAuthorization {
  enable: boolean;
  debug: boolean;
  modes: Array<{ node?: { enable: boolean } }> | null;
}

export interface CloudHubConfig extends ModuleBase {
  /** Seconds. */
  keepaliveInterval: number;
  nodeLimit: number;
  tlsCAFile: string;
  tlsCAKeyFile: string;
  tlsCertFile: string;
  tlsPrivateKeyFile: string;
  /** Seconds. */
  writeTimeout: number;
  quic: CloudHubQUIC;
  unixsocket: CloudHubUnixSocket;
  websocket: CloudHubServer;
  https: CloudHubServer;
  advertiseAddress: string[];
  dnsNames: string[];
  /** Days (a Go time.Duration used as a plain number). */
  edgeCertSigningDuration: number;
  /** Hours (a Go time.Duration used as a plain number). */
  tokenRefreshDuration: number;
  authorization: CloudHubAuthorization;
}

export interface EdgeControllerBuffer {
  processEvent: number;
  updatePodStatus: number;
  updateNodeStatus: number;
  queryConfigMap: number;
  querySecret: number;
  podEvent: number;
  configMapEvent: number;
  secretEvent: number;
  rulesEvent: number;
  ruleEndpointsEvent: number;
  queryPersistentVolume: number;
  queryPersistentVolumeClaim: number;
  queryVolumeAttachment: number;
  createNode: number;
  patchNode: number;
  queryNode: number;
  updateNode: number;
  patchPod: number;
  deletePod: number;
  createLease: number;
  queryLease: number;
  serviceAccountToken: number;
  createPod: number;
  certificateSigningRequest: number;
}

/** Three keys keep the capitalised JSON names of the Go struct tags. */
export interface EdgeControllerLoad {
  processEventWorkers: number;
  updatePodStatusWorkers: number;
  updateNodeStatusWorkers: number;
  queryConfigMapWorkers: number;
  querySecretWorkers: number;
  queryPersistentVolumeWorkers: number;
  queryPersistentVolumeClaimWorkers: number;
  queryVolumeAttachmentWorkers: number;
  createNodeWorkers: number;
  patchNodeWorkers: number;
  queryNodeWorkers: number;
  updateNodeWorkers: number;
  patchPodWorkers: number;
  deletePodWorkers: number;
  createLeaseWorkers: number;
  queryLeaseWorkers: number;
  UpdateRuleStatusWorkers: number;
  ServiceAccountTokenWorkers: number;
  CreatePodWorks: number;
  certificateSigningRequestWorkers: number;
}

export interface EdgeControllerConfig extends ModuleBase {
  /** Seconds. */
  nodeUpdateFrequency: number;
  buffer: EdgeControllerBuffer;
  load: EdgeControllerLoad;
}

export interface DeviceControllerConfig extends ModuleBase {
  buffer: {
    updateDeviceTwins: number;
    updateDeviceStatus: number;
    deviceEvent: number;
    deviceModelEvent: number;
    deviceStatusEvent: number;
  };
  load: { updateDeviceStatusWorkers: number };
}

export interface CloudTaskManagerConfig extends ModuleBase {
  buffer: { taskStatus: number; taskEvent: number };
  load: { taskWorkers: number };
}

export type SyncControllerConfig = ModuleBase;
export type DynamicControllerConfig = ModuleBase;

export interface CloudStreamConfig extends ModuleBase {
  tlsTunnelCAFile: string;
  tlsTunnelCertFile: string;
  tlsTunnelPrivateKeyFile: string;
  tunnelPort: number;
  tlsStreamCAFile: string;
  tlsStreamCertFile: string;
  tlsStreamPrivateKeyFile: string;
  streamPort: number;
}

export interface RouterConfig extends ModuleBase {
  address: string;
  port: number;
  /** Seconds. */
  restTimeout: number;
}

export interface IptablesManagerConfig extends ModuleBase {
  /** "internal" or "external". */
  mode: string;
}

export interface CloudCoreKnownModules {
  cloudHub: CloudHubConfig;
  edgeController: EdgeControllerConfig;
  deviceController: DeviceControllerConfig;
  taskManager: CloudTaskManagerConfig;
  syncController: SyncControllerConfig;
  dynamicController: DynamicControllerConfig;
  cloudStream: CloudStreamConfig;
  router: RouterConfig;
  iptablesManager: IptablesManagerConfig;
}

/** Known modules, plus unknown module sections kept as decoded (see `LoadedConfig.unknownModules`). */
export type CloudCoreModules = CloudCoreKnownModules & { [module: string]: unknown };

export interface CloudCoreConfig {
  apiVersion: string;
  kind: string;
  commonConfig: CloudCoreCommonConfig;
  kubeAPIConfig: KubeAPIConfig;
  modules: CloudCoreModules;
  featureGates?: Record<string, boolean>;
  /** Kernel extension. */
  kernel: KernelConfig;
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

const server = () =>
  ptrObj<CloudHubServer>({ enable: enableSchema, address: str(), port: int({ min: 0, max: 4294967295 }) });

const intFields = <T>(keys: Array<keyof T>) =>
  Object.fromEntries(keys.map((k) => [k, int()])) as { [K in keyof T]-?: ReturnType<typeof int> };

const BUFFER_KEYS: Array<keyof EdgeControllerBuffer> = [
  'processEvent',
  'updatePodStatus',
  'updateNodeStatus',
  'queryConfigMap',
  'querySecret',
  'podEvent',
  'configMapEvent',
  'secretEvent',
  'rulesEvent',
  'ruleEndpointsEvent',
  'queryPersistentVolume',
  'queryPersistentVolumeClaim',
  'queryVolumeAttachment',
  'createNode',
  'patchNode',
  'queryNode',
  'updateNode',
  'patchPod',
  'deletePod',
  'createLease',
  'queryLease',
  'serviceAccountToken',
  'createPod',
  'certificateSigningRequest',
];

const LOAD_KEYS: Array<keyof EdgeControllerLoad> = [
  'processEventWorkers',
  'updatePodStatusWorkers',
  'updateNodeStatusWorkers',
  'queryConfigMapWorkers',
  'querySecretWorkers',
  'queryPersistentVolumeWorkers',
  'queryPersistentVolumeClaimWorkers',
  'queryVolumeAttachmentWorkers',
  'createNodeWorkers',
  'patchNodeWorkers',
  'queryNodeWorkers',
  'updateNodeWorkers',
  'patchPodWorkers',
  'deletePodWorkers',
  'createLeaseWorkers',
  'queryLeaseWorkers',
  'UpdateRuleStatusWorkers',
  'ServiceAccountTokenWorkers',
  'CreatePodWorks',
  'certificateSigningRequestWorkers',
];

export const cloudCoreModulesSchema = ptrObj<CloudCoreKnownModules>({
  cloudHub: ptrObj<CloudHubConfig>({
    enable: enableSchema,
    runAs: runAsSchema,
    keepaliveInterval: int(),
    nodeLimit: int(),
    tlsCAFile: str(),
    tlsCAKeyFile: str(),
    tlsCertFile: str(),
    tlsPrivateKeyFile: str(),
    writeTimeout: int(),
    quic: ptrObj<CloudHubQUIC>({
      enable: enableSchema,
      address: str(),
      port: int({ min: 0, max: 4294967295 }),
      maxIncomingStreams: int(),
    }),
    unixsocket: ptrObj<CloudHubUnixSocket>({ enable: enableSchema, address: str() }),
    websocket: server(),
    https: server(),
    advertiseAddress: list(str()),
    dnsNames: list(str()),
    edgeCertSigningDuration: int({ int64: true }),
    tokenRefreshDuration: int({ int64: true }),
    authorization: ptrObj<CloudHubAuthorization>({
      enable: enableSchema,
      debug: bool({ omit: 'never' }),
      modes: list(
        obj<{ node?: { enable: boolean } }>({
          node: ptrObj<{ enable: boolean }>({ enable: enableSchema }),
        }),
        { omit: 'never' },
      ),
    }),
  }),
  edgeController: ptrObj<EdgeControllerConfig>({
    enable: enableSchema,
    runAs: runAsSchema,
    nodeUpdateFrequency: int(),
    buffer: ptrObj<EdgeControllerBuffer>(intFields<EdgeControllerBuffer>(BUFFER_KEYS)),
    load: ptrObj<EdgeControllerLoad>(intFields<EdgeControllerLoad>(LOAD_KEYS)),
  }),
  deviceController: ptrObj<DeviceControllerConfig>({
    enable: enableSchema,
    runAs: runAsSchema,
    buffer: ptrObj<DeviceControllerConfig['buffer']>({
      updateDeviceTwins: int(),
      updateDeviceStatus: int(),
      deviceEvent: int(),
      deviceModelEvent: int(),
      deviceStatusEvent: int(),
    }),
    load: ptrObj<DeviceControllerConfig['load']>({ updateDeviceStatusWorkers: int() }),
  }),
  taskManager: ptrObj<CloudTaskManagerConfig>({
    enable: enableSchema,
    runAs: runAsSchema,
    buffer: ptrObj<CloudTaskManagerConfig['buffer']>({ taskStatus: int(), taskEvent: int() }),
    load: ptrObj<CloudTaskManagerConfig['load']>({ taskWorkers: int() }),
  }),
  syncController: ptrObj<SyncControllerConfig>({ enable: enableSchema, runAs: runAsSchema }),
  dynamicController: ptrObj<DynamicControllerConfig>({ enable: enableSchema, runAs: runAsSchema }),
  cloudStream: ptrObj<CloudStreamConfig>({
    enable: enableSchema,
    runAs: runAsSchema,
    tlsTunnelCAFile: str(),
    tlsTunnelCertFile: str(),
    tlsTunnelPrivateKeyFile: str(),
    tunnelPort: int({ min: 0, max: 4294967295 }),
    tlsStreamCAFile: str(),
    tlsStreamCertFile: str(),
    tlsStreamPrivateKeyFile: str(),
    streamPort: int({ min: 0, max: 4294967295 }),
  }),
  router: ptrObj<RouterConfig>({
    enable: enableSchema,
    runAs: runAsSchema,
    address: str(),
    port: int({ min: 0, max: 4294967295 }),
    restTimeout: int({ min: 0, max: 4294967295 }),
  }),
  iptablesManager: ptrObj<IptablesManagerConfig>({ enable: enableSchema, runAs: runAsSchema, mode: str() }),
});

type CloudCoreTop = Omit<CloudCoreConfig, 'modules'> & { modules: CloudCoreKnownModules };

export const cloudCoreSchema: ObjectSchemaOf<CloudCoreTop> = obj<CloudCoreTop>(
  {
    apiVersion: str(),
    kind: str(),
    commonConfig: ptrObj<CloudCoreCommonConfig>({
      tunnelPort: int(),
      monitorServer: obj<CloudCoreCommonConfig['monitorServer']>(
        { bindAddress: str(), enableProfiling: bool() },
        { omit: 'never' },
      ),
    }),
    kubeAPIConfig: ptrObj<KubeAPIConfig>({
      master: str({ omit: 'never' }),
      contentType: str(),
      qps: int(),
      burst: int(),
      kubeConfig: str({ omit: 'never' }),
    }),
    modules: cloudCoreModulesSchema,
    featureGates: map(bool()),
    kernel: kernelSchema,
  },
  { omit: 'never' },
);

// ---------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------

function edgeControllerBuffer(nodeLimit: number): EdgeControllerBuffer {
  return {
    processEvent: 1024,
    updatePodStatus: 1024,
    updateNodeStatus: 1024,
    queryConfigMap: 1024,
    querySecret: 1024,
    podEvent: 1,
    configMapEvent: 1,
    secretEvent: 1,
    rulesEvent: 1,
    ruleEndpointsEvent: 1,
    queryPersistentVolume: 1024,
    queryPersistentVolumeClaim: 1024,
    queryVolumeAttachment: 1024,
    createNode: 1024,
    patchNode: 1024 + Math.trunc(nodeLimit / 2),
    queryNode: 1024 + nodeLimit,
    updateNode: 1024,
    patchPod: 1024,
    deletePod: 1024,
    createLease: 1024 + nodeLimit,
    queryLease: 1024,
    serviceAccountToken: 1024,
    createPod: 1024,
    certificateSigningRequest: 1024,
  };
}

function edgeControllerLoad(nodeLimit: number): EdgeControllerLoad {
  return {
    processEventWorkers: 4,
    updatePodStatusWorkers: 1,
    updateNodeStatusWorkers: 1,
    queryConfigMapWorkers: 100,
    querySecretWorkers: 100,
    queryPersistentVolumeWorkers: 4,
    queryPersistentVolumeClaimWorkers: 4,
    queryVolumeAttachmentWorkers: 4,
    createNodeWorkers: 100,
    patchNodeWorkers: 100 + Math.trunc(nodeLimit / 50),
    queryNodeWorkers: nodeLimit,
    updateNodeWorkers: 4,
    patchPodWorkers: 100,
    deletePodWorkers: 100,
    createLeaseWorkers: nodeLimit,
    queryLeaseWorkers: 100,
    UpdateRuleStatusWorkers: 4,
    ServiceAccountTokenWorkers: 100,
    CreatePodWorks: 4,
    certificateSigningRequestWorkers: 4,
  };
}

/** The complete default cloudcore configuration (`cloudcore --defaultconfig`), plus kernel defaults. */
export function defaultCloudCoreConfig(): CloudCoreConfig {
  return {
    apiVersion: CLOUDCORE_API_VERSION,
    kind: CLOUDCORE_KIND,
    commonConfig: {
      tunnelPort: 10350,
      monitorServer: { bindAddress: '127.0.0.1:9091', enableProfiling: false },
    },
    kubeAPIConfig: {
      master: '',
      contentType: 'application/vnd.kubernetes.protobuf',
      qps: 5 * DEFAULT_NODE_LIMIT,
      burst: 10 * DEFAULT_NODE_LIMIT,
      kubeConfig: '',
    },
    modules: {
      cloudHub: {
        enable: true,
        runAs: 'inprocess',
        keepaliveInterval: 30,
        nodeLimit: DEFAULT_NODE_LIMIT,
        tlsCAFile: CA_FILE,
        tlsCAKeyFile: CA_KEY_FILE,
        tlsCertFile: CERT_FILE,
        tlsPrivateKeyFile: KEY_FILE,
        writeTimeout: 30,
        quic: { enable: false, address: '0.0.0.0', port: 10001, maxIncomingStreams: 10000 },
        unixsocket: { enable: true, address: 'unix:///var/lib/kubeedge/kubeedge.sock' },
        websocket: { enable: true, address: '0.0.0.0', port: 10000 },
        https: { enable: true, address: '0.0.0.0', port: 10002 },
        advertiseAddress: [localIP()],
        dnsNames: [''],
        edgeCertSigningDuration: 365,
        tokenRefreshDuration: 12,
        authorization: { enable: false, debug: true, modes: [{ node: { enable: true } }] },
      },
      edgeController: {
        enable: true,
        runAs: 'inprocess',
        nodeUpdateFrequency: 10,
        buffer: edgeControllerBuffer(DEFAULT_NODE_LIMIT),
        load: edgeControllerLoad(DEFAULT_NODE_LIMIT),
      },
      deviceController: {
        enable: true,
        runAs: 'inprocess',
        buffer: {
          updateDeviceTwins: 1024,
          updateDeviceStatus: 1024,
          deviceEvent: 1,
          deviceModelEvent: 1,
          deviceStatusEvent: 0,
        },
        load: { updateDeviceStatusWorkers: 1 },
      },
      taskManager: {
        enable: false,
        runAs: 'inprocess',
        buffer: { taskStatus: 1024, taskEvent: 1 },
        load: { taskWorkers: 1 },
      },
      syncController: { enable: true, runAs: 'inprocess' },
      dynamicController: { enable: false, runAs: 'inprocess' },
      cloudStream: {
        enable: false,
        runAs: 'inprocess',
        tlsTunnelCAFile: CA_FILE,
        tlsTunnelCertFile: CERT_FILE,
        tlsTunnelPrivateKeyFile: KEY_FILE,
        tunnelPort: 10004,
        tlsStreamCAFile: '/etc/kubeedge/ca/streamCA.crt',
        tlsStreamCertFile: '/etc/kubeedge/certs/stream.crt',
        tlsStreamPrivateKeyFile: '/etc/kubeedge/certs/stream.key',
        streamPort: 10003,
      },
      router: { enable: false, runAs: 'inprocess', address: '0.0.0.0', port: 9443, restTimeout: 60 },
      iptablesManager: { enable: true, runAs: 'inprocess', mode: 'internal' },
    },
    kernel: defaultKernelConfig(CLOUDCORE_HEALTH_PORT),
  };
}

/** The object KubeEdge prints for `cloudcore --minconfig` (NewMinCloudCoreConfig), faithfully. */
export function minCloudCoreConfig(): object {
  return {
    apiVersion: CLOUDCORE_API_VERSION,
    kind: CLOUDCORE_KIND,
    modules: {
      cloudHub: {
        nodeLimit: 1000,
        tlsCAFile: CA_FILE,
        tlsCAKeyFile: CA_KEY_FILE,
        tlsCertFile: CERT_FILE,
        tlsPrivateKeyFile: KEY_FILE,
        advertiseAddress: [localIP()],
        unixsocket: { enable: true, address: 'unix:///var/lib/kubeedge/kubeedge.sock' },
        websocket: { enable: true, port: 10000, address: '0.0.0.0' },
        https: { enable: true, port: 10002, address: '0.0.0.0' },
      },
      router: { enable: false, address: '0.0.0.0', port: 9443, restTimeout: 60 },
      iptablesManager: { enable: true, mode: 'internal' },
    },
  };
}

/**
 * cloudcore's AdjustCloudCoreConfig, applied at start: Kubernetes client QPS/burst follow
 * `cloudHub.nodeLimit`, and node-related workers and buffers are raised to fit it.
 */
export function adjustCloudCoreConfig(c: CloudCoreConfig): void {
  const n = c.modules.cloudHub.nodeLimit;
  const { load, buffer } = c.modules.edgeController;
  c.kubeAPIConfig.qps = 5 * n;
  c.kubeAPIConfig.burst = 10 * n;
  load.queryNodeWorkers = Math.max(load.queryNodeWorkers, n);
  load.patchNodeWorkers = Math.max(load.patchNodeWorkers, 100 + Math.trunc(n / 50));
  load.createLeaseWorkers = Math.max(load.createLeaseWorkers, n);
  buffer.patchNode = Math.max(buffer.patchNode, 1024 + Math.trunc(n / 2));
  buffer.queryNode = Math.max(buffer.queryNode, 1024 + n);
  buffer.createLease = Math.max(buffer.createLease, 1024 + n);
}

// ---------------------------------------------------------------------------------------------
// Validation (validation.go; checks that touch the file system are left to the plugins)
// ---------------------------------------------------------------------------------------------

const validPort = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;

export function validateCloudCore(c: CloudCoreConfig, r: Reporter): void {
  const kubeConfig = c.kubeAPIConfig.kubeConfig;
  if (kubeConfig !== '' && !path.isAbsolute(kubeConfig)) {
    r.error('kubeAPIConfig.kubeConfig', `must be an absolute path, got ${JSON.stringify(kubeConfig)}`);
  }
  const bind = c.commonConfig.monitorServer.bindAddress;
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(bind);
  const host = m?.[1] ?? m?.[2];
  if (!m || host === undefined || isIP(host) === 0 || !validPort(Number(m[3]))) {
    r.error('commonConfig.monitorServer.bindAddress', `must be IP:port, got ${JSON.stringify(bind)}`);
  }

  const hub = c.modules.cloudHub;
  if (hub.enable) {
    for (const [key, srv] of [
      ['https', hub.https],
      ['websocket', hub.websocket],
      ['quic', hub.quic],
    ] as const) {
      if (!validPort(srv.port)) {
        r.error(`modules.cloudHub.${key}.port`, `must be a port between 1 and 65535, got ${srv.port}`);
      }
    }
    for (const [key, addr] of [
      ['websocket', hub.websocket.address],
      ['quic', hub.quic.address],
    ] as const) {
      if (isIP(addr) === 0) {
        r.error(`modules.cloudHub.${key}.address`, `must be a valid IP address, got ${JSON.stringify(addr)}`);
      }
    }
    if (!hub.unixsocket.address.toLowerCase().startsWith('unix://')) {
      r.error(
        'modules.cloudHub.unixsocket.address',
        `must start with "unix://", got ${JSON.stringify(hub.unixsocket.address)}`,
      );
    }
    if (hub.tokenRefreshDuration <= 0) {
      r.error('modules.cloudHub.tokenRefreshDuration', `must be positive, got ${hub.tokenRefreshDuration}`);
    }
  }
  const ec = c.modules.edgeController;
  if (ec.enable && ec.nodeUpdateFrequency <= 0) {
    r.error('modules.edgeController.nodeUpdateFrequency', `must be > 0, got ${ec.nodeUpdateFrequency}`);
  }
  for (const gate of Object.keys(c.featureGates ?? {})) {
    if (!(CLOUDCORE_FEATURE_GATES as readonly string[]).includes(gate)) {
      r.error(`featureGates.${gate}`, `unknown feature gate (known: ${CLOUDCORE_FEATURE_GATES.join(', ')})`);
    }
  }
}
