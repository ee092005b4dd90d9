import { afterEach, describe, expect, it } from 'vitest';
import { events } from '../test/fixtures/plugins/ordered.js';
import { orderedRegistry, probeRegistry } from '../test/fixtures/plugins/registry.js';
import { kernelYaml, startTestKernel, type TestKernel } from '../test/helpers/kernel.js';
import { parseConfig } from './config/index.js';
import { isKernelError } from './errors.js';
import { Kernel } from './kernel.js';
import { createLogger } from './log.js';
import { edgeLayout } from '../plugins/registry.js';

describe('kernel lifecycle', () => {
  let t: TestKernel | undefined;
  afterEach(async () => {
    await t?.kernel.stop();
    t = undefined;
    events.length = 0;
  });

  it('starts providers before the plugins that require their service, stops in reverse', async () => {
    t = await startTestKernel(
      kernelYaml('  consumer: {enable: true}\n  provider: {enable: true}\n'),
      orderedRegistry,
    );
    expect(t.kernel.status().map((s) => s.name)).toEqual(['provider', 'consumer']);
    await t.kernel.stop();
    expect(events).toEqual([
      'start provider',
      'start consumer: hello consumer',
      'stop consumer',
      'stop provider',
    ]);
  });

  it('a disabled plugin is not loaded and has no mailbox', async () => {
    t = await startTestKernel(
      kernelYaml('  provider: {enable: true}\n  consumer: {enable: false}\n'),
      orderedRegistry,
    );
    expect(t.kernel.bus.hasModule('provider')).toBe(true);
    expect(t.kernel.bus.hasModule('consumer')).toBe(false);
  });

  it('a required service nobody provides is a clear start error', async () => {
    const err = await startTestKernel(kernelYaml('  consumer: {enable: true}\n'), orderedRegistry).catch(
      (e: unknown) => e,
    );
    expect(isKernelError(err, 'EPLUGIN_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(
      /plugin "consumer" requires service\(test.greeter\), which nothing provides/,
    );
  });

  it('a plugin that does not stop in time is reported and the kernel stops anyway', async () => {
    t = await startTestKernel(kernelYaml('  slowStop: {enable: true}\n'), orderedRegistry);
    const t0 = Date.now();
    await t.kernel.stop();
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(t.kernel.status()[0]?.state).toBe('stopped');
  });

  it('counts per module are exposed in Prometheus format', async () => {
    t = await startTestKernel(kernelYaml('  probeA: {enable: true}\n'), probeRegistry);
    const text = await t.kernel.metrics.text();
    expect(text).toMatch(/kubeedge_module_messages_in_total\{module="probe-a"\} 0/);
    expect(text).toMatch(/kubeedge_module_restarts_total\{module="probe-a"\} 0/);
    expect(text).toMatch(/kubeedge_module_queue_depth\{module="probe-a"\} 0/);
  });

  it('an unknown module section is reported once as a warning naming its YAML path', async () => {
    const lines: string[] = [];
    const config = parseConfig(
      edgeLayout,
      kernelYaml('  fooBar: {enable: true}\n  provider: {enable: true}\n'),
      'x.yaml',
    );
    const kernel = new Kernel({
      config,
      registry: orderedRegistry,
      logger: createLogger('info', {}, (l) => void lines.push(l)),
    });
    await kernel.start();
    await kernel.stop();
    const warnings = lines
      .map((l) => JSON.parse(l) as { level: number; msg: string; path?: string })
      .filter((l) => l.level === 40);
    expect(warnings).toEqual([
      expect.objectContaining({
        path: 'modules.fooBar',
        msg: 'modules.fooBar: unknown module, ignored (no plugin claims this section)',
      }),
    ]);
  });
});
