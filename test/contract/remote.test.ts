import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { newMessage } from '../../kernel/bus/message.js';
import { isKernelError } from '../../kernel/errors.js';
import { definePlugin } from '../../kernel/index.js';
import { connectPlugin } from '../../kernel/remote/index.js';
import { probeRegistry } from '../fixtures/plugins/registry.js';
import { kernelYaml, startTestKernel, waitUntil, type TestKernel } from '../helpers/kernel.js';

const pidOf = (t: TestKernel, name: string): number | undefined =>
  (t.kernel.host(name) as unknown as { pid?: number } | undefined)?.pid;

describe('out-of-process plugins', () => {
  let t: TestKernel | undefined;
  let attached: ChildProcess | undefined;
  afterEach(async () => {
    attached?.kill('SIGKILL');
    attached = undefined;
    await t?.kernel.stop();
    t = undefined;
  });

  it('SIGKILL of a plugin process: restarted, queued messages delivered, overflow rejected', async () => {
    t = await startTestKernel(
      kernelYaml(`  probeA: {enable: true, runAs: process}
kernel:
  mailboxSize: 4
  restart: {maxRestarts: 3, initialBackoff: 300ms, maxBackoff: 300ms}
`),
      probeRegistry,
    );
    const tk = t;
    const first = pidOf(tk, 'probe-a');
    expect(first).toBeGreaterThan(0);
    process.kill(first as number, 'SIGKILL');
    await waitUntil(() => tk.kernel.host('probe-a')?.state === 'restarting', 5000, 'restarting');
    // While it is down: four messages are held, the fifth is refused with an error.
    const sends = await Promise.allSettled(
      [1, 2, 3, 4, 5].map((n) =>
        tk.kernel.bus.send('probe-a', newMessage({ operation: 'forward', destination: 'tester' }, n)),
      ),
    );
    expect(sends.map((s) => s.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'rejected',
    ]);
    expect(isKernelError((sends[4] as PromiseRejectedResult).reason, 'EBUS_QUEUE_FULL')).toBe(true);
    await waitUntil(() => tk.kernel.host('probe-a')?.state === 'running', 10000, 'running again');
    expect(pidOf(tk, 'probe-a')).not.toBe(first);
    await tk.waitInbox((m) => m.length === 4);
    expect(tk.inbox.map((m) => m.content)).toEqual([1, 2, 3, 4]);
    expect(tk.kernel.host('probe-a')?.restarts).toBe(1);
  });

  it('a plugin process started on its own attaches to the kernel socket', async () => {
    const socket = join(mkdtempSync(join(tmpdir(), 'kernel-')), 'kernel.sock');
    t = await startTestKernel(kernelYaml(`kernel:\n  socket: ${socket}\n`), probeRegistry);
    const tk = t;
    const script = fileURLToPath(new URL('../fixtures/attach-probe.ts', import.meta.url));
    attached = spawn(process.execPath, ['--import', 'tsx', script, socket], { stdio: 'inherit' });
    await waitUntil(() => tk.kernel.host('probe-c')?.state === 'running', 10000, 'probe-c attached');
    const reply = await tk.kernel.bus.request('probe-c', newMessage({ operation: 'query' }, 'hi'), 5000);
    expect(reply.content).toEqual({ from: 'probe-c', content: 'hi', start: 1 });
    // It leaves: messages for it are held until it attaches again.
    attached.kill('SIGKILL');
    await waitUntil(() => tk.kernel.host('probe-c')?.state === 'idle', 5000, 'probe-c gone');
    await tk.kernel.bus.send('probe-c', newMessage({ operation: 'forward', destination: 'tester' }, 'held'));
    attached = spawn(process.execPath, ['--import', 'tsx', script, socket], { stdio: 'inherit' });
    await tk.waitInbox((m) => m.length === 1, 10000);
    expect(tk.inbox[0]?.content).toBe('held');
  });

  it('the kernel socket is private and an attaching process without the token gets nothing', async () => {
    const socket = join(mkdtempSync(join(tmpdir(), 'kernel-')), 'kernel.sock');
    t = await startTestKernel(kernelYaml(`kernel:\n  socket: ${socket}\n`), probeRegistry);
    expect(statSync(socket).mode & 0o077).toBe(0);
    expect(statSync(`${socket}.token`).mode & 0o777).toBe(0o600);
    let started = false;
    const intruder = definePlugin({
      name: 'intruder',
      group: 'x',
      configKey: 'intruder',
      start: () => void (started = true),
    });
    const { reason } = await connectPlugin(intruder, { socket, token: 'not-the-token' }).done;
    expect(reason).toMatch(/plugin "intruder": missing or wrong token/);
    expect(started).toBe(false);
    expect(t.kernel.bus.hasModule('intruder')).toBe(false);
  });

  it('the default socket lives in a fresh 0700 directory; a socket in a directory open to others is refused', async () => {
    t = await startTestKernel(kernelYaml('  probeA: {enable: true, runAs: process}\n'), probeRegistry);
    const socket = t.kernel.socketPath as string;
    expect(socket.startsWith(join(tmpdir(), 'kubeedge-kernel-'))).toBe(true);
    expect(statSync(dirname(socket)).mode & 0o777).toBe(0o700);
    expect(statSync(socket).mode & 0o077).toBe(0);
    await t.kernel.stop();
    t = undefined;
    const err = await startTestKernel(
      kernelYaml(`kernel:\n  socket: ${join(tmpdir(), 'open.sock')}\n`),
      probeRegistry,
    ).catch((e: unknown) => e);
    expect(isKernelError(err, 'ECONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(/^kernel.socket: directory .* is writable by other users/);
  });
});
