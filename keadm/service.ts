/**
 * cloudcore and edgecore as a service: a systemd unit where systemd runs (`/run/systemd/system`
 * exists, as `sd_booted` checks), else a detached process with its pid and log files in the run
 * dir. `stopService` undoes either.
 */
import { spawn, execFile } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { errorText } from '../kernel/index.js';
import { keadmError, writeOwnerOnly } from './common.js';

export type Core = 'cloudcore' | 'edgecore';
export type ServiceMode = 'auto' | 'systemd' | 'process';

export interface ServiceOptions {
  mode: ServiceMode;
  /** Where unit files go (`/etc/systemd/system`). */
  unitDir: string;
  /** Where pid and log files of a detached process go (`/var/run/kubeedge`). */
  runDir: string;
}

export interface StartedService {
  how: string;
  running: () => boolean;
  logHint: string;
}

const run = promisify(execFile);

/** A systemd command-line word: double-quoted, `"` and `\` escaped, `%` doubled (paths may hold spaces). */
const quote = (word: string): string => `"${word.replace(/[\\"]/g, (c) => `\\${c}`).replace(/%/g, '%%')}"`;

export const serviceFiles = (core: Core, opts: ServiceOptions) => ({
  unit: join(opts.unitDir, `${core}.service`),
  pid: join(opts.runDir, `${core}.pid`),
  log: join(opts.runDir, `${core}.log`),
});

function useSystemd(mode: ServiceMode): boolean {
  return mode === 'systemd' || (mode === 'auto' && existsSync('/run/systemd/system'));
}

async function systemctl(...args: string[]): Promise<void> {
  try {
    await run('systemctl', args);
  } catch (err) {
    throw keadmError('EKEADM_SERVICE', `systemctl ${args.join(' ')} failed: ${errorText(err)}`);
  }
}

/** Is `pid` alive and running `--config <configFile>` (not a recycled pid)? */
function isOurs(pid: number, configFile: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(configFile);
  } catch {
    return true; // no /proc: trust the pid
  }
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(file, 'utf8')).trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Start (or restart, so a changed config is read) `node <bin> --config <configFile>` as `core`. */
export async function startService(
  core: Core,
  bin: string,
  configFile: string,
  opts: ServiceOptions,
): Promise<StartedService> {
  const files = serviceFiles(core, opts);
  await stopService(core, opts, configFile);
  if (useSystemd(opts.mode)) {
    const unit = `[Unit]
Description=${core} (kubeedge-ts)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=${[process.execPath, bin, '--config', configFile].map(quote).join(' ')}
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
`;
    await mkdir(opts.unitDir, { recursive: true });
    await writeFile(files.unit, unit, { mode: 0o644 });
    await systemctl('daemon-reload');
    await systemctl('enable', '--now', `${core}.service`);
    return {
      how: `systemd unit ${files.unit}`,
      running: () => true,
      logHint: `journalctl -u ${core}`,
    };
  }
  await mkdir(opts.runDir, { recursive: true, mode: 0o700 });
  const log = openSync(files.log, 'a', 0o600);
  let child;
  try {
    child = spawn(process.execPath, [bin, '--config', configFile], {
      detached: true,
      stdio: ['ignore', log, log],
    });
  } finally {
    closeSync(log);
  }
  const pid = child.pid;
  if (pid === undefined)
    throw keadmError('EKEADM_SERVICE', `cannot start ${core} (${process.execPath} ${bin})`);
  let exited = false;
  child.once('exit', () => (exited = true));
  child.unref();
  await writeOwnerOnly(files.pid, `${pid}\n`);
  return {
    how: `process ${pid} (log ${files.log})`,
    running: () => !exited,
    logHint: files.log,
  };
}

/**
 * Stop what `startService` started for `core`, by unit or by pid (SIGTERM, SIGKILL after 15 s), and
 * remove its unit or pid file. Returns what it stopped, if anything.
 */
export async function stopService(
  core: Core,
  opts: ServiceOptions,
  configFile: string,
): Promise<string | undefined> {
  const files = serviceFiles(core, opts);
  let stopped: string | undefined;
  if (existsSync(files.unit)) {
    await systemctl('disable', '--now', `${core}.service`);
    await rm(files.unit, { force: true });
    await systemctl('daemon-reload');
    stopped = `systemd unit ${core}.service`;
  }
  const pid = await readPid(files.pid);
  if (pid !== undefined && isOurs(pid, configFile)) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 15_000;
    while (isOurs(pid, configFile)) {
      if (Date.now() > deadline) {
        process.kill(pid, 'SIGKILL');
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    stopped = `process ${pid}`;
  }
  await rm(files.pid, { force: true });
  return stopped;
}
