#!/usr/bin/env node
import { holdYoungGeneration } from '../kernel/heap.js';

// Before the kernel's code is loaded: start-up must not leave the young generation grown.
const releaseYoungGeneration = holdYoungGeneration();
const { main } = await import('../kernel/cli.js');
const { cloudLayout, cloudRegistry } = await import('../plugins/registry.js');

const code = await main({
  layout: cloudLayout,
  registry: cloudRegistry,
  defaultConfigPath: '/etc/kubeedge/config/cloudcore.yaml',
  onReady: releaseYoungGeneration,
});
process.exitCode = code;
// Whatever a plugin left behind (a timer, a socket) must not keep a stopped cloudcore alive.
setTimeout(() => process.exit(code), 1000).unref();
