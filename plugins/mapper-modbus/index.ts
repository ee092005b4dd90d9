/**
 * mapper-modbus as a kernel plugin (`modules.mapperModbus`): the same mapper as the standalone
 * program (`main.ts`), run in edgecore's process or, with `runAs: process`, in a child process the
 * kernel restarts if it dies. It serves DeviceMapperService and registers with the DMI socket.
 */
import { mapperPlugin } from '../../sdk/mapper/plugin.js';

export default mapperPlugin({
  name: 'mapper-modbus',
  configKey: 'mapperModbus',
  version: 'v1.0.0',
  driver: async () => (await import('./driver.js')).createModbusDriver(),
});
