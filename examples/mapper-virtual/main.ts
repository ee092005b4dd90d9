/** The virtual mapper as a standalone program: `--socket <own.sock> --edgecore-sock <dmi.sock>`. */
import { runStandalone } from '../../sdk/mapper/plugin.js';
import { createVirtualDriver } from './driver.js';

await runStandalone(createVirtualDriver());
