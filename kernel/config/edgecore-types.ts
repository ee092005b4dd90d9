/**
 * Typed edgecore configuration (apiVersion edgecore.config.kubeedge.io/v1alpha2, KubeEdge v1.23.1),
 * fully defaulted. Key names are the JSON keys of the Go structs. Durations are Go duration strings
 * in canonical form ("1m0s"); use `parseDuration()` for milliseconds. Fields marked optional are
 * "not set" by default.
 */
import type { KernelConfig, RunAs } from './kernel-section.js';

export interface ModuleBase {
  enable: boolean;
  /** Kernel extension: run the module in process (default) or as a child process. */
  runAs: RunAs;
}

export interface EdgeCoreDatabase {
  driverName: string;
  aliasName: string;
  dataSource: string;
}

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

export interface EdgeHubTransport {
  enable: boolean;
  handshakeTimeout: number;
  readDeadline: number;
  server: string;
  writeDeadline: number;
}

export interface EdgeHubConfig extends ModuleBase {
  heartbeat: number;
  messageQPS: number;
  messageBurst: number;
  projectID: string;
  tlsCaFile: string;
  tlsCertFile: string;
  tlsPrivateKeyFile: string;
  quic: EdgeHubTransport;
  websocket: EdgeHubTransport;
  token: string;
  httpServer: string;
  rotateCertificates: boolean;
}

export interface EventBusTLS {
  enable: boolean;
  tlsMqttCAFile: string;
  tlsMqttCertFile: string;
  tlsMqttPrivateKeyFile: string;
}

export interface EventBusConfig extends ModuleBase {
  mqttQOS: number;
  mqttRetain: boolean;
  mqttSessionQueueSize: number;
  mqttServerInternal: string;
  mqttServerExternal: string;
  mqttSubClientID: string;
  mqttPubClientID: string;
  mqttUsername: string;
  mqttPassword: string;
  /** 0 internal broker, 1 both, 2 external broker. */
  mqttMode: number;
  eventBusTLS: EventBusTLS;
}

export interface MetaServerConfig {
  enable: boolean;
  server: string;
  tlsCaFile: string;
  tlsCertFile: string;
  tlsPrivateKeyFile: string;
  serviceAccountIssuers: string[] | null;
  apiAudiences: string[] | null;
  serviceAccountKeyFiles: string[] | null;
  dummyServer: string;
}

export interface MetaManagerConfig extends ModuleBase {
  contextSendGroup: string;
  contextSendModule: string;
  remoteQueryTimeout: number;
  metaServer: MetaServerConfig;
}

export interface ServiceBusConfig extends ModuleBase {
  server: string;
  port: number;
  timeout: number;
}

export interface DeviceTwinConfig extends ModuleBase {
  dmiSockPath: string;
}

export type DBTestConfig = ModuleBase;
export type TaskManagerConfig = ModuleBase;

export interface EdgeStreamConfig extends ModuleBase {
  tlsTunnelCAFile: string;
  tlsTunnelCertFile: string;
  tlsTunnelPrivateKeyFile: string;
  handshakeTimeout: number;
  readDeadline: number;
  server: string;
  writeDeadline: number;
}

export interface EdgeCoreKnownModules {
  edged: EdgedConfig;
  edgeHub: EdgeHubConfig;
  eventBus: EventBusConfig;
  metaManager: MetaManagerConfig;
  serviceBus: ServiceBusConfig;
  deviceTwin: DeviceTwinConfig;
  dbTest: DBTestConfig;
  edgeStream: EdgeStreamConfig;
  taskManager: TaskManagerConfig;
}

/** Known modules, plus unknown module sections kept as decoded (see `LoadedConfig.unknownModules`). */
export type EdgeCoreModules = EdgeCoreKnownModules & { [module: string]: unknown };

export interface EdgeCoreConfig {
  apiVersion: string;
  kind: string;
  database: EdgeCoreDatabase;
  modules: EdgeCoreModules;
  /** KubeEdge feature gates (requireAuthorization, moduleRestart, ...). */
  featureGates?: Record<string, boolean>;
  edgecoreVersion: string;
  /** Kernel extension. */
  kernel: KernelConfig;
}
