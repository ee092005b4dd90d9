/**
 * mapper-modbus as a standalone program that attaches to a running edgecore through its DMI
 * socket: `node dist/plugins/mapper-modbus/main.js --config config.yaml` (see README.md).
 */
import { runStandalone } from '../../sdk/mapper/plugin.js';
import { createModbusDriver } from './driver.js';

await runStandalone(await createModbusDriver());
