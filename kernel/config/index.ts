/**
 * kernel/config: load + validate edgecore.yaml / cloudcore.yaml from a layout (the file-level rules
 * are the kernel's, the module sections the plugins'), defaults, --minconfig/--defaultconfig.
 */
export type { ConfigKind, ConfigLayout, ConfigOf, ConfigWarning, FileOf, LoadedConfig } from './types.js';
export { defineConfigLayout } from './types.js';
export {
  loadConfigFile,
  readConfigText,
  parseConfig,
  defaultConfig,
  minConfig,
  renderConfig,
  moduleSection,
  MAX_CONFIG_BYTES,
} from './load.js';
export {
  defineConfigSection,
  sectionSchema,
  type ConfigSection,
  type FileConfig,
  type ModuleBase,
  type ModulesOf,
  type SectionReporter,
  type Sections,
} from './section.js';
export * as configSchema from './schema.js';
export type { LegacyRule, ObjectSchema, ObjectSchemaOf, Schema } from './schema.js';
export { fileProblem, hostOf, hostPortProblem, isLoopbackHost, parentProblem } from './checks.js';
export { KubeEdgeTLS } from './defaults.js';
export { parseDuration, formatDuration, formatNanos, normalizeDuration, isDuration } from './duration.js';
export { localIP, defaultHostname, isValidNodeName } from './host.js';
export type { EdgeCoreConfig, EdgeCoreDatabase } from './edgecore.js';
export type { CloudCoreConfig, CloudCoreCommonConfig, KubeAPIConfig } from './cloudcore.js';
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
