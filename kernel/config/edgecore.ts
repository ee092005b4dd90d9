/**
 * edgecore.yaml, the file-level rules: apiVersion/kind, `database`, `featureGates`,
 * `edgecoreVersion`, `kernel`. The module sections are the plugins' (plugins/registry.ts).
 *
 * Sources (kubeedge/kubeedge@v1.23.1):
 *   staging/src/github.com/kubeedge/api/apis/componentconfig/edgecore/v1alpha2/{types,default}.go
 *   staging/src/github.com/kubeedge/api/apis/componentconfig/edgecore/v1alpha2/validation/validation.go
 */
import { statSync } from 'node:fs';
import { parentProblem } from './checks.js';
import { defaultKernelConfig, kernelSchema, type KernelConfig } from './kernel-section.js';
import { bool, map, obj, ptrObj, str } from './schema.js';
import type { FileRules } from './types.js';

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

const DATA_SOURCE = '/var/lib/kubeedge/edgecore.db';

export interface EdgeCoreDatabase {
  driverName: string;
  aliasName: string;
  dataSource: string;
}

/**
 * Typed edgecore configuration (v1alpha2 layout), fully defaulted. `modules` holds each module's
 * section, typed by the plugin that owns it (see `ConfigOf`).
 */
export interface EdgeCoreConfig {
  apiVersion: string;
  kind: string;
  database: EdgeCoreDatabase;
  modules: Record<string, unknown>;
  /** KubeEdge feature gates (requireAuthorization, moduleRestart, ...). */
  featureGates?: Record<string, boolean>;
  edgecoreVersion: string;
  /** Kernel extension. */
  kernel: KernelConfig;
}

export const edgeCoreFile: FileRules<EdgeCoreConfig> = {
  apiVersion: EDGECORE_API_VERSION,
  apiVersions: EDGECORE_API_VERSIONS,
  kind: EDGECORE_KIND,
  schema: (modules) =>
    obj<EdgeCoreConfig>(
      {
        apiVersion: str(),
        kind: str(),
        database: ptrObj<EdgeCoreDatabase>({ driverName: str(), aliasName: str(), dataSource: str() }),
        modules,
        featureGates: map(bool()),
        edgecoreVersion: str({ omit: 'never' }),
        kernel: kernelSchema,
      },
      { omit: 'never' },
    ),
  defaults: (modules) => ({
    apiVersion: EDGECORE_API_VERSION,
    kind: EDGECORE_KIND,
    database: { driverName: 'sqlite3', aliasName: 'default', dataSource: DATA_SOURCE },
    modules,
    edgecoreVersion: '',
    kernel: defaultKernelConfig(),
  }),
  min: (modules) => ({
    apiVersion: EDGECORE_API_VERSION,
    kind: EDGECORE_KIND,
    database: { dataSource: DATA_SOURCE },
    modules,
  }),
  validate(c, r) {
    const source = c.database.dataSource;
    const problem = source === ':memory:' ? undefined : dataSourceProblem(source);
    if (problem) r.error('database.dataSource', `${problem}, got ${JSON.stringify(source)}`);
    for (const gate of Object.keys(c.featureGates ?? {})) {
      if (!(EDGECORE_FEATURE_GATES as readonly string[]).includes(gate)) {
        r.error(`featureGates.${gate}`, `unknown feature gate (known: ${EDGECORE_FEATURE_GATES.join(', ')})`);
      }
    }
  },
};

/** Why the SQLite database cannot be opened at `source` (its directory is created at start). */
function dataSourceProblem(source: string): string | undefined {
  if (source === '') return 'must not be empty (the path of the SQLite database file)';
  try {
    if (statSync(source).isDirectory()) return 'is a directory, not a database file';
  } catch {
    // absent: created at start
  }
  return parentProblem(source);
}
