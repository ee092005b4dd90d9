/**
 * KubeEdge's SyncController (wire-cloud-edge §6.5): every 5 s each ObjectSync/ClusterObjectSync is
 * compared with its object; an object gone (or replaced: another UID) is sent to its node as a
 * `delete`, an object newer than the version the node acknowledged is sent as an `update`. Records
 * whose node no longer exists are deleted (by the leader: when it starts leading and when a Node is
 * deleted). Everything is read from the shared informers; the messages go to cloudHub, whose queue
 * skips what the node has.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import {
  NULL_NAMESPACE,
  Operation,
  errorText,
  isKernelError,
  newMessage,
  type KubeApi,
  type Logger,
  type Message,
  type SharedInformer,
} from '../../kernel/index.js';
import { DeviceControllerModuleName, EdgeControllerModuleName, ResourceGroup } from '../../protocol/index.js';

/** The reconcile period of KubeEdge (§6.5). */
export const RESYNC_INTERVAL_MS = 5000;

/**
 * An offer cloudHub took is not made again for this many passes (one minute) while the record and
 * the object stay as they were: the node has it queued or in flight, or its acknowledgement is
 * still on its way to the ObjectSync (a burst queues thousands of writes). Offered again after
 * that, in case cloudHub lost it (its queue restarted, or evicted it for a node over its limit).
 */
export const REOFFER_PASSES = 12;

/** The group of Device and DeviceModel (`objectAPIVersion` `devices.kubeedge.io/v1beta1`). */
const DEVICES_GROUP = 'devices.kubeedge.io/';

const RELIABLESYNCS = { group: 'reliablesyncs.kubeedge.io', version: 'v1alpha1' } as const;

interface ObjectSync extends KubernetesObject {
  spec?: { objectAPIVersion?: string; objectKind?: string; objectName?: string };
  status?: { objectResourceVersion?: string };
}

/** `UnsafeKindToResource`: the plural resource of a kind. */
export function kindToResource(kind: string): string {
  const lower = kind.toLowerCase();
  if (lower === 'endpoints') return lower;
  if (lower.endsWith('s')) return `${lower}es`;
  if (lower.endsWith('y')) return `${lower.slice(0, -1)}ies`;
  return `${lower}s`;
}

function parseName(name: string): { node: string; uid: string } | undefined {
  const dot = name.lastIndexOf('.');
  return dot > 0 && dot < name.length - 1
    ? { node: name.slice(0, dot), uid: name.slice(dot + 1) }
    : undefined;
}

const numeric = (v: string | undefined): bigint | undefined =>
  v !== undefined && /^\d+$/.test(v) ? BigInt(v) : undefined;

export interface SyncControllerOptions {
  kube: KubeApi;
  log: Logger;
  signal: AbortSignal;
  /** Hand a message to cloudHub. */
  send(msg: Message): Promise<void>;
  /** Counters: `update`, `delete` offered; records `collected`; resync passes (`pass`). */
  count(what: 'update' | 'delete' | 'collected' | 'pass'): void;
}

export class SyncController {
  private readonly syncs: SharedInformer<ObjectSync>[];
  private readonly nodes: SharedInformer<KubernetesObject>;
  /** Informers of the synced objects' kinds, opened when a record names the kind. */
  private readonly objects = new Map<
    string,
    { informer: SharedInformer<KubernetesObject>; synced: boolean }
  >();
  /** Record → what cloudHub took for it (the object's version, or `delete`) and at which pass. */
  private readonly offered = new Map<string, { what: string; pass: number }>();
  private passes = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopNodeHandlers: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly opts: SyncControllerOptions) {
    const { kube, signal } = opts;
    this.syncs = (['objectsyncs', 'clusterobjectsyncs'] as const).map((resource) =>
      kube.informer<ObjectSync>({ ...RELIABLESYNCS, resource, signal }),
    );
    for (const s of this.syncs) s.addHandlers({ delete: (o) => this.offered.delete(this.key(o)) });
    this.nodes = kube.informer<KubernetesObject>({ version: 'v1', resource: 'nodes', signal });
  }

  private key(o: ObjectSync): string {
    return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
  }

  /** The caches are filled. */
  async synced(): Promise<void> {
    await Promise.all([...this.syncs.map((s) => s.synced), this.nodes.synced]);
  }

  /**
   * Reconcile every 5 s, the first pass once the informers of the kinds the records name have
   * listed (or after one period). Every cloudcore does (each cloudHub delivers to the nodes it
   * holds and drops what a node already has); the collection is the leader's ({@link lead}).
   */
  async run(): Promise<void> {
    for (const s of this.syncs)
      for (const sync of s.list())
        this.objectInformer(sync.spec?.objectAPIVersion ?? '', sync.spec?.objectKind ?? '');
    // at most one period: a kind whose resource is not served never lists
    let wait: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.objects.values()].map((o) => o.informer.synced)),
      new Promise<void>((resolve) => (wait = setTimeout(resolve, RESYNC_INTERVAL_MS))),
    ]);
    clearTimeout(wait);
    if (this.stopped) return;
    const loop = async (): Promise<void> => {
      await this.reconcile();
      if (this.stopped) return;
      this.timer = setTimeout(() => void loop(), RESYNC_INTERVAL_MS);
      this.timer.unref();
    };
    await loop();
  }

  /** Leading: collect the records of vanished nodes now and whenever a Node is deleted. */
  lead(): void {
    this.stopNodeHandlers ??= this.nodes.addHandlers({ delete: () => void this.collect() });
    void this.collect();
  }

  /** Not leading any more (or stopping). */
  follow(): void {
    this.stopNodeHandlers?.();
    this.stopNodeHandlers = undefined;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.follow();
    for (const s of this.syncs) s.stop();
    this.nodes.stop();
    for (const o of this.objects.values()) o.informer.stop();
  }

  /** `deleteObjectSyncs`/`deleteClusterObjectSyncs`: records of nodes that no longer exist. */
  private async collect(): Promise<void> {
    for (const s of this.syncs) {
      for (const sync of s.list()) {
        const name = sync.metadata?.name ?? '';
        const parsed = parseName(name);
        if (parsed === undefined || this.nodes.get(parsed.node) !== undefined) continue;
        const ns = sync.metadata?.namespace;
        const path = ns
          ? `/apis/${RELIABLESYNCS.group}/${RELIABLESYNCS.version}/namespaces/${encodeURIComponent(ns)}/objectsyncs/${encodeURIComponent(name)}`
          : `/apis/${RELIABLESYNCS.group}/${RELIABLESYNCS.version}/clusterobjectsyncs/${encodeURIComponent(name)}`;
        try {
          await this.opts.kube.request('DELETE', path);
          this.opts.count('collected');
          this.opts.log.info(
            { objectSync: name, node: parsed.node },
            'ObjectSync deleted: its node no longer exists',
          );
        } catch (err) {
          if (isKernelError(err, 'EKUBE_API') && (err as { statusCode?: number }).statusCode === 404)
            continue;
          this.opts.log.warn(
            { objectSync: name, error: errorText(err) },
            'cannot delete the ObjectSync of a vanished node',
          );
        }
      }
    }
  }

  /** The informer of a record's object kind; undefined while it lists. */
  private objectInformer(apiVersion: string, kind: string): SharedInformer<KubernetesObject> | undefined {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/', 2) : ['', apiVersion];
    if (!version || !kind) return undefined;
    const resource = kindToResource(kind);
    const key = `${apiVersion}/${resource}`;
    let entry = this.objects.get(key);
    if (entry === undefined) {
      const informer = this.opts.kube.informer<KubernetesObject>({
        ...(group ? { group } : {}),
        version,
        resource,
        signal: this.opts.signal,
      });
      const created = { informer, synced: false };
      entry = created;
      this.objects.set(key, created);
      informer.synced.then(
        () => {
          created.synced = true;
        },
        () => undefined,
      );
    }
    return entry.synced ? entry.informer : undefined;
  }

  /**
   * One pass over every record (`reconcileObjectSyncs` + `reconcileClusterObjectSyncs`), handing
   * its messages to cloudHub one by one; when cloudHub's mailbox is full the pass ends there (one
   * log line) and the next one offers the rest.
   */
  async reconcile(): Promise<void> {
    const pass = ++this.passes;
    let sent = 0;
    try {
      for (const s of this.syncs)
        for (const sync of s.list()) {
          if (this.stopped) return;
          const offer = this.offer(sync, pass);
          if (offer === undefined) continue;
          try {
            await this.opts.send(offer.msg);
          } catch (err) {
            this.offered.delete(this.key(sync));
            this.opts.log.warn(
              { handed: sent, error: errorText(err) },
              'resync: cloudHub takes no more messages now, the rest is offered at the next pass',
            );
            return;
          }
          sent++;
          this.opts.count(offer.what);
          // debug: while a node is offline the same object is offered again every minute
          this.opts.log.debug(
            {
              resource: offer.msg.route.resource,
              operation: offer.msg.route.operation,
              resourceversion: offer.msg.header.resourceversion,
            },
            'resync: offered to cloudHub again',
          );
        }
    } finally {
      this.opts.count('pass');
    }
  }

  /** Whether what `key` needs was offered within {@link REOFFER_PASSES}; if not, it is noted as offered. */
  private fresh(key: string, what: string, pass: number): boolean {
    const last = this.offered.get(key);
    if (last !== undefined && last.what === what && pass - last.pass < REOFFER_PASSES) return true;
    this.offered.set(key, { what, pass });
    return false;
  }

  /** The message a record needs, unless it was offered lately. */
  private offer(sync: ObjectSync, pass: number): { msg: Message; what: 'update' | 'delete' } | undefined {
    const name = sync.metadata?.name ?? '';
    const parsed = parseName(name);
    const { objectAPIVersion = '', objectKind = '', objectName = '' } = sync.spec ?? {};
    // a vanished node's records are collected, not resynced
    if (parsed === undefined || objectName === '' || this.nodes.get(parsed.node) === undefined) return;
    const informer = this.objectInformer(objectAPIVersion, objectKind);
    if (informer === undefined) return;
    const namespace = sync.metadata?.namespace;
    const obj = informer.get(objectName, namespace);
    const resource = `node/${parsed.node}/${namespace ?? NULL_NAMESPACE}/${objectKind.toLowerCase()}/${objectName}`;
    // devices and models are deviceController's: the edge hands its messages to deviceTwin
    const device = objectAPIVersion.startsWith(DEVICES_GROUP);
    const route = {
      source: device ? DeviceControllerModuleName : EdgeControllerModuleName,
      group: ResourceGroup,
      resource,
    };
    if (obj === undefined || obj.metadata?.uid !== parsed.uid) {
      if (this.fresh(this.key(sync), 'delete', pass)) return undefined;
      const metadata = { ...(namespace ? { namespace } : {}), name: objectName, uid: parsed.uid };
      return { msg: newMessage({ ...route, operation: Operation.delete }, { metadata }), what: 'delete' };
    }
    // a Device's version also moves with the reported status deviceController writes into it; its
    // spec changes are sent again by deviceController itself (its informers replay at start)
    if (device) return undefined;
    const acked = numeric(sync.status?.objectResourceVersion);
    const current = numeric(obj.metadata?.resourceVersion);
    if (acked === undefined || current === undefined || current <= acked) return undefined;
    const resourceVersion = obj.metadata?.resourceVersion ?? '';
    if (this.fresh(this.key(sync), resourceVersion, pass)) return undefined;
    const content = { ...obj, kind: obj.kind ?? objectKind, apiVersion: obj.apiVersion ?? objectAPIVersion };
    return {
      msg: newMessage({ ...route, operation: Operation.update }, content, { resourceVersion }),
      what: 'update',
    };
  }
}
