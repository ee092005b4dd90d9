/**
 * deviceController's upstream half (KubeEdge's UpstreamController, spec devices-dmi-router §2.4):
 * the edge's reported twins and device states become merge patches of the v1beta1 DeviceStatus,
 * the record of what the edge reported (KubeEdge 1.23); each message is confirmed `OK` once a
 * DeviceStatus patch holding it is stored. The Device's own status (what v1alpha2 readers and
 * `kubectl get device` see) follows as a mirror (mirror.ts). The edge's `membership/detail` request
 * (sent after every reconnect) is answered with the node's complete device set.
 */
import {
  Operation,
  errorText,
  isKernelError,
  type KubeApi,
  type Logger,
  type Message,
  type SharedInformer,
} from '../../kernel/index.js';
import { TwinGroup } from '../../protocol/index.js';
import {
  apiStatus,
  DevicesApiVersion,
  DevicesGroup,
  DevicesVersion,
  devicesPath,
  deviceId,
  membershipEntry,
  stamp,
  toNode,
  type Device,
  type DeviceStatus,
  type ReportedStatus,
  type StatusTwin,
  type TwinProperty,
} from './messages.js';
import { Mirror } from './mirror.js';

export interface UpstreamOptions {
  kube: KubeApi;
  log: Logger;
  signal: AbortSignal;
  send(msg: Message): Promise<void>;
  /** A message not handled: `bad-resource`, `bad-content`, `unsupported`, `failed`, `reply-undeliverable`. */
  dropped(reason: string): void;
}

/** A twin side as the edge sends it (`expected` / `actual` of `MsgTwin`). */
interface EdgeSide {
  value?: string | null;
  metadata?: { timestamp?: number } | null;
}

interface EdgeTwin {
  expected?: EdgeSide | null;
  actual?: EdgeSide | null;
  metadata?: { type?: string } | null;
}

/** What this cloudcore holds of one device's status, and the patch in progress. */
interface Entry {
  namespace: string;
  name: string;
  twins: Map<string, StatusTwin>;
  state?: string;
  lastOnlineTime?: string;
  /** The newest state message applied (its `timestamp`, ms). */
  stateTs: number;
  /** Waiting for the next patch (their changes are applied to the entry already). */
  waiters: Waiter[];
  /** Confirmed by the patch in flight (its body holds their values). */
  inFlight: Waiter[];
  /** Scheduled or patching. */
  running: boolean;
  /** The last patch failed: what the entry holds may not be stored (until a patch is). */
  unstored: boolean;
}

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * DeviceStatus patches in flight at once (each device one at a time). With the mirror's few
 * (mirror.ts) they stay within the 32 requests the kernel's Kubernetes client keeps open, so a
 * patch takes its reports and builds its body only when it can go out at once: one waiting in the
 * client's queue would hold a body built before the reports that arrive meanwhile, which would then
 * wait one more full cycle. The API server's throughput is the same with more (README, Figures).
 */
const PATCHES_IN_FLIGHT = 16;

const MERGE = { contentType: 'application/merge-patch+json' };

/** The content as an object (the edge sends state updates as a JSON string). */
function contentObject(content: unknown): Record<string, unknown> | undefined {
  let c = content;
  if (Buffer.isBuffer(c)) c = c.toString('utf8');
  if (typeof c === 'string') {
    try {
      c = JSON.parse(c);
    } catch {
      return undefined;
    }
  }
  return typeof c === 'object' && c !== null && !Array.isArray(c)
    ? (c as Record<string, unknown>)
    : undefined;
}

/** A key matched case-insensitively (Go's encoding/json). */
function field(obj: Record<string, unknown>, key: string): unknown {
  if (key in obj) return obj[key];
  const lower = key.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}

/** Whether `next` is not what is held already (value, timestamp, type). */
const differs = (next: TwinProperty, held: TwinProperty | undefined): boolean =>
  next.value !== held?.value ||
  next.metadata?.timestamp !== held.metadata?.timestamp ||
  next.metadata?.type !== held.metadata?.type;

/** `{value, metadata: {timestamp, type}}` of one edge side (upstream.go), or undefined. */
function property(side: EdgeSide | null | undefined, type: string | undefined): TwinProperty | undefined {
  if (side === null || side === undefined || typeof side.value !== 'string') return undefined;
  const metadata: Record<string, string> = {};
  if (typeof side.metadata?.timestamp === 'number') metadata.timestamp = String(side.metadata.timestamp);
  if (type !== undefined) metadata.type = type;
  return { value: side.value, metadata };
}

export class Upstream {
  readonly devices: SharedInformer<Device>;
  private readonly statuses: SharedInformer<DeviceStatus>;
  private readonly entries = new Map<string, Entry>();
  private readonly mirror: Mirror;
  /** Entries waiting for a patch slot, and the patches in flight. */
  private readonly ready: Entry[] = [];
  private active = 0;
  /** Replies not yet taken by cloudHub (from `head`). */
  private readonly outbox: Message[] = [];
  private head = 0;
  private sending = false;

  constructor(private readonly o: UpstreamOptions) {
    const { kube, signal } = o;
    const at = { group: DevicesGroup, version: DevicesVersion, signal };
    this.devices = kube.informer<Device>({ ...at, resource: 'devices' });
    this.statuses = kube.informer<DeviceStatus>({ ...at, resource: 'devicestatuses' });
    const { devices, statuses } = this;
    const spare = (): number => PATCHES_IN_FLIGHT - this.active;
    this.mirror = new Mirror({ kube, log: o.log, signal, devices, statuses, spare });
    this.devices.addHandlers({
      delete: (d) => {
        this.entries.delete(deviceId(d));
        this.mirror.forget(deviceId(d));
      },
    });
    this.statuses.addHandlers({ add: (r) => this.recorded(r), update: (r) => this.recorded(r) });
    Promise.all([devices.synced, statuses.synced]).then(
      () => this.mirror.reconcile(),
      () => undefined, // stopped before the first list
    );
  }

  stop(): void {
    this.devices.stop();
    this.statuses.stop();
  }

  /** One message from cloudHub (resource `node/{node}/...`). */
  async handle(msg: Message): Promise<void> {
    const resource = msg.route.resource ?? '';
    const parts = resource.split('/');
    const node = parts[1] ?? '';
    if (parts[0] !== 'node' || node === '') return this.drop(msg, 'bad-resource');
    if (parts[2] === 'membership' && parts[3] === 'detail') return this.membershipDetail(msg, node);
    const type = parts.slice(5).join('/');
    if (
      parts[2] !== 'device' ||
      !parts[3] ||
      !parts[4] ||
      (type !== 'twin/edge_updated' && type !== 'state/update')
    )
      return this.drop(msg, 'unsupported');
    const content = contentObject(msg.content);
    if (content === undefined) return this.drop(msg, 'bad-content');
    await Promise.all([this.devices.synced, this.statuses.synced]);
    const [namespace, name] = [parts[3], parts[4]];
    const device = this.devices.get(name, namespace);
    if (device === undefined) {
      // KubeEdge drops it unanswered, so the edge re-sends it every 60 s for ever
      this.o.log.debug({ node, resource }, 'report of a device that does not exist: confirmed, not stored');
      return this.confirm(msg, node);
    }
    const entry = this.entry(device);
    const changed =
      (type === 'twin/edge_updated'
        ? this.applyTwins(entry, device, content)
        : this.applyState(entry, content)) || entry.unstored; // a re-sent report of a failed patch
    // nothing new (older, or what is held already: a re-sent report, a repeated state) costs no
    // patch: confirmed at once, or when the patch under way that holds the value is stored
    if (!changed && !entry.running) return this.confirm(msg, node);
    // confirmed once a patch holding the change is stored; the handler does not wait for it, so the
    // mailbox keeps flowing while the API server works
    const waiter: Waiter = {
      resolve: () => void this.confirm(msg, node),
      reject: (err) => {
        // not confirmed: the edge sends it again
        this.o.dropped('failed');
        this.o.log.warn({ node, resource, err: errorText(err) }, 'device status not stored');
      },
    };
    // the patch in flight holds the values unless a change came after it took its body (that
    // change waits for the next patch, which holds them too)
    if (!changed && entry.waiters.length === 0) return void entry.inFlight.push(waiter);
    entry.waiters.push(waiter);
    this.schedule(entry);
  }

  /**
   * A new Device: its DeviceStatus, with the Device as controller owner (deleting the Device
   * collects it). A failure is logged: the first report creates it too.
   */
  async ensureStatus(d: Device): Promise<void> {
    await this.statuses.synced;
    const namespace = d.metadata?.namespace ?? '';
    const name = d.metadata?.name ?? '';
    if (this.statuses.get(name, namespace) !== undefined) return;
    try {
      await this.createStatus(d, {});
    } catch (err) {
      if (apiStatus(err) !== 409)
        this.o.log.warn({ device: deviceId(d), err: errorText(err) }, 'DeviceStatus not created');
    }
  }

  private createStatus(d: Device, status: DeviceStatus['status']): Promise<unknown> {
    const namespace = d.metadata?.namespace ?? '';
    const name = d.metadata?.name ?? '';
    return this.o.kube.request('POST', devicesPath('devicestatuses', namespace), {
      apiVersion: DevicesApiVersion,
      kind: 'DeviceStatus',
      metadata: {
        name,
        namespace,
        ownerReferences: [
          {
            apiVersion: DevicesApiVersion,
            kind: 'Device',
            name,
            uid: d.metadata?.uid ?? '',
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: {},
      status,
    });
  }

  /** The device's entry, first filled from its DeviceStatus (else the Device's status). */
  private entry(d: Device): Entry {
    const id = deviceId(d);
    let e = this.entries.get(id);
    if (e === undefined) {
      const namespace = d.metadata?.namespace ?? '';
      const name = d.metadata?.name ?? '';
      const stored = this.statuses.get(name, namespace)?.status ?? d.status ?? {};
      e = {
        namespace,
        name,
        twins: new Map((stored.twins ?? []).map((t) => [t.propertyName, { ...t }])),
        stateTs: -1,
        waiters: [],
        inFlight: [],
        running: false,
        unstored: false,
      };
      if (stored.state) e.state = stored.state;
      if (stored.lastOnlineTime) e.lastOnlineTime = stored.lastOnlineTime;
      this.entries.set(id, e);
    }
    return e;
  }

  /**
   * The DeviceStatus as stored, by this cloudcore or another (the node's edge connected there
   * before): twin sides newer than the entry's are taken, so a patch never writes older ones back.
   * The state has no timestamp in the record: the entry's stays.
   */
  private recorded(r: DeviceStatus): void {
    const e = this.entries.get(deviceId(r));
    if (e === undefined) return;
    for (const t of r.status?.twins ?? []) {
      const held = e.twins.get(t.propertyName) ?? { propertyName: t.propertyName };
      if (t.reported && stamp(t.reported) > stamp(held.reported)) held.reported = t.reported;
      if (t.observedDesired && stamp(t.observedDesired) > stamp(held.observedDesired))
        held.observedDesired = t.observedDesired;
      e.twins.set(t.propertyName, held);
    }
  }

  /** Twins of the Device's properties, each side only when not older than the stored one. */
  private applyTwins(e: Entry, d: Device, content: Record<string, unknown>): boolean {
    const twins = field(content, 'twin');
    if (typeof twins !== 'object' || twins === null) return false;
    const names = new Set((d.spec?.properties ?? []).map((p) => p.name));
    let changed = false;
    for (const [prop, raw] of Object.entries(twins as Record<string, EdgeTwin | null>)) {
      if (!names.has(prop) || raw === null || typeof raw !== 'object') continue;
      const type = raw.metadata?.type ?? undefined;
      const reported = property(raw.actual, type);
      const observed = property(raw.expected, type);
      const t = e.twins.get(prop) ?? { propertyName: prop };
      if (reported && stamp(reported) >= stamp(t.reported) && differs(reported, t.reported)) {
        t.reported = reported;
        changed = true;
      }
      if (observed && stamp(observed) >= stamp(t.observedDesired) && differs(observed, t.observedDesired)) {
        t.observedDesired = observed;
        changed = true;
      }
      e.twins.set(prop, t);
    }
    return changed;
  }

  /** `{device: {state, lastOnlineTime}}` unless older than the state applied last; changed or not. */
  private applyState(e: Entry, content: Record<string, unknown>): boolean {
    const ts = Number(field(content, 'timestamp') ?? 0);
    const dev = field(content, 'device');
    if (typeof dev !== 'object' || dev === null || ts < e.stateTs) return false;
    const state = field(dev as Record<string, unknown>, 'state');
    const last = field(dev as Record<string, unknown>, 'lastOnlineTime');
    e.stateTs = ts;
    const held = [e.state, e.lastOnlineTime];
    if (typeof state === 'string' && state !== '') e.state = state;
    // an empty lastOnlineTime leaves the stored one (omitempty)
    if (typeof last === 'string' && last !== '') e.lastOnlineTime = last;
    return e.state !== held[0] || e.lastOnlineTime !== held[1];
  }

  /**
   * An entry with waiters queues for a patch slot (at most PATCHES_IN_FLIGHT devices at once); after
   * its patch, a device with new waiters queues again at the back (round robin: a device reporting
   * all the time does not keep its slot).
   */
  private schedule(e: Entry): void {
    if (e.running) return;
    e.running = true;
    this.ready.push(e);
    this.pump();
  }

  private pump(): void {
    while (this.active < PATCHES_IN_FLIGHT && this.ready.length > 0) {
      const e = this.ready.shift()!;
      this.active++;
      void this.patchOnce(e).finally(() => {
        this.active--;
        e.running = false;
        if (e.waiters.length > 0) this.schedule(e);
        this.pump();
        this.mirror.pump(); // a slot the DeviceStatus patches left idle
      });
    }
  }

  /** One patch holding the changes of every message that arrived before it; then the mirror. */
  private async patchOnce(e: Entry): Promise<void> {
    const waiters = (e.inFlight = e.waiters); // reports bringing nothing new join it meanwhile
    e.waiters = [];
    try {
      const status = await this.patch(e);
      e.unstored = false;
      this.mirror.stored(e.namespace, e.name, status);
      for (const w of waiters) w.resolve();
    } catch (err) {
      e.unstored = true;
      for (const w of waiters) w.reject(err);
    } finally {
      e.inFlight = [];
    }
  }

  /** The DeviceStatus (created when missing), a merge patch of the entry's status. */
  private async patch(e: Entry): Promise<ReportedStatus> {
    const status: ReportedStatus = { twins: [...e.twins.values()].map((t) => ({ ...t })) };
    if (e.state !== undefined) status.state = e.state;
    if (e.lastOnlineTime !== undefined) status.lastOnlineTime = e.lastOnlineTime;
    const body = { status };
    const { kube } = this.o;
    const path = devicesPath('devicestatuses', e.namespace, e.name);
    await kube.request('PATCH', path, body, MERGE).catch(async (err) => {
      if (apiStatus(err) !== 404) throw err;
      const device = this.devices.get(e.name, e.namespace);
      if (device === undefined) return; // deleted meanwhile
      await this.createStatus(device, status).catch((err2: unknown) => {
        if (apiStatus(err2) !== 409) throw err2;
        return kube.request('PATCH', path, body, MERGE);
      });
    });
    return status;
  }

  /** The node's complete device set, as the answer of its `membership/detail` request. */
  private async membershipDetail(msg: Message, node: string): Promise<void> {
    await this.devices.synced;
    const devices = this.devices
      .list()
      .filter((d) => d.spec?.nodeName === node)
      .map(membershipEntry);
    const request = contentObject(msg.content);
    const eventId = request ? field(request, 'event_id') : undefined;
    this.reply(
      toNode(
        node,
        TwinGroup,
        Operation.response,
        'membership/detail',
        { event_id: typeof eventId === 'string' ? eventId : '', timestamp: Date.now(), devices },
        { parentId: msg.header.msg_id },
      ),
    );
  }

  /** `OK` to the edge, `parent_msg_id` = its message (ends its re-sending). */
  private confirm(msg: Message, node: string): void {
    this.reply(toNode(node, TwinGroup, Operation.response, 'twin', 'OK', { parentId: msg.header.msg_id }));
  }

  /**
   * Replies go to cloudHub in order through one outbox: a patch confirms every report it holds at
   * once (thousands in a burst), more than cloudHub's mailbox takes, so a full mailbox is waited
   * out (5 ms) instead of dropping confirmations the edge would re-send after 60 s.
   */
  private reply(msg: Message): void {
    this.outbox.push(msg);
    if (!this.sending) void this.drain();
  }

  private async drain(): Promise<void> {
    this.sending = true;
    while (this.head < this.outbox.length && !this.o.signal.aborted) {
      const msg = this.outbox[this.head]!;
      try {
        await this.o.send(msg);
      } catch (err) {
        if (isKernelError(err, 'EBUS_QUEUE_FULL')) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          continue;
        }
        this.o.dropped('reply-undeliverable');
        this.o.log.warn(
          { resource: msg.route.resource, err: errorText(err) },
          'reply not handed to cloudHub',
        );
      }
      this.head++;
      if (this.head >= 1024) {
        this.outbox.splice(0, this.head);
        this.head = 0;
      }
    }
    this.sending = false;
  }

  private drop(msg: Message, reason: string): void {
    const { resource, operation, source } = msg.route;
    this.o.dropped(reason);
    this.o.log.warn({ resource, operation, source, reason }, 'upstream message dropped');
  }
}
