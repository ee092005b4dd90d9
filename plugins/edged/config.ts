/**
 * `modules.edged` of edgecore.yaml: schema, defaults, legacy keys (v1alpha1 and the v1.12-v1.17
 * flattened kubelet flags) and validation. Light: the registry loads it without loading edged.
 *
 * Sources (kubeedge/kubeedge@v1.23.1): staging/src/github.com/kubeedge/api/apis/componentconfig/
 * edgecore/v1alpha2/{types,default,default_kubelet_configuration}.go, validation/validation.go;
 * legacy: .../edgecore/v1alpha1/types.go, pkg/apis/componentconfig/edgecore/v1alpha1/types.go@v1.11.0,
 * pkg/apis/componentconfig/edgecore/v1alpha2/types.go@v1.15.4
 */
import {
  configSchema,
  defaultHostname,
  defineConfigSection,
  formatNanos,
  isValidNodeName,
  normalizeDuration,
  sectionSchema,
  type LegacyRule,
  type ModuleBase,
} from '../../kernel/index.js';

const { any, bool, dur, int, list, map, num, obj, quantity, str } = configSchema;

const CONTAINERD_SOCK = 'unix:///run/containerd/containerd.sock';

export interface Taint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: string;
}

export interface ShutdownGracePeriodByPodPriority {
  priority: number;
  shutdownGracePeriodSeconds: number;
}

export interface MemoryReservation {
  numaNode: number;
  limits: Record<string, string>;
}

export interface LoggingFormatOptions {
  splitStream: boolean;
  infoBufferSize: string;
}

export interface VModuleItem {
  filePattern: string;
  verbosity: number;
}

export interface LoggingConfiguration {
  format: string;
  flushFrequency: string;
  verbosity: number;
  vmodule?: VModuleItem[];
  options: { text: LoggingFormatOptions; json: LoggingFormatOptions };
}

/** `modules.edged.tailoredKubeletConfig`: a reduced Kubernetes KubeletConfiguration. */
export interface TailoredKubeletConfig {
  staticPodPath: string;
  podLogsDir: string;
  syncFrequency: string;
  fileCheckFrequency: string;
  address: string;
  readOnlyPort: number;
  registryPullQPS: number;
  registryBurst: number;
  eventRecordQPS: number;
  eventBurst: number;
  enableDebuggingHandlers: boolean;
  enableContentionProfiling: boolean;
  oomScoreAdj: number;
  clusterDomain: string;
  clusterDNS?: string[];
  streamingConnectionIdleTimeout: string;
  nodeStatusUpdateFrequency: string;
  nodeStatusReportFrequency: string;
  nodeLeaseDurationSeconds: number;
  imageMinimumGCAge: string;
  imageMaximumGCAge: string;
  imageGCHighThresholdPercent: number;
  imageGCLowThresholdPercent: number;
  volumeStatsAggPeriod: string;
  kubeletCgroups: string;
  systemCgroups: string;
  cgroupRoot: string;
  cgroupsPerQOS: boolean;
  cgroupDriver: string;
  cpuManagerPolicy: string;
  cpuManagerPolicyOptions?: Record<string, string>;
  cpuManagerReconcilePeriod: string;
  memoryManagerPolicy: string;
  topologyManagerPolicy: string;
  topologyManagerScope: string;
  topologyManagerPolicyOptions?: Record<string, string>;
  qosReserved?: Record<string, string>;
  singleProcessOOMKill?: boolean;
  runtimeRequestTimeout: string;
  hairpinMode: string;
  maxPods: number;
  podCIDR: string;
  podPidsLimit: number;
  resolvConf: string;
  cpuCFSQuota: boolean;
  cpuCFSQuotaPeriod: string;
  nodeStatusMaxImages: number;
  maxOpenFiles: number;
  contentType: string;
  serializeImagePulls: boolean;
  maxParallelImagePulls?: number;
  evictionHard: Record<string, string>;
  evictionSoft?: Record<string, string>;
  evictionSoftGracePeriod?: Record<string, string>;
  evictionPressureTransitionPeriod: string;
  evictionMaxPodGracePeriod: number;
  evictionMinimumReclaim?: Record<string, string>;
  podsPerCore: number;
  enableControllerAttachDetach: boolean;
  protectKernelDefaults: boolean;
  makeIPTablesUtilChains: boolean;
  iptablesMasqueradeBit: number;
  iptablesDropBit: number;
  /** Kubernetes (kubelet) feature gates, distinct from the top-level KubeEdge `featureGates`. */
  featureGates?: Record<string, boolean>;
  failSwapOn: boolean;
  memorySwap: { swapBehavior: string };
  containerLogMaxSize: string;
  containerLogMaxFiles: number;
  containerLogMaxWorkers: number;
  containerLogMonitorInterval: string;
  configMapAndSecretChangeDetectionStrategy: string;
  systemReserved?: Record<string, string>;
  kubeReserved?: Record<string, string>;
  reservedSystemCPUs: string;
  showHiddenMetricsForVersion: string;
  systemReservedCgroup: string;
  kubeReservedCgroup: string;
  enforceNodeAllocatable: string[];
  allowedUnsafeSysctls?: string[];
  volumePluginDir: string;
  kernelMemcgNotification: boolean;
  logging: LoggingConfiguration;
  enableSystemLogHandler: boolean;
  enableSystemLogQuery?: boolean;
  shutdownGracePeriod: string;
  shutdownGracePeriodCriticalPods: string;
  shutdownGracePeriodByPodPriority?: ShutdownGracePeriodByPodPriority[];
  reservedMemory?: MemoryReservation[];
  crashLoopBackOff: { maxContainerRestartPeriod?: string };
  enableProfilingHandler: boolean;
  enableDebugFlagsHandler: boolean;
  seccompDefault: boolean;
  memoryThrottlingFactor: number;
  registerWithTaints?: Taint[];
  registerNode: boolean;
  localStorageCapacityIsolation: boolean;
  failCgroupV1: boolean;
  containerRuntimeEndpoint: string;
  imageServiceEndpoint: string;
}

export interface EdgedConfig extends ModuleBase {
  reportEvent: boolean;
  tailoredKubeletConfig: TailoredKubeletConfig;
  customInterfaceName: string;
  registerNodeNamespace: string;
  hostnameOverride: string;
  /** "" = not set. */
  nodeIP: string;
  runtimeCgroups: string;
  podSandboxImage: string;
  rootDirectory: string;
  windowsService: boolean;
  windowsPriorityClass: string;
  experimentalMounterPath: string;
  experimentalNodeAllocatableIgnoreEvictionThreshold: boolean;
  nodeLabels: Record<string, string>;
  minimumGCAge: string;
  maxPerPodContainerCount: number;
  maxContainerCount: number;
  registerSchedulable: boolean;
  keepTerminatedPodVolumes: boolean;
  seccompDefault: boolean;
  /**
   * Legacy (v1alpha1 `runtimeType`, v1.12-v1.17 `containerRuntime`), kept only when given so that
   * edged can refuse `docker` with a clear message. Not part of v1alpha2; never printed.
   */
  runtimeType?: string;
  /** Legacy v1alpha1 `dockerAddress` (or `dockerEndpoint`), kept when given; never printed. */
  dockerAddress?: string;
}

// ---------------------------------------------------------------------------------------------
// Legacy keys
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

const EDGED_LEGACY: Record<string, LegacyRule> = {
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

const edgedSchema = sectionSchema<EdgedConfig>(
  {
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

// ---------------------------------------------------------------------------------------------
// Defaults and validation
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

export const edgedSection = defineConfigSection<EdgedConfig>({
  schema: edgedSchema,
  defaults: (): EdgedConfig => ({
    enable: true,
    runAs: 'inprocess',
    reportEvent: false,
    tailoredKubeletConfig: defaultTailoredKubelet(),
    customInterfaceName: '',
    registerNodeNamespace: 'default',
    hostnameOverride: defaultHostname(),
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
  }),
  // NewMinEdgeCoreConfig
  min: () => ({
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
  }),
  validate(edged, r) {
    // Every edge module takes its node name from here (kernel nodeName()), even with edged off.
    if (!isValidNodeName(edged.hostnameOverride)) {
      r.error(
        'hostnameOverride',
        `must be a valid node name (lower-case RFC 1123 subdomain), got ${JSON.stringify(edged.hostnameOverride)}`,
      );
    }
    if (!edged.enable) return;
    const driver = edged.tailoredKubeletConfig.cgroupDriver;
    if (driver !== 'cgroupfs' && driver !== 'systemd') {
      r.error(
        'tailoredKubeletConfig.cgroupDriver',
        `must be "cgroupfs" or "systemd", got ${JSON.stringify(driver)}`,
      );
    }
  },
});
