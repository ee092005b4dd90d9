/**
 * deviceController (KubeEdge's `devicecontroller` module, group `devicecontroller`) of cloudcore:
 * v1beta1 Devices and DeviceModels go to the node of each device (membership, model, device,
 * desired values inside the device); the edge's reported twins and device states come back into
 * the DeviceStatus and the Device's status. See README.md.
 */
import { setTimeout as delay } from 'node:timers/promises';
import {
  KubeToken,
  definePlugin,
  errorText,
  idleWithoutKube,
  type ModuleConfig,
} from '../../kernel/index.js';
import { CloudHubModuleName, DeviceControllerModuleName } from '../../protocol/index.js';
import type { DeviceControllerConfig } from './config.js';
import { DeviceControllerGroup, DevicesGroup, DevicesVersion, apiStatus } from './messages.js';

export default definePlugin<DeviceControllerConfig & ModuleConfig>({
  name: DeviceControllerModuleName,
  group: DeviceControllerGroup,
  configKey: 'deviceController',
  // a handler waits for the caches' first list and cloudHub's mailbox only: the status patches run
  // behind it (upstream.ts: one per device at a time, 16 devices at once)
  concurrency: 16,
  async start(ctx) {
    const [{ Upstream }, { Downstream }] = await Promise.all([
      import('./upstream.js'),
      import('./downstream.js'),
    ]);
    // a message not handled (`upstream`: unsupported, malformed, not stored; `downstream`: refused by cloudHub)
    const droppedTotal = ctx.metrics.replace(
      'kubeedge_devicecontroller_dropped_total',
      (prom, registry) =>
        new prom.Counter({
          name: 'kubeedge_devicecontroller_dropped_total',
          help: 'Messages deviceController did not handle, by direction and reason',
          labelNames: ['direction', 'reason'],
          registers: [registry],
        }),
    );
    const dropped = (direction: 'upstream' | 'downstream', reason: string): void =>
      droppedTotal.inc({ direction, reason });
    if (!ctx.services.has(KubeToken))
      return idleWithoutKube(ctx, 'deviceController drops the edge reports', () =>
        dropped('upstream', 'no-kubernetes'),
      );
    const kube = ctx.services.get(KubeToken);
    const send = (msg: Parameters<typeof ctx.send>[1]): Promise<void> => ctx.send(CloudHubModuleName, msg);
    const upstream = new Upstream({
      kube,
      log: ctx.log,
      signal: ctx.signal,
      send,
      dropped: (reason) => dropped('upstream', reason),
    });
    const downstream = new Downstream({
      kube,
      log: ctx.log,
      signal: ctx.signal,
      devices: upstream.devices,
      send,
      added: (d) => void upstream.ensureStatus(d),
      dropped: (reason) => dropped('downstream', reason),
    });
    // The informers list and watch in the background once the API server serves the device CRDs;
    // until then (404) the plugin is idle and checks again every 10 s, so CRDs installed later
    // (keadm init after cloudcore) are picked up without a restart.
    let idle = false;
    const served = async (): Promise<void> => {
      let warned = false;
      while (!ctx.signal.aborted) {
        const answer = await kube.request('GET', `/apis/${DevicesGroup}/${DevicesVersion}`).then(
          () => 'served' as const,
          (err: unknown) => (apiStatus(err) === 404 ? ('absent' as const) : ('no answer' as const)),
        );
        if (answer === 'served') return;
        if (answer === 'absent') {
          idle = true;
          if (!warned)
            ctx.log.warn(
              `deviceController: the API server does not serve ${DevicesGroup}/${DevicesVersion} (CRDs devices, devicemodels, devicestatuses): install them (keadm init, or kubectl apply -f crds/); edge reports are dropped meanwhile`,
            );
          warned = true;
        }
        await delay(answer === 'absent' ? 10_000 : 1000, undefined, { signal: ctx.signal }).catch(
          () => undefined,
        );
      }
    };
    void served().then(() => {
      if (ctx.signal.aborted) return;
      idle = false;
      downstream.start().then(
        () => ctx.log.info('deviceController: devices and device models watched'),
        (err: unknown) => {
          if (!ctx.signal.aborted)
            ctx.log.error({ err: errorText(err) }, 'deviceController: the informers cannot start');
        },
      );
    });
    return {
      onMessage(msg) {
        if (!idle) return upstream.handle(msg);
        dropped('upstream', 'no-crds');
        const { resource, operation, source } = msg.route;
        ctx.log.warn({ resource, operation, source }, 'upstream message dropped: no device CRDs');
      },
      stop() {
        downstream.stop();
        upstream.stop();
      },
    };
  },
});
