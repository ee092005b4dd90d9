/**
 * edgeHub's outbox: what edge modules send to the cloud while the link is down, kept in a table of
 * the edge database so it survives an edgecore restart, sent in order once the link is back.
 *
 * Coalescing (newest wins): a message that reports a state rather than an event replaces the queued
 * one for the same operation and resource, and moves to the end of the queue:
 * - `<ns>/{nodestatus,podstatus,podpatch,nodepatch,lease}/<name>`: only the latest status matters;
 * - `device/<ns>/<name>/state/update`: the latest device state;
 * - `device/<ns>/<name>/twin/edge_updated`: the `twin` maps are merged, the newer value of each
 *   property winning (each message carries only the properties that changed).
 * Everything else (acks, errors, events, router uploads, membership requests) is kept one by one.
 *
 * Bounded: above `limit` rows the oldest are dropped (and reported), so a long outage cannot fill
 * the disk. Writes are batched: the messages pushed in one event-loop turn go in one transaction.
 */
import type Database from 'better-sqlite3';
import { decodeMessage, encodeMessage, type Message } from '../../kernel/index.js';

export const OUTBOX_TABLE = 'edgehub_outbox';
/** Rows kept at most; the oldest go first. */
export const DEFAULT_OUTBOX_LIMIT = 10_000;

const STATUS_TYPES = new Set(['nodestatus', 'podstatus', 'podpatch', 'nodepatch', 'lease']);
const TWIN_UPDATED = '/twin/edge_updated';

/** The key under which a newer message replaces a queued one, or undefined to keep every copy. */
export function coalesceKey(msg: Message): string | undefined {
  const op = msg.route.operation ?? '';
  if (op === 'response' || op === 'error') return undefined;
  const resource = msg.route.resource ?? '';
  const parts = resource.split('/');
  const status = parts.length === 3 && STATUS_TYPES.has(parts[1] ?? '');
  const device =
    resource.startsWith('device/') && (resource.endsWith(TWIN_UPDATED) || resource.endsWith('/state/update'));
  return status || device ? `${op} ${resource}` : undefined;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The newer twin report with the older one's properties it does not repeat. */
function mergeTwin(older: Message, newer: Message): Message {
  const a = older.content;
  const b = newer.content;
  if (!isObj(a) || !isObj(b) || !isObj(a.twin) || !isObj(b.twin)) return newer;
  return { ...newer, content: { ...b, twin: { ...a.twin, ...b.twin } } };
}

export interface QueuedMessage {
  id: number;
  msg: Message;
}

export interface OutboxOptions {
  limit?: number;
  /** Called when rows were dropped: the oldest, to stay within the limit (or unreadable ones). */
  onDropped?: (count: number) => void;
}

export class Outbox {
  private readonly limit: number;
  private readonly onDropped: (count: number) => void;
  private pending: Message[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private count: number;
  private readonly commitBatch: (batch: Message[]) => void;
  private readonly selectHead: Database.Statement<[number], { id: number; message: string }>;
  private readonly deleteIds: (ids: number[]) => void;

  constructor(db: Database.Database, opts: OutboxOptions = {}) {
    this.limit = opts.limit ?? DEFAULT_OUTBOX_LIMIT;
    this.onDropped = opts.onDropped ?? (() => undefined);
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${OUTBOX_TABLE} (` +
        'id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE, message TEXT NOT NULL)',
    );
    const byKey = db.prepare<[string], { message: string }>(
      `SELECT message FROM ${OUTBOX_TABLE} WHERE key = ?`,
    );
    const delKey = db.prepare<[string]>(`DELETE FROM ${OUTBOX_TABLE} WHERE key = ?`);
    const insert = db.prepare<[string | null, string]>(
      `INSERT INTO ${OUTBOX_TABLE} (key, message) VALUES (?, ?)`,
    );
    const trim = db.prepare<[number]>(
      `DELETE FROM ${OUTBOX_TABLE} WHERE id IN (SELECT id FROM ${OUTBOX_TABLE} ORDER BY id LIMIT ?)`,
    );
    const countRows = db.prepare<[], { n: number }>(`SELECT COUNT(*) AS n FROM ${OUTBOX_TABLE}`);
    this.selectHead = db.prepare(`SELECT id, message FROM ${OUTBOX_TABLE} ORDER BY id LIMIT ?`);
    const delId = db.prepare<[number]>(`DELETE FROM ${OUTBOX_TABLE} WHERE id = ?`);
    this.count = countRows.get()?.n ?? 0;

    this.commitBatch = db.transaction((batch: Message[]) => {
      for (let msg of batch) {
        const key = coalesceKey(msg) ?? null;
        if (key !== null) {
          const old = byKey.get(key);
          if (old !== undefined) {
            if (msg.route.resource?.endsWith(TWIN_UPDATED)) msg = mergeTwin(decodeMessage(old.message), msg);
            this.count -= delKey.run(key).changes;
          }
        }
        insert.run(key, encodeMessage(msg));
        this.count++;
      }
      const excess = this.count - this.limit;
      if (excess > 0) {
        this.count -= trim.run(excess).changes;
        this.onDropped(excess);
      }
    });
    this.deleteIds = db.transaction((ids: number[]) => {
      for (const id of ids) this.count -= delId.run(id).changes;
    });
  }

  /** Queue a message; it is written with the others of this event-loop turn. */
  push(msg: Message): void {
    this.pending.push(msg);
    this.scheduled ??= setImmediate(() => this.flush());
  }

  /** Messages queued (written or about to be). */
  get size(): number {
    return this.count + this.pending.length;
  }

  /** Write what push() collected, in one transaction. */
  flush(): void {
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.commitBatch(batch);
  }

  /** The oldest `n` messages, in order. A row that no longer decodes is dropped and skipped. */
  head(n: number): QueuedMessage[] {
    this.flush();
    const out: QueuedMessage[] = [];
    const bad: number[] = [];
    for (const row of this.selectHead.all(n)) {
      try {
        out.push({ id: row.id, msg: decodeMessage(row.message) });
      } catch {
        bad.push(row.id);
      }
    }
    if (bad.length > 0) {
      this.remove(bad);
      this.onDropped(bad.length);
    }
    return out;
  }

  /** Forget messages that were sent. */
  remove(ids: number[]): void {
    if (ids.length > 0) this.deleteIds(ids);
  }
}
