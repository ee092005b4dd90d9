/**
 * Entry point of a plugin process spawned by the kernel (modules.<key>.runAs: process). It imports
 * the plugin module named by KUBEEDGE_PLUGIN and connects to the kernel's socket with the
 * credential of this launch. The process ends when the kernel stops the plugin or goes away.
 * It loads the plugin loader only, never the Kernel class.
 */
import { errorText } from '../errors.js';
import { createLogger } from '../log.js';
import { importPlugin } from '../plugin/load.js';
import { connectPlugin } from './client.js';

const socket = process.env.KUBEEDGE_KERNEL_SOCKET ?? '';
const specifier = process.env.KUBEEDGE_PLUGIN ?? '';
const token = process.env.KUBEEDGE_PLUGIN_TOKEN ?? '';
delete process.env.KUBEEDGE_PLUGIN_TOKEN;
const log = createLogger('info', { runner: specifier });
process.on('uncaughtException', (err) =>
  log.error({ err: errorText(err), stack: err.stack }, 'uncaught exception'),
);

try {
  const def = await importPlugin(specifier, 'plugin process');
  const plugin = connectPlugin(def, { socket, token });
  // Every SIGTERM (the kernel may send more than one) ends the connection; none kills the process
  // before the plugin's stop() has run.
  process.on('SIGTERM', () => void plugin.close());
  const { reason } = await plugin.done;
  log.info({ reason }, 'plugin process done');
} catch (err) {
  log.error({ err: errorText(err) }, 'plugin process failed');
  process.exitCode = 1;
}
