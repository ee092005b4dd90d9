/** `modules.serviceBus` of edgecore.yaml (edgecore/v1alpha2). */
import { configSchema, defineConfigSection, sectionSchema, type ModuleBase } from '../../kernel/index.js';

const { int, str } = configSchema;

export interface ServiceBusConfig extends ModuleBase {
  server: string;
  port: number;
  timeout: number;
}

export const serviceBusSection = defineConfigSection<ServiceBusConfig>({
  schema: sectionSchema<ServiceBusConfig>({
    server: str({ omit: 'never' }),
    port: int({ omit: 'never' }),
    timeout: int({ omit: 'never' }),
  }),
  defaults: () => ({ enable: false, runAs: 'inprocess', server: '127.0.0.1', port: 9060, timeout: 60 }),
});
