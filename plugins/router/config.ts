/** `modules.router` of cloudcore.yaml (cloudcore/v1alpha1). Config only: router is not built yet. */
import { configSchema, defineConfigSection, sectionSchema, type ModuleBase } from '../../kernel/index.js';

const { int, str } = configSchema;

export interface RouterConfig extends ModuleBase {
  address: string;
  port: number;
  /** Seconds. */
  restTimeout: number;
}

const router = () => ({ address: '0.0.0.0', port: 9443, restTimeout: 60 });

export const routerSection = defineConfigSection<RouterConfig>({
  schema: sectionSchema<RouterConfig>({
    address: str(),
    port: int({ min: 0, max: 4294967295 }),
    restTimeout: int({ min: 0, max: 4294967295 }),
  }),
  defaults: () => ({ enable: false, runAs: 'inprocess', ...router() }),
  // NewMinCloudCoreConfig
  min: () => ({ enable: false, ...router() }),
});
