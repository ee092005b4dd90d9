import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { errorText, type Logger } from '../../kernel/index.js';

/**
 * WAL checkpoints off the event loop. SQLite copies the WAL back into the database file on the
 * commit that makes the WAL reach 1,000 pages ("autocheckpoint"); that commit then costs a few
 * milliseconds (page copies and an fsync), and with metaServer watchers that is the latency of
 * the watch event behind it. While watchers exist, a worker thread with its own connection to
 * the same file runs `PRAGMA wal_checkpoint(PASSIVE)` shortly after writes, so the WAL never
 * grows to the autocheckpoint size and no commit on the main thread copies pages.
 *
 * PASSIVE never waits for and never blocks the main connection; the autocheckpoint stays on as
 * the safety net (it just finds nothing to do, or the checkpoint lock taken and skips). If the
 * worker fails, checkpoints fall back to SQLite's own: nothing stored is affected.
 */

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Driver = require(workerData.driver);
const db = new Driver(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');
parentPort.on('message', (m) => {
  if (m === 'close') { db.close(); parentPort.close(); return; }
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    parentPort.postMessage({ ok: true, log: r.log, checkpointed: r.checkpointed });
  } catch (e) {
    parentPort.postMessage({ ok: false, error: String((e && e.message) || e) });
  }
});
parentPort.postMessage({ ok: true, ready: true });
`;

interface Reply {
  ok: boolean;
  ready?: boolean;
  log?: number;
  checkpointed?: number;
  error?: string;
}

export class Checkpointer {
  private worker: Worker | undefined;
  private failed = false;
  private timer: NodeJS.Timeout | undefined;
  /** A checkpoint request is with the worker. */
  private busy = false;
  /** Writes happened while the worker was busy. */
  private dirty = false;
  /** Checkpoints the worker ran (for tests). */
  runs = 0;

  constructor(
    private readonly db: Database.Database,
    private readonly log: Logger,
    /** Delay between a write and the checkpoint it schedules (writes in between share it). */
    private readonly delayMs = 50,
  ) {}

  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Start the worker (idempotent; nothing for an in-memory database). */
  start(): void {
    if (this.worker || this.failed || this.db.memory) return;
    let driver: string;
    try {
      driver = createRequire(import.meta.url).resolve('better-sqlite3');
    } catch (err) {
      this.fail(err);
      return;
    }
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver, file: this.db.name },
      resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 2 },
    });
    worker.unref();
    worker.on('message', (r: Reply) => this.onReply(r));
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', () => {
      if (this.worker === worker) this.worker = undefined;
    });
    this.worker = worker;
    this.busy = true; // until "ready"
  }

  /** Something was committed: schedule a checkpoint. */
  wrote(): void {
    if (!this.worker) return;
    if (this.busy) {
      this.dirty = true;
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(this.kick, this.delayMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage('close');
    const t = setTimeout(() => void worker.terminate(), 2000);
    await exited;
    clearTimeout(t);
  }

  private readonly kick = (): void => {
    this.timer = undefined;
    if (!this.worker) return;
    this.busy = true;
    this.dirty = false;
    this.worker.postMessage('checkpoint');
  };

  private onReply(r: Reply): void {
    this.busy = false;
    if (!r.ok) {
      this.log.warn({ err: r.error }, 'metaServer: WAL checkpoint in the worker failed');
    } else if (!r.ready) this.runs++;
    if (this.dirty || r.ready) {
      this.dirty = false;
      this.wrote();
    }
  }

  private fail(err: unknown): void {
    this.failed = true;
    this.log.warn(
      { err: errorText(err) },
      'metaServer: WAL checkpoint worker unavailable; SQLite checkpoints on commit',
    );
    const w = this.worker;
    this.worker = undefined;
    void w?.terminate();
  }
}
