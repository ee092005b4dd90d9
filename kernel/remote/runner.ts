/**
 * Entry point of a plugin process spawned by the kernel (modules.<key>.runAs: process). It imports
 * the plugin module named by KUBEEDGE_PLUGIN and connects to the kernel's socket with the token
 * the kernel gave it. The process ends when the kernel stops the plugin or goes away.
 */
import { importPlugin } from '../kernel.js';
import { createLogger } from '../log.js';
import { errorText } from '../errors.js';
import { connectPlugin } from './client.js';

const socket = process.env.KUBEEDGE_KERNEL_SOCKET ?? '';
const specifier = process.env.KUBEEDGE_PLUGIN ?? '';
const token = process.env.KUBEEDGE_PLUGIN_TOKEN ?? '';
const log = createLogger('info', { runner: specifier });

try {
  const def = await importPlugin(specifier, 'plugin process');
  const plugin = connectPlugin(def, { socket, token });
  process.once('SIGTERM', () => void plugin.close());
  const { reason } = await plugin.done;
  log.info({ reason }, 'plugin process done');
} catch (err) {
  log.error({ err: errorText(err) }, 'plugin process failed');
  process.exitCode = 1;
}
