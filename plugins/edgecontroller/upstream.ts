/**
 * edgeController's upstream half (KubeEdge's UpstreamController, wire §5.0.1): what an edge sends
 * becomes a Kubernetes request, and the edge's waiting request gets its answer through cloudHub
 * (`response`, parent = the edge's message id, the resource as it came).
 */
import type {
  AuthenticationV1TokenRequest,
  CoreV1Event,
  V1CertificateSigningRequest,
  V1Lease,
  V1Node,
  V1NodeCondition,
  V1NodeStatus,
  V1Pod,
  V1PodStatus,
} from '@kubernetes/client-node';
import {
  KubeApiError,
  Operation,
  contentJson,
  errorText,
  type KubeApi,
  type Logger,
  type Message,
  withTypeMeta,
} from '../../kernel/index.js';
import {
  errStatus,
  isNotFound,
  parseInternal,
  toNode,
  type InternalResource,
  type ObjectResp,
} from './messages.js';
import type { HolderAnnotations } from '../../protocol/index.js';

const SMP = 'application/strategic-merge-patch+json';
const MERGE = 'application/merge-patch+json';
const OK = 'OK';

export interface UpstreamOptions {
  kube: KubeApi;
  log: Logger;
  /** Hands a reply to cloudHub. */
  send(msg: Message): Promise<void>;
  /** The annotations naming this cloudcore as the holder of a node it registers. */
  holder: HolderAnnotations;
  /** nodeUpdateFrequency, in ms (legacy node status: heartbeats older than this are bumped). */
  nodeUpdateMs: number;
  /** A message not handled: one log line, counted by reason. */
  dropped(reason: string): void;
}

/** A new Node's annotations with this cloudcore's holder annotations (those set, not the removed ones). */
function withHolder(
  annotations: Record<string, string> | undefined,
  holder: HolderAnnotations,
): Record<string, string> {
  const set = Object.entries(holder).filter((e): e is [string, string] => e[1] !== null);
  return { ...annotations, ...Object.fromEntries(set) };
}

/** Go's `types.PodStatusRequest` (no JSON tags). */
interface PodStatusRequest {
  UID: string;
  Name: string;
  Status: V1PodStatus;
}

type Reply = { content: unknown; resourceVersion?: string; resource?: string };
type Handler = (msg: Message, r: InternalResource) => Promise<Reply | undefined>;

const encode = encodeURIComponent;
const nodePath = (name: string): string => `/api/v1/nodes/${encode(name)}`;
const podPath = (ns: string, name: string): string => `/api/v1/namespaces/${encode(ns)}/pods/${encode(name)}`;
const leasePath = (ns: string, name = ''): string =>
  `/apis/coordination.k8s.io/v1/namespaces/${encode(ns)}/leases${name ? `/${encode(name)}` : ''}`;

/** Objects the edge may query (§5.8, §5.11): their kind, apiVersion and path. */
const QUERIES: Record<string, { kind: string; apiVersion: string; path(r: InternalResource): string }> = {
  configmap: { kind: 'ConfigMap', apiVersion: 'v1', path: (r) => namespaced(r, 'configmaps') },
  secret: { kind: 'Secret', apiVersion: 'v1', path: (r) => namespaced(r, 'secrets') },
  persistentvolumeclaim: {
    kind: 'PersistentVolumeClaim',
    apiVersion: 'v1',
    path: (r) => namespaced(r, 'persistentvolumeclaims'),
  },
  persistentvolume: {
    kind: 'PersistentVolume',
    apiVersion: 'v1',
    path: (r) => `/api/v1/persistentvolumes/${encode(r.name)}`,
  },
  volumeattachment: {
    kind: 'VolumeAttachment',
    apiVersion: 'storage.k8s.io/v1',
    path: (r) => `/apis/storage.k8s.io/v1/volumeattachments/${encode(r.name)}`,
  },
  certificatesigningrequest: {
    kind: 'CertificateSigningRequest',
    apiVersion: 'certificates.k8s.io/v1',
    path: (r) => `/apis/certificates.k8s.io/v1/certificatesigningrequests/${encode(r.name)}`,
  },
};

function namespaced(r: InternalResource, plural: string): string {
  return `/api/v1/namespaces/${encode(r.namespace)}/${plural}/${encode(r.name)}`;
}

/** Labels the cloud applies after create (registerNode): prefix `kubernetes.io` or `*.kubernetes.io`. */
function isKubernetesLabel(key: string): boolean {
  const slash = key.indexOf('/');
  if (slash < 0) return false;
  const prefix = key.slice(0, slash);
  return prefix === 'kubernetes.io' || prefix.endsWith('.kubernetes.io');
}

export class Upstream {
  private readonly handlers: Record<string, Partial<Record<string, Handler>>>;

  constructor(private readonly o: UpstreamOptions) {
    this.handlers = {
      node: {
        insert: (m, r) => this.registerNode(m, r),
        query: (_m, r) => this.queryNode(r),
        update: (m, r) => this.updateNode(m, r),
      },
      nodepatch: { patch: (m, r) => this.patchNode(m, r) },
      nodestatus: {
        insert: (m, r) => this.legacyRegister(m, r),
        update: (m, r) => this.legacyNodeStatus(m, r),
      },
      lease: {
        query: (_m, r) => this.queryLease(r),
        insert: (m, r) => this.writeLease('POST', m, r),
        update: (m, r) => this.writeLease('PUT', m, r),
      },
      podpatch: { patch: (m, r) => this.patchPod(m, r) },
      podstatus: { update: (m, r) => this.legacyPodStatus(m, r) },
      pod: {
        insert: (m, r) => this.createPod(m, r),
        delete: (m, r) => this.deletePod(m, r),
      },
      event: {
        insert: (m) => this.writeEvent('insert', m),
        update: (m) => this.writeEvent('update', m),
        patch: (m) => this.writeEvent('patch', m),
      },
      serviceaccounttoken: { query: (m, r) => this.createToken(m, r) },
      certificatesigningrequest: { insert: (m, r) => this.createCsr(m, r) },
    };
    for (const type of Object.keys(QUERIES)) {
      this.handlers[type] = { ...this.handlers[type], query: (_m, r) => this.queryObject(r) };
    }
  }

  /** One message from an edge (resource `node/<id>/...`, as cloudHub hands it on). */
  async handle(msg: Message): Promise<void> {
    const { operation = '', resource = '' } = msg.route;
    const r = parseInternal(resource);
    if (r === undefined) {
      this.drop(
        msg,
        'bad-resource',
        'upstream message dropped: resource is not node/<id>/<ns>/<type>[/<name>]',
      );
      return;
    }
    const handler = this.handlers[r.type]?.[operation];
    if (handler === undefined) {
      this.drop(msg, 'unsupported', 'upstream message dropped: resource type and operation not handled');
      return;
    }
    let reply: Reply | undefined;
    try {
      reply = await handler(msg, r);
    } catch (err) {
      // a malformed content (or a request that failed where no reply is defined)
      this.drop(msg, 'failed', 'upstream message failed', err);
      return;
    }
    if (reply === undefined) return;
    // the resource as it came, without cloudHub's `node/<id>/`
    const replyResource = reply.resource ?? resource.split('/').slice(2).join('/');
    await this.o
      .send(
        toNode(r.node, Operation.response, replyResource, reply.content, {
          parentId: msg.header.msg_id,
          resourceVersion: reply.resourceVersion,
        }),
      )
      .catch((err: unknown) => this.drop(msg, 'reply-undeliverable', 'reply not handed to cloudHub', err));
  }

  private drop(msg: Message, reason: string, text: string, err?: unknown): void {
    this.o.dropped(reason);
    this.o.log.warn(
      {
        reason,
        resource: msg.route.resource,
        operation: msg.route.operation,
        source: msg.route.source,
        ...(err === undefined ? {} : { err: errorText(err) }),
      },
      text,
    );
  }

  /** An `ObjectResp` reply: the object, or `Err` with the failure's ErrStatus. */
  private async objectResp<T extends { metadata?: { resourceVersion?: string } }>(
    run: () => Promise<T>,
    details?: { name?: string; group?: string; kind?: string },
  ): Promise<Reply> {
    try {
      const obj = await run();
      const content: ObjectResp = { Object: obj, Err: null };
      return { content, resourceVersion: obj.metadata?.resourceVersion };
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      const content: ObjectResp = { Object: null, Err: errStatus(err, details) };
      return { content };
    }
  }

  // ---- nodes (§5.2, §5.3)

  /** registerNode: create without the kubernetes.io labels, apply them with a merge patch, annotate. */
  private async createNode(node: V1Node, name: string): Promise<V1Node> {
    const labels = node.metadata?.labels ?? {};
    const later = Object.fromEntries(Object.entries(labels).filter(([k]) => isKubernetesLabel(k)));
    const first = Object.fromEntries(Object.entries(labels).filter(([k]) => !isKubernetesLabel(k)));
    const body: V1Node = {
      ...node,
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        ...node.metadata,
        name,
        labels: first,
        annotations: withHolder(node.metadata?.annotations, this.o.holder),
      },
    };
    const created = await this.o.kube.request<V1Node>('POST', '/api/v1/nodes', body);
    if (Object.keys(later).length === 0) return created;
    return this.o.kube.request<V1Node>(
      'PATCH',
      nodePath(name),
      { metadata: { labels: later } },
      {
        contentType: MERGE,
      },
    );
  }

  private registerNode(msg: Message, r: InternalResource): Promise<Reply> {
    const node = contentJson<V1Node>(msg);
    // the reply carries no resourceversion (recorded session)
    return this.objectResp(() => this.createNode(node, r.name), { name: r.name, kind: 'nodes' }).then(
      (reply) => ({ content: reply.content }),
    );
  }

  private async queryNode(r: InternalResource): Promise<Reply> {
    try {
      const node = await this.o.kube.request<V1Node>('GET', nodePath(r.name));
      return { content: withTypeMeta(node, 'Node', 'v1') };
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      return { content: errStatus(err, { name: r.name, kind: 'nodes' }) };
    }
  }

  /** The edge's Node object: only its labels and annotations are merged into the cloud's. */
  private async updateNode(msg: Message, r: InternalResource): Promise<Reply> {
    const node = contentJson<V1Node>(msg);
    const metadata = { labels: node.metadata?.labels ?? {}, annotations: node.metadata?.annotations ?? {} };
    try {
      const updated = await this.o.kube.request<V1Node>(
        'PATCH',
        nodePath(r.name),
        { metadata },
        {
          contentType: SMP,
        },
      );
      return { content: OK, resourceVersion: updated.metadata?.resourceVersion };
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      return { content: errStatus(err, { name: r.name, kind: 'nodes' }) };
    }
  }

  private patchNode(msg: Message, r: InternalResource): Promise<Reply> {
    const patch = patchText(msg);
    return this.objectResp(
      () => this.o.kube.request<V1Node>('PATCH', `${nodePath(r.name)}/status`, patch, { contentType: SMP }),
      { name: r.name, kind: 'nodes' },
    );
  }

  /** Legacy `nodestatus` insert: register the node if absent; "OK" or an error string. */
  private async legacyRegister(msg: Message, r: InternalResource): Promise<Reply> {
    const node = contentJson<V1Node>(msg);
    try {
      await this.o.kube.request<V1Node>('GET', nodePath(r.name));
    } catch (err) {
      if (!isNotFound(err)) return { content: errorText(err) };
      try {
        await this.createNode(node, r.name);
      } catch (err2) {
        return { content: errorText(err2) };
      }
    }
    return { content: OK };
  }

  /** Legacy `nodestatus` update (NodeStatusRequest): UpdateStatus, stale heartbeats bumped. */
  private async legacyNodeStatus(msg: Message, r: InternalResource): Promise<Reply> {
    const req = contentJson<{ UID?: string; Status?: V1NodeStatus }>(msg);
    if (req === null || typeof req !== 'object' || req.Status === undefined) {
      throw new Error('content: expected a NodeStatusRequest {"UID","Status","ExtendResources"}');
    }
    const resource = `${r.namespace}/node/${r.name}`;
    try {
      const node = await this.o.kube.request<V1Node>('GET', nodePath(r.name));
      const now = new Date();
      const stale = now.getTime() - this.o.nodeUpdateMs;
      const conditions = (req.Status.conditions ?? []).map((c): V1NodeCondition => {
        const beat = c.lastHeartbeatTime ? new Date(c.lastHeartbeatTime).getTime() : 0;
        return beat < stale ? { ...c, lastHeartbeatTime: now } : c;
      });
      const updated = await this.o.kube.request<V1Node>('PUT', `${nodePath(r.name)}/status`, {
        ...node,
        status: { ...req.Status, conditions },
      });
      return { content: OK, resourceVersion: updated.metadata?.resourceVersion, resource };
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      return { content: errStatus(err, { name: r.name, kind: 'nodes' }), resource };
    }
  }

  // ---- leases (§5.3)

  private queryLease(r: InternalResource): Promise<Reply> {
    return this.objectResp(() => this.o.kube.request<V1Lease>('GET', leasePath(r.namespace, r.name)), {
      name: r.name,
      group: 'coordination.k8s.io',
      kind: 'lease',
    });
  }

  private writeLease(method: 'POST' | 'PUT', msg: Message, r: InternalResource): Promise<Reply> {
    const lease = withTypeMeta(contentJson<V1Lease>(msg), 'Lease', 'coordination.k8s.io/v1');
    const path = method === 'POST' ? leasePath(r.namespace) : leasePath(r.namespace, r.name);
    return this.objectResp(() => this.o.kube.request<V1Lease>(method, path, lease), {
      name: r.name,
      group: 'coordination.k8s.io',
      kind: 'lease',
    });
  }

  // ---- pods (§5.6)

  private patchPod(msg: Message, r: InternalResource): Promise<Reply> {
    const patch = patchText(msg);
    return this.objectResp(
      () =>
        this.o.kube.request<V1Pod>('PATCH', `${podPath(r.namespace, r.name)}/status`, patch, {
          contentType: SMP,
        }),
      { name: r.name, kind: 'pods' },
    );
  }

  /**
   * The edge finished a graceful deletion: delete with its DeleteOptions (a string content is the
   * legacy bare UID: grace 0, UID precondition). A pod already gone or replaced (UID precondition
   * failed) is "OK" too.
   */
  private async deletePod(msg: Message, r: InternalResource): Promise<Reply> {
    const options =
      typeof msg.content === 'string'
        ? { gracePeriodSeconds: 0, preconditions: { uid: msg.content } }
        : contentJson<Record<string, unknown>>(msg);
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new Error('content: expected DeleteOptions (an object) or a pod UID (a string)');
    }
    try {
      await this.o.kube.request('DELETE', podPath(r.namespace, r.name), {
        kind: 'DeleteOptions',
        apiVersion: 'v1',
        ...options,
      });
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      if (err.statusCode !== 404 && err.statusCode !== 409) {
        return { content: errStatus(err, { name: r.name, kind: 'pods' }) };
      }
    }
    return { content: OK };
  }

  /**
   * Legacy pod status (§5.6; v1.23 edges send podpatch): `PodStatusRequest`s, one or an array.
   * A pod gone or replaced (other UID) is answered "OK" and a `delete` of it goes to the node (with
   * the edge's UID, so cloudHub can queue it and the edge removes that pod only).
   */
  private async legacyPodStatus(msg: Message, r: InternalResource): Promise<Reply> {
    const body = contentJson<PodStatusRequest | PodStatusRequest[]>(msg);
    const requests = Array.isArray(body) ? body : [body];
    if (
      !requests.every((q) => q !== null && typeof q === 'object' && typeof q.Name === 'string' && q.Status)
    ) {
      throw new Error('content: expected a PodStatusRequest {"UID","Name","Status"} or an array of them');
    }
    for (const req of requests) {
      try {
        const pod = await this.o.kube
          .request<V1Pod>('GET', podPath(r.namespace, req.Name))
          .catch((err: unknown) => {
            if (isNotFound(err)) return undefined;
            throw err;
          });
        if (pod === undefined || pod.metadata?.uid !== req.UID) {
          const gone = { metadata: { namespace: r.namespace, name: req.Name, uid: req.UID } };
          await this.o.send(toNode(r.node, Operation.delete, `${r.namespace}/pod/${req.Name}`, gone));
          continue;
        }
        await this.o.kube.request('PUT', `${podPath(r.namespace, req.Name)}/status`, {
          ...pod,
          status: req.Status,
        });
      } catch (err) {
        if (!(err instanceof KubeApiError)) throw err;
        return { content: errStatus(err, { name: req.Name, kind: 'pods' }) };
      }
    }
    return { content: OK };
  }

  /** A mirror pod of a static pod (§5.6): created, answered with an ObjectResp. */
  private createPod(msg: Message, r: InternalResource): Promise<Reply> {
    const pod = withTypeMeta(contentJson<V1Pod>(msg), 'Pod', 'v1');
    return this.objectResp(
      () => this.o.kube.request<V1Pod>('POST', `/api/v1/namespaces/${encode(r.namespace)}/pods`, pod),
      { name: r.name, kind: 'pods' },
    );
  }

  // ---- events (§5.10): no reply

  private async writeEvent(op: 'insert' | 'update' | 'patch', msg: Message): Promise<undefined> {
    const body = contentJson<CoreV1Event | { event?: CoreV1Event; patchData?: string }>(msg);
    const event = op === 'patch' ? (body as { event?: CoreV1Event }).event : (body as CoreV1Event);
    const ns = event?.metadata?.namespace;
    const name = event?.metadata?.name;
    if (!ns || !name) throw new Error('content: expected an Event with metadata.namespace and metadata.name');
    const events = `/api/v1/namespaces/${encode(ns)}/events`;
    if (op === 'insert') await this.o.kube.request('POST', events, withTypeMeta(event, 'Event', 'v1'));
    else if (op === 'update')
      await this.o.kube.request('PUT', `${events}/${encode(name)}`, withTypeMeta(event, 'Event', 'v1'));
    else {
      const patch = (body as { patchData?: unknown }).patchData;
      if (typeof patch !== 'string')
        throw new Error('content: expected {"event": Event, "patchData": "<patch>"}');
      await this.o.kube.request('PATCH', `${events}/${encode(name)}`, patch, { contentType: SMP });
    }
    return undefined;
  }

  // ---- remote queries (§5.8), CSRs (§5.11)

  /** A queried object (ACK-mode at cloudHub when it carries a resourceVersion), or its ErrStatus. */
  private async queryObject(r: InternalResource): Promise<Reply> {
    const q = QUERIES[r.type]!;
    try {
      const obj = await this.o.kube.request<{ metadata?: { resourceVersion?: string } }>('GET', q.path(r));
      return {
        content: withTypeMeta(obj, q.kind, q.apiVersion),
        resourceVersion: obj.metadata?.resourceVersion,
      };
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      return { content: errStatus(err, { name: r.name, kind: r.type }) };
    }
  }

  /** `serviceaccounttoken` query: the TokenRequest of the content, created for the service account. */
  private async createToken(msg: Message, r: InternalResource): Promise<Reply> {
    const request = withTypeMeta(
      contentJson<AuthenticationV1TokenRequest>(msg),
      'TokenRequest',
      'authentication.k8s.io/v1',
    );
    const path = `/api/v1/namespaces/${encode(r.namespace)}/serviceaccounts/${encode(r.name)}/token`;
    try {
      const token = await this.o.kube.request<AuthenticationV1TokenRequest>('POST', path, request);
      return { content: withTypeMeta(token, 'TokenRequest', 'authentication.k8s.io/v1') };
    } catch (err) {
      if (!(err instanceof KubeApiError)) throw err;
      return { content: errStatus(err, { name: r.name, kind: 'serviceaccounts' }) };
    }
  }

  private createCsr(msg: Message, r: InternalResource): Promise<Reply> {
    const csr = withTypeMeta(
      contentJson<V1CertificateSigningRequest>(msg),
      'CertificateSigningRequest',
      'certificates.k8s.io/v1',
    );
    return this.objectResp(
      () =>
        this.o.kube.request<V1CertificateSigningRequest>(
          'POST',
          '/apis/certificates.k8s.io/v1/certificatesigningrequests',
          csr,
        ),
      { name: r.name, group: 'certificates.k8s.io', kind: 'certificatesigningrequest' },
    );
  }
}

/** A patch arrives as a JSON string (or bytes); an object is taken as the patch itself. */
function patchText(msg: Message): string {
  const c = msg.content;
  if (typeof c === 'string') {
    try {
      JSON.parse(c); // a malformed patch is refused here, not sent to the API server
    } catch {
      throw new Error(
        `content: expected a patch document as a JSON string, got ${JSON.stringify(c.slice(0, 80))}`,
      );
    }
    return c;
  }
  if (c !== null && typeof c === 'object') return JSON.stringify(contentJson(msg));
  throw new Error('content: expected a patch document (a JSON string)');
}
