/** The virtual mapper as a kernel plugin (`modules.mapperVirtual`). */
import { mapperPlugin } from '../../sdk/mapper/plugin.js';
import { createVirtualDriver } from './driver.js';

export default mapperPlugin({
  name: 'mapper-virtual',
  configKey: 'mapperVirtual',
  version: 'v0.1.0',
  driver: createVirtualDriver,
});
