import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { newMessage, type Message } from '../../kernel/index.js';
import { cleanup, tempDir } from '../../test/peers/util.js';
import { OUTBOX_TABLE, Outbox, coalesceKey } from './queue.js';

afterAll(cleanup);

const msg = (operation: string, resource: string, content: unknown, source = 'edged'): Message =>
  newMessage({ source, group: 'meta', operation, resource }, content);

const twin = (props: Record<string, string>): Message =>
  newMessage(
    {
      source: 'twin',
      group: 'resource',
      operation: 'update',
      resource: 'device/default/t1/twin/edge_updated',
    },
    {
      event_id: 'e',
      timestamp: 1,
      twin: Object.fromEntries(Object.entries(props).map(([k, v]) => [k, { actual: { value: v } }])),
    },
  );

async function dbFile(): Promise<string> {
  return join(await tempDir('edgehub-outbox'), 'edgecore.db');
}

describe('edgeHub outbox', () => {
  it('coalesces status-like resources only', () => {
    expect(coalesceKey(msg('patch', 'default/podpatch/web', '{}'))).toBe('patch default/podpatch/web');
    expect(coalesceKey(msg('patch', 'null/nodepatch/edge-1', '{}'))).toBe('patch null/nodepatch/edge-1');
    expect(coalesceKey(msg('update', 'kube-node-lease/lease/edge-1', {}))).toBeDefined();
    expect(coalesceKey(msg('update', 'default/podstatus/web', {}))).toBeDefined();
    expect(coalesceKey(twin({ a: '1' }))).toBe('update device/default/t1/twin/edge_updated');
    expect(coalesceKey(msg('update', 'device/default/t1/state/update', '{}', 'twin'))).toBeDefined();
    // events, acks, errors, inserts of other types, router uploads: every copy counts
    expect(coalesceKey(msg('insert', 'default/event/x', {}))).toBeUndefined();
    expect(coalesceKey(msg('response', 'default/podpatch/web', 'OK'))).toBeUndefined();
    expect(coalesceKey(msg('error', 'default/podpatch/web', 'x'))).toBeUndefined();
    expect(coalesceKey(msg('update', 'default/podstatus', []))).toBeUndefined();
    expect(coalesceKey(msg('upload', 'rule/x', 'x'))).toBeUndefined();
  });

  it('keeps order, lets the newest status win (moved to the end), merges twin reports, survives a reopen', async () => {
    const file = await dbFile();
    const db = new Database(file);
    const box = new Outbox(db);
    const e1 = msg('insert', 'default/event/a', { n: 1 });
    box.push(msg('patch', 'default/podpatch/web', '{"status":{"phase":"Pending"}}'));
    box.push(e1);
    box.push(twin({ temperature: '20', humidity: '50' }));
    box.push(msg('patch', 'default/podpatch/web', '{"status":{"phase":"Running"}}'));
    box.flush(); // one transaction
    box.push(twin({ temperature: '21' }));
    box.flush();
    db.close();

    const again = new Outbox(new Database(file));
    expect(again.size).toBe(3);
    const head = again.head(10).map((q) => q.msg);
    expect(head.map((m) => m.route.resource)).toEqual([
      'default/event/a',
      'default/podpatch/web',
      'device/default/t1/twin/edge_updated',
    ]);
    expect(head[0]).toEqual(e1);
    expect(head[1]?.content).toBe('{"status":{"phase":"Running"}}');
    expect((head[2]?.content as { twin: unknown }).twin).toEqual({
      temperature: { actual: { value: '21' } },
      humidity: { actual: { value: '50' } },
    });
    again.remove(again.head(2).map((q) => q.id));
    expect(again.size).toBe(1);
  });

  it('is bounded: the oldest rows go first and the drop is reported', async () => {
    const db = new Database(await dbFile());
    const dropped: number[] = [];
    const box = new Outbox(db, { limit: 3, onDropped: (n) => dropped.push(n) });
    for (let i = 0; i < 5; i++) box.push(msg('insert', `default/event/e${i}`, i));
    box.flush();
    expect(dropped).toEqual([2]);
    expect(box.head(10).map((q) => q.msg.content)).toEqual([2, 3, 4]);
    const rows = db.prepare(`SELECT COUNT(*) AS n FROM ${OUTBOX_TABLE}`).get() as { n: number };
    expect(rows.n).toBe(3);
  });
});
