import { cpSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { newMessage } from '../kernel/bus/message.js';
import { loadConfig } from '../kernel/cli.js';
import { loadConfigFile } from '../kernel/config/index.js';
import { Kernel } from '../kernel/kernel.js';
import { kernelYaml } from './helpers/kernel.js';
import { createLogger } from '../kernel/log.js';
import { edgeLayout } from '../plugins/registry.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * A user's machine: the example plugin installed as an npm package next to kubeedge-ts (linked
 * to this checkout's build), named in edgecore.yaml by its package name.
 */
function install(runAs: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'third-party-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'kubeedge-ts'), 'dir');
  cpSync(join(root, 'examples', 'hello-plugin'), join(dir, 'node_modules', 'kubeedge-hello-plugin'), {
    recursive: true,
  });
  const file = join(dir, 'edgecore.yaml');
  writeFileSync(
    file,
    kernelYaml(`  hello:
    enable: true
    greeting: servus
    runAs: ${runAs}
kernel:
  plugins:
    - package: kubeedge-hello-plugin
`),
  );
  return file;
}

describe.each(['inprocess', 'process'])('third-party plugin from config (%s)', (runAs) => {
  let kernel: Kernel | undefined;
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });

  it('is loaded by package name, gets its config section, and answers', async () => {
    kernel = new Kernel({
      config: await loadConfig(edgeLayout, install(runAs)),
      registry: [],
      logger: createLogger('silent'),
    });
    await kernel.start();
    expect(kernel.status()).toEqual([
      { name: 'hello', group: 'hello', state: 'running', restarts: 0, failures: 0, runAs },
    ]);
    const reply = await kernel.bus.request(
      'hello',
      newMessage({ source: 'test', operation: 'query' }, 'world'),
      5000,
    );
    expect(reply.content).toBe('servus, world');
  });
});

describe('third-party plugin errors', () => {
  it('a package that cannot be found names the package and the config key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'third-party-'));
    const file = join(dir, 'edgecore.yaml');
    writeFileSync(file, kernelYaml('kernel:\n  plugins:\n    - package: no-such-plugin\n'));
    const kernel = new Kernel({
      config: loadConfigFile(edgeLayout, file),
      registry: [],
      logger: createLogger('silent'),
    });
    await expect(kernel.start()).rejects.toMatchObject({
      code: 'EPLUGIN_LOAD',
      message: expect.stringMatching(/kernel.plugins: cannot find plugin package "no-such-plugin"/),
    });
  });

  it('a plugin that declares its section refuses a config loaded without it (raw section)', async () => {
    const kernel = new Kernel({
      config: loadConfigFile(edgeLayout, install('inprocess')),
      registry: [],
      logger: createLogger('silent'),
    });
    await expect(kernel.start()).rejects.toMatchObject({
      code: 'EPLUGIN_INVALID',
      message: expect.stringMatching(/modules\.hello was loaded without the section the plugin declares/),
    });
  });

  it('a module that is not a plugin definition is refused with what is wrong', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'third-party-'));
    writeFileSync(join(dir, 'bad.mjs'), 'export default { name: "bad" };\n');
    const file = join(dir, 'edgecore.yaml');
    writeFileSync(file, kernelYaml('kernel:\n  plugins:\n    - package: ./bad.mjs\n'));
    const kernel = new Kernel({
      config: loadConfigFile(edgeLayout, file),
      registry: [],
      logger: createLogger('silent'),
    });
    await expect(kernel.start()).rejects.toMatchObject({
      code: 'EPLUGIN_INVALID',
      message: expect.stringMatching(/"configKey" must be a non-empty string; "start" must be a function/),
    });
  });
});
