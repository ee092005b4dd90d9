import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type Database from 'better-sqlite3';

import { requireCjs } from './cjs.js';
import type { LoadedConfig } from './config/index.js';
import { KernelError, errorText } from './errors.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

type Driver = typeof Database;
const driver = (): Driver => requireCjs('better-sqlite3') as Driver;

/** `database.dataSource` of a config (edgecore's; undefined where there is no database section). */
export function databaseSource(config: LoadedConfig): string | undefined {
  return (config.config as { database?: { dataSource?: string } }).database?.dataSource;
}

/** How often an open database checks that its file is still the one it opened. */
export const DB_FILE_CHECK_MS = 5000;

export interface OpenDatabaseOptions {
  log?: Logger;
  metrics?: Metrics;
  /**
   * Called once when the file was deleted or replaced while open, after its content was saved.
   * The kernel stops the process then: every later write would go to a file nobody will read.
   */
  onLost?: (err: KernelError) => void;
  /** Interval of the file check (tests). */
  checkIntervalMs?: number;
}

/**
 * The directory of a database file, created owner-only (0700) when it does not exist. An existing
 * directory keeps its mode (it may be shared, like /tmp); the files in it are made owner-only.
 */
function prepareDirectory(dataSource: string): void {
  if (!dataSource) {
    throw new KernelError('EDB_OPEN', 'database.dataSource: empty; expected the path of the SQLite file');
  }
  const dir = dirname(resolve(dataSource));
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new KernelError(
      'EDB_OPEN',
      `database.dataSource "${dataSource}": cannot create directory ${dir}: ${whyNoDirectory(dir, err)}`,
      { cause: err },
    );
  }
}

/** The useful reason a directory cannot be created: the ancestor that is not a directory, or errno. */
function whyNoDirectory(dir: string, err: unknown): string {
  for (let p = dir; ; p = dirname(p)) {
    try {
      if (!statSync(p).isDirectory()) return `${p} exists and is not a directory`;
      break;
    } catch {
      if (dirname(p) === p) break;
    }
  }
  const code = (err as { code?: string }).code;
  return code === 'EACCES' ? `permission denied` : errorText(err);
}

/** Make the database file and its -wal/-shm owner-only; create the file 0600 if missing. */
function ownerOnlyFiles(path: string): void {
  closeSync(openSync(path, 'a', 0o600));
  for (const f of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    if (existsSync(f) && (statSync(f).mode & 0o077) !== 0) chmodSync(f, 0o600);
  }
}

/**
 * Open the edge's SQLite database. WAL journal with synchronous=NORMAL: every committed
 * transaction survives a kill -9 of the process (only a power cut may lose the last ones).
 * The directory is created 0700 and the files are 0600: the `meta` table holds every Secret.
 * better-sqlite3 is loaded here, on first use, so a node without a database plugin never loads it.
 *
 * A file source is watched: if the file is deleted or replaced while open (its inode changes),
 * writes would go to a file nobody will read again. The content is then saved (back to the path
 * when it was deleted, beside it as `<file>.orphaned-<ms>` when another file took its place),
 * the error is logged and counted (`kubeedge_kernel_database_file_lost_total`), and `onLost` runs.
 */
export function openDatabase(dataSource: string, options: OpenDatabaseOptions = {}): Database.Database {
  const memory = dataSource === ':memory:';
  if (!memory) prepareDirectory(dataSource);
  const Driver = driver();
  let db: Database.Database;
  try {
    if (!memory) ownerOnlyFiles(dataSource);
    db = new Driver(dataSource);
  } catch (err) {
    throw new KernelError('EDB_OPEN', `database.dataSource "${dataSource}": ${errorText(err)}`, {
      cause: err,
    });
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  if (!memory) watchFile(db, dataSource, options);
  return db;
}

function watchFile(db: Database.Database, dataSource: string, options: OpenDatabaseOptions): void {
  const path = resolve(dataSource);
  const opened = statSync(path);
  const timer = setInterval(() => {
    if (!db.open) return clearInterval(timer);
    let now: { ino: number; dev: number } | undefined;
    try {
      now = statSync(path);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') return; // not a verdict: try again later
    }
    if (now && now.ino === opened.ino && now.dev === opened.dev) return;
    clearInterval(timer);
    const saved = saveContent(db, now ? `${path}.orphaned-${Date.now()}` : path);
    const err = new KernelError(
      'EDB_FILE_LOST',
      `database file ${path} was ${now ? 'replaced by another file' : 'deleted'} while edgecore had it open; ` +
        `its content was saved to ${saved}; ` +
        (options.onLost ? 'stopping' : 'restart edgecore') +
        ', since every later write would be lost',
    );
    options.metrics?.inc('database_file_lost');
    options.log?.error({ code: err.code, file: path, savedTo: saved }, err.message);
    options.onLost?.(err);
  }, options.checkIntervalMs ?? DB_FILE_CHECK_MS);
  timer.unref();
}

/** Write a consistent copy of the open database to `target` (0600); returns where it went. */
function saveContent(db: Database.Database, target: string): string {
  try {
    writeFileSync(target, db.serialize(), { mode: 0o600, flag: 'wx' });
    return target;
  } catch (err) {
    return `nowhere (${target}: ${errorText(err)})`;
  }
}

/** The lock that keeps a second edgecore off a database; released by release() or by process exit. */
export interface DatabaseLock {
  readonly file: string;
  release(): void;
}

/**
 * Take the exclusive lock of a database: `<dataSource>.lock`, a small SQLite file whose write lock
 * this process holds for its lifetime (an fcntl lock: the OS drops it when the process dies, even
 * by kill -9). It records the holder's pid, which a refused process reads to name it. Plugin
 * processes of the same edgecore open the database without this lock.
 */
export function lockDatabase(dataSource: string): DatabaseLock {
  prepareDirectory(dataSource);
  const file = `${resolve(dataSource)}.lock`;
  let lock: Database.Database | undefined;
  try {
    closeSync(openSync(file, 'a', 0o600));
    lock = new (driver())(file);
    lock.pragma('journal_mode = DELETE');
    lock.pragma('synchronous = OFF'); // the pid is a hint for messages: no fsync at start
    lock.pragma('busy_timeout = 0');
    lock.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL, since TEXT NOT NULL)');
    // Record the pid, then hold the write lock for good. Whoever holds it after the second BEGIN
    // owns the database; a process that slipped in between wins, and this one is refused.
    acquire(lock, dataSource, file);
    lock.exec('DELETE FROM holder');
    lock.prepare('INSERT INTO holder (pid, since) VALUES (?, ?)').run(process.pid, new Date().toISOString());
    lock.exec('COMMIT');
    acquire(lock, dataSource, file);
  } catch (err) {
    lock?.close();
    if (err instanceof KernelError) throw err;
    throw new KernelError(
      'EDB_OPEN',
      `database.dataSource "${dataSource}": cannot take its lock ${file}: ${errorText(err)}`,
      { cause: err },
    );
  }
  const held = lock;
  return {
    file,
    release: () => {
      if (held.open) held.close();
    },
  };
}

function acquire(lock: Database.Database, dataSource: string, file: string): void {
  try {
    lock.exec('BEGIN IMMEDIATE');
  } catch (err) {
    if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err;
    lock.pragma('busy_timeout = 1000');
    const holder = lock.prepare('SELECT pid, since FROM holder').get() as
      { pid: number; since: string } | undefined;
    const who = holder ? `process ${holder.pid} (since ${holder.since})` : 'another process';
    throw new KernelError(
      'EDB_LOCKED',
      `database.dataSource "${dataSource}" is in use by ${who}: two edgecores cannot share one database ` +
        `(lock file ${file}); stop the other one or give this one its own dataSource`,
    );
  }
}
