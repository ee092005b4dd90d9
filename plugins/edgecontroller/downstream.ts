/**
 * edgeController's downstream half (KubeEdge's DownstreamController, wire §5.4, §5.5, §5.7): shared
 * informers on edge Nodes, Pods, ConfigMaps, Secrets, Services and Endpoints; each change goes to
 * cloudHub addressed to the node it concerns (`node/<id>/<ns>/<type>/<name>`), with the object's
 * resourceVersion. Services and Endpoints go to every edge node (edgeMesh's DNS and proxy).
 */
import type {
  KubernetesObject,
  V1ConfigMap,
  V1Endpoints,
  V1Node,
  V1Pod,
  V1PodSpec,
  V1Secret,
  V1Service,
} from '@kubernetes/client-node';
import {
  NULL_NAMESPACE,
  Operation,
  errorText,
  type KubeApi,
  type Logger,
  type Message,
  type SharedInformer,
  withTypeMeta,
} from '../../kernel/index.js';
import { EdgeNodeLabel, toNode } from './messages.js';

export interface DownstreamOptions {
  kube: KubeApi;
  log: Logger;
  signal: AbortSignal;
  send(msg: Message): Promise<void>;
  /** A message cloudHub refused (not running, mailbox full). */
  dropped(reason: string): void;
}

type RefKind = 'configmap' | 'secret';

/** The configmaps and secrets a pod spec references (volumes, projected, env, envFrom, pull secrets). */
function podReferences(spec: V1PodSpec | undefined): { configmap: Set<string>; secret: Set<string> } {
  const refs = { configmap: new Set<string>(), secret: new Set<string>() };
  if (spec === undefined) return refs;
  const add = (kind: RefKind, name: string | undefined): void => {
    if (name) refs[kind].add(name);
  };
  for (const v of spec.volumes ?? []) {
    add('configmap', v.configMap?.name);
    add('secret', v.secret?.secretName);
    for (const s of v.projected?.sources ?? []) {
      add('configmap', s.configMap?.name);
      add('secret', s.secret?.name);
    }
  }
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    for (const e of c.env ?? []) {
      add('configmap', e.valueFrom?.configMapKeyRef?.name);
      add('secret', e.valueFrom?.secretKeyRef?.name);
    }
    for (const e of c.envFrom ?? []) {
      add('configmap', e.configMapRef?.name);
      add('secret', e.secretRef?.name);
    }
  }
  for (const s of spec.imagePullSecrets ?? []) add('secret', s.name);
  return refs;
}

export class Downstream {
  private readonly nodes;
  private readonly pods;
  private readonly configMaps;
  private readonly secrets;
  private readonly services;
  private readonly endpoints;
  /** Edge nodes known from the node informer. */
  private readonly edgeNodes = new Set<string>();
  private podsWatched = false;

  constructor(private readonly o: DownstreamOptions) {
    const { kube, signal } = o;
    this.nodes = kube.informer<V1Node>({
      version: 'v1',
      resource: 'nodes',
      labelSelector: EdgeNodeLabel,
      signal,
    });
    this.pods = kube.informer<V1Pod>({ version: 'v1', resource: 'pods', signal });
    this.configMaps = kube.informer<V1ConfigMap>({ version: 'v1', resource: 'configmaps', signal });
    this.secrets = kube.informer<V1Secret>({ version: 'v1', resource: 'secrets', signal });
    this.services = kube.informer<V1Service>({ version: 'v1', resource: 'services', signal });
    this.endpoints = kube.informer<V1Endpoints>({ version: 'v1', resource: 'endpoints', signal });
  }

  /** Registers the handlers once the caches hold their first lists (nodes first: pods need them). */
  async start(): Promise<void> {
    await this.nodes.synced;
    this.nodes.addHandlers({
      add: (n) => this.nodeChanged(n),
      update: (n) => this.nodeChanged(n),
      delete: (n) => this.edgeNodes.delete(n.metadata?.name ?? ''),
    });
    await Promise.all([
      this.pods.synced,
      this.configMaps.synced,
      this.secrets.synced,
      this.services.synced,
      this.endpoints.synced,
    ]);
    this.podsWatched = true;
    this.pods.addHandlers({
      add: (p) => this.podEvent(p, Operation.insert),
      update: (p) => this.podEvent(p, Operation.update),
      delete: (p) => this.podEvent(p, Operation.delete),
    });
    this.configMaps.addHandlers({
      add: (c) => this.referenced(c, 'configmap', 'ConfigMap', Operation.insert),
      update: (c) => this.referenced(c, 'configmap', 'ConfigMap', Operation.update),
      delete: (c) => this.referenced(c, 'configmap', 'ConfigMap', Operation.delete),
    });
    // secrets are never `insert`ed (§5.7)
    this.secrets.addHandlers({
      add: (s) => this.referenced(s, 'secret', 'Secret', Operation.update),
      update: (s) => this.referenced(s, 'secret', 'Secret', Operation.update),
      delete: (s) => this.referenced(s, 'secret', 'Secret', Operation.delete),
    });
    this.everyNode(this.services, 'service', 'Service');
    this.everyNode(this.endpoints, 'endpoints', 'Endpoints');
  }

  /** Services and Endpoints go to every edge node (KubeEdge's syncService / syncEndpoints). */
  private everyNode(informer: SharedInformer<KubernetesObject>, type: string, kind: string): void {
    const to = (o: KubernetesObject, operation: string): void => {
      for (const node of this.edgeNodes) this.pushObject(node, o, type, kind, operation);
    };
    informer.addHandlers({
      add: (o) => to(o, Operation.insert),
      update: (o) => to(o, Operation.update),
      delete: (o) => to(o, Operation.delete),
    });
  }

  stop(): void {
    for (const i of [this.nodes, this.pods, this.configMaps, this.secrets, this.services, this.endpoints])
      i.stop();
  }

  private push(node: string, operation: string, resource: string, obj: KubernetesObject): void {
    const msg = toNode(node, operation, resource, obj, { resourceVersion: obj.metadata?.resourceVersion });
    this.o.send(msg).catch((err: unknown) => {
      this.o.dropped('cloudhub-refused');
      this.o.log.warn(
        { node, resource, operation, err: errorText(err) },
        'downstream message not handed to cloudHub',
      );
    });
  }

  /** A Node with the edge label: `update` to that node (§5.4); a node seen first gets its bound pods. */
  private nodeChanged(node: V1Node): void {
    const name = node.metadata?.name ?? '';
    if (name === '') return;
    const fresh = !this.edgeNodes.has(name);
    this.edgeNodes.add(name);
    this.push(name, Operation.update, `${NULL_NAMESPACE}/node/${name}`, withTypeMeta(node, 'Node', 'v1'));
    // pods bound before the node carried the edge label, and every service (before start(), the
    // informers' replay sends them)
    if (fresh && this.podsWatched) {
      for (const p of this.pods.list()) if (p.spec?.nodeName === name) this.podEvent(p, Operation.insert);
      for (const svc of this.services.list())
        this.pushObject(name, svc, 'service', 'Service', Operation.insert);
      for (const eps of this.endpoints.list())
        this.pushObject(name, eps, 'endpoints', 'Endpoints', Operation.insert);
    }
  }

  /** An object of `type` to one node, as `<ns>/<type>/<name>` (namespace `default` when it has none). */
  private pushObject(
    node: string,
    obj: KubernetesObject,
    type: string,
    kind: string,
    operation: string,
  ): void {
    const ns = obj.metadata?.namespace ?? 'default';
    this.push(node, operation, `${ns}/${type}/${obj.metadata?.name ?? ''}`, withTypeMeta(obj, kind, 'v1'));
  }

  /** A pod bound to an edge node goes to that node only (§5.5). */
  private podEvent(pod: V1Pod, operation: string): void {
    const node = pod.spec?.nodeName;
    if (!node || !this.edgeNodes.has(node)) return;
    const op =
      operation === Operation.insert && pod.metadata?.deletionTimestamp ? Operation.update : operation;
    this.pushObject(node, pod, 'pod', 'Pod', op);
  }

  /** A configmap or secret goes to the edge nodes running a pod that references it (node isolation). */
  private referenced(obj: V1ConfigMap | V1Secret, type: RefKind, kind: string, operation: string): void {
    const ns = obj.metadata?.namespace ?? '';
    const name = obj.metadata?.name ?? '';
    const targets = new Set<string>();
    for (const p of this.pods.list(ns)) {
      const node = p.spec?.nodeName;
      if (!node || !this.edgeNodes.has(node) || targets.has(node)) continue;
      if (podReferences(p.spec)[type].has(name)) targets.add(node);
    }
    for (const node of targets)
      this.push(node, operation, `${ns}/${type}/${name}`, withTypeMeta(obj, kind, 'v1'));
  }
}
