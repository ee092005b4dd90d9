import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../kernel/config/index.js';
import { newMessage } from '../../kernel/bus/message.js';
import { Kernel } from '../../kernel/kernel.js';
import { pluginSpecifier } from '../../kernel/plugin/specifier.js';
import { kernelYaml } from '../helpers/kernel.js';
import { latencyFigures, percentile, round, type Figure } from './report.js';
import { createLogger } from '../../kernel/log.js';
import { edgeLayout } from '../../plugins/registry.js';

const registry = [
  { configKey: 'benchSender', specifier: pluginSpecifier(import.meta.url, './plugins/sender') },
  { configKey: 'benchSink', specifier: pluginSpecifier(import.meta.url, './plugins/sink') },
];

const BASE = kernelYaml();

async function withKernel<T>(senderRunAs: string, fn: (k: Kernel) => Promise<T>): Promise<T> {
  const config = parseConfig(
    edgeLayout,
    `${BASE}  benchSender: {enable: true, runAs: ${senderRunAs}}\n  benchSink: {enable: true}\n`,
    'bench.yaml',
  );
  const kernel = new Kernel({ config, registry, logger: createLogger('silent') });
  await kernel.start();
  try {
    return await fn(kernel);
  } finally {
    await kernel.stop();
  }
}

/** CPU time (user + system) of a process so far, in µs: this one, or a child by pid. */
function cpuMicros(pid?: number): number {
  if (pid === undefined) {
    const u = process.cpuUsage();
    return u.user + u.system;
  }
  const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * (1e6 / 100); // clock ticks (USER_HZ 100)
}

/** One-way messages/s (wall clock), and CPU µs per message of the kernel and of the sender's process. */
async function throughput(
  k: Kernel,
  n: number,
): Promise<{ rate: number; kernelCpu: number; senderCpu: number }> {
  await k.bus.request('sender', newMessage({ operation: 'send' }, { n: Math.min(n, 50_000) }), 120_000);
  const pid = (k.host('sender') as unknown as { pid?: number }).pid;
  const c0 = cpuMicros();
  const s0 = pid ? cpuMicros(pid) : 0;
  const t0 = process.hrtime.bigint();
  await k.bus.request('sender', newMessage({ operation: 'send' }, { n }), 120_000);
  const rate = n / (Number(process.hrtime.bigint() - t0) / 1e9);
  return { rate, kernelCpu: (cpuMicros() - c0) / n, senderCpu: pid ? (cpuMicros(pid) - s0) / n : 0 };
}

async function roundTrips(k: Kernel, n: number): Promise<number[]> {
  await k.bus.request('sender', newMessage({ operation: 'rtt' }, { n: Math.min(n, 2000) }), 120_000);
  const reply = await k.bus.request('sender', newMessage({ operation: 'rtt' }, { n }), 120_000);
  return reply.content as number[];
}

const repoRoot = fileURLToPath(new URL('../../', import.meta.url)).replace(/dist\/$/, '');
/** The edgecore started: this build's, or another's (`EDGECORE_BIN`, to compare builds). */
const edgecoreBin = process.env.EDGECORE_BIN ?? join(repoRoot, 'dist', 'bin', 'edgecore.js');

/** Start edgecore with `config`; resolve with the ms until "kernel ready" and the RSS after `idleMs`. */
function startEdgecore(configText: string, idleMs: number): Promise<{ readyMs: number; rssMb: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-edgecore-'));
  const file = join(dir, 'edgecore.yaml');
  writeFileSync(file, configText);
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [edgecoreBin, '--config', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let buf = '';
    let readyMs = -1;
    child.stderr.on('data', (d: Buffer) => {
      buf += d.toString();
      if (readyMs < 0 && buf.includes('"kernel ready"')) {
        readyMs = Number(process.hrtime.bigint() - t0) / 1e6;
        setTimeout(() => {
          const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
          const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
          child.kill('SIGTERM');
          resolve({ readyMs, rssMb: rssKb / 1024 });
        }, idleMs);
      }
    });
    child.once('exit', (code) => {
      if (readyMs < 0) reject(new Error(`edgecore exited with ${code} before ready:\n${buf}`));
    });
  });
}

function noopPlugins(count: number): { dir: string; yaml: string } {
  const dir = mkdtempSync(join(tmpdir(), 'bench-noop-'));
  const plugins: string[] = [];
  const modules: string[] = [];
  for (let i = 0; i < count; i++) {
    const file = join(dir, `noop${i}.mjs`);
    writeFileSync(
      file,
      `export default { name: 'noop${i}', group: 'noop', configKey: 'noop${i}', start() { return {}; } };\n`,
    );
    plugins.push(`    - package: ${file}`);
    modules.push(`  noop${i}: {enable: true}`);
  }
  return { dir, yaml: `${modules.join('\n')}\nkernel:\n  plugins:\n${plugins.join('\n')}\n` };
}

/** `KERNEL_BENCH=bus,start` (default: both): the message bus figures, edgecore's start and idle. */
const parts = new Set((process.env.KERNEL_BENCH ?? 'bus,start').split(','));

export async function kernelBench(): Promise<Figure[]> {
  const figures: Figure[] = [];
  if (parts.has('bus')) await busFigures(figures);
  if (!parts.has('start')) return figures;
  const noop = noopPlugins(10);
  const starts: number[] = [];
  for (let i = 0; i < 5; i++) starts.push((await startEdgecore(`${BASE}${noop.yaml}`, 0)).readyMs);
  figures.push({
    name: 'edgecore_start_10_noop_plugins',
    value: round(
      percentile(
        starts.sort((a, b) => a - b),
        50,
      ),
    ),
    unit: 'ms',
    goal: '<= 150',
  });
  const idle = await startEdgecore(BASE, 1000);
  figures.push({ name: 'edgecore_idle_rss_no_plugins', value: round(idle.rssMb), unit: 'MB', goal: '<= 45' });
  return figures;
}

async function busFigures(figures: Figure[]): Promise<void> {
  await withKernel('inprocess', async (k) => {
    figures.push({
      name: 'kernel_inproc_oneway',
      value: round((await throughput(k, 1_000_000)).rate),
      unit: 'msg/s',
      goal: '>= 4000000',
    });
    figures.push(...latencyFigures('kernel_inproc_rtt', await roundTrips(k, 50_000), 'us', '<= 10'));
  });
  await withKernel('process', async (k) => {
    // Each message acknowledged by sequence number. CPU per message is the figure that holds on
    // a loaded machine; msg/s is wall clock.
    const t = await throughput(k, 300_000);
    figures.push({ name: 'kernel_outproc_oneway', value: round(t.rate), unit: 'msg/s', goal: '>= 200000' });
    figures.push({ name: 'kernel_outproc_kernel_cpu', value: round(t.kernelCpu), unit: 'us/msg' });
    figures.push({ name: 'kernel_outproc_plugin_cpu', value: round(t.senderCpu), unit: 'us/msg' });
    figures.push(...latencyFigures('kernel_outproc_rtt', await roundTrips(k, 5_000), 'ms', '<= 1'));
  });
}
