import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../kernel/cli.js';
import { probeRegistry } from '../fixtures/plugins/registry.js';
import { kernelYaml } from '../helpers/kernel.js';
import { edgeLayout } from '../../plugins/registry.js';

describe('boot', () => {
  it.each(['inprocess', 'process'])(
    'a plugin that cannot start fails the boot: the command exits non-zero naming it (%s)',
    async (runAs) => {
      const dir = mkdtempSync(join(tmpdir(), 'boot-'));
      const file = join(dir, 'edgecore.yaml');
      writeFileSync(
        file,
        kernelYaml(`  probeA: {enable: true, runAs: ${runAs}, startCounter: ${dir}/starts, failStarts: [1]}
kernel:
  logLevel: silent
`),
      );
      const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        const code = await main({
          layout: edgeLayout,
          registry: probeRegistry,
          defaultConfigPath: file,
          argv: ['--config', file],
        });
        expect(code).toBe(1);
        expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toContain(
          'edgecore: plugin "probe-a" failed to start: probe-a: start failure 1\n',
        );
      } finally {
        stderr.mockRestore();
      }
    },
    30_000,
  );
});
