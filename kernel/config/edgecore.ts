/**
 * edgecore.yaml: schema, defaults, --minconfig object, legacy key mapping and validation.
 *
 * Sources (kubeedge/kubeedge@v1.23.1, as summarised in the project's edge-modules spec §1):
 *   staging/src/github.com/kubeedge/api/apis/componentconfig/edgecore/v1alpha2/types.go
 *   staging/src/github.com/kubeedge/api/apis/componentconfig/edgecore/v1alpha2/default.go
 *   staging/src/github.com/kubeedge/api/apis/componentconfig/edgecore/v1alpha2/default_kubelet_configuration.go
 *   staging/src/github.com/kubeedge/api/apis/componentconfig/edgecore/v1alpha2/validation/validation.go
 *   staging/src/github.com/kubeedge/api/apis/common/constants/default.go, default_others.go
 *   legacy layout: staging/src/github.com/kubeedge/api/apis/componentconfig/edgecore/v1alpha1/types.go,
 *   pkg/apis/componentconfig/edgecore/v1alpha1/types.go@v1.11.0, pkg/apis/componentconfig/edgecore/v1alpha2/types.go@v1.15.4
 */
import type {
  DBTestConfig,
  DeviceTwinConfig,
  EdgeCoreConfig,
  EdgeCoreDatabase,
  EdgeCoreKnownModules,
  EdgedConfig,
  EdgeHubConfig,
  EdgeHubTransport,
  EdgeStreamConfig,
  EventBusConfig,
  EventBusTLS,
  LoggingConfiguration,
  LoggingFormatOptions,
  MemoryReservation,
  MetaManagerConfig,
  MetaServerConfig,
  ServiceBusConfig,
  ShutdownGracePeriodByPodPriority,
  TailoredKubeletConfig,
  Taint,
  TaskManagerConfig,
  VModuleItem,
} from './edgecore-types.js';
import { formatNanos, normalizeDuration } from './duration.js';
import { defaultHostname, isValidNodeName, localIP } from './host.js';
import {
  defaultKernelConfig,
  enableSchema,
  kernelSchema,
  runAsSchema,
  type KernelConfig,
} from './kernel-section.js';
import {
  any,
  bool,
  dur,
  int,
  list,
  map,
  num,
  obj,
  ptrObj,
  quantity,
  str,
  type LegacyRule,
  type ObjectSchemaOf,
} from './schema.js';
import type { Reporter } from './types.js';

export const EDGECORE_GROUP = 'edgecore.config.kubeedge.io';
export const EDGECORE_API_VERSION = `${EDGECORE_GROUP}/v1alpha2`;
export const EDGECORE_API_VERSIONS = [EDGECORE_API_VERSION, `${EDGECORE_GROUP}/v1alpha1`] as const;
export const EDGECORE_KIND = 'EdgeCore';

/** KubeEdge feature gates an edgecore accepts (pkg/features/features.go; AllAlpha/AllBeta from component-base). */
export const EDGECORE_FEATURE_GATES = [
  'requireAuthorization',
  'moduleRestart',
  'disableNodeTaskV1alpha2',
  'disableCSI',
  'AllAlpha',
  'AllBeta',
] as const;

const CA_FILE = '/etc/kubeedge/ca/rootCA.crt';
const CERT_FILE = '/etc/kubeedge/certs/server.crt';
const KEY_FILE = '/etc/kubeedge/certs/server.key';
const CONTAINERD_SOCK = 'unix:///run/containerd/containerd.sock';

// ---------------------------------------------------------------------------------------------
// Legacy keys (v1alpha1, and the v1.12-v1.17 flattened kubelet flags)
// ---------------------------------------------------------------------------------------------

const SECOND = 1_000_000_000n;

/** Legacy integer in `unit` nanoseconds (or a duration string) -> canonical duration. */
function legacyDuration(unit: bigint, unitName: string): (v: unknown) => unknown {
  return (v) => {
    if (typeof v === 'number' && Number.isSafeInteger(v)) return formatNanos(BigInt(v) * unit);
    if (typeof v === 'string') {
      const d = normalizeDuration(v);
      if (d !== undefined) return d;
    }
    throw new Error(`expected integer (${unitName}) or duration`);
  };
}

/** Empty legacy strings were the v1alpha1 defaults: they do not override v1alpha2 defaults. */
const nonEmpty = (v: unknown): unknown => (v === '' ? undefined : v);

function legacyClusterDNS(v: unknown): unknown {
  if (typeof v === 'string') {
    const ips = v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    return ips.length > 0 ? ips : undefined;
  }
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v.length > 0 ? v : undefined;
  throw new Error('expected string or list of strings');
}

const TKC = 'tailoredKubeletConfig';
const noEquivalent = (note?: string): LegacyRule => ({ schema: any(), ...(note ? { note } : {}) });

const taintSchema = obj<Taint>({
  key: str({ omit: 'never' }),
  value: str(),
  effect: str({ omit: 'never' }),
  timeAdded: str({ omit: 'nil' }),
});

export const EDGED_LEGACY: Record<string, LegacyRule> = {
  remoteRuntimeEndpoint: { schema: str(), to: [TKC, 'containerRuntimeEndpoint'], convert: nonEmpty },
  remoteImageEndpoint: { schema: str(), to: [TKC, 'imageServiceEndpoint'], convert: nonEmpty },
  containerRuntime: { schema: str(), to: ['runtimeType'], convert: nonEmpty },
  dockerEndpoint: { schema: str(), to: ['dockerAddress'], convert: nonEmpty },
  cgroupDriver: { schema: str(), to: [TKC, 'cgroupDriver'], convert: nonEmpty },
  cgroupsPerQOS: { schema: bool(), to: [TKC, 'cgroupsPerQOS'] },
  cgroupRoot: { schema: str(), to: [TKC, 'cgroupRoot'], convert: nonEmpty },
  edgeCoreCgroups: { schema: str(), to: [TKC, 'kubeletCgroups'], convert: nonEmpty },
  systemCgroups: { schema: str(), to: [TKC, 'systemCgroups'], convert: nonEmpty },
  clusterDNS: { schema: any(), to: [TKC, 'clusterDNS'], convert: legacyClusterDNS },
  clusterDomain: { schema: str(), to: [TKC, 'clusterDomain'], convert: nonEmpty },
  nodeStatusUpdateFrequency: {
    schema: any(),
    to: [TKC, 'nodeStatusUpdateFrequency'],
    convert: legacyDuration(SECOND, 'seconds'),
  },
  // v1alpha1 documents seconds, but edged (v1.11) multiplied it by time.Minute.
  runtimeRequestTimeout: {
    schema: any(),
    to: [TKC, 'runtimeRequestTimeout'],
    convert: legacyDuration(60n * SECOND, 'minutes'),
  },
  volumeStatsAggPeriod: {
    schema: any(),
    to: [TKC, 'volumeStatsAggPeriod'],
    convert: legacyDuration(1n, 'nanoseconds'),
  },
  registerNode: { schema: bool(), to: [TKC, 'registerNode'] },
  imageGCHighThreshold: { schema: int(), to: [TKC, 'imageGCHighThresholdPercent'] },
  imageGCLowThreshold: { schema: int(), to: [TKC, 'imageGCLowThresholdPercent'] },
  maximumDeadContainersPerPod: { schema: int(), to: ['maxPerPodContainerCount'] },
  labels: { schema: map(str()), to: ['nodeLabels'] },
  taints: {
    schema: list(taintSchema),
    to: [TKC, 'registerWithTaints'],
    convert: (v) => (Array.isArray(v) && v.length === 0 ? undefined : v),
  },
  annotations: noEquivalent('node annotations are not supported'),
  edgedMemoryCapacity: noEquivalent(),
  imagePullProgressDeadline: noEquivalent(),
  concurrentConsumers: noEquivalent(),
  devicePluginEnabled: noEquivalent(),
  gpuPluginEnabled: noEquivalent(),
  networkPluginName: noEquivalent('CNI is configured in the container runtime since v1.18'),
  networkPluginMTU: noEquivalent('CNI is configured in the container runtime since v1.18'),
  cniConfDir: noEquivalent('CNI is configured in the container runtime since v1.18'),
  cniBinDir: noEquivalent('CNI is configured in the container runtime since v1.18'),
  cniCacheDir: noEquivalent('CNI is configured in the container runtime since v1.18'),
  cniCacheDirs: noEquivalent('CNI is configured in the container runtime since v1.18'),
  enableMetrics: noEquivalent(),
  dockershimRootDirectory: noEquivalent('dockershim is gone'),
  experimentalCheckNodeCapabilitiesBeforeMount: noEquivalent(),
  seccompProfileRoot: noEquivalent(),
  masterServiceNamespace: noEquivalent(),
  nonMasqueradeCidr: noEquivalent(),
};

const METAMANAGER_LEGACY: Record<string, LegacyRule> = {
  podStatusSyncInterval: noEquivalent('removed in v1.11'),
};

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

const strMap = () => map(str());
const formatOptionsSchema = obj<LoggingFormatOptions>({ splitStream: bool(), infoBufferSize: quantity() });

const tailoredKubeletSchema = obj<TailoredKubeletConfig>(
  {
    staticPodPath: str(),
    podLogsDir: str(),
    syncFrequency: dur(),
    fileCheckFrequency: dur(),
    address: str(),
    readOnlyPort: int(),
    registryPullQPS: int({ omit: 'nil' }),
    registryBurst: int(),
    eventRecordQPS: int({ omit: 'nil' }),
    eventBurst: int(),
    enableDebuggingHandlers: bool({ omit: 'nil' }),
    enableContentionProfiling: bool(),
    oomScoreAdj: int({ omit: 'nil' }),
    clusterDomain: str(),
    clusterDNS: list(str()),
    streamingConnectionIdleTimeout: dur(),
    nodeStatusUpdateFrequency: dur(),
    nodeStatusReportFrequency: dur(),
    nodeLeaseDurationSeconds: int(),
    imageMinimumGCAge: dur(),
    imageMaximumGCAge: dur(),
    imageGCHighThresholdPercent: int({ omit: 'nil' }),
    imageGCLowThresholdPercent: int({ omit: 'nil' }),
    volumeStatsAggPeriod: dur(),
    kubeletCgroups: str(),
    systemCgroups: str(),
    cgroupRoot: str(),
    cgroupsPerQOS: bool({ omit: 'nil' }),
    cgroupDriver: str(),
    cpuManagerPolicy: str(),
    cpuManagerPolicyOptions: strMap(),
    cpuManagerReconcilePeriod: dur(),
    memoryManagerPolicy: str(),
    topologyManagerPolicy: str(),
    topologyManagerScope: str(),
    topologyManagerPolicyOptions: strMap(),
    qosReserved: strMap(),
    singleProcessOOMKill: bool({ omit: 'nil' }),
    runtimeRequestTimeout: dur(),
    hairpinMode: str(),
    maxPods: int(),
    podCIDR: str(),
    podPidsLimit: int({ omit: 'nil', int64: true }),
    resolvConf: str({ omit: 'nil' }),
    cpuCFSQuota: bool({ omit: 'nil' }),
    cpuCFSQuotaPeriod: dur({ omit: 'nil' }),
    nodeStatusMaxImages: int({ omit: 'nil' }),
    maxOpenFiles: int({ int64: true }),
    contentType: str(),
    serializeImagePulls: bool({ omit: 'nil' }),
    maxParallelImagePulls: int({ omit: 'nil' }),
    evictionHard: strMap(),
    evictionSoft: strMap(),
    evictionSoftGracePeriod: strMap(),
    evictionPressureTransitionPeriod: dur(),
    evictionMaxPodGracePeriod: int(),
    evictionMinimumReclaim: strMap(),
    podsPerCore: int(),
    enableControllerAttachDetach: bool({ omit: 'nil' }),
    protectKernelDefaults: bool(),
    makeIPTablesUtilChains: bool({ omit: 'nil' }),
    iptablesMasqueradeBit: int({ omit: 'nil' }),
    iptablesDropBit: int({ omit: 'nil' }),
    featureGates: map(bool()),
    failSwapOn: bool({ omit: 'nil' }),
    memorySwap: obj<{ swapBehavior: string }>({ swapBehavior: str() }, { omit: 'never' }),
    containerLogMaxSize: str(),
    containerLogMaxFiles: int({ omit: 'nil' }),
    containerLogMaxWorkers: int({ omit: 'nil' }),
    containerLogMonitorInterval: dur({ omit: 'nil' }),
    configMapAndSecretChangeDetectionStrategy: str(),
    systemReserved: strMap(),
    kubeReserved: strMap(),
    reservedSystemCPUs: str(),
    showHiddenMetricsForVersion: str(),
    systemReservedCgroup: str(),
    kubeReservedCgroup: str(),
    enforceNodeAllocatable: list(str()),
    allowedUnsafeSysctls: list(str()),
    volumePluginDir: str(),
    kernelMemcgNotification: bool(),
    logging: obj<LoggingConfiguration>(
      {
        format: str(),
        flushFrequency: dur({ acceptNanos: true }),
        verbosity: int({ omit: 'never', min: 0, max: 4294967295 }),
        vmodule: list(
          obj<VModuleItem>({ filePattern: str({ omit: 'never' }), verbosity: int({ omit: 'never' }) }),
        ),
        options: obj<LoggingConfiguration['options']>(
          {
            text: { ...formatOptionsSchema, omit: 'never' },
            json: { ...formatOptionsSchema, omit: 'never' },
          },
          { omit: 'never' },
        ),
      },
      { omit: 'never' },
    ),
    enableSystemLogHandler: bool({ omit: 'nil' }),
    enableSystemLogQuery: bool({ omit: 'nil' }),
    shutdownGracePeriod: dur(),
    shutdownGracePeriodCriticalPods: dur(),
    shutdownGracePeriodByPodPriority: list(
      obj<ShutdownGracePeriodByPodPriority>({
        priority: int({ omit: 'never' }),
        shutdownGracePeriodSeconds: int({ omit: 'never', int64: true }),
      }),
    ),
    reservedMemory: list(
      obj<MemoryReservation>({ numaNode: int({ omit: 'never' }), limits: map(str(), { omit: 'never' }) }),
    ),
    crashLoopBackOff: obj<{ maxContainerRestartPeriod?: string }>(
      { maxContainerRestartPeriod: dur({ omit: 'nil' }) },
      { omit: 'never' },
    ),
    enableProfilingHandler: bool({ omit: 'nil' }),
    enableDebugFlagsHandler: bool({ omit: 'nil' }),
    seccompDefault: bool({ omit: 'nil' }),
    memoryThrottlingFactor: num({ omit: 'nil' }),
    registerWithTaints: list(taintSchema),
    registerNode: bool({ omit: 'nil' }),
    localStorageCapacityIsolation: bool({ omit: 'nil' }),
    failCgroupV1: bool({ omit: 'nil' }),
    containerRuntimeEndpoint: str({ omit: 'never' }),
    imageServiceEndpoint: str(),
  },
  // `*TailoredKubeletConfiguration` with `json:"tailoredKubeletConfig"` (no omitempty).
  { ptr: true, omit: 'never' },
);

const edgedSchema = ptrObj<EdgedConfig>(
  {
    enable: enableSchema,
    runAs: runAsSchema,
    reportEvent: bool({ omit: 'never' }),
    tailoredKubeletConfig: tailoredKubeletSchema,
    customInterfaceName: str(),
    registerNodeNamespace: str(),
    hostnameOverride: str(),
    nodeIP: str(),
    runtimeCgroups: str(),
    podSandboxImage: str(),
    rootDirectory: str(),
    windowsService: bool(),
    windowsPriorityClass: str(),
    experimentalMounterPath: str(),
    experimentalNodeAllocatableIgnoreEvictionThreshold: bool(),
    nodeLabels: strMap(),
    minimumGCAge: dur(),
    maxPerPodContainerCount: int(),
    maxContainerCount: int(),
    registerSchedulable: bool(),
    keepTerminatedPodVolumes: bool(),
    seccompDefault: bool(),
    runtimeType: str({ hidden: true }),
    dockerAddress: str({ hidden: true }),
  },
  { legacy: EDGED_LEGACY },
);

const transportSchema = (): ObjectSchemaOf<EdgeHubTransport> =>
  ptrObj<EdgeHubTransport>({
    enable: enableSchema,
    handshakeTimeout: int(),
    readDeadline: int(),
    server: str(),
    writeDeadline: int(),
  });

const edgeHubSchema = ptrObj<EdgeHubConfig>({
  enable: enableSchema,
  runAs: runAsSchema,
  heartbeat: int(),
  messageQPS: int(),
  messageBurst: int(),
  projectID: str(),
  tlsCaFile: str(),
  tlsCertFile: str(),
  tlsPrivateKeyFile: str(),
  quic: transportSchema(),
  websocket: transportSchema(),
  token: str({ omit: 'never' }),
  httpServer: str(),
  rotateCertificates: bool(),
});

const eventBusSchema = ptrObj<EventBusConfig>({
  enable: enableSchema,
  runAs: runAsSchema,
  mqttQOS: int({ omit: 'never', min: 0, max: 255 }),
  mqttRetain: bool({ omit: 'never' }),
  mqttSessionQueueSize: int(),
  mqttServerInternal: str(),
  mqttServerExternal: str(),
  mqttSubClientID: str({ omit: 'never' }),
  mqttPubClientID: str({ omit: 'never' }),
  mqttUsername: str({ omit: 'never' }),
  mqttPassword: str({ omit: 'never' }),
  mqttMode: int({ omit: 'never' }),
  eventBusTLS: ptrObj<EventBusTLS>({
    enable: enableSchema,
    tlsMqttCAFile: str(),
    tlsMqttCertFile: str(),
    tlsMqttPrivateKeyFile: str(),
  }),
});

const metaManagerSchema = ptrObj<MetaManagerConfig>(
  {
    enable: enableSchema,
    runAs: runAsSchema,
    contextSendGroup: str(),
    contextSendModule: str(),
    remoteQueryTimeout: int(),
    metaServer: ptrObj<MetaServerConfig>({
      enable: enableSchema,
      server: str({ omit: 'never' }),
      tlsCaFile: str({ omit: 'never' }),
      tlsCertFile: str({ omit: 'never' }),
      tlsPrivateKeyFile: str({ omit: 'never' }),
      serviceAccountIssuers: list(str(), { omit: 'never' }),
      apiAudiences: list(str(), { omit: 'never' }),
      serviceAccountKeyFiles: list(str(), { omit: 'never' }),
      dummyServer: str({ omit: 'never' }),
    }),
  },
  { legacy: METAMANAGER_LEGACY },
);

const serviceBusSchema = ptrObj<ServiceBusConfig>({
  enable: enableSchema,
  runAs: runAsSchema,
  server: str({ omit: 'never' }),
  port: int({ omit: 'never' }),
  timeout: int({ omit: 'never' }),
});

const deviceTwinSchema = ptrObj<DeviceTwinConfig>({
  enable: enableSchema,
  runAs: runAsSchema,
  dmiSockPath: str(),
});
const dbTestSchema = ptrObj<DBTestConfig>({ enable: enableSchema, runAs: runAsSchema });
const taskManagerSchema = ptrObj<TaskManagerConfig>({ enable: enableSchema, runAs: runAsSchema });

const edgeStreamSchema = ptrObj<EdgeStreamConfig>({
  enable: enableSchema,
  runAs: runAsSchema,
  tlsTunnelCAFile: str(),
  tlsTunnelCertFile: str(),
  tlsTunnelPrivateKeyFile: str(),
  handshakeTimeout: int(),
  readDeadline: int(),
  server: str(),
  writeDeadline: int(),
});

export const edgeCoreModulesSchema = ptrObj<EdgeCoreKnownModules>({
  edged: edgedSchema,
  edgeHub: edgeHubSchema,
  eventBus: eventBusSchema,
  metaManager: metaManagerSchema,
  serviceBus: serviceBusSchema,
  deviceTwin: deviceTwinSchema,
  dbTest: dbTestSchema,
  edgeStream: edgeStreamSchema,
  taskManager: taskManagerSchema,
});

type EdgeCoreTop = Omit<EdgeCoreConfig, 'modules'> & { modules: EdgeCoreKnownModules };

export const edgeCoreSchema: ObjectSchemaOf<EdgeCoreTop> = obj<EdgeCoreTop>(
  {
    apiVersion: str(),
    kind: str(),
    database: ptrObj<EdgeCoreDatabase>({ driverName: str(), aliasName: str(), dataSource: str() }),
    modules: edgeCoreModulesSchema,
    featureGates: map(bool()),
    edgecoreVersion: str({ omit: 'never' }),
    kernel: kernelSchema,
  },
  { omit: 'never' },
);

// ---------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------

function defaultTailoredKubelet(): TailoredKubeletConfig {
  return {
    staticPodPath: '/etc/kubeedge/manifests',
    podLogsDir: '/var/log/pods',
    syncFrequency: '1m0s',
    fileCheckFrequency: '20s',
    address: '127.0.0.1',
    readOnlyPort: 10350,
    registryPullQPS: 5,
    registryBurst: 10,
    eventRecordQPS: 50,
    eventBurst: 100,
    enableDebuggingHandlers: true,
    enableContentionProfiling: false,
    oomScoreAdj: -999,
    clusterDomain: 'cluster.local',
    streamingConnectionIdleTimeout: '4h0m0s',
    nodeStatusUpdateFrequency: '10s',
    nodeStatusReportFrequency: '5m0s',
    nodeLeaseDurationSeconds: 40,
    imageMinimumGCAge: '2m0s',
    imageMaximumGCAge: '0s',
    imageGCHighThresholdPercent: 85,
    imageGCLowThresholdPercent: 80,
    volumeStatsAggPeriod: '1m0s',
    kubeletCgroups: '',
    systemCgroups: '',
    cgroupRoot: '',
    cgroupsPerQOS: true,
    cgroupDriver: 'cgroupfs',
    cpuManagerPolicy: 'none',
    cpuManagerReconcilePeriod: '10s',
    memoryManagerPolicy: 'None',
    topologyManagerPolicy: 'none',
    topologyManagerScope: 'container',
    runtimeRequestTimeout: '2m0s',
    hairpinMode: 'promiscuous-bridge',
    maxPods: 110,
    podCIDR: '',
    podPidsLimit: -1,
    resolvConf: '/etc/resolv.conf',
    cpuCFSQuota: true,
    cpuCFSQuotaPeriod: '100ms',
    nodeStatusMaxImages: 0,
    maxOpenFiles: 1000000,
    contentType: 'application/json',
    serializeImagePulls: true,
    evictionHard: {
      'memory.available': '100Mi',
      'nodefs.available': '10%',
      'nodefs.inodesFree': '5%',
      'imagefs.available': '15%',
      'imagefs.inodesFree': '5%',
    },
    evictionPressureTransitionPeriod: '5m0s',
    evictionMaxPodGracePeriod: 0,
    podsPerCore: 0,
    enableControllerAttachDetach: true,
    protectKernelDefaults: false,
    makeIPTablesUtilChains: true,
    iptablesMasqueradeBit: 14,
    iptablesDropBit: 15,
    failSwapOn: false,
    memorySwap: { swapBehavior: '' },
    containerLogMaxSize: '10Mi',
    containerLogMaxFiles: 5,
    containerLogMaxWorkers: 1,
    containerLogMonitorInterval: '10s',
    configMapAndSecretChangeDetectionStrategy: 'Get',
    reservedSystemCPUs: '',
    showHiddenMetricsForVersion: '',
    systemReservedCgroup: '',
    kubeReservedCgroup: '',
    enforceNodeAllocatable: ['pods'],
    volumePluginDir: '/usr/libexec/kubernetes/kubelet-plugins/volume/exec/',
    kernelMemcgNotification: false,
    logging: {
      format: 'text',
      flushFrequency: '5s',
      verbosity: 0,
      options: {
        text: { splitStream: false, infoBufferSize: '0' },
        json: { splitStream: false, infoBufferSize: '0' },
      },
    },
    enableSystemLogHandler: true,
    shutdownGracePeriod: '0s',
    shutdownGracePeriodCriticalPods: '0s',
    crashLoopBackOff: {},
    enableProfilingHandler: true,
    enableDebugFlagsHandler: true,
    seccompDefault: false,
    memoryThrottlingFactor: 0.9,
    registerNode: true,
    localStorageCapacityIsolation: true,
    failCgroupV1: false,
    containerRuntimeEndpoint: CONTAINERD_SOCK,
    imageServiceEndpoint: CONTAINERD_SOCK,
  };
}

/** The complete default edgecore configuration (`edgecore --defaultconfig`), plus kernel defaults. */
export function defaultEdgeCoreConfig(): EdgeCoreConfig {
  const ip = localIP();
  const hostname = defaultHostname();
  return {
    apiVersion: EDGECORE_API_VERSION,
    kind: EDGECORE_KIND,
    database: { driverName: 'sqlite3', aliasName: 'default', dataSource: '/var/lib/kubeedge/edgecore.db' },
    modules: {
      edged: {
        enable: true,
        runAs: 'inprocess',
        reportEvent: false,
        tailoredKubeletConfig: defaultTailoredKubelet(),
        customInterfaceName: '',
        registerNodeNamespace: 'default',
        hostnameOverride: hostname,
        nodeIP: '',
        runtimeCgroups: '',
        podSandboxImage: 'kubeedge/pause:3.6',
        rootDirectory: '/var/lib/kubelet',
        windowsService: false,
        windowsPriorityClass: '',
        experimentalMounterPath: '',
        experimentalNodeAllocatableIgnoreEvictionThreshold: false,
        nodeLabels: {},
        minimumGCAge: '0s',
        maxPerPodContainerCount: 1,
        maxContainerCount: -1,
        registerSchedulable: true,
        keepTerminatedPodVolumes: false,
        seccompDefault: false,
      },
      edgeHub: {
        enable: true,
        runAs: 'inprocess',
        heartbeat: 15,
        messageQPS: 30,
        messageBurst: 60,
        projectID: 'e632aba927ea4ac2b575ec1603d56f10',
        tlsCaFile: CA_FILE,
        tlsCertFile: CERT_FILE,
        tlsPrivateKeyFile: KEY_FILE,
        quic: {
          enable: false,
          handshakeTimeout: 30,
          readDeadline: 15,
          server: `${ip}:10001`,
          writeDeadline: 15,
        },
        websocket: {
          enable: true,
          handshakeTimeout: 30,
          readDeadline: 15,
          server: `${ip}:10000`,
          writeDeadline: 15,
        },
        token: '',
        httpServer: `https://${ip}:10002`,
        rotateCertificates: true,
      },
      eventBus: {
        enable: true,
        runAs: 'inprocess',
        mqttQOS: 0,
        mqttRetain: false,
        mqttSessionQueueSize: 100,
        mqttServerInternal: 'tcp://127.0.0.1:1884',
        mqttServerExternal: 'tcp://127.0.0.1:1883',
        mqttSubClientID: '',
        mqttPubClientID: '',
        mqttUsername: '',
        mqttPassword: '',
        mqttMode: 2,
        eventBusTLS: {
          enable: false,
          tlsMqttCAFile: CA_FILE,
          tlsMqttCertFile: CERT_FILE,
          tlsMqttPrivateKeyFile: KEY_FILE,
        },
      },
      metaManager: {
        enable: true,
        runAs: 'inprocess',
        contextSendGroup: 'hub',
        contextSendModule: 'websocket',
        remoteQueryTimeout: 60,
        metaServer: {
          enable: false,
          server: '127.0.0.1:10550',
          tlsCaFile: CA_FILE,
          tlsCertFile: CERT_FILE,
          tlsPrivateKeyFile: KEY_FILE,
          serviceAccountIssuers: ['https://kubernetes.default.svc.cluster.local'],
          apiAudiences: null,
          serviceAccountKeyFiles: null,
          dummyServer: '169.254.30.10:10550',
        },
      },
      serviceBus: { enable: false, runAs: 'inprocess', server: '127.0.0.1', port: 9060, timeout: 60 },
      deviceTwin: { enable: true, runAs: 'inprocess', dmiSockPath: '/etc/kubeedge/' },
      dbTest: { enable: false, runAs: 'inprocess' },
      edgeStream: {
        enable: false,
        runAs: 'inprocess',
        tlsTunnelCAFile: CA_FILE,
        tlsTunnelCertFile: CERT_FILE,
        tlsTunnelPrivateKeyFile: KEY_FILE,
        handshakeTimeout: 30,
        readDeadline: 15,
        server: '127.0.0.1:10004',
        writeDeadline: 15,
      },
      taskManager: { enable: false, runAs: 'inprocess' },
    },
    edgecoreVersion: '',
    kernel: defaultKernelConfig() satisfies KernelConfig,
  };
}

/**
 * The object KubeEdge prints for `edgecore --minconfig` (NewMinEdgeCoreConfig). Faithful, trap
 * included: edgeHub, eventBus and deviceTwin leave `enable` at its zero value (false).
 */
export function minEdgeCoreConfig(): object {
  const ip = localIP();
  return {
    apiVersion: EDGECORE_API_VERSION,
    kind: EDGECORE_KIND,
    database: { dataSource: '/var/lib/kubeedge/edgecore.db' },
    modules: {
      edged: {
        enable: true,
        tailoredKubeletConfig: defaultTailoredKubelet(),
        hostnameOverride: defaultHostname(),
        podSandboxImage: 'kubeedge/pause:3.6',
        rootDirectory: '/var/lib/kubelet',
        minimumGCAge: '0s',
        maxPerPodContainerCount: 1,
        maxContainerCount: -1,
        registerSchedulable: true,
        registerNodeNamespace: 'default',
      },
      edgeHub: {
        heartbeat: 15,
        tlsCaFile: CA_FILE,
        tlsCertFile: CERT_FILE,
        tlsPrivateKeyFile: KEY_FILE,
        websocket: {
          enable: true,
          handshakeTimeout: 30,
          readDeadline: 15,
          server: `${ip}:10000`,
          writeDeadline: 15,
        },
        httpServer: `https://${ip}:10002`,
      },
      eventBus: {
        mqttQOS: 0,
        mqttRetain: false,
        mqttServerExternal: 'tcp://127.0.0.1:1883',
        mqttServerInternal: 'tcp://127.0.0.1:1884',
        mqttMode: 2,
      },
      deviceTwin: { dmiSockPath: '/etc/kubeedge/' },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Validation (spec §1.6; only for enabled modules)
// ---------------------------------------------------------------------------------------------

export function validateEdgeCore(c: EdgeCoreConfig, r: Reporter): void {
  const { edged, edgeHub, eventBus } = c.modules;
  if (edged.enable) {
    if (!isValidNodeName(edged.hostnameOverride)) {
      r.error(
        'modules.edged.hostnameOverride',
        `must be a valid node name (lower-case RFC 1123 subdomain), got ${JSON.stringify(edged.hostnameOverride)}`,
      );
    }
    const driver = edged.tailoredKubeletConfig.cgroupDriver;
    if (driver !== 'cgroupfs' && driver !== 'systemd') {
      r.error(
        'modules.edged.tailoredKubeletConfig.cgroupDriver',
        `must be "cgroupfs" or "systemd", got ${JSON.stringify(driver)}`,
      );
    }
  }
  if (edgeHub.enable) {
    if (edgeHub.websocket.enable === edgeHub.quic.enable) {
      const quicSet = r.isSet('modules.edgeHub.quic.enable') && !r.isSet('modules.edgeHub.websocket.enable');
      r.error(
        quicSet ? 'modules.edgeHub.quic.enable' : 'modules.edgeHub.websocket.enable',
        `exactly one of modules.edgeHub.websocket.enable and modules.edgeHub.quic.enable must be true, ` +
          `got websocket.enable=${edgeHub.websocket.enable}, quic.enable=${edgeHub.quic.enable}`,
      );
    }
    if (edgeHub.messageQPS < 0)
      r.error('modules.edgeHub.messageQPS', `must be >= 0, got ${edgeHub.messageQPS}`);
    if (edgeHub.messageBurst < 0)
      r.error('modules.edgeHub.messageBurst', `must be >= 0, got ${edgeHub.messageBurst}`);
  }
  if (eventBus.enable && (eventBus.mqttMode < 0 || eventBus.mqttMode > 2)) {
    r.error(
      'modules.eventBus.mqttMode',
      `must be 0 (internal broker), 1 (both) or 2 (external broker), got ${eventBus.mqttMode}`,
    );
  }
  for (const gate of Object.keys(c.featureGates ?? {})) {
    if (!(EDGECORE_FEATURE_GATES as readonly string[]).includes(gate)) {
      r.error(`featureGates.${gate}`, `unknown feature gate (known: ${EDGECORE_FEATURE_GATES.join(', ')})`);
    }
  }
}
