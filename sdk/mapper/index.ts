/**
 * The mapper SDK: write a mapper for a new protocol by implementing a ProtocolDriver (connect,
 * read property, write property); registration, the DMI server, twin and state reports,
 * collect/report cycles, reconnects and health are done here. See README.md.
 */
export * from './types.js';
export { Mapper, type MapperOptions, type DeviceEntry } from './mapper.js';
export {
  DeviceRunner,
  type TwinReport,
  type DeviceSink,
  type PropertyValue,
  type ReconnectPolicy,
} from './device.js';
export { toDeviceSpec, deviceId, DEFAULT_CYCLE_MS } from './spec.js';
export {
  mapperPlugin,
  runStandalone,
  consoleLogger,
  type MapperPluginConfig,
  type MapperPluginOptions,
  type StandaloneConfig,
} from './plugin.js';
export { dmiSocketPath, mapperSocketPath } from '../../protocol/index.js';
