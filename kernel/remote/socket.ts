import { randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { KernelError, errorText } from '../errors.js';

/**
 * Where the kernel listens for plugin processes, and the credential they present. The socket lives
 * in a directory only the kernel's user can enter (a fresh 0700 one under the temp dir unless
 * `kernel.socket` names a path, whose directory must not be open to others), and is bound with a
 * 0077 umask so it is never open to others, not even for an instant. The token file next to it
 * (`<socket>.token`, 0600) is what a process attaching on its own presents in its Hello.
 */
export interface KernelSocket {
  path: string;
  tokenFile: string;
  token: string;
  /** Remove the socket, the token file and the directory if the kernel created it. */
  remove(): void;
}

export function prepareKernelSocket(configured: string): KernelSocket {
  let dir: string;
  let ownDir = false;
  if (configured) {
    dir = dirname(configured);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const mode = statSync(dir).mode;
    if (mode & 0o022)
      throw new KernelError(
        'ECONFIG_INVALID',
        `kernel.socket: directory ${dir} is writable by other users (mode ${(mode & 0o777).toString(8)}); use a private directory (0700)`,
      );
  } else {
    dir = mkdtempSync(join(tmpdir(), 'kubeedge-kernel-'));
    ownDir = true;
  }
  const path = configured || join(dir, 'kernel.sock');
  const tokenFile = `${path}.token`;
  const token = randomBytes(32).toString('hex');
  rmSync(path, { force: true });
  rmSync(tokenFile, { force: true });
  writeFileSync(tokenFile, token, { mode: 0o600, flag: 'wx' });
  return {
    path,
    tokenFile,
    token,
    remove() {
      rmSync(path, { force: true });
      rmSync(tokenFile, { force: true });
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Run `bind` with a 0077 umask: a socket file it creates is owner-only from the first instant. */
export async function withPrivateUmask<T>(bind: () => Promise<T>): Promise<T> {
  const previous = process.umask(0o077);
  try {
    return await bind();
  } finally {
    process.umask(previous);
  }
}

/** The token of a kernel's socket, as a process attaching on its own reads it. */
export function readKernelToken(socket: string): string {
  try {
    return readFileSync(`${socket}.token`, 'utf8').trim();
  } catch (err) {
    throw new KernelError(
      'EREMOTE_PROTOCOL',
      `cannot read the kernel's token file ${socket}.token (run as the kernel's user): ${errorText(err)}`,
    );
  }
}

/** Compare two credentials in constant time. */
export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** gRPC's address of a unix socket (the form nice-grpc's createChannel passes through). */
export function grpcAddress(socket: string): string {
  return `unix://${resolve(socket)}`;
}
