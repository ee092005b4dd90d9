/** `modules.syncController` of cloudcore.yaml (cloudcore/v1alpha1): only `enable`, as KubeEdge v1.23.1. */
import { defineConfigSection, sectionSchema, type ModuleBase } from '../../kernel/index.js';

export type SyncControllerConfig = ModuleBase;

export const syncControllerSection = defineConfigSection<SyncControllerConfig>({
  schema: sectionSchema<SyncControllerConfig>({}),
  defaults: () => ({ enable: true, runAs: 'inprocess' }),
});
