/** `modules.iptablesManager` of cloudcore.yaml (cloudcore/v1alpha1). Config only: not built yet. */
import { configSchema, defineConfigSection, sectionSchema, type ModuleBase } from '../../kernel/index.js';

export interface IptablesManagerConfig extends ModuleBase {
  /** "internal" or "external". */
  mode: string;
}

export const iptablesManagerSection = defineConfigSection<IptablesManagerConfig>({
  schema: sectionSchema<IptablesManagerConfig>({ mode: configSchema.str() }),
  defaults: () => ({ enable: true, runAs: 'inprocess', mode: 'internal' }),
  // NewMinCloudCoreConfig
  min: () => ({ enable: true, mode: 'internal' }),
});
