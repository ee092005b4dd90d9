/**
 * The kernel's public API: everything a plugin (built-in or third-party) may import.
 * Plugins import from here (or the package's "./kernel" export), never from each other.
 */
export {
  type Message,
  type MessageHeader,
  type MessageRoute,
  type NewMessageOptions,
  Operation,
  newMessage,
  newResponse,
  newErrorMessage,
  encodeMessage,
  decodeMessage,
  contentJson,
} from './bus/message.js';
export { DEFAULT_SYNC_TIMEOUT_MS } from './bus/bus.js';
export type { MailboxStats } from './bus/mailbox.js';
export { KernelError, isKernelError, errorText, type KernelErrorCode } from './errors.js';
export {
  definePlugin,
  type PluginDefinition,
  type PluginContext,
  type PluginInstance,
  type PluginEntry,
  type ModuleConfig,
  type RestartPolicy,
} from './plugin/types.js';
export type { KernelPort } from './plugin/port.js';
export { defineToken, ServiceToken, type Services } from './services.js';
export {
  CloudConnection,
  CloudConnectionToken,
  ConfigToken,
  DatabaseToken,
  KubeToken,
  LoggerToken,
  MetricsToken,
} from './tokens.js';
export type {
  KubeApi,
  KubeStats,
  KubeRequestOptions,
  InformerOptions,
  InformerHandlers,
  SharedInformer,
} from './kube/types.js';
export { KubeApiError, withTypeMeta } from './kube/index.js';
export { requireKube, idleWithoutKube } from './kube/require.js';
export type { Logger, LogLevel } from './log.js';
export type { Metrics } from './metrics.js';
export { pluginSpecifier } from './plugin/specifier.js';
export { parseResource, NULL_NAMESPACE, type Resource } from './resource.js';
export { edgedEndpoint, nodeName } from './kernel-services.js';
export {
  configSchema,
  defineConfigLayout,
  defineConfigSection,
  sectionSchema,
  fileProblem,
  hostOf,
  hostPortProblem,
  isLoopbackHost,
  parentProblem,
  KubeEdgeTLS,
  parseDuration,
  formatDuration,
  formatNanos,
  normalizeDuration,
  localIP,
  defaultHostname,
  isValidNodeName,
  type ConfigLayout,
  type ConfigOf,
  type ConfigSection,
  type FileConfig,
  type LegacyRule,
  type LoadedConfig,
  type ModuleBase,
  type ObjectSchemaOf,
  type SectionReporter,
  type EdgeCoreConfig,
  type CloudCoreConfig,
} from './config/index.js';
