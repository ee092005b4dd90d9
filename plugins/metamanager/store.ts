import type Database from 'better-sqlite3';
import { KernelError } from '../../kernel/index.js';

/**
 * The edge store of metaManager: KubeEdge's `meta` and `meta_v2` tables (spec edge-modules §3.2),
 * same names, columns and key formats, so `sqlite3 edgecore.db 'select * from meta'` still works.
 * All statements are prepared once; every write is its own committed transaction (or part of an
 * explicit batch), so what was acknowledged survives a kill -9 (WAL, kernel/db.ts).
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

/** How many recent watch events are kept in memory to let a watch resume from a resourceVersion. */
export const HISTORY_SIZE = 10_000;

export class MetaStore {
  private readonly st: ReturnType<MetaStore['prepare']>;
  /** Largest resourceVersion stored in meta_v2 (KubeEdge's imitator "revision"). */
  revision: number;
  /** Events since start, oldest first (bounded); a watch from rv >= historyFrom can resume. */
  readonly history: WatchEvent[] = [];
  historyFrom: number;
  private readonly watchers = new Set<(ev: WatchEvent) => void>();
  /** Called after every committed write (metaServer schedules WAL checkpoints with it). */
  onCommit: (() => void) | undefined;
  /** Changes per group_version_resource since start (metaServer's list cache is keyed on it). */
  private readonly generations = new Map<string, number>();

  constructor(readonly db: Database.Database) {
    db.transaction(() => {
      for (const sql of DDL) db.exec(sql);
      migrateLegacyMetaV2(db);
    })();
    this.st = this.prepare();
    const row = this.st.maxRv.get() as { rv: number | null };
    this.revision = Number(row.rv ?? 0);
    this.historyFrom = this.revision;
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
    this.onCommit?.();
  }

  /** Several upserts in one transaction (one fsync-free commit). */
  upsertMany(rows: readonly (readonly [string, string, string])[]): void {
    this.db.transaction(() => {
      for (const [k, t, v] of rows) this.st.upsert.run(k, t, v);
    })();
    this.onCommit?.();
  }

  delete(key: string): number {
    const n = this.st.del.run(key).changes;
    if (n > 0) this.onCommit?.();
    return n;
  }

  /** Delete a pod row only if the stored JSON holds this UID (processDeletePodDB). */
  deletePod(key: string, uid: string): number {
    const n = this.st.delPod.run(key, uid).changes;
    if (n > 0) this.onCommit?.();
    return n;
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
    this.onCommit?.();
    return this.emit({
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
    this.onCommit?.();
    return this.emit({
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
    if (rv < this.historyFrom) return undefined;
    return this.history.filter((e) => e.rv > rv);
  }

  /** How many changes `gvr` had since start: equal numbers mean equal lists. */
  generation(gvr: string): number {
    return this.generations.get(gvr) ?? 0;
  }

  private emit(ev: WatchEvent): WatchEvent {
    this.generations.set(ev.gvr, (this.generations.get(ev.gvr) ?? 0) + 1);
    if (ev.rv > this.revision) this.revision = ev.rv;
    this.history.push(ev);
    if (this.history.length > HISTORY_SIZE) {
      const dropped = this.history.splice(0, this.history.length - HISTORY_SIZE);
      for (const d of dropped) if (d.rv > this.historyFrom) this.historyFrom = d.rv;
    }
    for (const w of this.watchers) w(ev);
    return ev;
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
