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
  /** Records a delete was sent for: not sent again while the record lives (cloudHub holds it). */
  private readonly deletesSent = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopNodeHandlers: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly opts: SyncControllerOptions) {
    const { kube, signal } = opts;
    this.syncs = (['objectsyncs', 'clusterobjectsyncs'] as const).map((resource) =>
      kube.informer<ObjectSync>({ ...RELIABLESYNCS, resource, signal }),
    );
    for (const s of this.syncs) s.addHandlers({ delete: (o) => this.deletesSent.delete(this.key(o)) });
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
    const loop = (): void => {
      this.reconcile();
      this.timer = setTimeout(loop, RESYNC_INTERVAL_MS);
      this.timer.unref();
    };
    loop();
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

  /** One pass over every record (`reconcileObjectSyncs` + `reconcileClusterObjectSyncs`). */
  reconcile(): void {
    for (const s of this.syncs) for (const sync of s.list()) this.reconcileOne(sync);
    this.opts.count('pass');
  }

  private reconcileOne(sync: ObjectSync): void {
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
      const key = this.key(sync);
      if (this.deletesSent.has(key)) return;
      this.deletesSent.add(key);
      const metadata = { ...(namespace ? { namespace } : {}), name: objectName, uid: parsed.uid };
      this.hand(newMessage({ ...route, operation: Operation.delete }, { metadata }), 'delete');
      return;
    }
    // a Device's version also moves with the reported status deviceController writes into it; its
    // spec changes are sent again by deviceController itself (its informers replay at start)
    if (device) return;
    const acked = numeric(sync.status?.objectResourceVersion);
    const current = numeric(obj.metadata?.resourceVersion);
    if (acked === undefined || current === undefined || current <= acked) return;
    const content = { ...obj, kind: obj.kind ?? objectKind, apiVersion: obj.apiVersion ?? objectAPIVersion };
    this.hand(
      newMessage({ ...route, operation: Operation.update }, content, {
        resourceVersion: obj.metadata?.resourceVersion ?? '',
      }),
      'update',
    );
  }

  private hand(msg: Message, what: 'update' | 'delete'): void {
    this.opts.count(what);
    // debug: while a node is offline the same object is offered again every pass (cloudHub holds it)
    this.opts.log.debug(
      {
        resource: msg.route.resource,
        operation: msg.route.operation,
        resourceversion: msg.header.resourceversion,
      },
      'resync: offered to cloudHub again',
    );
    this.opts
      .send(msg)
      .catch((err: unknown) =>
        this.opts.log.warn(
          { resource: msg.route.resource, error: errorText(err) },
          'resync message not handed to cloudHub',
        ),
      );
  }
}
