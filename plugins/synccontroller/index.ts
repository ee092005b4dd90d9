/**
 * syncController (KubeEdge's `synccontroller` module, group `synccontroller`) of cloudcore: the
 * periodic resync of ObjectSyncs/ClusterObjectSyncs with their objects (wire-cloud-edge §6.5), in
 * every cloudcore (each cloudHub delivers to the nodes it holds); the records of vanished nodes are
 * collected by one cloudcore of the cluster: the holder of the Lease
 * `kubeedge/cloudcore-synccontroller`. See README.md.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  KubeToken,
  definePlugin,
  errorText,
  idleWithoutKube,
  isKernelError,
  type KubeApi,
  type ModuleConfig,
} from '../../kernel/index.js';
import { CloudHubModuleName } from '../../protocol/index.js';
import type { SyncControllerConfig } from './config.js';

export const SyncControllerModuleName = 'synccontroller';
/** The Lease of the leader election (namespace, name). */
export const LeaseNamespace = 'kubeedge';
export const LeaseName = 'cloudcore-synccontroller';
const METRIC = 'kubeedge_synccontroller_actions_total';

/** The first ObjectSync CRD the API does not serve, if any. */
async function missingCrd(kube: KubeApi): Promise<string | undefined> {
  for (const resource of ['objectsyncs', 'clusterobjectsyncs']) {
    try {
      await kube.request('GET', `/apis/reliablesyncs.kubeedge.io/v1alpha1/${resource}?limit=1`);
    } catch (err) {
      if (isKernelError(err, 'EKUBE_API') && (err as { statusCode?: number }).statusCode === 404)
        return `${resource}.reliablesyncs.kubeedge.io`;
      throw err;
    }
  }
  return undefined;
}

export default definePlugin<SyncControllerConfig & ModuleConfig>({
  name: SyncControllerModuleName,
  group: SyncControllerModuleName,
  configKey: 'syncController',
  async start(ctx) {
    if (!ctx.services.has(KubeToken))
      return idleWithoutKube(ctx, 'syncController has nothing to reconcile and stays idle');
    const [{ SyncController }, { LeaderElector }] = await Promise.all([
      import('./controller.js'),
      import('./leader.js'),
    ]);
    const kube = ctx.services.get(KubeToken);
    const missing = await missingCrd(kube);
    if (missing !== undefined) {
      ctx.log.warn(
        { crd: missing },
        `the CRD ${missing} is not installed: syncController stays idle (install KubeEdge's CRDs with keadm init or kubectl apply -f crds/, then restart cloudcore)`,
      );
      return { onMessage() {}, stop() {} };
    }
    const counter = ctx.metrics.replace(
      METRIC,
      (prom, registry) =>
        new prom.Counter({
          name: METRIC,
          help: 'syncController: update and delete messages offered to cloudHub again, ObjectSyncs of vanished nodes collected, resync passes',
          labelNames: ['action'],
          registers: [registry],
        }),
    );
    const controller = new SyncController({
      kube,
      log: ctx.log,
      signal: ctx.signal,
      send: (msg) => ctx.send(CloudHubModuleName, msg),
      count: (action) => counter.inc({ action }),
    });
    const identity = `${hostname()}_${randomUUID()}`;
    const elector = new LeaderElector({
      kube,
      log: ctx.log,
      namespace: LeaseNamespace,
      name: LeaseName,
      identity,
      onStartedLeading: () => {
        void ready.then((ok) => {
          if (ok && elector.isLeader) controller.lead();
        });
      },
      onStoppedLeading: () => controller.follow(),
    });
    // the resync runs in every cloudcore (each cloudHub sends to the nodes it holds), the
    // collection of vanished nodes' records in the leader only
    const ready = controller.synced().then(
      () => true,
      (err: unknown) => {
        if (!ctx.signal.aborted)
          ctx.log.error({ err: errorText(err) }, 'syncController: the informers cannot start');
        return false;
      },
    );
    void ready.then((ok) => (ok ? controller.run() : undefined));
    elector.start();
    ctx.log.info(
      { lease: `${LeaseNamespace}/${LeaseName}`, identity },
      'syncController started: electing a leader',
    );
    return {
      onMessage(msg) {
        ctx.log.debug({ resource: msg.route.resource }, 'syncController takes no messages');
      },
      async stop() {
        await elector.stop();
        controller.stop();
      },
    };
  },
});
