/**
 * kernel/config: load + validate edgecore.yaml / cloudcore.yaml, defaults, --minconfig/--defaultconfig.
 */
export type { ConfigKind, ConfigOf, ConfigWarning, LoadedConfig } from './types.js';
export {
  loadConfigFile,
  parseConfig,
  defaultConfig,
  minConfig,
  renderConfig,
  moduleSection,
} from './load.js';
export { parseDuration, formatDuration, normalizeDuration, isDuration } from './duration.js';
export { localIP, defaultHostname, isValidNodeName } from './host.js';
export type {
  EdgeCoreConfig,
  EdgeCoreModules,
  EdgeCoreKnownModules,
  EdgeCoreDatabase,
  ModuleBase,
  EdgedConfig,
  TailoredKubeletConfig,
  Taint,
  EdgeHubConfig,
  EdgeHubTransport,
  EventBusConfig,
  EventBusTLS,
  MetaManagerConfig,
  MetaServerConfig,
  ServiceBusConfig,
  DeviceTwinConfig,
  DBTestConfig,
  EdgeStreamConfig,
  TaskManagerConfig,
} from './edgecore-types.js';
export type {
  CloudCoreConfig,
  CloudCoreModules,
  CloudCoreKnownModules,
  CloudCoreCommonConfig,
  KubeAPIConfig,
  CloudHubConfig,
  CloudHubServer,
  CloudHubQUIC,
  CloudHubUnixSocket,
  CloudHubAuthorization,
  EdgeControllerConfig,
  EdgeControllerBuffer,
  EdgeControllerLoad,
  DeviceControllerConfig,
  CloudTaskManagerConfig,
  SyncControllerConfig,
  DynamicControllerConfig,
  CloudStreamConfig,
  RouterConfig,
  IptablesManagerConfig,
} from './cloudcore.js';
export type {
  KernelConfig,
  KernelPluginRef,
  KernelRestartConfig,
  LogLevel,
  RunAs,
} from './kernel-section.js';
export { LOG_LEVELS, RUN_AS } from './kernel-section.js';
export {
  EDGECORE_API_VERSION,
  EDGECORE_API_VERSIONS,
  EDGECORE_KIND,
  EDGECORE_FEATURE_GATES,
} from './edgecore.js';
export { CLOUDCORE_API_VERSION, CLOUDCORE_KIND, CLOUDCORE_FEATURE_GATES } from './cloudcore.js';
