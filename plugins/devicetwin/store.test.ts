/**
 * The group commit of deviceTwin's store and the engine's cloud switch, on a SQLite file (the
 * MQTT path end to end is in devicetwin.test.ts and durability.test.ts).
 */
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TwinEngine } from './engine.js';
import { TwinStore, type ChangeSet } from './store.js';

function open(): { db: Database.Database; store: TwinStore } {
  const db = new Database(join(mkdtempSync(join(tmpdir(), 'twin-store-')), 'edge.db'));
  const store = new TwinStore(db);
  store.apply({
    addDevices: [{ id: 'default/d', name: 'd', description: '', state: '', last_online: '' }],
  });
  return { db, store };
}

const twin = (db: Database.Database, name: string): Record<string, unknown> | undefined =>
  db.prepare("SELECT * FROM device_twin WHERE deviceid = 'default/d' AND name = ?").get(name) as
    Record<string, unknown> | undefined;

describe('TwinStore.applyMany', () => {
  it('merges the twin updates of one commit: the latest value of every column is stored', () => {
    const { db, store } = open();
    const engine = new TwinEngine(store, 'n', (c) => void batch.push(c));
    const batch: ChangeSet[] = [];
    const update = (k: string, side: 'actual' | 'expected', v: string) =>
      engine.twinUpdate('default/d', JSON.stringify({ event_id: k, twin: { t: { [side]: { value: v } } } }));
    update('a', 'actual', '1'); // adds twin t
    store.applyMany(batch.splice(0));
    update('b', 'actual', '2');
    update('c', 'expected', '9');
    update('d', 'actual', '3');
    expect(batch).toHaveLength(3);
    store.applyMany(batch.splice(0));
    const row = twin(db, 't')!;
    expect(row).toMatchObject({ actual: '3', expected: '9' });
    expect(JSON.parse(row.actual_version as string)).toEqual({ cloud: 0, edge: 3 });
    expect(JSON.parse(row.expected_version as string)).toEqual({ cloud: 0, edge: 1 });
    // what memory holds after the commit is what the database holds (a twin/get of both)
    const get = (e: TwinEngine) => {
      const r = JSON.parse(e.twinGet('default/d', '{"event_id":"g"}').publish[0]!.payload) as object;
      return { ...r, timestamp: 0 };
    };
    expect(get(new TwinEngine(store, 'n'))).toEqual(get(engine));
  });

  it('keeps the order around other changes: an update, a re-added twin, then an update of it', () => {
    const { db, store } = open();
    store.applyMany([
      { addTwins: [row('t', 'old')] },
      { updateTwins: [{ deviceid: 'default/d', name: 't', cols: { actual: 'u1' } }] },
      { addTwins: [row('t', 'added')] }, // replaces the row: the update before it is gone with it
      { updateTwins: [{ deviceid: 'default/d', name: 't', cols: { actual: 'u2', optional: false } }] },
      { updateTwins: [{ deviceid: 'default/d', name: 't', cols: { metadata: '{}' } }] },
    ]);
    const rows = db.prepare("SELECT * FROM device_twin WHERE name = 't'").all();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actual: 'u2', expected: 'added', optional: 0, metadata: '{}' });
  });
});

describe('TwinEngine without an edgeHub', () => {
  it('builds no cloud-bound message for twin and state updates; results are published as before', () => {
    const { store } = open();
    let hub = false;
    const engine = new TwinEngine(store, 'n', undefined, () => hub);
    const u = engine.twinUpdate('default/d', '{"event_id":"e","twin":{"t":{"actual":{"value":"1"}}}}');
    expect(u.cloud).toEqual([]);
    expect(u.publish.map((p) => p.topic)).toEqual([
      '$hw/events/device/default/d/twin/update/result',
      '$hw/events/device/default/d/twin/update/document',
    ]);
    expect(engine.stateUpdate('default/d', '{"state":"online"}').cloud).toEqual([]);
    hub = true;
    const v = engine.twinUpdate('default/d', '{"event_id":"f","twin":{"t":{"actual":{"value":"2"}}}}');
    expect(v.cloud.map((c) => c.resource)).toEqual(['device/default/d/twin/edge_updated']);
    expect(engine.stateUpdate('default/d', '{"state":"online"}').cloud).toHaveLength(1);
  });
});

function row(name: string, expected: string) {
  return {
    deviceid: 'default/d',
    name,
    description: '',
    expected,
    actual: null,
    expected_meta: '{}',
    actual_meta: null,
    expected_version: '{"cloud":1,"edge":0}',
    actual_version: null,
    optional: true,
    attr_type: 'string',
    metadata: '',
  };
}
