/**
 * The resync pass against a real kube-apiserver (KubeEdge v1.23.1's ObjectSync CRDs) as the
 * `cloudcore` ServiceAccount, cloudHub played by a `send` that takes a few messages and then
 * refuses as a full mailbox does: a pass ends at the first refusal (one log line) and the next
 * offers the rest; what cloudHub took is not offered again while record and object are unchanged;
 * a changed object is offered at once; after {@link REOFFER_PASSES} passes an unacknowledged
 * offer is made once more.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KernelError, type Message } from '../../kernel/index.js';
import type { KubeApi } from '../../kernel/kube/index.js';
import { createLogger } from '../../kernel/log.js';
import { busyboxPod } from '../../test/helpers/pod.js';
import { cloudcoreKube, startControlPlane, type ControlPlane } from '../../test/peers/kube.js';
import { cleanup, waitFor } from '../../test/peers/util.js';
import { REOFFER_PASSES, SyncController } from './controller.js';

afterAll(cleanup);

const NODE = 'edge-sync';
const PODS = ['p0', 'p1', 'p2', 'p3', 'p4'];
const lines: string[] = [];
const log = createLogger('warn', {}, (line) => void lines.push(line));

describe('SyncController resync pass', () => {
  let plane: ControlPlane;
  let kube: KubeApi;
  const abort = new AbortController();

  beforeAll(async () => {
    plane = await startControlPlane();
    await plane.kubectl(['create', 'serviceaccount', 'default', '-n', 'default']);
    for (const f of ['objectsync', 'cluster_objectsync'])
      await plane.kubectl(['apply', '-f', `test/fixtures/kubeedge-crds/v1.23.1_${f}_v1alpha1.yaml`]);
    await plane.waitForCrds([
      'objectsyncs.reliablesyncs.kubeedge.io',
      'clusterobjectsyncs.reliablesyncs.kubeedge.io',
    ]);
    await plane.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE } }),
    });
    // pods the edge was sent ("0": never acknowledged), so each needs an update
    for (const name of PODS) {
      const pod = JSON.parse(
        await plane.kubectl(['create', '-o', 'json', '-f', '-'], {
          input: JSON.stringify(busyboxPod(NODE, name, {})),
        }),
      ) as { metadata: { uid: string } };
      const sync = `${NODE}.${pod.metadata.uid}`;
      await plane.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({
          apiVersion: 'reliablesyncs.kubeedge.io/v1alpha1',
          kind: 'ObjectSync',
          metadata: { name: sync, namespace: 'default' },
          spec: { objectAPIVersion: 'v1', objectKind: 'Pod', objectName: name },
        }),
      });
      await plane.kubectl([
        'patch',
        'objectsyncs.reliablesyncs.kubeedge.io',
        '-n',
        'default',
        sync,
        '--subresource=status',
        '--type=merge',
        '-p',
        '{"status":{"objectResourceVersion":"0"}}',
      ]);
    }
    kube = cloudcoreKube(plane, log);
  }, 3_600_000);

  afterAll(() => {
    abort.abort();
    kube?.stop();
  });

  it('offers each pending object once, resumes after a full mailbox, offers a change at once', async () => {
    const taken: Message[] = [];
    let capacity = 3;
    const controller = new SyncController({
      kube,
      log,
      signal: abort.signal,
      send: async (msg) => {
        if (taken.length >= capacity)
          throw new KernelError('EBUS_QUEUE_FULL', 'module "cloudhub" queue is full (3 messages)');
        taken.push(msg);
      },
      count: () => undefined,
    });
    const name = (m: Message): string => (m.route.resource ?? '').split('/').pop()!;
    try {
      await controller.synced();
      // the first passes open the pods' informer; the first with offers fills the "mailbox"
      await waitFor(
        async () => {
          await controller.reconcile();
          return taken.length > 0;
        },
        { what: 'a pass with offers' },
      );
      expect(taken).toHaveLength(3);
      const refused = lines.filter((l) => l.includes('cloudHub takes no more messages now'));
      expect(refused).toHaveLength(1);

      // room again: the next pass offers the rest only, the one after nothing
      capacity = Infinity;
      await controller.reconcile();
      expect(taken.map(name).sort()).toEqual(PODS);
      await controller.reconcile();
      expect(taken).toHaveLength(PODS.length);
      expect(taken.every((m) => m.route.operation === 'update')).toBe(true);

      // a changed object is offered at once, with its new version
      await plane.kubectl(['label', 'pod', 'p0', '-n', 'default', 'changed=yes']);
      const rv = (
        JSON.parse(await plane.kubectl(['get', 'pod', 'p0', '-n', 'default', '-o', 'json'])) as {
          metadata: { resourceVersion: string };
        }
      ).metadata.resourceVersion;
      // the controller's pods informer (shared: same collection) has the change: one pass offers it
      const pods = kube.informer({ version: 'v1', resource: 'pods', signal: abort.signal });
      await waitFor(() => pods.get('p0', 'default')?.metadata?.resourceVersion === rv, {
        what: 'the change in the informer',
      });
      await controller.reconcile();
      expect(taken).toHaveLength(PODS.length + 1);
      expect(name(taken[PODS.length]!)).toBe('p0');
      expect(taken[PODS.length]!.header.resourceversion).toBe(rv);

      // still unacknowledged after REOFFER_PASSES passes: offered once more, each once
      for (let i = 0; i < REOFFER_PASSES; i++) await controller.reconcile();
      const again = taken.slice(PODS.length + 1);
      expect(again.map(name).sort()).toEqual(PODS);
    } finally {
      controller.stop();
    }
  }, 120_000);
});
