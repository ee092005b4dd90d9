import type { CloudCoreConfig } from './cloudcore.js';
import type { EdgeCoreConfig } from './edgecore.js';
import type { ObjectSchema } from './schema.js';
import type { ModulesOf, Sections } from './section.js';

export type ConfigKind = 'edgecore' | 'cloudcore';

/** The file-level config of a kind, `modules` untyped. */
export type FileOf<K extends ConfigKind> = K extends 'edgecore' ? EdgeCoreConfig : CloudCoreConfig;

/**
 * What the kernel loads: a kind of file (its file-level rules are the kernel's) and the module
 * sections the plugins declare (plugins/registry.ts builds the built-in layouts).
 */
export interface ConfigLayout<K extends ConfigKind = ConfigKind, S extends Sections = Sections> {
  readonly kind: K;
  readonly sections: S;
}

/** Identity helper that types a layout. */
export function defineConfigLayout<K extends ConfigKind, S extends Sections>(
  kind: K,
  sections: S,
): ConfigLayout<K, S> {
  return { kind, sections };
}

/** The typed config of a layout: file-level fields and every section, typed by its plugin. */
export type ConfigOf<L extends ConfigLayout> =
  L extends ConfigLayout<infer K, infer S>
    ? K extends ConfigKind
      ? Omit<FileOf<K>, 'modules'> & { modules: ModulesOf<S> }
      : never
    : never;

/** The kernel's rules for one kind of file; the module sections come from the layout. */
export interface FileRules<T extends { modules: Record<string, unknown> }> {
  readonly apiVersion: string;
  readonly apiVersions: readonly string[];
  readonly kind: string;
  /** The file's schema around the composed `modules` schema. */
  schema(modules: ObjectSchema): ObjectSchema;
  defaults(modules: Record<string, unknown>): T;
  /** What `--minconfig` prints around the sections' min objects. */
  min(modules: Record<string, object>): object;
  validate(config: T, r: Reporter): void;
}

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
  /** Keys under `modules` that no section of the layout declares, kept raw in `config.modules[key]`. */
  unknownModules: string[];
}

/** Validation sink: `path` is a YAML path, the message says what is wrong. */
export interface Reporter {
  error(path: string, message: string): void;
  /** Whether the file set `path` explicitly (to point an error at the right line). */
  isSet(path: string): boolean;
}
