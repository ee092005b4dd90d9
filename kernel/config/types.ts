import type { CloudCoreConfig } from './cloudcore.js';
import type { EdgeCoreConfig } from './edgecore-types.js';

export type ConfigKind = 'edgecore' | 'cloudcore';

export type ConfigOf<K extends ConfigKind> = K extends 'edgecore' ? EdgeCoreConfig : CloudCoreConfig;

/** A non-fatal finding. `message` is complete ("path: text (file:line)"), ready to log. */
export interface ConfigWarning {
  /** YAML path, e.g. "modules.dbTestt" or "modules.edged.devicePluginEnabled". */
  path: string;
  line?: number;
  message: string;
}

export interface LoadedConfig<T = EdgeCoreConfig | CloudCoreConfig> {
  kind: ConfigKind;
  /** The file as given to the loader. */
  file: string;
  /** apiVersion found in the file (the current one when the file has none). `config.apiVersion` is always the current one. */
  apiVersion: string;
  config: T;
  warnings: ConfigWarning[];
  /** Keys under `modules` that are not KubeEdge modules, kept raw in `config.modules[key]`. */
  unknownModules: string[];
}

/** Validation sink: `path` is a YAML path, the message says what is wrong. */
export interface Reporter {
  error(path: string, message: string): void;
  /** Whether the file set `path` explicitly (to point an error at the right line). */
  isSet(path: string): boolean;
}
