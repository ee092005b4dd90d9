/**
 * The ACK-mode queue of one node (wire-cloud-edge §6.2): one slot per object UID holding the newest
 * version, keys waiting in order, one message in flight. Unlike KubeEdge's pool it outlives the
 * node's connection: what is queued while the node is offline is sent when it connects.
 *
 * What the node acknowledged is kept behind {@link AckStore}: KubeEdge's ObjectSync status
 * (`objectsync.ts`) with a Kubernetes API, else in memory ({@link MemoryAckStore}).
 */
import { NULL_NAMESPACE, Operation, contentJson, parseResource, type Message } from '../../kernel/index.js';
import { edgeResource } from './dispatch.js';

/** The object of an ACK-mode message, as its ObjectSync/ClusterObjectSync names it (§6.4). */
export interface SyncedObject {
  uid: string;
  /** undefined: cluster-scoped (namespace segment `null`: a ClusterObjectSync). */
  namespace: string | undefined;
  name: string;
  /** The content's `kind` and `apiVersion` ('' when absent). */
  kind: string;
  apiVersion: string;
}

/** Last resourceVersion a node acknowledged per object (KubeEdge's ObjectSync/ClusterObjectSync). */
export interface AckStore {
  /** The acknowledged version; "0" = tracked, nothing acknowledged yet; undefined = not tracked. */
  acked(node: string, uid: string): string | undefined;
  track(node: string, obj: SyncedObject, version: string): void;
  forget(node: string, obj: SyncedObject): void;
  /** The node acknowledged the object's delete (here or through another cloudcore). */
  deleted(node: string, uid: string): boolean;
  /** Call `listener` when another cloudcore records an acknowledgement (several cloudcores). */
  watch(listener: (node: string, uid: string) => void): void;
}

/** Deletes remembered per store (the oldest forgotten first): enough for any queue's backlog. */
const TOMBSTONES = 100_000;

/** Keys of the records whose delete was acknowledged, the oldest dropped beyond {@link TOMBSTONES}. */
export class Tombstones {
  private readonly keys = new Set<string>();
  add(key: string): void {
    this.keys.delete(key);
    this.keys.add(key);
    if (this.keys.size > TOMBSTONES) this.keys.delete(this.keys.values().next().value as string);
  }
  delete(key: string): void {
    this.keys.delete(key);
  }
  has(key: string): boolean {
    return this.keys.has(key);
  }
}

export class MemoryAckStore implements AckStore {
  private readonly versions = new Map<string, string>();
  private readonly tombstones = new Tombstones();
  acked(node: string, uid: string): string | undefined {
    return this.versions.get(`${node}/${uid}`);
  }
  track(node: string, obj: SyncedObject, version: string): void {
    this.versions.set(`${node}/${obj.uid}`, version);
    this.tombstones.delete(`${node}/${obj.uid}`);
  }
  forget(node: string, obj: SyncedObject): void {
    this.versions.delete(`${node}/${obj.uid}`);
    this.tombstones.add(`${node}/${obj.uid}`);
  }
  deleted(node: string, uid: string): boolean {
    return this.tombstones.has(`${node}/${uid}`);
  }
  watch(): void {
    // in memory: no other cloudcore shares it
  }
}

/** Why a message was not queued, or that queueing it pushed out the oldest waiting one. */
export type Admission =
  | { queued: true; evicted?: Message }
  | { queued: false; reason: 'no-version' | 'no-uid' | 'not-resource-group' | 'bad-version' | 'not-newer' };

interface ObjectMeta {
  uid?: unknown;
  name?: unknown;
  deletionTimestamp?: unknown;
}

function objectOf(msg: Message): { kind?: unknown; apiVersion?: unknown; metadata?: unknown } | undefined {
  let content: unknown;
  try {
    content = contentJson(msg);
  } catch {
    return undefined;
  }
  return typeof content === 'object' && content !== null ? content : undefined;
}

function metadataOf(msg: Message): ObjectMeta | undefined {
  const meta = objectOf(msg)?.metadata;
  return typeof meta === 'object' && meta !== null ? (meta as ObjectMeta) : undefined;
}

const text = (v: unknown): string => (typeof v === 'string' ? v : '');

/** The ObjectSync's view of a queued message (its UID known to be there). */
function syncedObject(msg: Message, uid: string): SyncedObject {
  let namespace: string | undefined;
  let name = '';
  try {
    const r = parseResource(edgeResource(msg.route.resource ?? ''));
    namespace = r.namespace === NULL_NAMESPACE ? undefined : r.namespace;
    name = r.name;
  } catch {
    namespace = undefined;
  }
  const obj = objectOf(msg);
  return {
    uid,
    namespace,
    name: name || text(metadataOf(msg)?.name),
    kind: text(obj?.kind),
    apiVersion: text(obj?.apiVersion),
  };
}

function isDelete(msg: Message, meta: ObjectMeta | undefined): boolean {
  return msg.route.operation === Operation.delete || (meta?.deletionTimestamp ?? null) !== null;
}

/** Transmissions of one ACK-mode message before it goes back to the queue (§6.2). */
export const RETRANSMISSIONS = 5;
/** Interval between transmissions of an unacknowledged message (§6.2). */
export const RETRANSMIT_INTERVAL_MS = 5000;
const BACKOFF_BASE_MS = 5;
const BACKOFF_MAX_MS = 1_000_000;

function version(rv: string | undefined): bigint | undefined {
  if (rv === undefined || !/^\d+$/.test(rv)) return undefined;
  return BigInt(rv);
}

export class NodeQueue {
  /** UID → newest message; Map order is arrival order. */
  private readonly stored = new Map<string, Message>();
  /** UIDs waiting to be sent, in order (a key is queued once). */
  private readonly waiting = new Set<string>();
  private inFlight: { uid: string; msg: Message } | undefined;
  /** Unacknowledged rounds per UID, for the back-off. */
  private readonly failures = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly node: string,
    private readonly acks: AckStore,
    /** Objects kept at most; beyond, the oldest waiting one is pushed out. */
    readonly limit: number,
  ) {}

  /** Objects stored (waiting or in flight). */
  get depth(): number {
    return this.stored.size;
  }

  /** `enqueueAckMessage`: admission rules, coalescing per UID and the version filter. */
  admit(msg: Message): Admission {
    const meta = metadataOf(msg);
    const del = isDelete(msg, meta);
    if (!msg.header.resourceversion && !del) return { queued: false, reason: 'no-version' };
    if (msg.route.group !== 'resource') return { queued: false, reason: 'not-resource-group' };
    const uid = typeof meta?.uid === 'string' && meta.uid !== '' ? meta.uid : undefined;
    if (uid === undefined) return { queued: false, reason: 'no-uid' };
    const held = this.stored.get(uid);
    // ours: a delete while one is held (waiting or in flight) would reach the edge twice
    if (msg.route.operation === Operation.delete && held?.route.operation === Operation.delete)
      return { queued: false, reason: 'not-newer' };
    if (!del && msg.route.operation !== Operation.response) {
      const next = version(msg.header.resourceversion);
      if (next === undefined) return { queued: false, reason: 'bad-version' };
      if (held !== undefined) {
        const heldVersion = version(held.header.resourceversion);
        if (isDelete(held, metadataOf(held)) || (heldVersion !== undefined && next <= heldVersion))
          return { queued: false, reason: 'not-newer' };
      } else {
        const acked = this.acks.acked(this.node, uid);
        if (acked === undefined) this.acks.track(this.node, syncedObject(msg, uid), '0');
        else if (next <= (version(acked) ?? 0n)) return { queued: false, reason: 'not-newer' };
      }
    }
    let evicted: Message | undefined;
    if (!this.stored.has(uid) && this.stored.size >= this.limit) evicted = this.evictOldest();
    this.stored.delete(uid); // re-insert: arrival order follows the newest version
    this.stored.set(uid, msg);
    this.waiting.add(uid);
    return evicted === undefined ? { queued: true } : { queued: true, evicted };
  }

  private evictOldest(): Message | undefined {
    for (const uid of this.waiting) {
      if (uid === this.inFlight?.uid) continue;
      const msg = this.stored.get(uid);
      this.waiting.delete(uid);
      this.stored.delete(uid);
      this.failures.delete(uid);
      return msg;
    }
    return undefined;
  }

  /**
   * Take the next message to send (undefined when one is in flight or none waits). A message the
   * node already has is dropped here: with several cloudcores, each queues for every node, and
   * the cloudcore that held the node before may have delivered it (its acknowledgement recorded
   * in the shared ObjectSyncs).
   */
  take(): Message | undefined {
    if (this.inFlight !== undefined) return undefined;
    for (const uid of this.waiting) {
      this.waiting.delete(uid);
      const msg = this.stored.get(uid);
      if (msg === undefined) continue;
      if (this.delivered(uid, msg)) {
        this.stored.delete(uid);
        this.failures.delete(uid);
        continue;
      }
      this.inFlight = { uid, msg };
      return msg;
    }
    return undefined;
  }

  /**
   * The node got this object through another cloudcore: a waiting message it already has is
   * dropped now rather than when its turn comes (a cloudcore queues for the nodes others hold).
   */
  prune(uid: string): void {
    const msg = this.stored.get(uid);
    if (msg === undefined || this.inFlight?.uid === uid || !this.delivered(uid, msg)) return;
    this.stored.delete(uid);
    this.waiting.delete(uid);
    this.failures.delete(uid);
  }

  /** The node acknowledged this version (or a newer one), or this object's delete. */
  private delivered(uid: string, msg: Message): boolean {
    if (msg.route.operation === Operation.response) return false;
    if (msg.route.operation === Operation.delete) return this.acks.deleted(this.node, uid);
    const acked = version(this.acks.acked(this.node, uid));
    const next = version(msg.header.resourceversion);
    return acked !== undefined && next !== undefined && next <= acked;
  }

  /** The message in flight, if any. */
  get current(): Message | undefined {
    return this.inFlight?.msg;
  }

  /**
   * The edge acknowledged `msgId`: if it is the message in flight, record the success point
   * (`saveSuccessPoint`) and free the slot unless a newer version arrived meanwhile.
   */
  ack(msgId: string): Message | undefined {
    const flight = this.inFlight;
    if (flight === undefined || flight.msg.header.msg_id !== msgId) return undefined;
    this.inFlight = undefined;
    const { uid, msg } = flight;
    // saveSuccessPoint: only a `delete` ends the record (an update with a deletionTimestamp is a version)
    if (msg.route.operation === Operation.delete) this.acks.forget(this.node, syncedObject(msg, uid));
    else if (msg.header.resourceversion)
      this.acks.track(this.node, syncedObject(msg, uid), msg.header.resourceversion);
    if (this.stored.get(uid) === msg) this.stored.delete(uid);
    this.failures.delete(uid);
    return msg;
  }

  /** The connection ended with a message in flight: it is first in line for the next one. */
  release(): void {
    const flight = this.inFlight;
    if (flight === undefined) return;
    this.inFlight = undefined;
    if (!this.stored.has(flight.uid)) return;
    const rest = [...this.waiting].filter((u) => u !== flight.uid);
    this.waiting.clear();
    for (const u of [flight.uid, ...rest]) this.waiting.add(u);
  }

  /**
   * The message in flight was sent {@link RETRANSMISSIONS} times without an ACK: it waits again
   * after the workqueue's per-item back-off (5 ms doubling up to 1000 s) while the others go on;
   * `ready` is called when it is back in line. Returns the delay.
   */
  park(ready: () => void): number {
    const flight = this.inFlight;
    if (flight === undefined) return 0;
    this.inFlight = undefined;
    const failures = (this.failures.get(flight.uid) ?? 0) + 1;
    this.failures.set(flight.uid, failures);
    const delay = Math.min(BACKOFF_BASE_MS * 2 ** (failures - 1), BACKOFF_MAX_MS);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.stored.has(flight.uid)) this.waiting.add(flight.uid);
      ready();
    }, delay);
    timer.unref();
    this.timers.add(timer);
    return delay;
  }

  /** Stop the back-off timers (cloudHub stops). */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
