import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { newMessage } from '../../kernel/bus/message.js';
import { isKernelError, type KernelError } from '../../kernel/errors.js';
import { probeRegistry } from '../fixtures/plugins/registry.js';
import { kernelYaml, startTestKernel, waitUntil, type TestKernel } from '../helpers/kernel.js';

/**
 * The messaging contract every plugin gets, run through both transports (in the kernel's process
 * and in a process of its own over the gRPC stream), in the spirit of aedes' abstract tests.
 */
const modes = ['inprocess', 'process'] as const;

describe.each(modes)('kernel contract (%s)', (runAs) => {
  let t: TestKernel | undefined;
  afterEach(async () => {
    await t?.kernel.stop();
    t = undefined;
  });

  const start = async (extra = '', kernel = ''): Promise<TestKernel> => {
    t = await startTestKernel(
      kernelYaml(`  probeA: {enable: true, runAs: ${runAs}${extra}}
  probeB: {enable: true, runAs: ${runAs}}
kernel:
  mailboxSize: 8
  restart: {maxRestarts: 3, initialBackoff: 50ms, maxBackoff: 200ms}
${kernel}`),
      probeRegistry,
    );
    return t;
  };
  const query = (tk: TestKernel, module: string, content: unknown, timeoutMs = 5000) =>
    tk.kernel.bus.request(module, newMessage({ source: 'tester', operation: 'query' }, content), timeoutMs);

  it('starts and stops every plugin', async () => {
    const tk = await start();
    expect(tk.kernel.status().map((s) => [s.name, s.state, s.runAs])).toEqual([
      ['probe-a', 'running', runAs],
      ['probe-b', 'running', runAs],
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
    expect(reply.content).toEqual({ from: 'probe-a', content: { n: 1, text: '<&>' } });
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
    expect(reply.content).toEqual({ from: 'probe-b', content: 'chain' });
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
    expect((await query(tk, 'probe-a', 'still here')).content).toEqual({
      from: 'probe-a',
      content: 'still here',
    });
  });

  it('a handler that throws is reported and the plugin restarted', async () => {
    const tk = await start();
    await tk.kernel.bus.send('probe-a', newMessage({ operation: 'crash' }, null));
    await waitUntil(() => (tk.kernel.host('probe-a')?.restarts ?? 0) === 1, 5000, 'restart');
    await waitUntil(() => tk.kernel.host('probe-a')?.state === 'running', 5000, 'running again');
    expect(tk.kernel.host('probe-a')?.lastError).toMatch(/crash requested/);
    expect((await query(tk, 'probe-a', 'back')).content).toEqual({ from: 'probe-a', content: 'back' });
    expect(tk.kernel.host('probe-b')?.restarts).toBe(0);
  });

  it('a plugin that throws at start is restarted with back-off until it starts', async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'probe-')), 'fails');
    const tk = await start(`, failStarts: 2, failMarker: ${marker}`);
    await waitUntil(() => tk.kernel.host('probe-a')?.state === 'running', 5000, 'probe-a running');
    expect(tk.kernel.host('probe-a')?.restarts).toBe(2);
    expect((await query(tk, 'probe-a', 'ok')).content).toEqual({ from: 'probe-a', content: 'ok' });
  });

  it('a plugin that keeps failing is given up; senders then get an error', async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'probe-')), 'fails');
    const tk = await start(`, failStarts: 100, failMarker: ${marker}`);
    await waitUntil(() => tk.kernel.host('probe-a')?.state === 'failed', 5000, 'probe-a given up');
    expect(tk.kernel.host('probe-a')?.restarts).toBe(3);
    const err = await tk.kernel.bus
      .send('probe-a', newMessage({ operation: 'x' }, null))
      .catch((e: unknown) => e);
    expect(isKernelError(err, 'EPLUGIN_UNAVAILABLE')).toBe(true);
    expect((await query(tk, 'probe-b', 'alive')).content).toEqual({ from: 'probe-b', content: 'alive' });
  });
});
