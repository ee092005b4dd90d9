/**
 * Helpers shared by the peer launchers in `test/peers/`: free loopback ports, private temp dirs,
 * polling with a clear error, and child processes that are stopped by their pid (never by name).
 *
 * Every peer a test starts is registered here, so {@link cleanup} (call it from `afterAll`) and a
 * last-resort `process.on('exit')` hook can stop whatever a failing test left running.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, existsSync, constants as fsConstants } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** How much of a peer's combined stdout/stderr is kept for error messages. */
const OUTPUT_LIMIT = 64 * 1024;

/**
 * Directories searched after `$PATH` by {@link requirePeer}: daemons such as `mosquitto` live in
 * `/usr/sbin`, which is not on every user's `$PATH`.
 */
const EXTRA_BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * Returns a TCP port that was free on 127.0.0.1 a moment ago (the kernel picks it by binding port
 * 0). Another process may take it before the peer binds it; peers that can bind port 0 themselves
 * and report the port are preferable.
 */
export async function freePort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('freePort: unexpected server address'));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

const tempDirs = new Set<string>();

/**
 * Creates a fresh directory under `os.tmpdir()` named `<prefix>-XXXXXX`. It is removed by
 * {@link cleanup} (or earlier by {@link removeTempDir}) unless `KEEP_PEER_DIRS=1` is set, which
 * keeps peer configs and logs for debugging.
 */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `${prefix.replace(/[^A-Za-z0-9_.-]/g, '_')}-`));
  tempDirs.add(dir);
  return dir;
}

/** Removes one directory created by {@link tempDir} now (honours `KEEP_PEER_DIRS=1`). */
export async function removeTempDir(dir: string): Promise<void> {
  tempDirs.delete(dir);
  if (process.env.KEEP_PEER_DIRS === '1') return;
  await rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
}

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this many milliseconds (default 10 000). */
  timeoutMs?: number;
  /** Pause between two checks (default 100 ms). */
  intervalMs?: number;
  /** What is being waited for; it names the condition in the timeout error. */
  what: string;
  /** Extra text appended to the timeout error, e.g. a peer's recent output. */
  details?: () => string;
}

/**
 * Calls `check` until it returns true. A `check` that throws counts as "not yet"; its last error
 * is quoted in the timeout error, which reads `timed out after N ms waiting for <what>`. A check
 * still running at the deadline counts as "not yet" too (it is not awaited further), so the wait
 * ends by its deadline whatever the check does.
 */
export async function waitFor(
  check: () => Promise<boolean> | boolean,
  { timeoutMs = 10_000, intervalMs = 100, what, details }: WaitForOptions,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await boundedCheck(check, deadline)) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
  let message = `timed out after ${timeoutMs} ms waiting for ${what}`;
  if (lastError !== undefined) message += `; last error: ${errorMessage(lastError)}`;
  const extra = details?.();
  if (extra) message += `\n${extra}`;
  throw new Error(message);
}

/** `check()`, or a rejection naming the deadline if it has not settled by then. */
async function boundedCheck(check: () => Promise<boolean> | boolean, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error('the check was still running at the deadline')),
      Math.max(0, deadline - Date.now()),
    );
  });
  try {
    return await Promise.race([Promise.resolve().then(check), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The message of an unknown thrown value. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Options of {@link spawnPeer}. */
export interface SpawnPeerOptions {
  /** Working directory of the peer. */
  cwd?: string;
  /** Environment (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  /** Name used in messages (default: the command's base name). */
  name?: string;
  /**
   * `'pipe'` keeps the peer's stdin open as a pipe from this process: a peer that exits on EOF
   * (like `modbus_sim.py`) then dies with the test process even after a SIGKILL of the test
   * worker. Default `'ignore'`.
   */
  stdin?: 'ignore' | 'pipe';
  /** Time between SIGTERM and SIGKILL in {@link Peer.stop} (default 5 000 ms). */
  graceMs?: number;
  /** Called with every chunk of output (stdout and stderr), e.g. to wait for a ready line. */
  onOutput?: (chunk: string) => void;
}

/** A running peer process started by {@link spawnPeer}. */
export interface Peer {
  /** Process id of the peer. */
  readonly pid: number;
  /** Name used in messages. */
  readonly name: string;
  /** Sends SIGTERM, then SIGKILL after the grace period; resolves when the process has exited. */
  stop(): Promise<void>;
  /** The last ~64 KiB of stdout and stderr, interleaved in arrival order. */
  output(): string;
  /** True until the process has exited. */
  running(): boolean;
  /** Settles when the process exits (also after {@link Peer.stop}); never rejects. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const livePeers = new Set<ChildProcess>();
/** Peers started through {@link spawnPeer} and still running, for {@link cleanup}. */
const registered = new Set<Peer>();

let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when a test forgot to stop a peer or the worker is exiting: kill by pid.
  process.on('exit', () => {
    for (const child of livePeers) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
}

/**
 * Starts `cmd args` as a child process (never through a shell) and keeps the tail of its output.
 * Throws if the program cannot be started at all (e.g. not installed). The peer is stopped by its
 * pid: SIGTERM, then SIGKILL after `graceMs`.
 */
export async function spawnPeer(
  cmd: string,
  args: readonly string[],
  opts: SpawnPeerOptions = {},
): Promise<Peer> {
  installExitHook();
  const name = opts.name ?? cmd.split('/').pop() ?? cmd;
  const graceMs = opts.graceMs ?? 5_000;
  const stdio: StdioOptions = [opts.stdin ?? 'ignore', 'pipe', 'pipe'];
  const child = spawn(cmd, [...args], { cwd: opts.cwd, env: opts.env ?? process.env, stdio });

  let buffer = '';
  const append = (text: string): void => {
    buffer += text;
    if (buffer.length > OUTPUT_LIMIT) buffer = buffer.slice(buffer.length - OUTPUT_LIMIT);
    opts.onOutput?.(text);
  };
  child.stdout?.setEncoding('utf8').on('data', append);
  child.stderr?.setEncoding('utf8').on('data', append);
  child.stdin?.on('error', () => undefined); // EPIPE after the peer exited

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      livePeers.delete(child);
      resolve({ code, signal });
    });
  });

  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (err) => reject(new Error(`cannot start peer ${name} (${cmd}): ${err.message}`)));
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start peer ${name} (${cmd}): no pid`);
  livePeers.add(child);

  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!running()) return;
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      try {
        await exited;
      } finally {
        clearTimeout(timer);
      }
    })();
    return stopping;
  };

  const peer: Peer = { pid, name, stop, output: () => buffer, running, exited };
  registered.add(peer);
  void exited.then(() => registered.delete(peer));
  return peer;
}

/** Cleanup callbacks of higher-level launchers (containerd tear-down etc.), run by {@link cleanup}. */
const cleanupHooks = new Set<() => Promise<void>>();

/**
 * Registers a tear-down callback to run in {@link cleanup}; returns a function that unregisters it
 * (call it from the launcher's own `stop`).
 */
export function onCleanup(hook: () => Promise<void>): () => void {
  cleanupHooks.add(hook);
  return () => cleanupHooks.delete(hook);
}

/**
 * A launcher's `stop()`: `stopPeers`, then the removal of its temp `dir`, done once however often
 * it is called; {@link cleanup} calls it too unless it already ran.
 */
export function stopOnce(dir: string, stopPeers: () => Promise<void>): () => Promise<void> {
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    unregister();
    await stopPeers();
    await removeTempDir(dir);
  };
  const unregister = onCleanup(stop);
  return stop;
}

/**
 * Stops everything the peer helpers started in this process (launcher tear-downs first, then any
 * remaining peer process by pid) and removes the temp dirs. Safe to call more than once; meant for
 * `afterAll(cleanup)`.
 */
export async function cleanup(): Promise<void> {
  const errors: string[] = [];
  for (const hook of [...cleanupHooks]) {
    cleanupHooks.delete(hook);
    try {
      await hook();
    } catch (err) {
      errors.push(errorMessage(err));
    }
  }
  await Promise.all([...registered].map((peer) => peer.stop()));
  for (const dir of [...tempDirs]) {
    try {
      await removeTempDir(dir);
    } catch (err) {
      errors.push(`cannot remove ${dir}: ${errorMessage(err)}`);
    }
  }
  if (errors.length > 0) throw new Error(`peer cleanup failed: ${errors.join('; ')}`);
}

/**
 * Returns the absolute path of an installed peer program, searching `$PATH` and then the usual
 * system directories. Throws `peer "<name>" is not installed: run .ci/install-peers.sh` otherwise,
 * so that in CI a missing peer fails the test instead of skipping it.
 *
 * @param binary a program name (`mosquitto`) or an absolute path (`/usr/bin/python3`)
 * @param name   the name used in the error (default: `binary`)
 */
export function requirePeer(binary: string, name: string = binary): string {
  const candidates = isAbsolute(binary)
    ? [binary]
    : [...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== ''), ...EXTRA_BIN_DIRS].map((dir) =>
        join(dir, binary),
      );
  for (const candidate of candidates) {
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // try the next directory
    }
  }
  throw new Error(`peer "${name}" is not installed: run .ci/install-peers.sh`);
}

/** Result of {@link run}. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a short-lived helper command to completion (no shell) and returns its output. Rejects with
 * the command line and its stderr when it exits non-zero, unless `allowFailure` is set.
 */
export async function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; timeoutMs?: number; allowFailure?: boolean; input?: string } = {},
): Promise<RunResult> {
  const withInput = opts.input !== undefined;
  const child = spawn(cmd, [...args], {
    cwd: opts.cwd,
    stdio: [withInput ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  if (child.stdin) {
    child.stdin.on('error', () => undefined); // EPIPE when the command exits without reading
    child.stdin.end(opts.input);
  }
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  }).finally(() => clearTimeout(timer));
  if (code !== 0 && !opts.allowFailure) {
    const what = [cmd, ...args].join(' ');
    throw new Error(
      `${what} exited with ${code ?? 'a signal'}${code === null ? ` (timeout ${timeoutMs} ms?)` : ''}: ${stderr.trim() || stdout.trim()}`,
    );
  }
  return { code, stdout, stderr };
}

/** Writes a progress line to stderr (long peer set-up steps), prefixed with `[peers]`. */
export function progress(message: string): void {
  process.stderr.write(`[peers] ${message}\n`);
}

/**
 * Absolute path of a non-TypeScript file shipped in `test/peers/` (`modbus_sim.py`), both when
 * running from the sources and from the compiled `dist/test/peers/`, where tsc does not copy such
 * files.
 */
export function peerAsset(name: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, name), join(here, '..', '..', '..', 'test', 'peers', name)];
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`test/peers asset ${name} not found (looked in ${candidates.join(', ')})`);
  return found;
}

/**
 * Runs a peer's build script (`bash SCRIPT`): its stderr lines are shown as progress, the last line
 * of its stdout (the directory of the built binaries) is the result. Rejects, naming the script and
 * its last output, when it fails. Used by `kube.ts` and `kubeedge.ts` (binaries built from Go
 * modules, cached by version outside the checkout).
 */
export async function buildWithScript(script: string, what: string): Promise<string> {
  const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let tail: string[] = [];
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      progress(line);
      tail = [...tail.slice(-19), line];
    }
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) {
    throw new Error(
      `cannot build ${what}: ${script} exited with ${code ?? 'a signal'}; its last output:\n` +
        [...tail, partial].join('\n'),
    );
  }
  return stdout.trim().split('\n').pop() ?? '';
}
