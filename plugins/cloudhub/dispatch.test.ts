/** Unit tests of cloudHub's routing rules (§2.6, §5.0.1, §6.1) and of the ACK-mode queue (§6.2). */
import { describe, expect, it } from 'vitest';
import { newMessage, type Message, type MessageRoute } from '../../kernel/index.js';
import { classifyUpstream, edgeResource, needsAck, nodeOf, toEdge } from './dispatch.js';
import { MemoryAckStore, NodeQueue } from './queue.js';

const msg = (route: MessageRoute, content: unknown = null, rv?: string, parentId?: string): Message =>
  newMessage(route, content, { resourceVersion: rv, parentId });

describe('upstream dispatch (§5.0.1)', () => {
  const up = (route: MessageRoute, parentId?: string) =>
    classifyUpstream(msg(route, null, undefined, parentId), 'edge-1');

  it('follows the rows in order', () => {
    expect(up({ operation: 'ping' })).toEqual({ kind: 'control' });
    expect(up({ source: 'websocket', group: 'resource', operation: 'keepalive', resource: 'node' })).toEqual({
      kind: 'keepalive',
    });
    expect(up({ operation: 'response', resource: 'default/volume/v1' })).toEqual({ kind: 'volume' });
    expect(
      up({ source: 'edgecontroller', operation: 'response', resource: 'default/pod/p' }, 'id-1'),
    ).toEqual({
      kind: 'ack',
      parentId: 'id-1',
    });
    expect(up({ source: 'metamanager', operation: 'error', resource: 'default/pod/p' })).toEqual({
      kind: 'error',
    });
    expect(up({ source: 'bus', group: 'user', operation: 'upload', resource: 'default/ke-up' })).toEqual({
      kind: 'module',
      module: 'router',
      resource: 'node/edge-1/default/ke-up',
    });
    // a Go serviceBus's own failure answer has no operation: the router's still
    expect(up({ source: 'servicebus', group: 'user' }, 'req-1')).toEqual({
      kind: 'module',
      module: 'router',
      resource: 'node/edge-1/',
    });
    expect(
      up({ source: 'websocket', group: 'hub', operation: 'UpdateNodeActionStatus', resource: 'x' }),
    ).toEqual({
      kind: 'group',
      group: 'taskmanager',
    });
    expect(up({ source: 'metamanager', group: 'meta', operation: 'query', resource: 'k8s/ca.crt' })).toEqual({
      kind: 'kubeCa',
    });
    expect(up({ source: 'edgecontroller', operation: 'update', resource: 'default/pod/p' }).kind).toBe(
      'drop',
    );
  });

  it('sends the rest by source with the node/<id>/ prefix', () => {
    expect(
      up({ source: 'edged', group: 'meta', operation: 'patch', resource: 'default/podpatch/p' }),
    ).toEqual({
      kind: 'module',
      module: 'edgecontroller',
      resource: 'node/edge-1/default/podpatch/p',
    });
    expect(
      up({ source: 'twin', group: 'resource', operation: 'update', resource: 'device/d/twin/edge_updated' }),
    ).toEqual({
      kind: 'module',
      module: 'devicecontroller',
      resource: 'node/edge-1/device/d/twin/edge_updated',
    });
    expect(
      up({ source: 'metaserver', group: 'dynamiccontroller', operation: 'null', resource: 'null' }),
    ).toEqual({
      kind: 'module',
      module: 'dynamiccontroller',
      resource: 'node/edge-1/null',
    });
    // the recorded session's empty message goes to edgecontroller as KubeEdge sends it
    expect(up({})).toEqual({ kind: 'module', module: 'edgecontroller', resource: 'node/edge-1/' });
  });
});

describe('downstream resources (§2.6)', () => {
  it('finds the node and trims the prefix as GetNodeID / TrimMessage do', () => {
    expect(nodeOf('node/edge-1/default/pod/p')).toBe('edge-1');
    expect(nodeOf('upgrade/task-1/node/edge-2')).toBe('edge-2');
    expect(nodeOf('node//default/pod/p')).toBeUndefined();
    expect(nodeOf('default/pod/p')).toBeUndefined();
    expect(edgeResource('node/edge-1/default/pod/p')).toBe('default/pod/p');
    expect(edgeResource('node/edge-1/membership')).toBe('membership');
    expect(edgeResource('node/edge-1/')).toBe('');
    expect(edgeResource('upgrade/task-1/node/edge-2')).toBe('upgrade/task-1/node/edge-2');
  });

  it('clears sync and keeps the id, parent and version on the wire', () => {
    const m = msg(
      { source: 'edgecontroller', group: 'resource', operation: 'update', resource: 'node/e/default/pod/p' },
      {},
      '7',
    );
    m.header.sync = true;
    const w = toEdge(m);
    expect(w.header).toEqual({
      msg_id: m.header.msg_id,
      timestamp: m.header.timestamp,
      resourceversion: '7',
    });
    expect(w.route.resource).toBe('default/pod/p');
  });
});

describe('ACK mode (§6.1)', () => {
  const ack = (route: MessageRoute, content: unknown = {}) => needsAck(msg(route, content));
  it('classifies as noAckRequired does', () => {
    const ec = { source: 'edgecontroller', group: 'resource' };
    expect(ack({ ...ec, operation: 'update', resource: 'node/e/default/pod/p' })).toBe(true);
    expect(ack({ ...ec, operation: 'update', resource: 'node/e/default/configmap/c' })).toBe(true);
    expect(ack({ ...ec, operation: 'update', resource: 'node/e/null/node/e' })).toBe(true);
    expect(ack({ ...ec, operation: 'response', resource: 'node/e/null/node/e' })).toBe(false);
    expect(ack({ ...ec, operation: 'response', resource: 'node/e/default/configmap/c' })).toBe(true);
    expect(ack({ ...ec, operation: 'response', resource: 'node/e/default/pod/p' })).toBe(false);
    expect(ack({ ...ec, operation: 'response', resource: 'node/e/default/secret/s' }, 'OK')).toBe(false);
    const notFound = { ErrStatus: { status: 'Failure', reason: 'NotFound', code: 404 } };
    expect(ack({ ...ec, operation: 'response', resource: 'node/e/default/configmap/c' }, notFound)).toBe(
      false,
    );
    expect(ack({ ...ec, operation: 'response', resource: 'node/e/kube-node-lease/lease/e' })).toBe(false);
    expect(ack({ ...ec, operation: 'response', resource: 'node/e/default/serviceaccounttoken/t' })).toBe(
      false,
    );
    expect(
      ack({ source: 'devicecontroller', group: 'twin', operation: 'update', resource: 'node/e/membership' }),
    ).toBe(false);
    expect(
      ack({
        source: 'devicecontroller',
        group: 'resource',
        operation: 'insert',
        resource: 'node/e/default/device/d',
      }),
    ).toBe(true);
    expect(
      ack({ source: 'router_eventbus', group: 'user', operation: 'publish', resource: 'node/e/t' }),
    ).toBe(false);
    expect(
      ack({ source: 'taskmanager', group: 'taskmanager', operation: 'Pull', resource: 'a/b/node/e' }),
    ).toBe(false);
    expect(
      ack({
        source: 'dynamiccontroller',
        group: 'resource',
        operation: 'applicationResponse',
        resource: 'node/e/x',
      }),
    ).toBe(false);
  });
});

describe('the ACK-mode queue of a node (§6.2)', () => {
  const pod = (
    uid: string,
    rv: string | undefined,
    operation = 'update',
    extra: Record<string, unknown> = {},
  ) =>
    msg(
      { source: 'edgecontroller', group: 'resource', operation, resource: `node/e/default/pod/${uid}` },
      { kind: 'Pod', metadata: { uid, name: uid, ...extra } },
      rv,
    );

  it('keeps the newest version per object, one in flight, and records what was acknowledged', () => {
    const acks = new MemoryAckStore();
    const q = new NodeQueue('e', acks, 10);
    const a1 = pod('a', '5');
    const a2 = pod('a', '7');
    const b = pod('b', '3');
    expect(q.admit(a1)).toEqual({ queued: true });
    expect(acks.acked('e', 'a')).toBe('0');
    expect(q.admit(a2)).toEqual({ queued: true });
    expect(q.admit(pod('a', '6'))).toEqual({ queued: false, reason: 'not-newer' });
    expect(q.admit(b)).toEqual({ queued: true });
    expect(q.depth).toBe(2);
    expect(q.take()).toBe(a2);
    expect(q.take()).toBeUndefined(); // one in flight
    expect(q.ack('other')).toBeUndefined();
    expect(q.ack(a2.header.msg_id)).toBe(a2);
    expect(acks.acked('e', 'a')).toBe('7');
    expect(q.admit(pod('a', '7'))).toEqual({ queued: false, reason: 'not-newer' });
    expect(q.take()).toBe(b);
  });

  it('admits deletes without a version, refuses what it cannot key, forgets deleted objects', () => {
    const acks = new MemoryAckStore();
    const q = new NodeQueue('e', acks, 10);
    expect(q.admit(pod('a', undefined))).toEqual({ queued: false, reason: 'no-version' });
    expect(q.admit(msg({ group: 'resource', operation: 'update' }, { metadata: {} }, '1'))).toEqual({
      queued: false,
      reason: 'no-uid',
    });
    expect(q.admit(msg({ group: 'twin', operation: 'update' }, { metadata: { uid: 'x' } }, '1'))).toEqual({
      queued: false,
      reason: 'not-resource-group',
    });
    q.admit(pod('a', '4'));
    q.ack(q.take()!.header.msg_id);
    const del = pod('a', undefined, 'delete');
    expect(q.admit(del)).toEqual({ queued: true });
    expect(q.admit(pod('a', '9'))).toEqual({ queued: false, reason: 'not-newer' }); // a delete is held
    expect(q.take()).toBe(del);
    q.ack(del.header.msg_id);
    expect(acks.acked('e', 'a')).toBeUndefined();
    expect(q.admit(pod('b', undefined, 'update', { deletionTimestamp: '2026-01-01T00:00:00Z' }))).toEqual({
      queued: true,
    });
  });

  it('records what an ObjectSync needs; only a delete ends the record; a delete already held is not queued twice', () => {
    const tracked: unknown[] = [];
    const acks = new MemoryAckStore();
    const spy = {
      acked: (n: string, u: string) => acks.acked(n, u),
      track: (n: string, o: Parameters<typeof acks.track>[1], v: string) => {
        tracked.push({ ...o, v });
        acks.track(n, o, v);
      },
      forget: (n: string, o: Parameters<typeof acks.forget>[1]) => acks.forget(n, o),
      deleted: (n: string, u: string) => acks.deleted(n, u),
      watch: () => undefined,
    };
    const q = new NodeQueue('e', spy, 10);
    const dying = pod('a', '5', 'update', { deletionTimestamp: '2026-01-01T00:00:00Z' });
    q.admit(dying);
    q.ack(q.take()!.header.msg_id);
    expect(acks.acked('e', 'a')).toBe('5'); // a pod being deleted is still a version
    expect(tracked).toContainEqual({
      uid: 'a',
      namespace: 'default',
      name: 'a',
      kind: 'Pod',
      apiVersion: '',
      v: '5',
    });
    const del = pod('a', undefined, 'delete');
    expect(q.admit(del)).toEqual({ queued: true });
    expect(q.take()).toBe(del);
    expect(q.admit(pod('a', undefined, 'delete'))).toEqual({ queued: false, reason: 'not-newer' });
    q.ack(del.header.msg_id);
    expect(acks.acked('e', 'a')).toBeUndefined();
    expect(q.depth).toBe(0);
  });

  it('drops at sending what the node got through another cloudcore (the shared acknowledgements)', () => {
    const acks = new MemoryAckStore();
    // this cloudcore queues for a node another cloudcore holds
    const here = new NodeQueue('e', acks, 10);
    const there = new NodeQueue('e', acks, 10);
    const v5 = pod('a', '5');
    const gone = pod('b', '3');
    for (const q of [here, there]) {
      q.admit(v5);
      q.admit(gone);
    }
    const goneDelete = pod('b', undefined, 'delete');
    here.admit(goneDelete);
    there.admit(goneDelete);
    // the other cloudcore delivers v5 and the delete; the node then connects here
    there.ack(there.take()!.header.msg_id);
    expect(there.take()).toBe(goneDelete);
    there.ack(goneDelete.header.msg_id);
    expect(here.take()).toBeUndefined();
    expect(here.depth).toBe(0);
    // pruned as soon as the other cloudcore's acknowledgement is seen, before its turn comes
    const c = pod('c', '2');
    here.admit(c);
    there.admit(c);
    there.ack(there.take()!.header.msg_id);
    expect(here.depth).toBe(1);
    here.prune('c');
    expect(here.depth).toBe(0);
    // a newer version still goes
    const v6 = pod('a', '6');
    expect(here.admit(v6)).toEqual({ queued: true });
    expect(here.take()).toBe(v6);
  });

  it('is bounded: beyond the limit the oldest waiting object is pushed out, never the one in flight', () => {
    const q = new NodeQueue('e', new MemoryAckStore(), 2);
    const a = pod('a', '1');
    const b = pod('b', '1');
    q.admit(a);
    expect(q.take()).toBe(a);
    q.admit(b);
    const c = pod('c', '1');
    expect(q.admit(c)).toEqual({ queued: true, evicted: b });
    expect(q.depth).toBe(2);
  });

  it('puts the message in flight first in line when the connection ends, and after a back-off when not acknowledged', async () => {
    const q = new NodeQueue('e', new MemoryAckStore(), 10);
    const a = pod('a', '1');
    const b = pod('b', '1');
    q.admit(a);
    q.admit(b);
    expect(q.take()).toBe(a);
    q.release();
    expect(q.take()).toBe(a);
    let ready!: () => void;
    const back = new Promise<void>((r) => (ready = r));
    expect(q.park(() => ready())).toBe(5);
    expect(q.take()).toBe(b);
    q.ack(b.header.msg_id);
    await back;
    expect(q.take()).toBe(a);
    q.close();
  });
});
