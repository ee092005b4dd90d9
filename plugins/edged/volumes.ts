/**
 * Pod directories on the host, as kubelet keeps them: `<rootDirectory>/pods/<uid>` and its
 * `volumes/` are 0750 (other local users cannot list or reach what is inside), secret volumes are
 * a tmpfs of their own (never written to disk) when edgecore runs as root, and everything is
 * unmounted and removed when the pod goes.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
/** mount/umount, killed after 10 s (a hung mount must not hold a pod's sync or edged's stop). */
const MOUNT_TIMEOUT_MS = 10_000;
const run = (cmd: string, args: string[]): Promise<unknown> =>
  execFileAsync(cmd, args, { timeout: MOUNT_TIMEOUT_MS, killSignal: 'SIGKILL' });

/** Mode of the pod directory and of its `volumes/` (kubelet: 0750). */
export const POD_DIR_MODE = 0o750;
/** Mode of a secret volume's tmpfs root (the container reads it; the pod directory guards it). */
export const SECRET_TMPFS_MODE = 0o755;
/** Mode of a secret volume written to disk because no tmpfs could be mounted. */
export const SECRET_DISK_MODE = 0o700;

/** Creates `<podDir>/volumes` with the pod directory, both 0750 whatever the umask. */
export async function ensurePodDir(podDir: string): Promise<void> {
  await mkdir(`${podDir}/volumes`, { recursive: true, mode: POD_DIR_MODE });
  await chmod(podDir, POD_DIR_MODE);
  await chmod(`${podDir}/volumes`, POD_DIR_MODE);
}

async function isMountPoint(dir: string): Promise<boolean> {
  const [a, b] = await Promise.all([stat(dir), stat(dirname(dir))]);
  return a.dev !== b.dev;
}

export interface SecretDir {
  /** The directory is a tmpfs. */
  tmpfs: boolean;
  /** Created (and mounted) by this call; false when it was there already. */
  created: boolean;
  /** Why it is not a tmpfs. */
  reason?: string;
}

/**
 * The directory of a secret volume: a tmpfs (mode 0755) mounted on it when edgecore runs as root,
 * else (or if mount fails) a plain 0700 directory, with the reason. Called again for a directory
 * already set up, it leaves it as it is.
 */
export async function ensureSecretDir(dir: string): Promise<SecretDir> {
  const existed = await stat(dir).then(
    () => true,
    () => false,
  );
  await mkdir(dir, { recursive: true, mode: SECRET_DISK_MODE });
  if (await isMountPoint(dir)) return { tmpfs: true, created: false };
  if (existed) return { tmpfs: false, created: false, reason: 'written to disk when it was created' };
  if (process.getuid?.() !== 0) {
    await chmod(dir, SECRET_DISK_MODE);
    return {
      tmpfs: false,
      created: true,
      reason: 'edgecore does not run as root, so it cannot mount a tmpfs',
    };
  }
  try {
    await run('mount', [
      '-t',
      'tmpfs',
      '-o',
      `mode=${SECRET_TMPFS_MODE.toString(8)},nosuid,nodev`,
      'tmpfs',
      dir,
    ]);
    return { tmpfs: true, created: true };
  } catch (err) {
    await chmod(dir, SECRET_DISK_MODE);
    const e = err as { stderr?: string; message?: string };
    return {
      tmpfs: false,
      created: true,
      reason: `mount -t tmpfs failed: ${(e.stderr || e.message || '').trim()}`,
    };
  }
}

/** Mount points at or under `dir`, deepest first (from /proc/self/mountinfo). */
async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const point = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (point === dir || point.startsWith(`${dir}/`)) out.push(point);
  }
  return out.sort((a, b) => b.length - a.length);
}

/**
 * Unmounts what is mounted under a pod's directory (its secret tmpfs) and removes the directory.
 * A mount that cannot be unmounted keeps the directory (nothing is removed through a mount).
 */
export async function removePodDir(podDir: string): Promise<void> {
  for (const point of await mountsUnder(podDir)) {
    try {
      await run('umount', [point]);
    } catch (err) {
      const e = err as { stderr?: string; message?: string };
      throw new Error(`cannot unmount ${point}: ${(e.stderr || e.message || '').trim()}`, { cause: err });
    }
  }
  await rm(podDir, { recursive: true, force: true });
}
