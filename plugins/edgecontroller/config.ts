/**
 * `modules.edgeController` of cloudcore.yaml (cloudcore/v1alpha1 types.go, default.go,
 * validation.go; AdjustCloudCoreConfig). The plugin is `index.ts`; `buffer` and `load` are kept
 * for compatibility, not used (README).
 */
import { configSchema, defineConfigSection, sectionSchema, type ModuleBase } from '../../kernel/index.js';

const { int, ptrObj } = configSchema;

export interface EdgeControllerBuffer {
  processEvent: number;
  updatePodStatus: number;
  updateNodeStatus: number;
  queryConfigMap: number;
  querySecret: number;
  podEvent: number;
  configMapEvent: number;
  secretEvent: number;
  rulesEvent: number;
  ruleEndpointsEvent: number;
  queryPersistentVolume: number;
  queryPersistentVolumeClaim: number;
  queryVolumeAttachment: number;
  createNode: number;
  patchNode: number;
  queryNode: number;
  updateNode: number;
  patchPod: number;
  deletePod: number;
  createLease: number;
  queryLease: number;
  serviceAccountToken: number;
  createPod: number;
  certificateSigningRequest: number;
}

/** Three keys keep the capitalised JSON names of the Go struct tags. */
export interface EdgeControllerLoad {
  processEventWorkers: number;
  updatePodStatusWorkers: number;
  updateNodeStatusWorkers: number;
  queryConfigMapWorkers: number;
  querySecretWorkers: number;
  queryPersistentVolumeWorkers: number;
  queryPersistentVolumeClaimWorkers: number;
  queryVolumeAttachmentWorkers: number;
  createNodeWorkers: number;
  patchNodeWorkers: number;
  queryNodeWorkers: number;
  updateNodeWorkers: number;
  patchPodWorkers: number;
  deletePodWorkers: number;
  createLeaseWorkers: number;
  queryLeaseWorkers: number;
  UpdateRuleStatusWorkers: number;
  ServiceAccountTokenWorkers: number;
  CreatePodWorks: number;
  certificateSigningRequestWorkers: number;
}

export interface EdgeControllerConfig extends ModuleBase {
  /** Seconds. */
  nodeUpdateFrequency: number;
  buffer: EdgeControllerBuffer;
  load: EdgeControllerLoad;
}

const BUFFER_KEYS: Array<keyof EdgeControllerBuffer> = [
  'processEvent',
  'updatePodStatus',
  'updateNodeStatus',
  'queryConfigMap',
  'querySecret',
  'podEvent',
  'configMapEvent',
  'secretEvent',
  'rulesEvent',
  'ruleEndpointsEvent',
  'queryPersistentVolume',
  'queryPersistentVolumeClaim',
  'queryVolumeAttachment',
  'createNode',
  'patchNode',
  'queryNode',
  'updateNode',
  'patchPod',
  'deletePod',
  'createLease',
  'queryLease',
  'serviceAccountToken',
  'createPod',
  'certificateSigningRequest',
];

const LOAD_KEYS: Array<keyof EdgeControllerLoad> = [
  'processEventWorkers',
  'updatePodStatusWorkers',
  'updateNodeStatusWorkers',
  'queryConfigMapWorkers',
  'querySecretWorkers',
  'queryPersistentVolumeWorkers',
  'queryPersistentVolumeClaimWorkers',
  'queryVolumeAttachmentWorkers',
  'createNodeWorkers',
  'patchNodeWorkers',
  'queryNodeWorkers',
  'updateNodeWorkers',
  'patchPodWorkers',
  'deletePodWorkers',
  'createLeaseWorkers',
  'queryLeaseWorkers',
  'UpdateRuleStatusWorkers',
  'ServiceAccountTokenWorkers',
  'CreatePodWorks',
  'certificateSigningRequestWorkers',
];

const intFields = <T>(keys: Array<keyof T>) =>
  Object.fromEntries(keys.map((k) => [k, int()])) as { [K in keyof T]-?: ReturnType<typeof int> };

/** Buffers and workers for `nodeLimit` nodes (0: the parts that do not depend on it). */
function edgeControllerBuffer(nodeLimit: number): EdgeControllerBuffer {
  return {
    processEvent: 1024,
    updatePodStatus: 1024,
    updateNodeStatus: 1024,
    queryConfigMap: 1024,
    querySecret: 1024,
    podEvent: 1,
    configMapEvent: 1,
    secretEvent: 1,
    rulesEvent: 1,
    ruleEndpointsEvent: 1,
    queryPersistentVolume: 1024,
    queryPersistentVolumeClaim: 1024,
    queryVolumeAttachment: 1024,
    createNode: 1024,
    patchNode: 1024 + Math.trunc(nodeLimit / 2),
    queryNode: 1024 + nodeLimit,
    updateNode: 1024,
    patchPod: 1024,
    deletePod: 1024,
    createLease: 1024 + nodeLimit,
    queryLease: 1024,
    serviceAccountToken: 1024,
    createPod: 1024,
    certificateSigningRequest: 1024,
  };
}

function edgeControllerLoad(nodeLimit: number): EdgeControllerLoad {
  return {
    processEventWorkers: 4,
    updatePodStatusWorkers: 1,
    updateNodeStatusWorkers: 1,
    queryConfigMapWorkers: 100,
    querySecretWorkers: 100,
    queryPersistentVolumeWorkers: 4,
    queryPersistentVolumeClaimWorkers: 4,
    queryVolumeAttachmentWorkers: 4,
    createNodeWorkers: 100,
    patchNodeWorkers: 100 + Math.trunc(nodeLimit / 50),
    queryNodeWorkers: nodeLimit,
    updateNodeWorkers: 4,
    patchPodWorkers: 100,
    deletePodWorkers: 100,
    createLeaseWorkers: nodeLimit,
    queryLeaseWorkers: 100,
    UpdateRuleStatusWorkers: 4,
    ServiceAccountTokenWorkers: 100,
    CreatePodWorks: 4,
    certificateSigningRequestWorkers: 4,
  };
}

export const edgeControllerSection = defineConfigSection<EdgeControllerConfig>({
  schema: sectionSchema<EdgeControllerConfig>({
    nodeUpdateFrequency: int(),
    buffer: ptrObj<EdgeControllerBuffer>(intFields<EdgeControllerBuffer>(BUFFER_KEYS)),
    load: ptrObj<EdgeControllerLoad>(intFields<EdgeControllerLoad>(LOAD_KEYS)),
  }),
  // The node-dependent values are raised by adjust() to fit modules.cloudHub.nodeLimit.
  defaults: () => ({
    enable: true,
    runAs: 'inprocess',
    nodeUpdateFrequency: 10,
    buffer: edgeControllerBuffer(0),
    load: edgeControllerLoad(0),
  }),
  // AdjustCloudCoreConfig: node workers and buffers are raised to fit cloudHub's nodeLimit.
  adjust(ec, file) {
    const hub = file.modules.cloudHub as { nodeLimit?: number } | undefined;
    const n = hub?.nodeLimit ?? 0;
    const { load, buffer } = ec;
    const fit = { load: edgeControllerLoad(n), buffer: edgeControllerBuffer(n) };
    for (const key of ['queryNodeWorkers', 'patchNodeWorkers', 'createLeaseWorkers'] as const)
      load[key] = Math.max(load[key], fit.load[key]);
    for (const key of ['patchNode', 'queryNode', 'createLease'] as const)
      buffer[key] = Math.max(buffer[key], fit.buffer[key]);
  },
  validate(ec, r) {
    if (ec.enable && ec.nodeUpdateFrequency <= 0) {
      r.error('nodeUpdateFrequency', `must be > 0, got ${ec.nodeUpdateFrequency}`);
    }
  },
});
