/**
 * The {@link AckStore} of a cloudcore with a Kubernetes API: KubeEdge's ObjectSync (namespaced) and
 * ClusterObjectSync (cluster-scoped) objects `<node>.<uid>` of `reliablesyncs.kubeedge.io/v1alpha1`
 * (wire-cloud-edge §6.2, §6.4), so what each edge acknowledged survives a cloudcore restart.
 *
 * Reads are from memory: the shared informers of both kinds fill it (what any cloudcore wrote) and
 * this cloudcore's own acknowledgements update it at once; versions only grow, so a late watch
 * event never takes a record back. Writes go to the API in the background, one after the other
 * per record, each writing the state in memory when it starts (create with the spec, then the
 * `status` subresource; delete on an acknowledged delete).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { KernelError, errorText, isKernelError, type KubeApi, type Logger } from '../../kernel/index.js';
import { Tombstones, type AckStore, type SyncedObject } from './queue.js';

export const ReliableSyncsGroup = 'reliablesyncs.kubeedge.io';
export const ReliableSyncsVersion = 'v1alpha1';
const API = `/apis/${ReliableSyncsGroup}/${ReliableSyncsVersion}`;

/** The two CRDs, by their resource (plural) and CRD name. */
export const ObjectSyncResources = ['objectsyncs', 'clusterobjectsyncs'] as const;

export interface ObjectSync extends KubernetesObject {
  spec?: { objectAPIVersion?: string; objectKind?: string; objectName?: string };
  status?: { objectResourceVersion?: string };
}

/** `BuildObjectSyncName`. */
export const objectSyncName = (node: string, uid: string): string => `${node}.${uid}`;

/** Node and object UID of an ObjectSync name: the UID is after the last `.` (node names may hold dots). */
export function parseObjectSyncName(name: string): { node: string; uid: string } | undefined {
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || dot === name.length - 1) return undefined;
  return { node: name.slice(0, dot), uid: name.slice(dot + 1) };
}

/** The collection path of the record of an object (namespace undefined: ClusterObjectSync). */
export function objectSyncPath(namespace: string | undefined): string {
  return namespace === undefined
    ? `${API}/clusterobjectsyncs`
    : `${API}/namespaces/${encodeURIComponent(namespace)}/objectsyncs`;
}

const statusCode = (err: unknown): number | undefined =>
  isKernelError(err, 'EKUBE_API') ? (err as { statusCode?: number }).statusCode : undefined;

function newer(a: string, b: string): boolean {
  return /^\d+$/.test(a) && /^\d+$/.test(b) ? BigInt(a) > BigInt(b) : false;
}

/**
 * The ObjectSync store, or undefined when the CRDs are not installed (one error line naming the CRD
 * and how to install it; cloudHub then keeps the state in memory).
 */
export async function openObjectSyncStore(
  kube: KubeApi,
  log: Logger,
  signal: AbortSignal,
): Promise<ObjectSyncStore | undefined> {
  for (const resource of ObjectSyncResources) {
    try {
      await kube.request('GET', `${API}/${resource}?limit=1`);
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
      log.error(
        { crd: `${resource}.${ReliableSyncsGroup}` },
        `the CRD ${resource}.${ReliableSyncsGroup} is not installed: what edges acknowledged is kept in memory only ` +
          `(lost when cloudcore restarts). Install KubeEdge's CRDs (keadm init, or kubectl apply -f crds/) and restart cloudcore`,
      );
      return undefined;
    }
  }
  const store = new ObjectSyncStore(kube, log);
  await Promise.all(
    ObjectSyncResources.map((resource) => {
      const informer = kube.informer<ObjectSync>({
        group: ReliableSyncsGroup,
        version: ReliableSyncsVersion,
        resource,
        signal,
      });
      informer.addHandlers({
        add: (o) => store.observed(o),
        update: (o) => store.observed(o),
        delete: (o) => store.removed(o),
      });
      return informer.synced;
    }),
  );
  return store;
}

export class ObjectSyncStore implements AckStore {
  /** `<node>.<uid>` → acknowledged version ("0": tracked, nothing acknowledged yet). */
  private readonly versions = new Map<string, string>();
  /** The tail of each record's writes, while some are pending. */
  private readonly writes = new Map<string, Promise<void>>();
  /** Records with a write queued and not started: it writes the state of the moment it starts. */
  private readonly due = new Set<string>();
  /** Records known to be in the API (seen by the informer or created here). */
  private readonly inApi = new Set<string>();
  /** Records deleted after an acknowledged delete (here, or seen deleted by the informer). */
  private readonly tombstones = new Tombstones();
  private readonly listeners: ((node: string, uid: string) => void)[] = [];
  /** Aborted at stop: the writes still waiting are abandoned. */
  private readonly stopping = new AbortController();
  private readonly abandon = { signal: this.stopping.signal };
  /** Records whose write was abandoned at stop. */
  private abandoned = 0;

  constructor(
    private readonly kube: KubeApi,
    private readonly log: Logger,
  ) {}

  acked(node: string, uid: string): string | undefined {
    return this.versions.get(objectSyncName(node, uid));
  }

  track(node: string, obj: SyncedObject, version: string): void {
    const name = objectSyncName(node, obj.uid);
    this.versions.set(name, version);
    this.tombstones.delete(name);
    this.persist(name, obj);
  }

  forget(node: string, obj: SyncedObject): void {
    const name = objectSyncName(node, obj.uid);
    this.versions.delete(name);
    this.tombstones.add(name);
    this.persist(name, obj);
  }

  deleted(node: string, uid: string): boolean {
    return this.tombstones.has(objectSyncName(node, uid));
  }

  watch(listener: (node: string, uid: string) => void): void {
    this.listeners.push(listener);
  }

  private changed(name: string): void {
    const parsed = parseObjectSyncName(name);
    if (parsed !== undefined) for (const l of this.listeners) l(parsed.node, parsed.uid);
  }

  /** Every write issued so far has ended. */
  async flush(): Promise<void> {
    while (this.writes.size > 0) await Promise.all(this.writes.values());
  }

  /**
   * cloudHub stops: the writes not sent yet are abandoned (a burst can queue thousands behind the
   * client's rate limit; syncController's next resync offers their objects again and the edges'
   * acknowledgements rebuild them), the ones sent end with their answer.
   */
  async stop(): Promise<void> {
    const pending = this.writes.size;
    this.stopping.abort();
    await this.flush();
    if (this.abandoned > 0)
      this.log.info(
        { pending, abandoned: this.abandoned },
        'cloudHub stopping: ObjectSync writes not sent yet abandoned',
      );
  }

  /** A record as the informer sees it: versions only grow; an empty status is a tracked "0". */
  observed(o: ObjectSync): void {
    const name = o.metadata?.name;
    if (name === undefined || parseObjectSyncName(name) === undefined) return;
    this.inApi.add(name);
    this.tombstones.delete(name);
    const version = o.status?.objectResourceVersion || '0';
    const mine = this.versions.get(name);
    if (mine === undefined && this.writes.has(name)) return; // forgotten here, its delete pending
    if (mine !== undefined && !newer(version, mine)) return;
    this.versions.set(name, version);
    this.changed(name);
  }

  /** A record deleted (by an acknowledged delete anywhere, or syncController's collection). */
  removed(o: ObjectSync): void {
    const name = o.metadata?.name;
    if (name === undefined) return;
    this.inApi.delete(name);
    if (this.writes.has(name)) return;
    this.versions.delete(name);
    this.tombstones.add(name);
    this.changed(name);
  }

  /**
   * Bring the record in the API to the state in memory, after the writes before; while one write
   * waits to start, later changes ride on it (an object queued then acknowledged at once costs a
   * create and one status write).
   */
  private persist(name: string, obj: SyncedObject): void {
    if (this.due.has(name)) return;
    this.due.add(name);
    const next = (this.writes.get(name) ?? Promise.resolve())
      .then(() => {
        this.due.delete(name);
        if (this.stopping.signal.aborted) throw new KernelError('EKUBE_ABANDONED', 'cloudHub stops');
        return this.apply(name, obj);
      })
      .catch((err: unknown) => {
        if (isKernelError(err, 'EKUBE_ABANDONED')) this.abandoned++;
        else this.log.warn({ objectSync: name, error: errorText(err) }, 'cannot write the ObjectSync');
      })
      .finally(() => {
        if (this.writes.get(name) === next) this.writes.delete(name);
      });
    this.writes.set(name, next);
  }

  /** saveSuccessPoint / deleteSuccessPoint: the status set (the record created first), or deleted. */
  private async apply(name: string, obj: SyncedObject): Promise<void> {
    const collection = objectSyncPath(obj.namespace);
    const path = `${collection}/${encodeURIComponent(name)}`;
    const version = this.versions.get(name);
    if (version === undefined) {
      try {
        await this.kube.request('DELETE', path, undefined, this.abandon);
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
      }
      this.inApi.delete(name);
      return;
    }
    const setStatus = (): Promise<unknown> =>
      this.kube.request(
        'PATCH',
        `${path}/status`,
        { status: { objectResourceVersion: version } },
        { contentType: 'application/merge-patch+json', signal: this.stopping.signal },
      );
    // "0" (tracked, nothing acknowledged) never overwrites a record another cloudcore holds
    if (version === '0' && this.inApi.has(name)) return;
    if (this.inApi.has(name)) {
      try {
        await setStatus();
        return;
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
      }
    }
    if (obj.kind === '') {
      // KubeEdge too skips a record whose object has no kind
      this.log.warn({ objectSync: name }, 'ObjectSync not created: the message content has no kind');
      return;
    }
    let created = true;
    try {
      await this.kube.request(
        'POST',
        collection,
        {
          apiVersion: `${ReliableSyncsGroup}/${ReliableSyncsVersion}`,
          kind: obj.namespace === undefined ? 'ClusterObjectSync' : 'ObjectSync',
          metadata: obj.namespace === undefined ? { name } : { name, namespace: obj.namespace },
          spec: { objectAPIVersion: obj.apiVersion, objectKind: obj.kind, objectName: obj.name },
        },
        this.abandon,
      );
    } catch (err) {
      if (statusCode(err) !== 409) throw err;
      created = false;
    }
    this.inApi.add(name);
    if (created || version !== '0') await setStatus();
  }
}
