/**
 * deviceTwin's tables (spec edge-modules §5.1) in the kernel's database: `device`, `device_attr`,
 * `device_twin`, with KubeEdge's column names. Every change of one event is one transaction.
 */
import type { Database } from 'better-sqlite3';

export interface DeviceRow {
  id: string;
  name: string;
  description: string;
  state: string;
  last_online: string;
}
export interface AttrRow {
  deviceid: string;
  name: string;
  description: string;
  value: string;
  optional: boolean;
  attr_type: string;
  metadata: string;
}
export interface TwinRow {
  deviceid: string;
  name: string;
  description: string;
  expected: string | null;
  actual: string | null;
  expected_meta: string | null;
  actual_meta: string | null;
  expected_version: string | null;
  actual_version: string | null;
  optional: boolean;
  attr_type: string;
  metadata: string;
}

export type TwinCols = Partial<Omit<TwinRow, 'deviceid' | 'name'>>;

/** One event's changes, written in one transaction. */
export interface ChangeSet {
  addDevices?: DeviceRow[];
  deleteDevices?: string[];
  deviceState?: { id: string; state: string; last_online: string }[];
  addAttrs?: AttrRow[];
  deleteAttrs?: { deviceid: string; name: string }[];
  updateAttrs?: { deviceid: string; name: string; cols: Partial<AttrRow> }[];
  addTwins?: TwinRow[];
  updateTwins?: { deviceid: string; name: string; cols: TwinCols }[];
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS \`device\` (
  \`id\` text, \`name\` text, \`description\` text, \`state\` text, \`last_online\` text,
  PRIMARY KEY (\`id\`));
CREATE TABLE IF NOT EXISTS \`device_attr\` (
  \`id\` integer PRIMARY KEY AUTOINCREMENT, \`deviceid\` text, \`name\` text, \`description\` text,
  \`value\` text, \`optional\` numeric, \`attr_type\` text, \`metadata\` text);
CREATE TABLE IF NOT EXISTS \`device_twin\` (
  \`id\` integer PRIMARY KEY AUTOINCREMENT, \`deviceid\` text, \`name\` text, \`description\` text,
  \`expected\` text, \`actual\` text, \`expected_meta\` text, \`actual_meta\` text,
  \`expected_version\` text, \`actual_version\` text, \`optional\` numeric, \`attr_type\` text,
  \`metadata\` text);
CREATE INDEX IF NOT EXISTS \`device_attr_deviceid\` ON \`device_attr\` (\`deviceid\`, \`name\`);
CREATE INDEX IF NOT EXISTS \`device_twin_deviceid\` ON \`device_twin\` (\`deviceid\`, \`name\`);
`;

const TWIN_COLS = [
  'description',
  'expected',
  'actual',
  'expected_meta',
  'actual_meta',
  'expected_version',
  'actual_version',
  'optional',
  'attr_type',
  'metadata',
] as const;

const ATTR_COLS = ['description', 'value', 'optional', 'attr_type', 'metadata'] as const;

const num = (b: boolean | undefined): number => (b ? 1 : 0);

const isEmpty = (a: unknown[] | undefined): boolean => a === undefined || a.length === 0;

/** A change set made of twin updates alone (the hot path: values reported by devices). */
function onlyTwinUpdates(c: ChangeSet): boolean {
  return (
    isEmpty(c.addDevices) &&
    isEmpty(c.deleteDevices) &&
    isEmpty(c.deviceState) &&
    isEmpty(c.addAttrs) &&
    isEmpty(c.deleteAttrs) &&
    isEmpty(c.updateAttrs) &&
    isEmpty(c.addTwins)
  );
}

export class TwinStore {
  private readonly stmts;
  private readonly updateCache = new Map<number, import('better-sqlite3').Statement>();
  readonly apply: (c: ChangeSet) => void;
  /** Several events' changes in one transaction (group commit). */
  readonly applyMany: (cs: ChangeSet[]) => void;

  constructor(private readonly db: Database) {
    db.exec(SCHEMA);
    this.stmts = {
      insertDevice: db.prepare(
        'INSERT OR REPLACE INTO `device` (`id`,`name`,`description`,`state`,`last_online`) VALUES (?,?,?,?,?)',
      ),
      deleteDevice: db.prepare('DELETE FROM `device` WHERE `id` = ?'),
      deleteDeviceAttrs: db.prepare('DELETE FROM `device_attr` WHERE `deviceid` = ?'),
      deleteDeviceTwins: db.prepare('DELETE FROM `device_twin` WHERE `deviceid` = ?'),
      state: db.prepare('UPDATE `device` SET `state` = ?, `last_online` = ? WHERE `id` = ?'),
      insertAttr: db.prepare(
        'INSERT INTO `device_attr` (`deviceid`,`name`,`description`,`value`,`optional`,`attr_type`,`metadata`) VALUES (?,?,?,?,?,?,?)',
      ),
      deleteAttr: db.prepare('DELETE FROM `device_attr` WHERE `deviceid` = ? AND `name` = ?'),
      insertTwin: db.prepare(
        'INSERT INTO `device_twin` (`deviceid`,`name`,`description`,`expected`,`actual`,`expected_meta`,`actual_meta`,`expected_version`,`actual_version`,`optional`,`attr_type`,`metadata`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)',
      ),
      deleteTwinsOf: db.prepare('DELETE FROM `device_twin` WHERE `deviceid` = ? AND `name` = ?'),
    };
    this.apply = db.transaction((c: ChangeSet) => this.write(c));
    this.applyMany = db.transaction((cs: ChangeSet[]) => {
      // Consecutive events that only update twins are merged: one UPDATE per twin with the
      // latest value of each column (a device publishing a burst is written once per commit).
      const merged = new Map<string, { deviceid: string; name: string; cols: TwinCols }>();
      const flush = (): void => {
        for (const u of merged.values()) this.runUpdate('device_twin', TWIN_COLS, u.cols, u.deviceid, u.name);
        merged.clear();
      };
      for (const c of cs) {
        if (!onlyTwinUpdates(c)) {
          flush();
          this.write(c);
          continue;
        }
        for (const u of c.updateTwins ?? []) {
          const key = `${u.deviceid}\u0000${u.name}`;
          const m = merged.get(key);
          if (m) Object.assign(m.cols, u.cols);
          else merged.set(key, { deviceid: u.deviceid, name: u.name, cols: { ...u.cols } });
        }
      }
      flush();
    });
  }

  /**
   * `UPDATE <table> SET <the columns present in cols> WHERE deviceid = ? AND name = ?`, prepared once
   * per column set (keyed by a bit mask over `all`), run without intermediate arrays of names.
   */
  private runUpdate(
    table: 'device_attr' | 'device_twin',
    all: readonly string[],
    cols: Record<string, unknown>,
    deviceid: string,
    name: string,
  ): void {
    let mask = 0;
    const vals: unknown[] = [];
    for (let i = 0; i < all.length; i++) {
      const k = all[i] as string;
      if (!(k in cols)) continue;
      mask |= 1 << i;
      vals.push(k === 'optional' ? num(cols.optional as boolean | undefined) : (cols[k] ?? null));
    }
    if (mask === 0) return;
    const key = table === 'device_twin' ? mask : -mask;
    let s = this.updateCache.get(key);
    if (!s) {
      const names = all.filter((_, i) => mask & (1 << i));
      s = this.db.prepare(
        `UPDATE \`${table}\` SET ${names.map((c) => `\`${c}\` = ?`).join(', ')} WHERE \`deviceid\` = ? AND \`name\` = ?`,
      );
      this.updateCache.set(key, s);
    }
    vals.push(deviceid, name);
    s.run(vals);
  }

  private write(c: ChangeSet): void {
    const s = this.stmts;
    for (const id of c.deleteDevices ?? []) {
      s.deleteDevice.run(id);
      s.deleteDeviceAttrs.run(id);
      s.deleteDeviceTwins.run(id);
    }
    for (const d of c.addDevices ?? [])
      s.insertDevice.run(d.id, d.name, d.description, d.state, d.last_online);
    for (const d of c.deviceState ?? []) s.state.run(d.state, d.last_online, d.id);
    for (const a of c.deleteAttrs ?? []) s.deleteAttr.run(a.deviceid, a.name);
    for (const a of c.addAttrs ?? []) {
      s.insertAttr.run(a.deviceid, a.name, a.description, a.value, num(a.optional), a.attr_type, a.metadata);
    }
    for (const u of c.updateAttrs ?? []) this.runUpdate('device_attr', ATTR_COLS, u.cols, u.deviceid, u.name);
    for (const t of c.addTwins ?? []) {
      s.deleteTwinsOf.run(t.deviceid, t.name);
      s.insertTwin.run(
        t.deviceid,
        t.name,
        t.description,
        t.expected,
        t.actual,
        t.expected_meta,
        t.actual_meta,
        t.expected_version,
        t.actual_version,
        num(t.optional),
        t.attr_type,
        t.metadata,
      );
    }
    for (const u of c.updateTwins ?? []) this.runUpdate('device_twin', TWIN_COLS, u.cols, u.deviceid, u.name);
  }

  loadAll(): { devices: DeviceRow[]; attrs: AttrRow[]; twins: TwinRow[] } {
    const devices = this.db.prepare('SELECT * FROM `device` ORDER BY `id`').all() as DeviceRow[];
    const attrs = (
      this.db.prepare('SELECT * FROM `device_attr` ORDER BY `id`').all() as Record<string, unknown>[]
    ).map((r) => ({ ...(r as unknown as AttrRow), optional: Number(r.optional) === 1 }));
    const twins = (
      this.db.prepare('SELECT * FROM `device_twin` ORDER BY `id`').all() as Record<string, unknown>[]
    ).map((r) => ({ ...(r as unknown as TwinRow), optional: Number(r.optional) === 1 }));
    return { devices, attrs, twins };
  }
}
