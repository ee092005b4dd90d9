/** `modules.dbTest` of edgecore.yaml (edgecore/v1alpha2): KubeEdge's sample module. Config only. */
import { defineConfigSection, sectionSchema, type ModuleBase } from '../../kernel/index.js';

export type DBTestConfig = ModuleBase;

export const dbTestSection = defineConfigSection<DBTestConfig>({
  schema: sectionSchema<DBTestConfig>({}),
  defaults: () => ({ enable: false, runAs: 'inprocess' }),
});
