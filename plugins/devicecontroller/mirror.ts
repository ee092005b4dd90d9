/**
 * The Device's own status (`status.twins`, `state`, `lastOnlineTime`: what v1alpha2 readers and
 * `kubectl get device` see) as a mirror of its v1beta1 DeviceStatus, the record of what the edge
 * reported (KubeEdge 1.23). The edge is confirmed once the DeviceStatus is stored (upstream.ts); the
 * mirror follows behind it with a small share of the API server: MIRRORS_IN_FLIGHT Device writes
 * at once and the DeviceStatus slots left idle, newest wins and one write per device at a time (reports stored meanwhile are
 * coalesced into its next write), devices taken in the order they fell behind. A write never takes
 * a twin side back to an older value than the Device holds (edge timestamps). At start every Device
 * is compared with its DeviceStatus and the ones behind are written (a cloudcore stopped between
 * the two writes loses nothing).
 */
import { setTimeout as delay } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { errorText, type KubeApi, type Logger, type SharedInformer } from '../../kernel/index.js';
import {
  apiStatus,
  devicesPath,
  deviceId,
  stamp,
  type Device,
  type DeviceStatus,
  type ReportedStatus,
  type StatusTwin,
  type TwinProperty,
} from './messages.js';

export interface MirrorOptions {
  kube: KubeApi;
  log: Logger;
  signal: AbortSignal;
  devices: SharedInformer<Device>;
  statuses: SharedInformer<DeviceStatus>;
  /** DeviceStatus patch slots idle now: the mirror may use them too. */
  spare(): number;
}

/**
 * Device writes in flight at once, besides the DeviceStatus patch slots idle now (lower priority:
 * it takes what the DeviceStatus writes leave). Under a flood of reports the DeviceStatus patches
 * (upstream.ts) hold their 16 and the mirror has 2, about a tenth of the writes (a Device merge
 * patch costs kube-apiserver about 1.5 times a DeviceStatus one: larger object and schema); when
 * reports are few it catches up with up to 18.
 */
const MIRRORS_IN_FLIGHT = 2;
/** A Device write that failed is tried again after this (holding its slot: the API server is in trouble). */
const RETRY_MS = 1000;

const MERGE = { contentType: 'application/merge-patch+json' };

const newer = (a: TwinProperty | undefined, b: TwinProperty | undefined): TwinProperty | undefined =>
  a === undefined || (b !== undefined && stamp(b) > stamp(a)) ? b : a;

/** What the Device's status becomes: the DeviceStatus' twins, each side only if not older than the Device's. */
function mirrorOf(source: ReportedStatus, current: ReportedStatus | undefined): ReportedStatus {
  const held = new Map((current?.twins ?? []).map((t) => [t.propertyName, t]));
  const twins: StatusTwin[] = (source.twins ?? []).map((t) => {
    const h = held.get(t.propertyName);
    held.delete(t.propertyName);
    const twin: StatusTwin = { propertyName: t.propertyName };
    const reported = newer(t.reported, h?.reported);
    const observed = newer(t.observedDesired, h?.observedDesired);
    if (reported !== undefined) twin.reported = reported;
    if (observed !== undefined) twin.observedDesired = observed;
    return twin;
  });
  twins.push(...held.values()); // the merge patch replaces the list: the Device's others stay
  const status: ReportedStatus = { twins };
  const state = source.state ?? current?.state;
  const lastOnlineTime = source.lastOnlineTime ?? current?.lastOnlineTime;
  if (state !== undefined) status.state = state;
  if (lastOnlineTime !== undefined) status.lastOnlineTime = lastOnlineTime;
  return status;
}

/** Whether the Device's status holds `status` already. */
function holds(current: ReportedStatus | undefined, status: ReportedStatus): boolean {
  return (
    current?.state === status.state &&
    current?.lastOnlineTime === status.lastOnlineTime &&
    isDeepStrictEqual(current?.twins ?? [], status.twins ?? [])
  );
}

export class Mirror {
  /** Devices whose Device status is behind: the newest DeviceStatus status stored, by device id. */
  private readonly behind = new Map<string, { namespace: string; name: string; source: ReportedStatus }>();
  private readonly writing = new Set<string>();

  constructor(private readonly o: MirrorOptions) {}

  /** The DeviceStatus of `namespace/name` now holds `source`. */
  stored(namespace: string, name: string, source: ReportedStatus): void {
    const id = `${namespace}/${name}`;
    this.behind.set(id, { namespace, name, source });
    this.pump();
  }

  /** Every Device behind its DeviceStatus (once both informers listed). */
  reconcile(): void {
    let n = 0;
    for (const s of this.o.statuses.list()) {
      const id = deviceId(s);
      const namespace = s.metadata?.namespace ?? '';
      const name = s.metadata?.name ?? '';
      const device = this.o.devices.get(name, namespace);
      if (s.status === undefined || device === undefined || this.behind.has(id) || this.writing.has(id))
        continue;
      if (holds(device.status, mirrorOf(s.status, device.status))) continue;
      this.behind.set(id, { namespace, name, source: s.status });
      n++;
    }
    if (n > 0) this.o.log.info({ devices: n }, 'Device statuses behind their DeviceStatus: mirrored');
    this.pump();
  }

  /** A Device deleted. */
  forget(id: string): void {
    this.behind.delete(id);
  }

  /** Starts the writes the slots allow (also called when a DeviceStatus slot frees). */
  pump(): void {
    for (const [id, job] of this.behind) {
      if (this.writing.size >= MIRRORS_IN_FLIGHT + this.o.spare() || this.o.signal.aborted) return;
      if (this.writing.has(id)) continue; // its newer source waits for the write in flight
      this.behind.delete(id);
      this.writing.add(id);
      void this.write(id, job).finally(() => {
        this.writing.delete(id);
        this.pump();
      });
    }
  }

  private async write(
    id: string,
    job: { namespace: string; name: string; source: ReportedStatus },
  ): Promise<void> {
    const { namespace, name, source } = job;
    const device = this.o.devices.get(name, namespace);
    if (device === undefined) return; // deleted
    // the informer may not show this device's previous write yet: a stale status is older (the
    // sources come in order), so the twins still never go back and the state is the source's
    const status = mirrorOf(source, device.status);
    try {
      await this.o.kube.request('PATCH', devicesPath('devices', namespace, name), { status }, MERGE);
    } catch (err) {
      if (apiStatus(err) === 404) return;
      this.o.log.warn({ device: id, err: errorText(err) }, 'Device status not mirrored: tried again');
      await delay(RETRY_MS, undefined, { signal: this.o.signal }).catch(() => undefined);
      if (!this.behind.has(id)) this.behind.set(id, job);
    }
  }
}
