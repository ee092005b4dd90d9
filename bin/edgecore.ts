#!/usr/bin/env node
import { main } from '../kernel/cli.js';
import { edgeLayout, edgeRegistry } from '../plugins/registry.js';

const code = await main({
  layout: edgeLayout,
  registry: edgeRegistry,
  defaultConfigPath: '/etc/kubeedge/config/edgecore.yaml',
});
process.exitCode = code;
// Whatever a plugin left behind (a timer, a socket) must not keep a stopped edgecore alive.
setTimeout(() => process.exit(code), 1000).unref();
