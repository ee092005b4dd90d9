/**
 * An edgecore process with eventBus and deviceTwin only, for the kill -9 durability test:
 * `node --import tsx edge-child.ts <edgecore.yaml>`; prints READY when started.
 */
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../../kernel/config/index.js';
import { Kernel } from '../../../kernel/kernel.js';
import { createLogger } from '../../../kernel/log.js';
import { pluginSpecifier } from '../../../kernel/index.js';
import { edgeLayout } from '../../registry.js';

const file = process.argv[2] ?? '';
const config = parseConfig(edgeLayout, readFileSync(file, 'utf8'), file);
const kernel = new Kernel({
  config,
  registry: [
    { configKey: 'eventBus', specifier: pluginSpecifier(import.meta.url, '../../eventbus/index') },
    { configKey: 'deviceTwin', specifier: pluginSpecifier(import.meta.url, '../index') },
  ],
  logger: createLogger('warn'),
});
await kernel.start();
process.stdout.write('READY\n');
const keepAlive = setInterval(() => undefined, 1 << 30);
// a graceful stop on SIGTERM (lets `node --cpu-prof` write its profile)
process.once('SIGTERM', () => void kernel.stop().then(() => clearInterval(keepAlive)));
