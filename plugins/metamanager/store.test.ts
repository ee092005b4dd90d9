import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../kernel/db.js';
import { rowOf } from './imitator.js';
import { HISTORY_LIMITS, MetaStore, type MetaV2Row, type WatchEvent } from './store.js';
import { pod } from './testdata/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'metastore-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function open(limits = HISTORY_LIMITS): MetaStore {
  return new MetaStore(openDatabase(join(dir, `store-${++n}.db`)), limits);
}

function podRow(i: number, pad = 0): MetaV2Row {
  const p = pod(`p-${i}`, String(i));
  return rowOf(pad ? { ...p, spec: { pad: 'x'.repeat(pad) } } : p) as MetaV2Row;
}

describe('metaStore event history', () => {
  it('is a ring bounded by count: older resourceVersions are gone (410), newer ones resume', () => {
    const store = open({ events: 5, bytes: 1 << 20 });
    for (let i = 1; i <= 12; i++) store.putV2(podRow(i));
    expect(store.history.size).toBe(5);
    expect(store.eventsSince(6)).toBeUndefined();
    expect(store.eventsSince(7)?.map((e) => e.rv)).toEqual([8, 9, 10, 11, 12]);
    expect(store.eventsSince(10)?.map((e) => e.rv)).toEqual([11, 12]);
    expect(store.eventsSince(12)).toEqual([]);
    store.db.close();
  });

  it('is bounded by bytes with the default limits (large objects do not pile up)', () => {
    const store = open();
    const objects = 24; // 24 x 1 MiB, more than the 16 MiB kept
    for (let i = 1; i <= objects; i++) store.putV2(podRow(i, 1 << 20));
    expect(store.history.bytes).toBeLessThanOrEqual(HISTORY_LIMITS.bytes);
    expect(store.history.size).toBeLessThan(objects);
    expect(store.history.size).toBeGreaterThan(0);
    expect(store.eventsSince(1)).toBeUndefined();
    expect(store.eventsSince(objects - 1)?.map((e) => e.rv)).toEqual([objects]);
    store.db.close();
  });

  it('keeps resuming right after a restart: events up to the stored revision are gone', () => {
    const file = join(dir, 'restart.db');
    const first = new MetaStore(openDatabase(file));
    for (let i = 1; i <= 3; i++) first.putV2(podRow(i));
    first.db.close();
    const second = new MetaStore(openDatabase(file));
    expect(second.history.from).toBe(3);
    expect(second.eventsSince(2)).toBeUndefined();
    second.putV2(podRow(4));
    expect(second.eventsSince(3)?.map((e) => e.rv)).toEqual([4]);
    second.db.close();
  });
});

describe('metaStore transactions', () => {
  it('meta and meta_v2 rows commit together or not at all; watchers see only committed changes', () => {
    const store = open();
    const seen: WatchEvent[] = [];
    store.watch((ev) => seen.push(ev));
    const row = podRow(1);
    expect(() =>
      store.transaction(() => {
        store.putV2(row);
        store.upsert('default/pod/p-1', 'pod', row.value);
        throw new Error('the disk said no');
      }),
    ).toThrow('the disk said no');
    expect(store.getV2(row.key)).toBeUndefined();
    expect(store.queryKey('default/pod/p-1')).toEqual([]);
    expect(seen).toEqual([]);
    expect(store.revision).toBe(0);
    store.transaction(() => {
      store.putV2(row);
      store.upsert('default/pod/p-1', 'pod', row.value);
      expect(seen).toEqual([]); // not before the commit
    });
    expect(seen.map((e) => [e.type, e.name])).toEqual([['ADDED', 'p-1']]);
    expect(store.queryKey('default/pod/p-1')).toEqual([row.value]);
    store.db.close();
  });
});
