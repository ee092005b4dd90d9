/**
 * A module's config section (`modules.<key>`), declared by the plugin that owns it: schema,
 * defaults, what `--minconfig` prints, validation. The kernel composes the sections of a layout
 * (plugins/registry.ts for the built-ins, plus third-party plugins) into the file it loads; it
 * knows none of them by name.
 */
import { enableSchema, runAsSchema, type RunAs } from './kernel-section.js';
import { ptrObj, type LegacyRule, type ObjectSchema, type ObjectSchemaOf, type Schema } from './schema.js';

/** `enable` and `runAs`: on every module section. */
export interface ModuleBase {
  enable: boolean;
  /** Kernel extension: run the module in process (default) or as a child process. */
  runAs: RunAs;
}

/** Where a section's validator reports: paths are relative to the section ("metaServer.server"). */
export interface SectionReporter {
  error(path: string, message: string): void;
  /** Whether the file set `path` explicitly. */
  isSet(path: string): boolean;
}

/** The whole decoded file, as a section's validate/adjust hook may read it. */
export interface FileConfig {
  modules: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ConfigSection<C extends object = object> {
  /** The section's fields (build it with `sectionSchema`, which adds `enable` and `runAs`). */
  readonly schema: ObjectSchema;
  /** Every default, as `--defaultconfig` prints it. A new object on each call. */
  defaults(): C;
  /** What `--minconfig` prints of the section; absent: the section is not printed. */
  min?(): object;
  /**
   * Rules beyond the types, run after decoding for every section, enabled or not (check
   * `section.enable` where a rule only matters for a running module).
   */
  validate?(section: C, r: SectionReporter, file: FileConfig): void;
  /** Adjust values after decoding, before any validation (cloudcore's AdjustCloudCoreConfig). */
  adjust?(section: C, file: FileConfig): void;
}

/** Identity helper that types a section. */
export function defineConfigSection<C extends object>(section: ConfigSection<C>): ConfigSection<C> {
  return section;
}

/**
 * The schema of a module section: a pointer to a struct with `omitempty`, as KubeEdge's module
 * sections are, with `enable` (always printed) and `runAs` (ours, never printed) added.
 */
export function sectionSchema<C extends ModuleBase>(
  fields: { [K in Exclude<keyof C, keyof ModuleBase>]-?: Schema },
  o: { legacy?: Record<string, LegacyRule> } = {},
): ObjectSchemaOf<C> {
  return ptrObj<C>(
    { enable: enableSchema, runAs: runAsSchema, ...fields } as { [K in keyof C]-?: Schema },
    o,
  );
}

/** The sections of a file, by their key under `modules`. */
export type Sections = Readonly<Record<string, ConfigSection>>;

/** The typed `modules` of a file with these sections (other keys are kept raw). */
export type ModulesOf<S extends Sections> = {
  [K in keyof S]: S[K] extends ConfigSection<infer C> ? C : never;
} & { [module: string]: unknown };

/** `modules` schema of a layout: every section a field; unknown keys are kept raw by the decoder. */
export function modulesSchema(sections: Sections): ObjectSchema {
  const fields: Record<string, Schema> = {};
  for (const [key, s] of Object.entries(sections)) fields[key] = s.schema;
  return ptrObj<Record<string, unknown>>(fields);
}

export function defaultModules(sections: Sections): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(sections)) out[key] = s.defaults();
  return out;
}

export function minModules(sections: Sections): Record<string, object> {
  const out: Record<string, object> = {};
  for (const [key, s] of Object.entries(sections)) {
    const min = s.min?.();
    if (min) out[key] = min;
  }
  return out;
}
