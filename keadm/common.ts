/**
 * What keadm's commands share: the error type, the file layout KubeEdge uses under a config dir,
 * owner-only writes, `--set path=value` edits of a YAML config, and the wait for a started core's
 * `/readyz`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parse as parseYaml, type Document } from 'yaml';
import { KernelError, errorText } from '../kernel/index.js';

/** A keadm failure: `message` says what is wrong and how to fix it. */
export class KeadmError extends KernelError {}

export const keadmError = (code: `EKEADM_${string}`, message: string): KeadmError =>
  new KeadmError(code, message);

/** KubeEdge's defaults: `/etc/kubeedge` (config, ca, certs), `/var/lib/kubeedge`, `/var/run/kubeedge`. */
export const DEFAULT_CONFIG_DIR = '/etc/kubeedge';
export const DEFAULT_DATA_DIR = '/var/lib/kubeedge';
export const DEFAULT_RUN_DIR = '/var/run/kubeedge';
export const DEFAULT_UNIT_DIR = '/etc/systemd/system';

/** The files under a config dir, as KubeEdge lays them out. */
export function layout(configDir: string): {
  configFile: (core: 'cloudcore' | 'edgecore') => string;
  caFile: string;
  certFile: string;
  keyFile: string;
  bootstrapFile: string;
  owned: string[];
} {
  return {
    configFile: (core) => join(configDir, 'config', `${core}.yaml`),
    caFile: join(configDir, 'ca', 'rootCA.crt'),
    certFile: join(configDir, 'certs', 'server.crt'),
    keyFile: join(configDir, 'certs', 'server.key'),
    bootstrapFile: join(configDir, 'bootstrap-edgecore.conf'),
    // what `keadm reset` removes (KubeEdge removes the same directories)
    owned: ['config', 'ca', 'certs', 'bootstrap-edgecore.conf'].map((p) => join(configDir, p)),
  };
}

/** Write a file readable by its owner only (its directory 0700 when created), atomically. */
export async function writeOwnerOnly(path: string, data: string | Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, data, { mode: 0o600 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw keadmError('EKEADM_WRITE', `cannot write ${path}: ${errorText(err)}`);
  }
}

/**
 * Apply `--set a.b.c=value` edits (KubeEdge's `--set`) to a config document: the value is read as
 * YAML (`--set modules.edged.enable=false`, `--set 'modules.cloudHub.dnsNames=[a.example]'`).
 */
export function applySets(doc: Document, sets: readonly string[]): void {
  for (const set of sets) {
    const eq = set.indexOf('=');
    const path = eq > 0 ? set.slice(0, eq).split('.') : [];
    if (path.length === 0 || path.some((p) => p === '')) {
      throw keadmError(
        'EKEADM_FLAG',
        `--set ${set}: expected path.to.key=value, e.g. modules.edgeHub.heartbeat=15`,
      );
    }
    doc.setIn(path, doc.createNode(parseYaml(set.slice(eq + 1)) as unknown));
  }
}

/**
 * Wait until `url` (a core's `/readyz`) answers 200, or `running()` says the process is gone,
 * or `timeoutMs` passes; the error names the log to read.
 */
export async function waitReady(opts: {
  what: string;
  url: string;
  timeoutMs: number;
  running: () => boolean;
  logHint: string;
}): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (!opts.running()) {
      throw keadmError('EKEADM_START', `${opts.what} exited during its start: see ${opts.logHint}`);
    }
    try {
      const res = await fetch(opts.url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
      last = `${res.status} ${await res.text()}`;
    } catch (err) {
      last = errorText(err);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw keadmError(
    'EKEADM_START',
    `${opts.what} did not answer ${opts.url} within ${opts.timeoutMs / 1000} s (last: ${last}): see ${opts.logHint}`,
  );
}
