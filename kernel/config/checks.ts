/**
 * Checks that sections run at load, so that a value a plugin could only refuse when it starts is
 * refused with the file and line instead. They read the file system (stat) and nothing else.
 */
import { statSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import path from 'node:path';

const HOSTNAME =
  /^(?=.{1,253}$)[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*$/;

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** `localhost`, 127.0.0.0/8, ::1 (or ::ffff:127.x): a host only this machine reaches. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const family = isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/** The host of a `Host` header or listen address: `name`, `name:port`, `[v6]`, `[v6]:port`. */
export function hostOf(hostPort: string): string {
  const v6 = /^\[([^\]]*)\](?::\d*)?$/.exec(hostPort);
  if (v6) return v6[1] as string;
  const i = hostPort.lastIndexOf(':');
  return i >= 0 && hostPort.indexOf(':') === i ? hostPort.slice(0, i) : hostPort;
}

/** `host:port` (`[v6]:port` for IPv6) with a port 1-65535 (0 when `anyPort`); the reason when not. */
export function hostPortProblem(text: string, anyPort = false): string | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (!m) return 'expected "<host>:<port>"';
  const host = m[1] ?? m[2] ?? '';
  if (m[1] !== undefined ? isIP(host) !== 6 : host !== '' && isIP(host) === 0 && !HOSTNAME.test(host)) {
    return `expected "<host>:<port>", and ${JSON.stringify(host)} is not an IP address or host name`;
  }
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && !anyPort)) return `expected a port between ${anyPort ? 0 : 1} and 65535`;
  return undefined;
}

/** Why `file` cannot be read as a regular file ("does not exist", ...), or undefined when it can. */
export function fileProblem(file: string): string | undefined {
  if (file === '') return 'is empty (a file path is needed)';
  try {
    const st = statSync(file);
    return st.isFile() ? undefined : 'is not a regular file';
  } catch (err) {
    return statError(err);
  }
}

/**
 * Why a file could not be created at `file` (a database, a socket): the nearest existing ancestor
 * must be a directory. Undefined when it can (or the path already exists as something else:
 * the caller checks that).
 */
export function parentProblem(file: string): string | undefined {
  if (file === '') return 'is empty (a path is needed)';
  let dir = path.dirname(path.resolve(file));
  for (;;) {
    try {
      return statSync(dir).isDirectory() ? undefined : `cannot be created: ${dir} is not a directory`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOTDIR')
        return `cannot be created: a parent of ${dir} is not a directory`;
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return `cannot be created: ${statError(err)}`;
    }
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

function statError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES') return 'cannot be read (permission denied)';
  if (code === 'ENOTDIR') return 'does not exist (a parent is not a directory)';
  return err instanceof Error ? err.message : String(err);
}
