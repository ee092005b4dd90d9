import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ensurePodDir, ensureSecretDir, removePodDir } from './volumes.js';

const mountedAt = async (dir: string): Promise<string | undefined> =>
  (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .find((l) => l.split(' ')[4] === dir)
    ?.split(' - ')[1]
    ?.split(' ')[0];
const mode = async (p: string) => (await stat(p)).mode & 0o777;

describe('edged pod directories and secret volumes', () => {
  let dir = '';
  afterEach(async () => {
    vi.restoreAllMocks();
    if (dir) await removePodDir(dir);
  });

  it('as root: a tmpfs per secret volume, kept when set up again, unmounted with the pod directory', async () => {
    expect(process.getuid?.()).toBe(0); // the suite runs as root (.ci/run)
    dir = join(await mkdtemp(join(tmpdir(), 'edged-vol-')), 'pods', 'uid-1');
    await ensurePodDir(dir);
    expect(await mode(dir)).toBe(0o750);
    expect(await mode(join(dir, 'volumes'))).toBe(0o750);
    const sec = join(dir, 'volumes', 'kubernetes.io~secret', 'creds');
    expect(await ensureSecretDir(sec)).toEqual({ tmpfs: true, created: true });
    expect(await mountedAt(sec)).toBe('tmpfs');
    await writeFile(join(sec, 'token'), 'x');
    expect(await ensureSecretDir(sec)).toEqual({ tmpfs: true, created: false });
    expect(await readFile(join(sec, 'token'), 'utf8')).toBe('x');
    await removePodDir(dir);
    expect(await mountedAt(sec)).toBeUndefined();
    await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
    await rm(join(dir, '..', '..'), { recursive: true, force: true });
  });

  it('not root: a 0700 directory on disk, and the reason', async () => {
    vi.spyOn(process, 'getuid').mockReturnValue(1000);
    dir = join(await mkdtemp(join(tmpdir(), 'edged-vol-')), 'pods', 'uid-2');
    await ensurePodDir(dir);
    const sec = join(dir, 'volumes', 'kubernetes.io~secret', 'creds');
    const r = await ensureSecretDir(sec);
    expect(r).toMatchObject({
      tmpfs: false,
      created: true,
      reason: expect.stringMatching(/not run as root/),
    });
    expect(await mountedAt(sec)).toBeUndefined();
    expect(await mode(sec)).toBe(0o700);
    expect(await ensureSecretDir(sec)).toMatchObject({ tmpfs: false, created: false });
    await removePodDir(dir);
    await rm(join(dir, '..', '..'), { recursive: true, force: true });
  });
});
