import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { waitUntil } from '../test/helpers/kernel.js';
import { lockDatabase, openDatabase, type DatabaseLock } from './db.js';
import { isKernelError, type KernelError } from './errors.js';
import { createLogger } from './log.js';
import { Metrics } from './metrics.js';

const edgecoreBin = fileURLToPath(new URL('../dist/bin/edgecore.js', import.meta.url));
const mode = (p: string): number => statSync(p).mode & 0o777;

/** An edgecore.yaml whose only plugin (metaManager, no metaServer) uses the database at `db`. */
function edgecoreYaml(db: string): string {
  return `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${db}
modules:
  edgeHub: {enable: false}
  edged: {enable: false}
  eventBus: {enable: false}
  deviceTwin: {enable: false}
  metaManager: {enable: true, metaServer: {enable: false}}
kernel:
  health: {enable: false}
`;
}

interface Edgecore {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startEdgecore(dir: string, db: string): Edgecore {
  const file = join(dir, `edgecore-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, edgecoreYaml(db));
  const child = spawn(process.execPath, [edgecoreBin, '--config', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stderr: () => err, exited };
}

describe('database service', () => {
  const dirs: string[] = [];
  const locks: DatabaseLock[] = [];
  const children: ChildProcess[] = [];
  const temp = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'kernel-db-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
    for (const l of locks.splice(0)) l.release();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('creates its directory 0700 and the file, -wal and -shm 0600', () => {
    const file = join(temp(), 'var', 'lib', 'kubeedge', 'edgecore.db');
    const db = openDatabase(file);
    db.exec('CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)');
    db.prepare('INSERT INTO meta VALUES (?, ?)').run('default/secret/s', '{"data":{}}');
    expect(mode(join(file, '..'))).toBe(0o700);
    expect(mode(join(file, '..', '..'))).toBe(0o700);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) expect([f, mode(f)]).toEqual([f, 0o600]);
    db.close();
  });

  it('makes an existing world-readable database owner-only', () => {
    const dir = temp();
    const file = join(dir, 'edgecore.db');
    openDatabase(file).close();
    chmodSync(file, 0o644);
    openDatabase(file).close();
    expect(mode(file)).toBe(0o600);
  });

  it('names the path that is not a directory when the database directory cannot be created', () => {
    let err: unknown;
    try {
      openDatabase('/dev/null/x.db');
    } catch (e) {
      err = e;
    }
    expect(isKernelError(err, 'EDB_OPEN')).toBe(true);
    expect((err as Error).message).toBe(
      'database.dataSource "/dev/null/x.db": cannot create directory /dev/null: /dev/null exists and is not a directory',
    );
    expect(() => openDatabase('')).toThrow(/database\.dataSource: empty/);
  });

  it('a deleted database file is noticed, its content saved back, counted, and the owner told', async () => {
    const file = join(temp(), 'edgecore.db');
    const metrics = new Metrics();
    const lines: string[] = [];
    let lost: KernelError | undefined;
    const db = openDatabase(file, {
      log: createLogger('info', {}, (l) => void lines.push(l)),
      metrics,
      onLost: (err) => (lost = err),
      checkIntervalMs: 20,
    });
    db.exec('CREATE TABLE meta (key TEXT PRIMARY KEY)');
    db.prepare('INSERT INTO meta VALUES (?)').run('kept');
    unlinkSync(file);
    await waitUntil(() => lost !== undefined, 5000, 'the lost database to be reported');
    db.close();
    expect(lost?.code).toBe('EDB_FILE_LOST');
    expect(lost?.message).toContain(`database file ${file} was deleted`);
    expect(metrics.count('database_file_lost')).toBe(1);
    expect(lines.some((l) => l.includes('"level":50') && l.includes('EDB_FILE_LOST'))).toBe(true);
    expect(mode(file)).toBe(0o600);
    const restored = openDatabase(file);
    expect(restored.prepare('SELECT key FROM meta').pluck().all()).toEqual(['kept']);
    restored.close();
  });

  it('a database file replaced by another is noticed; the open content is saved beside it', async () => {
    const dir = temp();
    const file = join(dir, 'edgecore.db');
    let lost: KernelError | undefined;
    const db = openDatabase(file, { onLost: (err) => (lost = err), checkIntervalMs: 20 });
    db.exec('CREATE TABLE meta (key TEXT PRIMARY KEY)');
    writeFileSync(join(dir, 'other.db'), '');
    renameSync(join(dir, 'other.db'), file);
    await waitUntil(() => lost !== undefined, 5000, 'the replaced database to be reported');
    db.close();
    const saved = /saved to (\S+);/.exec(lost!.message)?.[1] ?? '';
    expect(saved).toMatch(/edgecore\.db\.orphaned-\d+$/);
    expect(existsSync(saved)).toBe(true);
  });

  it('a second edgecore on a locked database refuses to start, naming the file and the holder pid', async () => {
    const dir = temp();
    const file = join(dir, 'edgecore.db');
    locks.push(lockDatabase(file));
    const second = startEdgecore(dir, file);
    children.push(second.child);
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toContain(
      `database.dataSource "${file}" is in use by process ${process.pid} (since `,
    );
    expect(second.stderr()).toContain(`lock file ${file}.lock`);
  });

  it('a lock file that is not a lock is a clear error naming it', () => {
    const file = join(temp(), 'edgecore.db');
    writeFileSync(`${file}.lock`, 'x'.repeat(4096));
    expect(() => lockDatabase(file)).toThrow(
      `database.dataSource "${file}": cannot take its lock ${file}.lock: file is not a database`,
    );
  });

  it('the lock is held by a running edgecore and freed when it is killed with SIGKILL', async () => {
    const dir = temp();
    const file = join(dir, 'edgecore.db');
    const first = startEdgecore(dir, file);
    children.push(first.child);
    await waitUntil(() => first.stderr().includes('"kernel ready"'), 20_000, 'edgecore to be ready');
    let err: unknown;
    try {
      lockDatabase(file);
    } catch (e) {
      err = e;
    }
    expect(isKernelError(err, 'EDB_LOCKED')).toBe(true);
    expect((err as Error).message).toContain(`in use by process ${first.child.pid} `);
    first.child.kill('SIGKILL');
    await first.exited;
    locks.push(lockDatabase(file));
  });

  it('an edgecore whose database file is deleted saves it and exits non-zero', async () => {
    const dir = temp();
    const file = join(dir, 'edgecore.db');
    const edge = startEdgecore(dir, file);
    children.push(edge.child);
    await waitUntil(() => edge.stderr().includes('"kernel ready"'), 20_000, 'edgecore to be ready');
    unlinkSync(file);
    expect(await edge.exited).toBe(1);
    expect(edge.stderr()).toContain(`database file ${file} was deleted`);
    expect(existsSync(file)).toBe(true);
    const restored = openDatabase(file);
    expect(restored.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'meta'").pluck().get()).toBe(1);
    restored.close();
  });
});
