import type Database from 'better-sqlite3';
import { KernelError } from '../../kernel/index.js';

/**
 * The edge store of metaManager: KubeEdge's `meta` and `meta_v2` tables (spec edge-modules §3.2),
 * same names, columns and key formats, so `sqlite3 edgecore.db 'select * from meta'` still works.
 * All statements are prepared once; every write is its own committed transaction, or part of one
 * made with {@link MetaStore.transaction} (a message's `meta` and `meta_v2` rows commit together),
 * so what was acknowledged survives a kill -9 (WAL, kernel/db.ts).
 */

/** One row of `meta_v2` as metaServer serves it. */
export interface MetaV2Row {
  key: string;
  group_version_resource: string;
  namespace: string;
  name: string;
  resource_version: number;
  value: string;
}

/** A change of a `meta_v2` object, as a Kubernetes watch event. */
export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  gvr: string;
  namespace: string;
  name: string;
  /** resourceVersion of the object (0 when it has none). */
  rv: number;
  /** The object's JSON text. */
  value: string;
}

const DDL = [
  'CREATE TABLE IF NOT EXISTS `meta` (`key` text, `type` text, `value` text, PRIMARY KEY (`key`))',
  'CREATE TABLE IF NOT EXISTS `meta_v2` (`key` text, `group_version_resource` text, `namespace` text, `name` text, `resource_version` integer, `value` text, PRIMARY KEY (`key`))',
  // Not created by KubeEdge's GORM migration; harmless for its readers, needed for list speed.
  'CREATE INDEX IF NOT EXISTS `idx_meta_type` ON `meta` (`type`)',
  'CREATE INDEX IF NOT EXISTS `idx_meta_v2_gvr` ON `meta_v2` (`group_version_resource`, `namespace`)',
];

/** Bounds of the recent watch events kept in memory to let a watch resume from a resourceVersion. */
export interface HistoryLimits {
  /** Events (default 10,000). */
  events: number;
  /** Size of the object texts, in characters (bytes for ASCII JSON; default 16 Mi). */
  bytes: number;
}

export const HISTORY_LIMITS: HistoryLimits = { events: 10_000, bytes: 16 * 1024 * 1024 };

/**
 * The recent events, oldest first, in a ring bounded by count and by bytes: the oldest are
 * overwritten in O(1). `from` is the oldest resourceVersion a watch can resume from.
 */
export class EventHistory {
  private readonly ring: (WatchEvent | undefined)[];
  private head = 0;
  private count = 0;
  /** Size of the object texts held, in characters. */
  bytes = 0;

  constructor(
    /** Events up to this resourceVersion are not known (before start, or dropped). */
    public from: number,
    private readonly limits: HistoryLimits,
  ) {
    this.ring = new Array<WatchEvent | undefined>(limits.events);
  }

  get size(): number {
    return this.count;
  }

  push(ev: WatchEvent): void {
    const cap = this.ring.length;
    while (this.count > 0 && (this.count === cap || this.bytes + ev.value.length > this.limits.bytes)) {
      this.dropOldest();
    }
    if (ev.value.length > this.limits.bytes) {
      // Too large to keep at all: a watch from before it must relist.
      if (ev.rv > this.from) this.from = ev.rv;
      return;
    }
    this.ring[(this.head + this.count) % cap] = ev;
    this.count++;
    this.bytes += ev.value.length;
  }

  /** Events after `rv`, or undefined when some of them are no longer known (410 Gone). */
  since(rv: number): WatchEvent[] | undefined {
    if (rv < this.from) return undefined;
    const out: WatchEvent[] = [];
    for (let i = 0; i < this.count; i++) {
      const ev = this.ring[(this.head + i) % this.ring.length] as WatchEvent;
      if (ev.rv > rv) out.push(ev);
    }
    return out;
  }

  private dropOldest(): void {
    const ev = this.ring[this.head] as WatchEvent;
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % this.ring.length;
    this.count--;
    this.bytes -= ev.value.length;
    if (ev.rv > this.from) this.from = ev.rv;
  }
}

export class MetaStore {
  private readonly st: ReturnType<MetaStore['prepare']>;
  /** Largest resourceVersion stored in meta_v2 (KubeEdge's imitator "revision"). */
  revision: number;
  /** Events since start (bounded); a watch from rv >= history.from can resume. */
  readonly history: EventHistory;
  private readonly watchers = new Set<(ev: WatchEvent) => void>();
  /** Called after every committed write (metaServer schedules WAL checkpoints with it). */
  onCommit: (() => void) | undefined;
  /** Changes per group_version_resource since start (metaServer's list cache is keyed on it). */
  private readonly generations = new Map<string, number>();
  /** Events of the open transaction, emitted once it has committed. */
  private pending: WatchEvent[] | undefined;

  constructor(
    readonly db: Database.Database,
    historyLimits: HistoryLimits = HISTORY_LIMITS,
  ) {
    db.transaction(() => {
      for (const sql of DDL) db.exec(sql);
      migrateLegacyMetaV2(db);
    })();
    this.st = this.prepare();
    const row = this.st.maxRv.get() as { rv: number | null };
    this.revision = Number(row.rv ?? 0);
    this.history = new EventHistory(this.revision, historyLimits);
  }

  private prepare() {
    const db = this.db;
    return {
      upsert: db.prepare('INSERT OR REPLACE INTO `meta` (`key`, `type`, `value`) VALUES (?, ?, ?)'),
      del: db.prepare('DELETE FROM `meta` WHERE `key` = ?'),
      delPod: db.prepare("DELETE FROM `meta` WHERE `key` = ? AND `value` LIKE '%' || ? || '%'"),
      byKey: db.prepare('SELECT `value` FROM `meta` WHERE `key` = ?').pluck(),
      byType: db.prepare('SELECT `value` FROM `meta` WHERE `type` = ?').pluck(),
      maxRv: db.prepare('SELECT MAX(`resource_version`) AS rv FROM `meta_v2`'),
      v2Upsert: db.prepare(
        'INSERT INTO `meta_v2` (`key`, `group_version_resource`, `namespace`, `name`, `resource_version`, `value`) VALUES (?, ?, ?, ?, ?, ?) ' +
          'ON CONFLICT(`key`) DO UPDATE SET `group_version_resource` = excluded.`group_version_resource`, `namespace` = excluded.`namespace`, ' +
          '`name` = excluded.`name`, `resource_version` = excluded.`resource_version`, `value` = excluded.`value`',
      ),
      v2Exists: db.prepare('SELECT 1 FROM `meta_v2` WHERE `key` = ?').pluck(),
      v2Get: db.prepare('SELECT `value` FROM `meta_v2` WHERE `key` = ?').pluck(),
      v2Del: db.prepare('DELETE FROM `meta_v2` WHERE `key` = ?'),
      v2ListAll: db
        .prepare('SELECT `value` FROM `meta_v2` WHERE `group_version_resource` = ? ORDER BY `key`')
        .pluck(),
      v2ListNs: db
        .prepare(
          'SELECT `value` FROM `meta_v2` WHERE `group_version_resource` = ? AND `namespace` = ? ORDER BY `key`',
        )
        .pluck(),
      v2Gvrs: db
        .prepare(
          "SELECT DISTINCT `group_version_resource` FROM `meta_v2` WHERE `group_version_resource` <> ''",
        )
        .pluck(),
    };
  }

  // ---- meta ---------------------------------------------------------------------------------

  /** `INSERT OR REPLACE INTO meta (key, type, value)`. */
  upsert(key: string, type: string, value: string): void {
    this.st.upsert.run(key, type, value);
    this.committed();
  }

  /** Several upserts in one transaction (one fsync-free commit). */
  upsertMany(rows: readonly (readonly [string, string, string])[]): void {
    this.transaction(() => {
      for (const [k, t, v] of rows) this.upsert(k, t, v);
    });
  }

  delete(key: string): number {
    const n = this.st.del.run(key).changes;
    if (n > 0) this.committed();
    return n;
  }

  /** Delete a pod row only if the stored JSON holds this UID (processDeletePodDB). */
  deletePod(key: string, uid: string): number {
    const n = this.st.delPod.run(key, uid).changes;
    if (n > 0) this.committed();
    return n;
  }

  /**
   * Run `fn`'s writes in one SQLite transaction: all of them are committed, or none (fn threw and
   * the error is rethrown). Watchers see the meta_v2 events only after the commit. Nested calls
   * join the outer transaction.
   */
  transaction<T>(fn: () => T): T {
    if (this.pending) return fn();
    const events: WatchEvent[] = [];
    this.pending = events;
    let result: T;
    try {
      result = this.db.transaction(fn)();
    } finally {
      this.pending = undefined;
    }
    this.onCommit?.();
    for (const ev of events) this.emit(ev);
    return result;
  }

  queryKey(key: string): string[] {
    return this.st.byKey.all(key) as string[];
  }

  queryType(type: string): string[] {
    return this.st.byType.all(type) as string[];
  }

  // ---- meta_v2 ------------------------------------------------------------------------------

  /** Upsert a meta_v2 object and notify watchers. */
  putV2(row: MetaV2Row): WatchEvent {
    const existed = this.st.v2Exists.get(row.key) !== undefined;
    this.st.v2Upsert.run(
      row.key,
      row.group_version_resource,
      row.namespace,
      row.name,
      row.resource_version,
      row.value,
    );
    return this.changed({
      type: existed ? 'MODIFIED' : 'ADDED',
      gvr: row.group_version_resource,
      namespace: row.namespace,
      name: row.name,
      rv: row.resource_version,
      value: row.value,
    });
  }

  /** Delete a meta_v2 object; `value` is the object as last known (the DELETED event's body). */
  deleteV2(row: MetaV2Row): WatchEvent | undefined {
    const stored = this.st.v2Get.get(row.key) as string | undefined;
    if (stored === undefined) return undefined;
    this.st.v2Del.run(row.key);
    return this.changed({
      type: 'DELETED',
      gvr: row.group_version_resource,
      namespace: row.namespace,
      name: row.name,
      rv: row.resource_version,
      value: row.value || stored,
    });
  }

  getV2(key: string): string | undefined {
    return this.st.v2Get.get(key) as string | undefined;
  }

  listV2(gvr: string, namespace?: string): string[] {
    return (namespace ? this.st.v2ListNs.all(gvr, namespace) : this.st.v2ListAll.all(gvr)) as string[];
  }

  /** Every group_version_resource that has objects. */
  gvrs(): string[] {
    return this.st.v2Gvrs.all() as string[];
  }

  /** Register a watcher; returns the function that removes it. */
  watch(fn: (ev: WatchEvent) => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  /**
   * Events after `rv` from the in-memory history, or undefined when they are no longer known
   * (the caller answers 410 Gone).
   */
  eventsSince(rv: number): WatchEvent[] | undefined {
    return this.history.since(rv);
  }

  /** How many changes `gvr` had since start: equal numbers mean equal lists. */
  generation(gvr: string): number {
    return this.generations.get(gvr) ?? 0;
  }

  /** A write outside a transaction has committed. */
  private committed(): void {
    if (!this.pending) this.onCommit?.();
  }

  /** A meta_v2 change: emitted now, or when the open transaction commits. */
  private changed(ev: WatchEvent): WatchEvent {
    if (this.pending) this.pending.push(ev);
    else {
      this.onCommit?.();
      this.emit(ev);
    }
    return ev;
  }

  private emit(ev: WatchEvent): void {
    this.generations.set(ev.gvr, (this.generations.get(ev.gvr) ?? 0) + 1);
    if (ev.rv > this.revision) this.revision = ev.rv;
    this.history.push(ev);
    for (const w of this.watchers) w(ev);
  }
}

/**
 * Databases written by KubeEdge <= v1.22 (beego) name two meta_v2 columns `groupversionresource`
 * and `resourceversion`; add the v1.23 columns next to them, as GORM's auto-migration does.
 */
function migrateLegacyMetaV2(db: Database.Database): void {
  const cols = new Set(
    (db.prepare('PRAGMA table_info(`meta_v2`)').all() as { name: string }[]).map((c) => c.name),
  );
  if (!cols.has('group_version_resource'))
    db.exec('ALTER TABLE `meta_v2` ADD COLUMN `group_version_resource` text');
  if (!cols.has('resource_version')) db.exec('ALTER TABLE `meta_v2` ADD COLUMN `resource_version` integer');
  const metaCols = new Set(
    (db.prepare('PRAGMA table_info(`meta`)').all() as { name: string }[]).map((c) => c.name),
  );
  for (const c of ['key', 'type', 'value']) {
    if (!metaCols.has(c)) {
      throw new KernelError(
        'EMETA_SCHEMA',
        `table meta: column "${c}" missing; expected KubeEdge's meta(key, type, value)`,
      );
    }
  }
}
