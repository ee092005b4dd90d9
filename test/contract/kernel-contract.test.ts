import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { newMessage } from '../../kernel/bus/message.js';
import { parseConfig } from '../../kernel/config/index.js';
import { isKernelError, type KernelError } from '../../kernel/errors.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger } from '../../kernel/log.js';
import { edgeLayout } from '../../plugins/registry.js';
import { orderedRegistry, probeRegistry } from '../fixtures/plugins/registry.js';
import { kernelYaml, startTestKernel, waitUntil, type TestKernel } from '../helpers/kernel.js';

/**
 * The contract every plugin gets from the kernel, run through both transports (in the kernel's
 * process and in a process of its own over the gRPC stream), in the spirit of aedes' abstract
 * tests: messaging, failures and restarts, start cancellation, acknowledged delivery, kernel state
 * and services across the boundary.
 */
const modes = ['inprocess', 'process'] as const;
const quiet = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent');

/** Start a plugin process under tsx takes seconds on a loaded machine: start timeouts allow for it. */
const START_TIMEOUT = { inprocess: '1s', process: '10s' } as const;

describe.each(modes)('kernel contract (%s)', (runAs) => {
  let t: TestKernel | undefined;
  afterEach(async () => {
    await t?.kernel.stop();
    t = undefined;
  });

  const scratch = (): string => mkdtempSync(join(tmpdir(), 'probe-'));
  const start = async (a = '', b = '', kernel = ''): Promise<TestKernel> => {
    t = await startTestKernel(
      kernelYaml(`  probeA: {enable: true, runAs: ${runAs}${a}}
  probeB: {enable: true, runAs: ${runAs}${b}}
kernel:
  mailboxSize: 8
  startTimeout: ${START_TIMEOUT[runAs]}
  restart: {maxRestarts: 3, window: 10m, initialBackoff: 50ms, maxBackoff: 200ms}
${kernel}`),
      probeRegistry,
    );
    return t;
  };
  const query = (tk: TestKernel, module: string, content: unknown, timeoutMs = 5000) =>
    tk.kernel.bus.request(module, newMessage({ source: 'tester', operation: 'query' }, content), timeoutMs);
  const told = (tk: TestKernel, text: string): number => tk.inbox.filter((m) => m.content === text).length;
  const events = (file: string): string[] =>
    existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];

  it('starts and stops every plugin', async () => {
    const tk = await start();
    expect(tk.kernel.status().map((s) => [s.name, s.state, s.runAs, s.restarts, s.failures])).toEqual([
      ['probe-a', 'running', runAs, 0, 0],
      ['probe-b', 'running', runAs, 0, 0],
    ]);
    await tk.kernel.stop();
    expect(tk.kernel.status().map((s) => s.state)).toEqual(['stopped', 'stopped']);
  });

  it('sync request is answered by the reply whose parent id matches', async () => {
    const tk = await start();
    const req = newMessage({ source: 'tester', operation: 'query' }, { n: 1, text: '<&>' });
    const reply = await tk.kernel.bus.request('probe-a', req, 5000);
    expect(reply.header.parent_msg_id).toBe(req.header.msg_id);
    expect(reply.route.operation).toBe('response');
    expect(reply.content).toEqual({ from: 'probe-a', content: { n: 1, text: '<&>' }, start: 1 });
  });

  it('send to a module, and a plugin sends on to another module', async () => {
    const tk = await start();
    await tk.kernel.bus.send('probe-a', newMessage({ operation: 'forward', destination: 'tester' }, 'hello'));
    await tk.waitInbox((m) => m.length === 1);
    expect(tk.inbox[0]?.route).toEqual({ source: 'probe-a', operation: 'forwarded' });
    expect(tk.inbox[0]?.content).toBe('hello');
  });

  it('send to a group reaches every member', async () => {
    const tk = await start();
    await tk.kernel.bus.sendToGroup(
      'probes',
      newMessage({ operation: 'forward', destination: 'tester' }, 'g'),
    );
    await tk.waitInbox((m) => m.length === 2);
    expect(tk.inbox.map((m) => m.route.source).sort()).toEqual(['probe-a', 'probe-b']);
    await tk.kernel.bus.send(
      'probe-a',
      newMessage({ operation: 'forwardGroup', destination: 'test' }, 'to-group'),
    );
    await tk.waitInbox((m) => m.length === 3);
    expect(tk.inbox[2]?.content).toBe('to-group');
  });

  it('a plugin makes a sync request to another plugin', async () => {
    const tk = await start();
    const req = newMessage({ source: 'tester', operation: 'ask', destination: 'probe-b' }, 'chain');
    const reply = await tk.kernel.bus.request('probe-a', req, 5000);
    expect(reply.content).toEqual({ from: 'probe-b', content: 'chain', start: 1 });
  });

  it('a sync request without an answer times out with a typed error and is counted', async () => {
    const tk = await start();
    const err = (await tk.kernel.bus
      .request('probe-a', newMessage({ operation: 'ignored' }, null), 100)
      .catch((e: unknown) => e)) as KernelError;
    expect(isKernelError(err, 'EBUS_TIMEOUT')).toBe(true);
    expect(err.message).toMatch(/timeout to get response .* from module "probe-a" after 100 ms/);
    expect(tk.kernel.metrics.snapshot()['probe-a']?.syncTimeouts).toBe(1);
  });

  it('an overflowing mailbox rejects the sender and counts it, never silently', async () => {
    const tk = await start();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () =>
        tk.kernel.bus.send('probe-a', newMessage({ operation: 'count' }, null)),
      ),
    );
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected.length).toBe(12);
    expect(isKernelError((rejected[0] as PromiseRejectedResult).reason, 'EBUS_QUEUE_FULL')).toBe(true);
    expect(tk.kernel.metrics.snapshot()['probe-a']?.rejected).toBe(12);
    expect((await query(tk, 'probe-a', 'still here')).content).toMatchObject({ content: 'still here' });
  });

  it('a handler that throws is reported and the plugin restarted', async () => {
    const tk = await start();
    await tk.kernel.bus.send('probe-a', newMessage({ operation: 'crash' }, null));
    await waitUntil(() => (tk.kernel.host('probe-a')?.restarts ?? 0) === 1, 10_000, 'restart');
    await waitUntil(() => tk.kernel.host('probe-a')?.state === 'running', 10_000, 'running again');
    expect(tk.kernel.host('probe-a')?.lastError).toMatch(/crash requested/);
    expect((await query(tk, 'probe-a', 'back')).content).toMatchObject({ content: 'back' });
    expect(tk.kernel.host('probe-b')?.restarts).toBe(0);
  });

  it('an error thrown from a timer of a plugin is that plugin failing: it is restarted', async () => {
    const tk = await start();
    await tk.kernel.bus.send('probe-a', newMessage({ operation: 'timerThrow' }, null));
    await waitUntil(() => (tk.kernel.host('probe-a')?.restarts ?? 0) === 1, 10_000, 'restart');
    await waitUntil(() => tk.kernel.host('probe-a')?.state === 'running', 10_000, 'running again');
    expect(tk.kernel.host('probe-a')?.lastError).toMatch(/probe-a: timer threw/);
    expect(tk.kernel.host('probe-b')?.failures).toBe(0);
  });

  it('a plugin that cannot start at boot fails the boot, naming the plugin and its error', async () => {
    const dir = scratch();
    const err = (await start(`, startCounter: ${dir}/starts, failStarts: [1]`).catch(
      (e: unknown) => e,
    )) as KernelError;
    expect(isKernelError(err, 'EPLUGIN_START')).toBe(true);
    expect(err.message).toBe('plugin "probe-a" failed to start: probe-a: start failure 1');
    // Not restarted: one start only.
    expect(readFileSync(join(dir, 'starts'), 'utf8')).toBe('1');
  });

  it('after a successful start, failing restarts are retried with back-off until one starts', async () => {
    const dir = scratch();
    const tk = await start(`, startCounter: ${dir}/starts, failStarts: [2, 3]`);
    await tk.kernel.bus.send('probe-a', newMessage({ operation: 'crash' }, null));
    await waitUntil(() => (tk.kernel.host('probe-a')?.restarts ?? 0) === 3, 10_000, 'three restarts');
    await waitUntil(() => tk.kernel.host('probe-a')?.state === 'running', 10_000, 'probe-a running');
    expect((await query(tk, 'probe-a', 'ok')).content).toEqual({ from: 'probe-a', content: 'ok', start: 4 });
    expect(tk.kernel.host('probe-a')?.failures).toBe(3);
  });

  it('a plugin that spends its restart budget is given up; senders then get an error', async () => {
    const dir = scratch();
    const tk = await start(`, startCounter: ${dir}/starts, failStarts: [2, 3, 4, 5]`);
    await tk.kernel.bus.send('probe-a', newMessage({ operation: 'crash' }, null));
    await waitUntil(() => tk.kernel.host('probe-a')?.state === 'failed', 10_000, 'probe-a given up');
    expect(tk.kernel.host('probe-a')?.restarts).toBe(3);
    expect(tk.kernel.status()[0]).toMatchObject({ name: 'probe-a', state: 'failed', failures: 4 });
    const err = await tk.kernel.bus
      .send('probe-a', newMessage({ operation: 'x' }, null))
      .catch((e: unknown) => e);
    expect(isKernelError(err, 'EPLUGIN_UNAVAILABLE')).toBe(true);
    expect((await query(tk, 'probe-b', 'alive')).content).toMatchObject({ from: 'probe-b' });
  });

  it('a stop during a hung restart cancels that start and starts nothing more', async () => {
    const dir = scratch();
    const log = join(dir, 'events');
    const tk = await start(`, startCounter: ${dir}/starts, hangStarts: [2], eventsFile: ${log}`);
    await tk.kernel.bus.send('probe-a', newMessage({ operation: 'crash' }, null));
    await waitUntil(() => events(log).includes('start 2'), 30_000, 'restart hanging');
    await tk.kernel.stop();
    expect(tk.kernel.host('probe-a')?.state).toBe('stopped');
    expect(events(log)).toContain('aborted 2');
    expect(readFileSync(join(dir, 'starts'), 'utf8')).toBe('2');
  });

  it('a start that hangs is cancelled: its signal fires, the late instance is stopped and never attached', async () => {
    const dir = scratch();
    const log = join(dir, 'events');
    const tk = await start(`, startCounter: ${dir}/starts, hangStarts: [2], eventsFile: ${log}`);
    await tk.kernel.bus.send('probe-a', newMessage({ operation: 'crash' }, null));
    await waitUntil(() => tk.kernel.host('probe-a')?.restarts === 2, 30_000, 'second restart');
    await waitUntil(() => tk.kernel.host('probe-a')?.state === 'running', 30_000, 'probe-a running');
    expect(tk.kernel.host('probe-a')?.lastError).toMatch(/start of plugin "probe-a": no answer after/);
    expect(events(log)).toContain('aborted 2');
    await waitUntil(() => events(log).includes('stop 2'), 5000, 'late instance stopped');
    // Only the current instance (the third start) gets the mailbox.
    for (let i = 0; i < 4; i++) {
      expect((await query(tk, 'probe-a', i)).content).toEqual({ from: 'probe-a', content: i, start: 3 });
    }
    expect(tk.kernel.host('probe-a')?.generation).toBe(3);
  });

  it('concurrent handlers finishing out of order: a failure redelivers exactly what was not acknowledged', async () => {
    const tk = await start();
    const host = tk.kernel.host('probe-b') as NonNullable<ReturnType<typeof tk.kernel.host>>;
    await tk.kernel.bus.send('probe-b', newMessage({ operation: 'work' }, { id: 'slow', ms: 1500 }));
    await tk.kernel.bus.send('probe-b', newMessage({ operation: 'work' }, { id: 'fast', ms: 0 }));
    await tk.waitInbox(() => told(tk, 'done fast') === 1 && told(tk, 'begin slow') === 1);
    // The fast one is acknowledged; only the slow one is in flight.
    await waitUntil(() => host.box.busy === 1, 5000, 'fast acknowledged');
    if (runAs === 'process') {
      process.kill((host as unknown as { pid: number }).pid, 'SIGKILL');
    } else {
      await tk.kernel.bus.send('probe-b', newMessage({ operation: 'crash' }, null));
    }
    await waitUntil(() => host.restarts === 1, 10_000, 'restart');
    await tk.waitInbox(() => told(tk, 'done slow') === 1, 15_000);
    // In the kernel's process the slow handler runs on to its end; a killed process's delivery
    // was never acknowledged and is handed to the next instance.
    expect(told(tk, 'begin slow')).toBe(runAs === 'process' ? 2 : 1);
    expect(told(tk, 'begin fast')).toBe(1);
    expect(told(tk, 'done fast')).toBe(1);
    expect((await query(tk, 'probe-b', 'after')).content).toMatchObject({ content: 'after' });
    expect(told(tk, 'done slow')).toBe(1);
  });

  it('the cloud-connection flag the kernel owns reaches the plugin as it changes', async () => {
    const tk = await start();
    const cloud = async (): Promise<unknown> =>
      (await tk.kernel.bus.request('probe-a', newMessage({ operation: 'cloud' }, null), 5000)).content;
    expect(await cloud()).toBe(false);
    tk.kernel.cloud.set(true);
    await tk.waitInbox(() => told(tk, 'cloud true') === 2);
    expect(await cloud()).toBe(true);
    tk.kernel.cloud.set(false);
    await tk.waitInbox(() => told(tk, 'cloud false') === 2);
    expect(await cloud()).toBe(false);
  });

  it('counters a plugin increments through ctx.metrics reach the kernel registry', async () => {
    const tk = await start();
    await tk.kernel.bus.send('probe-a', newMessage({ operation: 'metric' }, null));
    await tk.kernel.bus.send('probe-a', newMessage({ operation: 'metric' }, null));
    // A plugin process sends its registry every 5 s (and when it stops).
    await vi.waitFor(
      async () =>
        expect(await tk.kernel.metrics.text()).toMatch(
          runAs === 'process'
            ? /probe_things_total\{probe="probe-a",module="probe-a"\} 2/
            : /probe_things_total\{probe="probe-a"\} 2/,
        ),
      { timeout: 15_000, interval: 200 },
    );
  });

  it('a service provided by a plugin in another process is refused at load, naming both plugins', async () => {
    const config = parseConfig(
      edgeLayout,
      kernelYaml(`  consumer: {enable: true, runAs: ${runAs}}\n  provider: {enable: true}\n`),
      'x.yaml',
    );
    const kernel = new Kernel({ config, registry: orderedRegistry, logger: quiet });
    if (runAs === 'inprocess') {
      await kernel.start();
      expect(kernel.status().map((s) => s.state)).toEqual(['running', 'running']);
      await kernel.stop();
      return;
    }
    const err = (await kernel.start().catch((e: unknown) => e)) as KernelError;
    await kernel.stop();
    expect(isKernelError(err, 'EPLUGIN_INVALID')).toBe(true);
    expect(err.message).toBe(
      'plugin "consumer" (in its own process (consumer)) requires service(test.greeter), provided by plugin "provider" in the kernel process: services do not cross processes; run both in the same process (runAs)',
    );
  });
});
