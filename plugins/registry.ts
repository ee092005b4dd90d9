import { pluginSpecifier, type PluginEntry } from '../kernel/index.js';

/**
 * The built-in plugins: one line each, the config section that enables it and the module that
 * defines it. Only enabled plugins are imported. The kernel itself names none of them.
 */
export const edgeRegistry: readonly PluginEntry[] = [
  { configKey: 'metaManager', specifier: pluginSpecifier(import.meta.url, './metamanager/index') },
  { configKey: 'edged', specifier: pluginSpecifier(import.meta.url, './edged/index') },
  { configKey: 'deviceTwin', specifier: pluginSpecifier(import.meta.url, './dmiserver/index') },
  { configKey: 'eventBus', specifier: pluginSpecifier(import.meta.url, './eventbus/index') },
  { configKey: 'deviceTwin', specifier: pluginSpecifier(import.meta.url, './devicetwin/index') },
  { configKey: 'mapperModbus', specifier: pluginSpecifier(import.meta.url, './mapper-modbus/index') },
];

export const cloudRegistry: readonly PluginEntry[] = [];
