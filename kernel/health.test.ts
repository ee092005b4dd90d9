import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { probeRegistry } from '../test/fixtures/plugins/registry.js';
import { kernelYaml, startTestKernel, waitUntil, type TestKernel } from '../test/helpers/kernel.js';
import { newMessage } from './bus/message.js';
import { edgeLayout } from '../plugins/registry.js';
import { parseConfig } from './config/index.js';
import type { HealthConfig } from './config/kernel-section.js';
import { isKernelError } from './errors.js';
import { serveHealth, type HealthServer } from './health.js';
import { Kernel } from './kernel.js';
import { createLogger } from './log.js';

const loopback: HealthConfig = { enable: true, address: '127.0.0.1', port: 0, allowNonLoopback: false };

async function get(port: number, path: string): Promise<{ status: number; body: string; type: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') ?? '' };
}

describe('health endpoint', () => {
  let t: TestKernel | undefined;
  let health: HealthServer | undefined;
  afterEach(async () => {
    await health?.close();
    await t?.kernel.stop();
    health = undefined;
    t = undefined;
  });

  it('/healthz, /readyz and /metrics answer when every plugin runs', async () => {
    t = await startTestKernel(kernelYaml('  probeA: {enable: true}\n'), probeRegistry);
    health = await serveHealth(t.kernel, loopback, createLogger('silent'));
    const port = health!.port!;
    expect(await get(port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get(port, '/readyz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect((await get(port, '/readyz?verbose')).body).toContain('[+]probe-a running');
    const metrics = await get(port, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.type).toMatch(/^text\/plain/);
    expect(metrics.body).toMatch(/kubeedge_module_up\{module="probe-a"\} 1/);
    expect(metrics.body).toMatch(/kubeedge_module_messages_in_total\{module="probe-a"\} 0/);
    expect(metrics.body).toMatch(/kubeedge_module_messages_delivered_total\{module="probe-a"\} 0/);
    expect(metrics.body).toMatch(/kubeedge_kernel_database_file_lost_total 0/);
    expect(metrics.body).toMatch(/kubeedge_kernel_stray_replies_total 0/);
    expect((await get(port, '/nope')).status).toBe(404);
  });

  it('/readyz is 503 naming a failed plugin and its last error; /metrics shows it down', async () => {
    t = await startTestKernel(
      kernelYaml(
        '  probeA: {enable: true}\n  probeB: {enable: true}\nkernel:\n  restart: {maxRestarts: 0}\n',
      ),
      probeRegistry,
    );
    // Its handler throws and the restart budget is 0: given up.
    const tk = t;
    await tk.kernel.bus.send('probe-b', newMessage({ operation: 'crash' }, null));
    await waitUntil(() => tk.kernel.host('probe-b')?.state === 'failed', 5000, 'probe-b given up');
    health = await serveHealth(t.kernel, loopback, createLogger('silent'));
    const ready = await get(health!.port!, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toContain('[+]probe-a running');
    expect(ready.body).toMatch(/\[-\]probe-b failed: .*probe-b: crash requested/);
    expect(ready.body).toContain('readyz check failed');
    const metrics = await get(health!.port!, '/metrics');
    expect(metrics.body).toMatch(/kubeedge_module_up\{module="probe-b"\} 0/);
    expect((await get(health!.port!, '/healthz')).status).toBe(200);
  });

  it('/readyz is 503 until the kernel has started its plugins, and again once it stops', async () => {
    const kernel = new Kernel({
      config: parseConfig(edgeLayout, kernelYaml('  probeA: {enable: true}\n'), 'x.yaml'),
      registry: probeRegistry,
      logger: createLogger('silent'),
    });
    health = await serveHealth(kernel, loopback, createLogger('silent'));
    const before = await get(health!.port!, '/readyz');
    expect(before.status).toBe(503);
    expect(before.body).toContain('[-]kernel: not started');
    await kernel.start();
    expect((await get(health!.port!, '/readyz')).status).toBe(200);
    await kernel.stop();
    expect((await get(health!.port!, '/readyz')).status).toBe(503);
  });

  it('refuses a non-loopback address unless allowed', async () => {
    t = await startTestKernel(kernelYaml(), probeRegistry);
    const err = await serveHealth(
      t.kernel,
      { ...loopback, address: '0.0.0.0' },
      createLogger('silent'),
    ).catch((e: unknown) => e);
    expect(isKernelError(err, 'EHEALTH_CONFIG')).toBe(true);
    expect((err as Error).message).toMatch(/kernel\.health\.address: "0\.0\.0\.0" is not a loopback address/);
    health = await serveHealth(
      t.kernel,
      { ...loopback, address: '0.0.0.0', allowNonLoopback: true },
      createLogger('silent'),
    );
    expect((await get(health!.port!, '/healthz')).status).toBe(200);
  });

  it('is off with enable: false', async () => {
    t = await startTestKernel(kernelYaml(), probeRegistry);
    expect(
      await serveHealth(t.kernel, { ...loopback, enable: false }, createLogger('silent')),
    ).toBeUndefined();
  });

  it('a port held by another process is logged, not fatal', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    try {
      t = await startTestKernel(kernelYaml(), probeRegistry);
      const lines: string[] = [];
      health = await serveHealth(
        t.kernel,
        { ...loopback, port },
        createLogger('info', {}, (l) => void lines.push(l)),
      );
      expect(health!.port).toBeUndefined();
      expect(lines.join('')).toContain(`health endpoint cannot listen on 127.0.0.1:${port}`);
    } finally {
      holder.close();
    }
  });
});
