#!/usr/bin/env node
import { holdYoungGeneration } from '../kernel/heap.js';

// Before the kernel's code is loaded: start-up must not leave the young generation grown.
const releaseYoungGeneration = holdYoungGeneration();
const { main } = await import('../kernel/cli.js');
const { edgeLayout, edgeRegistry } = await import('../plugins/registry.js');

const code = await main({
  layout: edgeLayout,
  registry: edgeRegistry,
  defaultConfigPath: '/etc/kubeedge/config/edgecore.yaml',
  onReady: releaseYoungGeneration,
});
process.exitCode = code;
// Whatever a plugin left behind (a timer, a socket) must not keep a stopped edgecore alive.
setTimeout(() => process.exit(code), 1000).unref();
