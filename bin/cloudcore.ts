#!/usr/bin/env node
import { main } from '../kernel/cli.js';
import { cloudLayout, cloudRegistry } from '../plugins/registry.js';

const code = await main({
  layout: cloudLayout,
  registry: cloudRegistry,
  defaultConfigPath: '/etc/kubeedge/config/cloudcore.yaml',
});
process.exitCode = code;
// Whatever a plugin left behind (a timer, a socket) must not keep a stopped cloudcore alive.
setTimeout(() => process.exit(code), 1000).unref();
