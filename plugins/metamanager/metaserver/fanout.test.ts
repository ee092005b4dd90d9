import { request, type ClientRequest } from 'node:http';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../../kernel/db.js';
import { createLogger } from '../../../kernel/log.js';
import { freePort } from '../../../test/peers/util.js';
import { Checkpointer } from '../checkpointer.js';
import { cloudMsg, configMap, pod, startMeta, type MetaHarness } from '../testdata/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'metaserver-fanout-'));
let h: MetaHarness;
let port: number;

async function feed(msg: ReturnType<typeof cloudMsg>): Promise<void> {
  await h.send(msg);
  await h.waitFor('ack', () => h.cloud.some((m) => m.header.parent_msg_id === msg.header.msg_id));
}

/** A raw watch stream: the exact lines (text) the server wrote. */
interface Stream {
  lines: string[];
  req: ClientRequest;
}

function openWatch(path: string): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const s: Stream = { lines: [], req: undefined as unknown as ClientRequest };
    s.req = request({ host: '127.0.0.1', port, path }, (res) => {
      let buf = '';
      res.on('data', (d: Buffer) => {
        buf += d.toString('utf8');
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          s.lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
      res.on('error', () => undefined);
      resolve(s);
    });
    s.req.on('error', reject);
    s.req.end();
  });
}

function names(s: Stream): string[] {
  return s.lines.map((l) => {
    const e = JSON.parse(l) as { type: string; object: { metadata: { name: string } } };
    return `${e.type} ${e.object.metadata.name}`;
  });
}

async function getJson(path: string): Promise<{
  metadata: { resourceVersion: string };
  items: { metadata: { name: string; resourceVersion: string } }[];
}> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  expect(res.status).toBe(200);
  const text = await res.text();
  expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text));
  return JSON.parse(text) as never;
}

beforeAll(async () => {
  port = await freePort();
  h = await startMeta({ dataSource: join(dir, 'edgecore.db'), metaServer: `127.0.0.1:${port}` });
  await feed(cloudMsg('insert', 'default/pod/seed', pod('seed', '10'), '10'));
});

afterAll(async () => {
  await h?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('metaServer watch fan-out', () => {
  it('one event reaches every matching watcher with the same bytes, and no other watcher', async () => {
    const rv = 'resourceVersion=10';
    const all = await openWatch(`/api/v1/pods?watch=true&${rv}`);
    const ns = await openWatch(`/api/v1/namespaces/default/pods?watch=true&${rv}`);
    const db = await openWatch(`/api/v1/namespaces/default/pods?watch=true&${rv}&labelSelector=app%3Ddb`);
    const named = await openWatch(
      `/api/v1/namespaces/default/pods?watch=true&${rv}&fieldSelector=metadata.name%3Dfan-2`,
    );
    const cms = await openWatch(`/api/v1/namespaces/default/configmaps?watch=true&${rv}`);
    try {
      await feed(cloudMsg('insert', 'default/pod/fan-1', pod('fan-1', '20'), '20'));
      await feed(
        cloudMsg('insert', 'default/pod/fan-2', pod('fan-2', '21', { labels: { app: 'db' } }), '21'),
      );
      await feed(
        cloudMsg(
          'insert',
          'kube-system/pod/fan-3',
          pod('fan-3', '22', { ns: 'kube-system', labels: { app: 'db' } }),
          '22',
        ),
      );
      await feed(
        cloudMsg('update', 'default/pod/fan-2', pod('fan-2', '23', { labels: { app: 'db' } }), '23'),
      );
      await feed(cloudMsg('insert', 'default/configmap/fan-cm', configMap('fan-cm', '24'), '24'));
      for (const s of [all, ns, db, named])
        await h.waitFor('MODIFIED fan-2', () => names(s).includes('MODIFIED fan-2'));
      await h.waitFor('configmap', () => cms.lines.length >= 1);
      expect(names(all)).toEqual(['ADDED fan-1', 'ADDED fan-2', 'ADDED fan-3', 'MODIFIED fan-2']);
      expect(names(ns)).toEqual(['ADDED fan-1', 'ADDED fan-2', 'MODIFIED fan-2']);
      expect(names(db)).toEqual(['ADDED fan-2', 'MODIFIED fan-2']);
      expect(names(named)).toEqual(['ADDED fan-2', 'MODIFIED fan-2']);
      expect(names(cms)).toEqual(['ADDED fan-cm']);
      // The line of fan-2 is the same text in every stream, and is the stored object.
      const line = all.lines[1];
      expect(ns.lines[1]).toBe(line);
      expect(db.lines[0]).toBe(line);
      expect(named.lines[0]).toBe(line);
      const stored = await fetch(`http://127.0.0.1:${port}/api/v1/namespaces/default/pods/fan-2`);
      expect(JSON.parse(all.lines[3] as string)).toEqual({ type: 'MODIFIED', object: await stored.json() });
    } finally {
      for (const s of [all, ns, db, named, cms]) s.req.destroy();
    }
  });

  it('a list is cached per resource and follows every change (insert, update, delete, other resources)', async () => {
    const first = await getJson('/api/v1/namespaces/default/pods');
    const again = await getJson('/api/v1/namespaces/default/pods');
    expect(again).toEqual(first);
    const before = first.items.map((i) => i.metadata.name);
    expect(before).toContain('fan-1');

    await feed(cloudMsg('update', 'default/pod/fan-1', pod('fan-1', '30'), '30'));
    const updated = await getJson('/api/v1/namespaces/default/pods');
    expect(updated.metadata.resourceVersion).toBe('30');
    expect(updated.items.find((i) => i.metadata.name === 'fan-1')?.metadata.resourceVersion).toBe('30');

    await feed(cloudMsg('insert', 'default/pod/fan-4', pod('fan-4', '31'), '31'));
    expect((await getJson('/api/v1/namespaces/default/pods')).items.map((i) => i.metadata.name)).toContain(
      'fan-4',
    );
    expect((await getJson('/api/v1/pods')).items.map((i) => i.metadata.name)).toEqual(
      expect.arrayContaining(['fan-3', 'fan-4']),
    );

    await feed(cloudMsg('delete', 'default/pod/fan-4', pod('fan-4', '32'), '32'));
    const afterDelete = await getJson('/api/v1/namespaces/default/pods');
    expect(afterDelete.items.map((i) => i.metadata.name)).not.toContain('fan-4');

    // Another resource changes: the pod items are the same, the list's resourceVersion moves on.
    await feed(cloudMsg('update', 'default/configmap/fan-cm', configMap('fan-cm', '33'), '33'));
    const cmChanged = await getJson('/api/v1/namespaces/default/pods');
    expect(cmChanged.items).toEqual(afterDelete.items);
    expect(cmChanged.metadata.resourceVersion).toBe('33');
    // Selectors are never served from the cache.
    const sel = await getJson('/api/v1/namespaces/default/pods?labelSelector=app%3Ddb');
    expect(sel.items.map((i) => i.metadata.name)).toEqual(['fan-2']);
    // metadata.name field selector (answered 500 before: a function's `name` is read-only).
    const byName = await getJson('/api/v1/pods?fieldSelector=metadata.name%3Dfan-3');
    expect(byName.items.map((i) => i.metadata.name)).toEqual(['fan-3']);
  });
});

describe('WAL checkpoints in a worker', () => {
  it('keeps the WAL small while commits go on, loses nothing, and stops cleanly', async () => {
    const file = join(dir, 'ckpt.db');
    const db = openDatabase(file);
    db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)');
    const page = Number(db.pragma('page_size', { simple: true }));
    const cp = new Checkpointer(db, createLogger('silent'), 5);
    cp.start();
    expect(cp.running).toBe(true);
    const ins = db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
    const value = 'x'.repeat(3000); // about one page per commit
    let k = 0;
    for (let burst = 0; burst < 30; burst++) {
      const runs = cp.runs;
      for (let i = 0; i < 100; i++) {
        ins.run(k++, value);
        cp.wrote();
      }
      await h.waitFor('checkpoint', () => cp.runs > runs, 10_000);
    }
    // 3,000 commits of about a page each: SQLite alone would let the WAL grow to its
    // 1,000-page autocheckpoint; the worker kept it near one burst.
    const walPages = statSync(`${file}-wal`).size / page;
    expect(walPages).toBeLessThan(600);
    await cp.stop();
    expect(cp.running).toBe(false);
    ins.run(k++, value); // the main connection goes on without the worker
    expect(db.prepare('SELECT COUNT(*) FROM t').pluck().get()).toBe(3001);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
    const reopened = openDatabase(file);
    expect(reopened.prepare('SELECT COUNT(*) FROM t').pluck().get()).toBe(3001);
    reopened.close();
  });

  it('does nothing for an in-memory database', async () => {
    const db = openDatabase(':memory:');
    const cp = new Checkpointer(db, createLogger('silent'));
    cp.start();
    expect(cp.running).toBe(false);
    cp.wrote();
    await cp.stop();
    db.close();
  });
});
