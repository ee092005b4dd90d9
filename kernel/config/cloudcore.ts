/**
 * cloudcore.yaml (apiVersion cloudcore.config.kubeedge.io/v1alpha1, kind CloudCore), the file-level
 * rules: apiVersion/kind, `commonConfig`, `kubeAPIConfig`, `featureGates`, `kernel`. The module
 * sections are the plugins' (plugins/registry.ts).
 *
 * Sources (kubeedge/kubeedge, v1.23 layout):
 *   staging/src/github.com/kubeedge/api/apis/componentconfig/cloudcore/v1alpha1/{types,default}.go
 *   staging/src/github.com/kubeedge/api/apis/componentconfig/cloudcore/v1alpha1/validation/validation.go
 */
import { isIP } from 'node:net';
import path from 'node:path';
import {
  CLOUDCORE_HEALTH_PORT,
  defaultKernelConfig,
  kernelSchema,
  type KernelConfig,
} from './kernel-section.js';
import { bool, int, map, obj, ptrObj, str } from './schema.js';
import type { FileRules } from './types.js';

export const CLOUDCORE_API_VERSION = 'cloudcore.config.kubeedge.io/v1alpha1';
export const CLOUDCORE_API_VERSIONS = [CLOUDCORE_API_VERSION] as const;
export const CLOUDCORE_KIND = 'CloudCore';
export const CLOUDCORE_FEATURE_GATES = [
  'requireAuthorization',
  'moduleRestart',
  'disableNodeTaskV1alpha2',
  'disableCSI',
  'AllAlpha',
  'AllBeta',
] as const;

export interface CloudCoreCommonConfig {
  tunnelPort: number;
  monitorServer: { bindAddress: string; enableProfiling: boolean };
}

export interface KubeAPIConfig {
  master: string;
  contentType: string;
  /** Set from `modules.cloudHub.nodeLimit` (AdjustCloudCoreConfig) by the cloudHub section. */
  qps: number;
  burst: number;
  kubeConfig: string;
}

/** Typed cloudcore configuration; `modules` holds each module's section (see `ConfigOf`). */
export interface CloudCoreConfig {
  apiVersion: string;
  kind: string;
  commonConfig: CloudCoreCommonConfig;
  kubeAPIConfig: KubeAPIConfig;
  modules: Record<string, unknown>;
  featureGates?: Record<string, boolean>;
  /** Kernel extension. */
  kernel: KernelConfig;
}

const validPort = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;

export const cloudCoreFile: FileRules<CloudCoreConfig> = {
  apiVersion: CLOUDCORE_API_VERSION,
  apiVersions: CLOUDCORE_API_VERSIONS,
  kind: CLOUDCORE_KIND,
  schema: (modules) =>
    obj<CloudCoreConfig>(
      {
        apiVersion: str(),
        kind: str(),
        commonConfig: ptrObj<CloudCoreCommonConfig>({
          tunnelPort: int(),
          monitorServer: obj<CloudCoreCommonConfig['monitorServer']>(
            { bindAddress: str(), enableProfiling: bool() },
            { omit: 'never' },
          ),
        }),
        kubeAPIConfig: ptrObj<KubeAPIConfig>({
          master: str({ omit: 'never' }),
          contentType: str(),
          qps: int(),
          burst: int(),
          kubeConfig: str({ omit: 'never' }),
        }),
        modules,
        featureGates: map(bool()),
        kernel: kernelSchema,
      },
      { omit: 'never' },
    ),
  defaults: (modules) => ({
    apiVersion: CLOUDCORE_API_VERSION,
    kind: CLOUDCORE_KIND,
    commonConfig: {
      tunnelPort: 10350,
      monitorServer: { bindAddress: '127.0.0.1:9091', enableProfiling: false },
    },
    kubeAPIConfig: {
      master: '',
      contentType: 'application/vnd.kubernetes.protobuf',
      qps: 0,
      burst: 0,
      kubeConfig: '',
    },
    modules,
    kernel: defaultKernelConfig(CLOUDCORE_HEALTH_PORT),
  }),
  min: (modules) => ({ apiVersion: CLOUDCORE_API_VERSION, kind: CLOUDCORE_KIND, modules }),
  validate(c, r) {
    const kubeConfig = c.kubeAPIConfig.kubeConfig;
    if (kubeConfig !== '' && !path.isAbsolute(kubeConfig)) {
      r.error('kubeAPIConfig.kubeConfig', `must be an absolute path, got ${JSON.stringify(kubeConfig)}`);
    }
    const bind = c.commonConfig.monitorServer.bindAddress;
    const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(bind);
    const host = m?.[1] ?? m?.[2];
    if (!m || host === undefined || isIP(host) === 0 || !validPort(Number(m[3]))) {
      r.error('commonConfig.monitorServer.bindAddress', `must be IP:port, got ${JSON.stringify(bind)}`);
    }
    for (const gate of Object.keys(c.featureGates ?? {})) {
      if (!(CLOUDCORE_FEATURE_GATES as readonly string[]).includes(gate)) {
        r.error(
          `featureGates.${gate}`,
          `unknown feature gate (known: ${CLOUDCORE_FEATURE_GATES.join(', ')})`,
        );
      }
    }
  },
};
