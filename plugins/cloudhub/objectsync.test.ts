/**
 * The ObjectSync AckStore against a real kube-apiserver as the `cloudcore` ServiceAccount: without
 * the CRDs one error naming them and no store (cloudHub keeps the state in memory); with KubeEdge's
 * v1.23.1 CRDs, records created with KubeEdge's names and fields, versions set and read back by a
 * second store (a restarted cloudcore), deleted records forgotten (and remembered as deleted), a
 * record another cloudcore holds never reset to "0".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../kernel/log.js';
import { createKubeApi, type KubeApi } from '../../kernel/kube/index.js';
import { cloudcoreKube, startControlPlane, type ControlPlane } from '../../test/peers/kube.js';
import { cleanup, waitFor } from '../../test/peers/util.js';
import { openObjectSyncStore, parseObjectSyncName, type ObjectSyncStore } from './objectsync.js';
import type { SyncedObject } from './queue.js';

afterAll(cleanup);

const lines: string[] = [];
const log = createLogger('info', {}, (line) => void lines.push(line));

const POD: SyncedObject = { uid: 'u-pod', namespace: 'default', name: 'web', kind: 'Pod', apiVersion: 'v1' };
const NODE: SyncedObject = {
  uid: 'u-node',
  namespace: undefined,
  name: 'edge.a',
  kind: 'Node',
  apiVersion: 'v1',
};

describe('ObjectSyncStore', () => {
  let plane: ControlPlane;
  let kube: KubeApi;
  const abort = new AbortController();

  let restarted: KubeApi | undefined;
  const client = (): KubeApi => cloudcoreKube(plane, log);

  beforeAll(async () => {
    plane = await startControlPlane();
    kube = client();
  }, 3_600_000);

  afterAll(() => {
    abort.abort();
    kube?.stop();
    restarted?.stop();
  });

  const get = async (args: string[]): Promise<Record<string, unknown> | undefined> => {
    try {
      return JSON.parse(await plane.kubectl(['get', ...args, '-o', 'json'])) as Record<string, unknown>;
    } catch (err) {
      if (String(err).includes('NotFound')) return undefined;
      throw err;
    }
  };

  it('names node and UID as KubeEdge does (node names may hold dots)', () => {
    expect(parseObjectSyncName('edge.a.b-1')).toEqual({ node: 'edge.a', uid: 'b-1' });
    expect(parseObjectSyncName('nodot')).toBeUndefined();
  });

  it('without the CRDs: one error naming the CRD and how to install it, no store', async () => {
    expect(await openObjectSyncStore(kube, log, abort.signal)).toBeUndefined();
    const errors = lines.filter((l) => l.startsWith('{"level":50'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('objectsyncs.reliablesyncs.kubeedge.io is not installed');
    expect(errors[0]).toContain('keadm init');
  }, 60_000);

  it('with the CRDs: records written as KubeEdge writes them and read back by a restarted cloudcore', async () => {
    for (const f of ['objectsync', 'cluster_objectsync'])
      await plane.kubectl(['apply', '-f', `test/fixtures/kubeedge-crds/v1.23.1_${f}_v1alpha1.yaml`]);
    await plane.waitForCrds([
      'objectsyncs.reliablesyncs.kubeedge.io',
      'clusterobjectsyncs.reliablesyncs.kubeedge.io',
    ]);

    const store = (await openObjectSyncStore(kube, log, abort.signal)) as ObjectSyncStore;
    expect(store).toBeDefined();
    const writes = (): number => kube.stats().requests - kube.stats().lists - kube.stats().watches;
    const before = writes();
    store.track('edge.a', POD, '0'); // queued
    store.track('edge.a', POD, '41'); // acknowledged before the record was written: one write carries both
    store.track('edge.a', NODE, '7');
    expect(store.acked('edge.a', 'u-pod')).toBe('41');
    await store.flush();
    expect(writes() - before).toBe(4); // per record: create, status

    expect(
      await get(['objectsyncs.reliablesyncs.kubeedge.io', '-n', 'default', 'edge.a.u-pod']),
    ).toMatchObject({
      spec: { objectAPIVersion: 'v1', objectKind: 'Pod', objectName: 'web' },
      status: { objectResourceVersion: '41' },
    });
    expect(await get(['clusterobjectsyncs.reliablesyncs.kubeedge.io', 'edge.a.u-node'])).toMatchObject({
      spec: { objectAPIVersion: 'v1', objectKind: 'Node', objectName: 'edge.a' },
      status: { objectResourceVersion: '7' },
    });

    // a cloudcore started again (its own client and informers) reads what was acknowledged
    restarted = client();
    const again = (await openObjectSyncStore(restarted, log, abort.signal)) as ObjectSyncStore;
    expect(again.acked('edge.a', 'u-pod')).toBe('41');
    expect(again.acked('edge.a', 'u-node')).toBe('7');

    // an acknowledged delete removes the record, here and (through the watch) there
    store.forget('edge.a', POD);
    await store.flush();
    expect(
      await get(['objectsyncs.reliablesyncs.kubeedge.io', '-n', 'default', 'edge.a.u-pod']),
    ).toBeUndefined();
    await waitFor(() => again.acked('edge.a', 'u-pod') === undefined, {
      what: 'the delete seen by the other store',
    });
    expect(store.acked('edge.a', 'u-pod')).toBeUndefined();
    // the node got the delete: a delete still queued for it elsewhere is not sent again
    expect(again.deleted('edge.a', 'u-pod')).toBe(true);
    expect(again.deleted('edge.a', 'u-node')).toBe(false);

    // several cloudcores: one that starts tracking an object ("0") never resets what another recorded
    const WEB2: SyncedObject = { ...POD, uid: 'u-web2', name: 'web2' };
    store.track('edge.a', WEB2, '0');
    store.track('edge.a', WEB2, '9');
    await store.flush();
    again.track('edge.a', WEB2, '0');
    await again.flush();
    expect(
      await get(['objectsyncs.reliablesyncs.kubeedge.io', '-n', 'default', 'edge.a.u-web2']),
    ).toMatchObject({ status: { objectResourceVersion: '9' } });
  }, 120_000);

  it('abandons at stop the writes still queued behind the rate limit, ends the ones sent', async () => {
    // one request a second: the writes of 50 records stay queued
    const slow = createKubeApi(
      { master: '', contentType: '', qps: 1, burst: 1, kubeConfig: plane.cloudcoreKubeconfigPath },
      log,
    );
    try {
      const store = (await openObjectSyncStore(slow, log, abort.signal)) as ObjectSyncStore;
      const sentBefore = slow.stats().requests;
      for (let i = 0; i < 50; i++)
        store.track('edge.b', { ...POD, uid: `u-burst-${i}`, name: `burst-${i}` }, '5');
      lines.length = 0;
      await store.stop();
      const sent = slow.stats().requests - sentBefore;
      expect(sent).toBeLessThan(10);
      const info = lines.map((l) => JSON.parse(l) as { msg: string; abandoned?: number });
      expect(info.find((l) => l.msg.includes('abandoned'))?.abandoned).toBeGreaterThan(40);
      // no warning per abandoned record
      expect(lines.filter((l) => l.includes('cannot write the ObjectSync'))).toHaveLength(0);
    } finally {
      slow.stop();
    }
  }, 60_000);
});
