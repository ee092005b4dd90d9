/**
 * Leader election against a real kube-apiserver as the `cloudcore` ServiceAccount, with short
 * timings: of two candidates one leads; a holder that vanished without releasing (another identity
 * written into the Lease and never renewed) is replaced once its record stayed unchanged for the
 * lease duration; never two leaders at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../kernel/log.js';
import { createKubeApi, type KubeApi } from '../../kernel/kube/index.js';
import { cloudcoreKube, startControlPlane, type ControlPlane } from '../../test/peers/kube.js';
import { cleanup, waitFor } from '../../test/peers/util.js';
import { LeaderElector } from './leader.js';

afterAll(cleanup);

const log = createLogger('silent');

describe('LeaderElector', () => {
  let plane: ControlPlane;
  let kube: KubeApi;

  beforeAll(async () => {
    plane = await startControlPlane();
    kube = cloudcoreKube(plane, log);
  }, 3_600_000);

  afterAll(() => kube?.stop());

  it('one leader at a time; a holder that stopped renewing is replaced after the lease duration', async () => {
    const leading = new Set<string>();
    let overlap = false;
    const candidate = (identity: string): LeaderElector =>
      new LeaderElector({
        kube,
        log,
        namespace: 'kubeedge',
        name: 'test-election',
        identity,
        leaseDurationMs: 2000,
        renewDeadlineMs: 1500,
        retryPeriodMs: 200,
        onStartedLeading: () => {
          leading.add(identity);
          if (leading.size > 1) overlap = true;
        },
        onStoppedLeading: () => leading.delete(identity),
      });
    const a = candidate('a');
    const b = candidate('b');
    a.start();
    b.start();
    try {
      await waitFor(() => leading.size === 1, { what: 'one leader' });
      const first = [...leading][0]!;
      const holder = async (): Promise<{ holderIdentity?: string; renewTime?: string }> =>
        (
          JSON.parse(
            await plane.kubectl(['get', 'lease', '-n', 'kubeedge', 'test-election', '-o', 'json']),
          ) as {
            spec: { holderIdentity?: string; renewTime?: string };
          }
        ).spec;
      expect((await holder()).holderIdentity).toBe(first);

      // a holder that crashed: its identity in the Lease, never renewed
      const lease = JSON.parse(
        await plane.kubectl(['get', 'lease', '-n', 'kubeedge', 'test-election', '-o', 'json']),
      ) as { metadata: Record<string, unknown>; spec: Record<string, unknown> };
      lease.spec.holderIdentity = 'ghost';
      delete lease.metadata.resourceVersion; // unconditional: the leader renews meanwhile
      await plane.kubectl(['replace', '-f', '-'], { input: JSON.stringify(lease) });
      await waitFor(() => leading.size === 0, { what: 'the candidates see the ghost and follow' });
      const ghostSeen = Date.now();
      await waitFor(() => leading.size === 1, { what: 'a candidate takes over', timeoutMs: 15_000 });
      expect(Date.now() - ghostSeen).toBeGreaterThanOrEqual(1500);
      const next = await holder();
      expect(['a', 'b']).toContain(next.holderIdentity);
      expect(overlap).toBe(false);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    // the leader released the Lease when it stopped
    expect(
      (
        JSON.parse(
          await plane.kubectl(['get', 'lease', '-n', 'kubeedge', 'test-election', '-o', 'json']),
        ) as {
          spec: { holderIdentity?: string };
        }
      ).spec.holderIdentity ?? '',
    ).toBe('');
  }, 120_000);

  it('leads, renews and releases while the client is saturated by queued requests', async () => {
    // every slot of the client held by a request that does not end, 100 more queued behind
    const busy = createKubeApi(
      { master: '', contentType: '', qps: 1000, burst: 1000, kubeConfig: plane.cloudcoreKubeconfigPath },
      log,
    );
    let queuedEnded = 0;
    const queued = Array.from({ length: 132 }, () =>
      busy
        .request('GET', '/api/v1/namespaces/kubeedge/configmaps?watch=true&timeoutSeconds=600')
        .catch(() => undefined)
        .finally(() => queuedEnded++),
    );
    let leading = false;
    const elector = new LeaderElector({
      kube: busy,
      log,
      namespace: 'kubeedge',
      name: 'burst-election',
      identity: 'busy',
      leaseDurationMs: 2000,
      renewDeadlineMs: 1500,
      retryPeriodMs: 200,
      onStartedLeading: () => (leading = true),
      onStoppedLeading: () => (leading = false),
    });
    const renewTime = async (): Promise<string | undefined> => {
      try {
        return (
          JSON.parse(
            await plane.kubectl(['get', 'lease', '-n', 'kubeedge', 'burst-election', '-o', 'json']),
          ) as { spec: { renewTime?: string } }
        ).spec.renewTime;
      } catch {
        return undefined;
      }
    };
    try {
      elector.start();
      await waitFor(() => leading, { what: 'the candidate leads' });
      const first = await renewTime();
      await waitFor(async () => (await renewTime()) !== first, { what: 'a renewal' });
      expect(leading).toBe(true);
      await elector.stop();
      expect(
        (
          JSON.parse(
            await plane.kubectl(['get', 'lease', '-n', 'kubeedge', 'burst-election', '-o', 'json']),
          ) as { spec: { holderIdentity?: string } }
        ).spec.holderIdentity ?? '',
      ).toBe('');
      // all that while, nothing of the queue got through
      expect(queuedEnded).toBe(0);
    } finally {
      await elector.stop();
      busy.stop();
      await Promise.all(queued);
    }
  }, 120_000);
});
