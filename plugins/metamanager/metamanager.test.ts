import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DatabaseToken, newErrorMessage, newMessage, newResponse, type Message } from '../../kernel/index.js';
import { ErrConnectionLost } from '../../protocol/index.js';
import { cloudMsg, configMap, pod, startMeta, type MetaHarness } from './testdata/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'metamanager-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
let h: MetaHarness;
async function start(
  o: { connected?: boolean; withCloud?: boolean; remoteQueryTimeout?: number } = {},
): Promise<MetaHarness> {
  h = await startMeta({ dataSource: join(dir, `edgecore-${++n}.db`), ...o });
  return h;
}
afterEach(async () => {
  await h?.stop();
});

type Row = { key: string; type: string; value: string };
const rows = (sql: string, ...args: unknown[]): Row[] =>
  h.kernel.services
    .get(DatabaseToken)
    .prepare(sql)
    .all(...args) as Row[];
const metaRow = (key: string): Row | undefined => rows('SELECT * FROM meta WHERE key = ?', key)[0];
const edgedMsg = (operation: string, resource: string, content: unknown): Message =>
  newMessage({ source: 'edged', group: 'meta', operation, resource }, content);
const acks = (parent: string): Message[] =>
  h.cloud.filter((m) => m.route.operation === 'response' && m.header.parent_msg_id === parent);

describe('metaManager: messages from the cloud', () => {
  beforeEach(() => start());

  it('stores a pod insert in meta and meta_v2, forwards it to edged and ACKs it (wire §5.5)', async () => {
    const msg = cloudMsg('insert', 'default/pod/web-1', pod('web-1', '100'), '100');
    await h.send(msg);
    const [ack] = await h.waitFor('ack', () => acks(msg.header.msg_id).length > 0 && acks(msg.header.msg_id));
    expect(ack!.route).toEqual({
      source: 'edgecontroller',
      group: 'resource',
      operation: 'response',
      resource: 'default/pod/web-1',
    });
    expect(ack!.content).toBe('OK');
    expect(metaRow('default/pod/web-1')).toMatchObject({ type: 'pod' });
    expect(JSON.parse(metaRow('default/pod/web-1')!.value)).toEqual(pod('web-1', '100'));
    const v2 = rows('SELECT * FROM meta_v2')[0] as unknown as Record<string, unknown>;
    expect(v2).toMatchObject({
      key: '/core/v1/pods/default/web-1',
      group_version_resource: '/v1, Resource=pods',
      namespace: 'default',
      name: 'web-1',
      resource_version: 100,
    });
    expect(h.edged.map((m) => m.header.msg_id)).toEqual([msg.header.msg_id]);
  });

  it('node updates are stored and acked but not forwarded to edged; secrets are', async () => {
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'edge-1', uid: 'n1', resourceVersion: '7' },
    };
    const m1 = cloudMsg('update', 'null/node/edge-1', node, '7');
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's1', namespace: 'default', uid: 's', resourceVersion: '8' },
    };
    const m2 = cloudMsg('update', 'default/secret/s1', secret, '8');
    await h.send(m1);
    await h.send(m2);
    await h.waitFor('acks', () => acks(m1.header.msg_id).length && acks(m2.header.msg_id).length);
    expect(metaRow('null/node/edge-1')?.type).toBe('node');
    expect(metaRow('default/secret/s1')?.type).toBe('secret');
    expect(h.edged.map((m) => m.route.resource)).toEqual(['default/secret/s1']);
    expect(rows('SELECT key FROM meta_v2 ORDER BY key').map((r) => r.key)).toEqual([
      '/core/v1/nodes/null/edge-1',
      '/core/v1/secrets/default/s1',
    ]);
  });

  it('pod delete removes the row (and its podpatch) only when the UID matches, and is acked', async () => {
    await h.send(cloudMsg('insert', 'default/pod/web-1', pod('web-1', '100'), '100'));
    await h.send(edgedMsg('patch', 'default/podpatch/web-1', '{"status":{"phase":"Running"}}'));
    await h.waitFor('podpatch row', () => metaRow('default/podpatch/web-1'));
    const wrong = cloudMsg(
      'delete',
      'default/pod/web-1',
      pod('web-1', '101', { uid: 'someone-else' }),
      '101',
    );
    await h.send(wrong);
    await h.waitFor('ack', () => acks(wrong.header.msg_id).length);
    expect(metaRow('default/pod/web-1')).toBeDefined();
    const del = cloudMsg('delete', 'default/pod/web-1', pod('web-1', '101'), '101');
    await h.send(del);
    await h.waitFor('ack', () => acks(del.header.msg_id).length);
    expect(metaRow('default/pod/web-1')).toBeUndefined();
    expect(metaRow('default/podpatch/web-1')).toBeUndefined();
    expect(rows('SELECT * FROM meta_v2')).toEqual([]);
  });

  it('devicecontroller inserts go to twin (source meta, group twin); policycontroller only store + ack', async () => {
    const dev = cloudMsg(
      'insert',
      'default/device/dev1',
      {
        kind: 'Device',
        apiVersion: 'devices.kubeedge.io/v1beta1',
        metadata: { name: 'dev1', namespace: 'default' },
      },
      '3',
      'devicecontroller',
    );
    const pol = cloudMsg(
      'insert',
      'default/serviceaccountaccess/p',
      { metadata: { name: 'p' } },
      '4',
      'policycontroller',
    );
    await h.send(dev);
    await h.send(pol);
    await h.waitFor('acks', () => acks(dev.header.msg_id).length && acks(pol.header.msg_id).length);
    await h.waitFor('twin copy', () => h.twin.length === 1);
    expect(h.twin[0]!.route).toMatchObject({
      source: 'meta',
      group: 'twin',
      operation: 'insert',
      resource: 'default/device/dev1',
    });
    expect(h.edged).toEqual([]);
    expect(metaRow('default/serviceaccountaccess/p')).toBeDefined();
  });

  it('events from edged are forwarded to the cloud unchanged and not stored', async () => {
    const ev = edgedMsg('insert', 'default/event/e1', { reason: 'Started' });
    await h.send(ev);
    await h.waitFor('forward', () => h.cloud.find((m) => m.header.msg_id === ev.header.msg_id));
    expect(metaRow('default/event/e1')).toBeUndefined();
  });
});

describe('metaManager: what edged asks (spec §3.8)', () => {
  it('query by key and by type answer from meta with an array of JSON strings, source metamanager', async () => {
    await start();
    await h.send(cloudMsg('insert', 'default/pod/a', pod('a', '1'), '1'));
    await h.send(cloudMsg('insert', 'other/pod/b', pod('b', '2', { ns: 'other' }), '2'));
    await h.waitFor('stored', () => rows('SELECT * FROM meta').length === 2);
    const one = await h.request(edgedMsg('query', 'default/pod/a', null));
    expect(one.route).toMatchObject({
      source: 'metamanager',
      group: 'meta',
      operation: 'response',
      resource: 'default/pod/a',
    });
    expect((one.content as string[]).map((s) => JSON.parse(s).metadata.name)).toEqual(['a']);
    const all = await h.request(edgedMsg('query', 'default/pod', null));
    expect((all.content as string[]).map((s) => JSON.parse(s).metadata.name).sort()).toEqual(['a', 'b']);
    const none = await h.request(edgedMsg('query', 'default/pod/zzz', null));
    expect(none.content).toEqual([]);
    // The startup pod list is a plain send; the answer goes to edged's mailbox.
    const plain = edgedMsg('query', 'default/pod', null);
    await h.send(plain);
    await h.waitFor('reply in edged mailbox', () =>
      h.edged.find((m) => m.header.parent_msg_id === plain.header.msg_id),
    );
  });

  it('remote query while connected: fresh id to the cloud, reply re-parented, stored, then ACKed (wire §5.8)', async () => {
    await start();
    h.answer = (req) => {
      const r = newResponse(req, configMap('app-config', '777'));
      r.route = {
        source: 'edgecontroller',
        group: 'resource',
        operation: 'response',
        resource: req.route.resource ?? '',
      };
      r.header.resourceversion = '777';
      return r;
    };
    const q = edgedMsg('query', 'default/configmap/app-config', null);
    const reply = await h.request(q);
    const sent = h.cloud.find((m) => m.route.operation === 'query')!;
    expect(sent.header.msg_id).not.toBe(q.header.msg_id);
    expect(sent.route).toEqual(q.route);
    expect(reply.header.parent_msg_id).toBe(q.header.msg_id);
    expect(reply.content).toEqual(configMap('app-config', '777'));
    expect(JSON.parse(metaRow('default/configmap/app-config')!.value)).toEqual(
      configMap('app-config', '777'),
    );
    const cloudReplyId =
      h.cloud.length && (await h.waitFor('ack', () => h.cloud.find((m) => m.content === 'OK')));
    expect(cloudReplyId).toMatchObject({
      route: { source: 'edgecontroller', group: 'resource', operation: 'response' },
    });
    expect(cloudReplyId && cloudReplyId.header.parent_msg_id).toBe(reply.header.msg_id);
  });

  it('remote query falls back to the database when disconnected, when edgeHub is absent, or on timeout', async () => {
    await start({ connected: false, remoteQueryTimeout: 1 });
    await h.send(cloudMsg('insert', 'default/configmap/c', configMap('c', '5'), '5'));
    await h.waitFor('stored', () => metaRow('default/configmap/c'));
    const off = await h.request(edgedMsg('query', 'default/configmap/c', null));
    expect((off.content as string[]).length).toBe(1);
    expect(h.cloud.filter((m) => m.route.operation === 'query')).toEqual([]);
    h.kernel.cloud.set(true); // connected, but the cloud never answers: 1 s timeout, then local
    const late = await h.request(edgedMsg('query', 'default/configmap/c', null), 5000);
    expect(h.cloud.filter((m) => m.route.operation === 'query').map((m) => m.route.resource)).toEqual([
      'default/configmap/c',
    ]);
    expect(late.route.operation).toBe('response');
    expect((late.content as string[]).map((v) => JSON.parse(v).metadata.name)).toEqual(['c']);
    // edgeHub answers "connection lost" when the link breaks under a request: local answer too.
    h.answer = (req) => newErrorMessage(req, ErrConnectionLost, { source: 'websocket' });
    const lost = await h.request(edgedMsg('query', 'default/configmap/c', null), 5000);
    expect(lost.route.operation).toBe('response');
    expect((lost.content as string[]).map((v) => JSON.parse(v).metadata.name)).toEqual(['c']);
    await h.stop();
    await start({ withCloud: false }); // connected flag set, but no websocket module
    const none = await h.request(edgedMsg('query', 'default/secret/x', null));
    expect(none.route.operation).toBe('response');
    expect(none.content).toEqual([]);
  });

  it('node insert goes remote: {Object, Err} is stored; refused with an error when not connected', async () => {
    await start();
    const node = { metadata: { name: 'edge-1', labels: { 'node-role.kubernetes.io/edge': '' } } };
    h.answer = (req) => {
      const r = newResponse(req, {
        Object: { ...node, metadata: { ...node.metadata, uid: 'u', resourceVersion: '4711' } },
        Err: null,
      });
      r.route.source = 'edgecontroller';
      r.route.group = 'resource';
      return r;
    };
    const ins = edgedMsg('insert', 'null/node/edge-1', node);
    const reply = await h.request(ins);
    expect(reply.header.parent_msg_id).toBe(ins.header.msg_id);
    expect(JSON.parse(metaRow('null/node/edge-1')!.value).metadata.resourceVersion).toBe('4711');
    h.kernel.cloud.set(false);
    const refused = await h.request(edgedMsg('insert', 'null/node/edge-1', node));
    expect(refused.route.operation).toBe('error');
    expect(refused.content).toBe('failed to process remote: not connected');
  });

  it('patch: stored raw, original message (same id) to the cloud; offline an error "connection lost"', async () => {
    await start();
    const p = edgedMsg('patch', 'default/podpatch/web-1', '{"status":{"phase":"Running"}}');
    await h.send(p);
    const fwd = await h.waitFor('forward', () => h.cloud.find((m) => m.route.operation === 'patch'));
    expect(fwd.header.msg_id).toBe(p.header.msg_id);
    expect(metaRow('default/podpatch/web-1')!.value).toBe('{"status":{"phase":"Running"}}');
    h.kernel.cloud.set(false);
    const err = await h.request(edgedMsg('patch', 'null/nodepatch/edge-1', '{}'));
    expect(err.route).toMatchObject({ operation: 'error', source: 'metamanager' });
    expect(err.content).toBe('connection lost between EdgeCore and CloudCore');
  });

  it('node update from edged: stored, forwarded to the cloud, "OK" to edged', async () => {
    await start();
    const u = edgedMsg('update', 'null/node/edge-1', { metadata: { name: 'edge-1', labels: { a: 'b' } } });
    const reply = await h.request(u);
    expect(reply.content).toBe('OK');
    expect(h.cloud.find((m) => m.header.msg_id === u.header.msg_id)).toBeDefined();
    expect(metaRow('null/node/edge-1')).toBeDefined();
  });
});

describe('metaManager: one transaction per message', () => {
  it('a cloud insert whose meta row fails leaves no meta_v2 row, no watch event and no ACK', async () => {
    await start();
    const db = h.kernel.services.get(DatabaseToken);
    db.exec(
      "CREATE TRIGGER refuse_bad BEFORE INSERT ON meta WHEN NEW.key = 'default/pod/bad' " +
        "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END",
    );
    const bad = cloudMsg('insert', 'default/pod/bad', pod('bad', '5'), '5');
    await h.send(bad);
    const err = await h.waitFor('error to cloud', () =>
      h.cloud.find((m) => m.header.parent_msg_id === bad.header.msg_id),
    );
    expect(err.route.operation).toBe('error');
    expect(err.content).toMatch(/refused by test trigger/);
    expect(rows('SELECT key FROM meta_v2')).toEqual([]);
    expect(metaRow('default/pod/bad')).toBeUndefined();
    expect(h.edged).toEqual([]);
    // The next message is stored in both tables.
    const good = cloudMsg('insert', 'default/pod/good', pod('good', '6'), '6');
    await h.send(good);
    await h.waitFor('ack', () => acks(good.header.msg_id).length);
    expect(rows('SELECT key FROM meta_v2').map((r) => r.key)).toEqual(['/core/v1/pods/default/good']);
    expect(metaRow('default/pod/good')).toBeDefined();
  });
});

describe('metaManager: bad input', () => {
  it('non-JSON content, short resource, unknown operation: logged, error reply, nothing stored, still serving', async () => {
    await start();
    const cases: [Message, RegExp][] = [
      [edgedMsg('update', 'null/node/edge-1', 'this is {not json'), /content is not JSON/],
      [edgedMsg('query', 'pod', null), /resource "pod": expected "<namespace>\/<resourceType>\[\/<name>\]"/],
      [edgedMsg('frobnicate', 'default/pod/a', null), /operation "frobnicate": not supported/],
      [edgedMsg('update', 'null/node/edge-1', null), /content is empty/],
    ];
    for (const [msg, text] of cases) {
      const reply = await h.request(msg);
      expect(reply.route.operation, msg.route.operation).toBe('error');
      expect(reply.header.parent_msg_id).toBe(msg.header.msg_id);
      expect(reply.content).toMatch(text);
    }
    // From the cloud (plain send): an error message to the cloud group, no ACK, nothing stored.
    const bad = cloudMsg('insert', 'default/pod/x', 'garbage{');
    await h.send(bad);
    const err = await h.waitFor('error to cloud', () =>
      h.cloud.find((m) => m.header.parent_msg_id === bad.header.msg_id),
    );
    expect(err.route.operation).toBe('error');
    expect(rows('SELECT * FROM meta')).toEqual([]);
    const ok = await h.request(edgedMsg('query', 'default/pod', null));
    expect(ok.content).toEqual([]);
  });
});
