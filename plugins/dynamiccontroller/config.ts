/** `modules.dynamicController` of cloudcore.yaml (cloudcore/v1alpha1). Config only: not built yet. */
import { defineConfigSection, sectionSchema, type ModuleBase } from '../../kernel/index.js';

export type DynamicControllerConfig = ModuleBase;

export const dynamicControllerSection = defineConfigSection<DynamicControllerConfig>({
  schema: sectionSchema<DynamicControllerConfig>({}),
  defaults: () => ({ enable: false, runAs: 'inprocess' }),
});
