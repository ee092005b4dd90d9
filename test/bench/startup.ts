/**
 * Start-up cost of a real `edgecore` process (dist/bin/edgecore.js) with the default edge modules:
 * metaManager with metaServer, deviceTwin, eventBus with its internal broker. Measured from exec
 * until metaServer answers HTTP and the MQTT port accepts a connection (issue 9: Go edgecore
 * v1.23.1 serves 70-180 ms after exec on this kind of machine). The CPU time the process used until
 * then is given too: wall time swings with whatever else the machine runs, CPU time much less.
 * Also the RSS of that edgecore idle for a second after serving.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../peers/util.js';
import { percentile, round, type Figure } from './report.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url)).replace(/dist\/$/, '');
/** The edgecore measured: this build's, or another's (`EDGECORE_BIN`, to compare builds). */
const edgecoreBin = (): string => process.env.EDGECORE_BIN ?? join(repoRoot, 'dist', 'bin', 'edgecore.js');

/** CPU time (user + system, ms) a process used so far: robust to other load on the machine. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** edgecore.yaml with the default modules on free loopback ports, everything in `dir`. */
export function defaultModulesYaml(dir: string, httpPort: number, mqttPort: number): string {
  return `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${join(dir, 'edgecore.db')}
modules:
  edgeHub: {enable: false}
  edged: {enable: false, hostnameOverride: bench-node}
  metaManager:
    enable: true
    metaServer: {enable: true, server: "127.0.0.1:${httpPort}"}
  eventBus: {enable: true, mqttMode: 0, mqttServerInternal: "tcp://127.0.0.1:${mqttPort}"}
  deviceTwin: {enable: true, dmiSockPath: "${dir}/"}
kernel:
  logLevel: warn
  health: {enable: false}
`;
}

/** Resolves true when an HTTP request to the port gets any response. */
function httpAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/version', timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.once('error', () => resolve(false));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port }, () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
}

/**
 * One start in a fresh temp dir: ms from exec until `ready()` holds (polled every 2 ms), the CPU
 * ms the process used by then, and its RSS `idleMs` later; the process is then stopped.
 * `configText` gets the dir (for the database and sockets).
 */
export async function timeToServe(
  configText: (dir: string) => string,
  ready: () => Promise<boolean>,
  { nodeArgs = [], idleMs = 0 }: { nodeArgs?: string[]; idleMs?: number } = {},
): Promise<{ wallMs: number; cpuMs: number; rssMb: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-startup-'));
  const file = join(dir, 'edgecore.yaml');
  writeFileSync(file, configText(dir));
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, [...nodeArgs, edgecoreBin(), '--config', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  try {
    while (!(await ready())) {
      if (exited) throw new Error(`edgecore exited before serving:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    const served = { wallMs: Number(process.hrtime.bigint() - t0) / 1e6, cpuMs: cpuMs(child.pid!) };
    await new Promise((r) => setTimeout(r, idleMs));
    return { ...served, rssMb: rssMb(child.pid!) };
  } finally {
    child.kill('SIGTERM');
    await exit;
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A start with the default modules; `idleMs` after serving, its RSS is read. */
async function startDefaultModules(idleMs = 0): Promise<{ wallMs: number; cpuMs: number; rssMb: number }> {
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  return timeToServe(
    (dir) => defaultModulesYaml(dir, httpPort, mqttPort),
    async () => {
      const [http, mqtt] = await Promise.all([httpAnswers(httpPort), tcpAccepts(mqttPort)]);
      return http && mqtt;
    },
    { idleMs },
  );
}

export async function startupBench(runs = 9): Promise<Figure[]> {
  const samples: { wallMs: number; cpuMs: number }[] = [];
  for (let i = 0; i < runs; i++) samples.push(await startDefaultModules());
  const idle = await startDefaultModules(1000);
  const wall = samples.map((s) => s.wallMs).sort((a, b) => a - b);
  const cpu = samples.map((s) => s.cpuMs).sort((a, b) => a - b);
  return [
    {
      name: 'edgecore_start_default_modules_p50',
      value: round(percentile(wall, 50)),
      unit: 'ms',
      goal: '<= 180',
    },
    { name: 'edgecore_start_default_modules_min', value: round(wall[0] ?? NaN), unit: 'ms' },
    { name: 'edgecore_start_default_modules_cpu_p50', value: round(percentile(cpu, 50)), unit: 'ms' },
    { name: 'edgecore_default_modules_idle_rss', value: round(idle.rssMb), unit: 'MB' },
  ];
}
