import { defineConfigLayout, pluginSpecifier, type PluginEntry } from '../kernel/index.js';
import { admissionSection } from './admission/config.js';
import { cloudHubSection } from './cloudhub/config.js';
import { cloudStreamSection } from './cloudstream/config.js';
import { dbTestSection } from './dbtest/config.js';
import { deviceControllerSection } from './devicecontroller/config.js';
import { deviceTwinSection } from './devicetwin/config.js';
import { dynamicControllerSection } from './dynamiccontroller/config.js';
import { edgeControllerSection } from './edgecontroller/config.js';
import { edgedSection } from './edged/config.js';
import { edgeMeshSection } from './edgemesh/config.js';
import { edgeHubSection } from './edgehub/config.js';
import { edgeStreamSection } from './edgestream/config.js';
import { eventBusSection } from './eventbus/config.js';
import { iptablesManagerSection } from './iptablesmanager/config.js';
import { metaManagerSection } from './metamanager/config.js';
import { routerSection } from './router/config.js';
import { serviceBusSection } from './servicebus/config.js';
import { syncControllerSection } from './synccontroller/config.js';
import { cloudTaskManagerSection, edgeTaskManagerSection } from './taskmanager/config.js';

/**
 * The sections of edgecore.yaml, by their key under `modules`: each plugin room's light
 * `config.ts` (schema, defaults, legacy keys, validation), loaded without the plugin itself. Rooms
 * with only a config.ts are KubeEdge modules not built yet: their sections load and print as
 * KubeEdge's do.
 */
export const edgeLayout = defineConfigLayout('edgecore', {
  edged: edgedSection,
  edgeHub: edgeHubSection,
  eventBus: eventBusSection,
  metaManager: metaManagerSection,
  serviceBus: serviceBusSection,
  deviceTwin: deviceTwinSection,
  dbTest: dbTestSection,
  edgeStream: edgeStreamSection,
  taskManager: edgeTaskManagerSection,
  edgeMesh: edgeMeshSection,
});

/** The sections of cloudcore.yaml. */
export const cloudLayout = defineConfigLayout('cloudcore', {
  cloudHub: cloudHubSection,
  edgeController: edgeControllerSection,
  deviceController: deviceControllerSection,
  taskManager: cloudTaskManagerSection,
  syncController: syncControllerSection,
  dynamicController: dynamicControllerSection,
  cloudStream: cloudStreamSection,
  router: routerSection,
  iptablesManager: iptablesManagerSection,
  admission: admissionSection,
});

/**
 * The built-in plugins: one line each, the config section that enables it and the module that
 * defines it. Only enabled plugins are imported. The kernel itself names none of them.
 */
export const edgeRegistry: readonly PluginEntry[] = [
  { configKey: 'metaManager', specifier: pluginSpecifier(import.meta.url, './metamanager/index') },
  { configKey: 'edged', specifier: pluginSpecifier(import.meta.url, './edged/index') },
  { configKey: 'edgeHub', specifier: pluginSpecifier(import.meta.url, './edgehub/index') },
  { configKey: 'deviceTwin', specifier: pluginSpecifier(import.meta.url, './dmiserver/index') },
  { configKey: 'eventBus', specifier: pluginSpecifier(import.meta.url, './eventbus/index') },
  { configKey: 'deviceTwin', specifier: pluginSpecifier(import.meta.url, './devicetwin/index') },
  { configKey: 'mapperModbus', specifier: pluginSpecifier(import.meta.url, './mapper-modbus/index') },
  { configKey: 'serviceBus', specifier: pluginSpecifier(import.meta.url, './servicebus/index') },
  { configKey: 'edgeStream', specifier: pluginSpecifier(import.meta.url, './edgestream/index') },
  { configKey: 'edgeMesh', specifier: pluginSpecifier(import.meta.url, './edgemesh/index') },
];

export const cloudRegistry: readonly PluginEntry[] = [
  { configKey: 'cloudHub', specifier: pluginSpecifier(import.meta.url, './cloudhub/index') },
  { configKey: 'edgeController', specifier: pluginSpecifier(import.meta.url, './edgecontroller/index') },
  { configKey: 'deviceController', specifier: pluginSpecifier(import.meta.url, './devicecontroller/index') },
  { configKey: 'syncController', specifier: pluginSpecifier(import.meta.url, './synccontroller/index') },
  { configKey: 'router', specifier: pluginSpecifier(import.meta.url, './router/index') },
  { configKey: 'admission', specifier: pluginSpecifier(import.meta.url, './admission/index') },
  { configKey: 'cloudStream', specifier: pluginSpecifier(import.meta.url, './cloudstream/index') },
];
