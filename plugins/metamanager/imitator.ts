import { EdgedModuleName } from '../../protocol/index.js';
import type { MetaStore, MetaV2Row } from './store.js';

/**
 * The meta_v2 feeder (KubeEdge's "imitator", spec edge-modules §3.9): every insert/update/delete
 * metaManager sees whose content is a Kubernetes object (has `kind`) is mirrored into `meta_v2`
 * under `/<group>/<version>/<resource>/<ns|null>/<name>`, for metaServer.
 */

const KIND_TO_RESOURCE: Record<string, string> = {
  Endpoints: 'endpoints',
  PodStatus: 'podstatus',
  NodeStatus: 'nodestatus',
  CustomResourceDefinition: 'customresourcedefinitions',
  CustomResourceDefinitionList: 'customresourcedefinitionlist',
  IngressClassList: 'ingressclasslist',
  ConfigMapList: 'configmaplist',
};

/** pkg/metaserver/util UnsafeKindToResource. */
export function kindToResource(kind: string): string {
  if (!kind) return kind;
  const unusual = KIND_TO_RESOURCE[kind];
  if (unusual) return unusual;
  const r = kind.toLowerCase();
  if (r.endsWith('s')) return `${r}es`;
  if (r.endsWith('y')) return `${r.slice(0, -1)}ies`;
  return `${r}s`;
}

/** `"<group>/<version>, Resource=<resource>"`; the core group is empty: `"/v1, Resource=pods"`. */
export function gvrString(group: string, version: string, resource: string): string {
  return `${group}/${version}, Resource=${resource}`;
}

export function v2Key(
  group: string,
  version: string,
  resource: string,
  namespace: string,
  name: string,
): string {
  return `/${group || 'core'}/${version}/${resource}/${namespace || 'null'}/${name || 'null'}`;
}

export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0
    ? { group: '', version: apiVersion }
    : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

export interface KubeObject {
  kind?: string;
  apiVersion?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    labels?: Record<string, string>;
  };
  items?: unknown[];
  [k: string]: unknown;
}

function isObject(v: unknown): v is KubeObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A resourceVersion as an unsigned integer (0 when absent or not numeric). */
export function parseRv(rv: unknown): number {
  if (typeof rv !== 'string' || !/^\d+$/.test(rv)) return 0;
  const n = Number(rv);
  return Number.isSafeInteger(n) ? n : 0;
}

/** The meta_v2 row of an object, or undefined if it is not a Kubernetes object. */
export function rowOf(
  obj: unknown,
  kindOverride?: string,
  apiVersionOverride?: string,
  /** `JSON.stringify(obj)` when the caller has it already (reused when obj is stored as is). */
  text?: string,
): MetaV2Row | undefined {
  if (!isObject(obj)) return undefined;
  const kind = typeof obj.kind === 'string' && obj.kind ? obj.kind : kindOverride;
  const apiVersion =
    typeof obj.apiVersion === 'string' && obj.apiVersion ? obj.apiVersion : apiVersionOverride;
  const name = obj.metadata?.name;
  if (!kind || !apiVersion || typeof name !== 'string' || !name) return undefined;
  const { group, version } = splitApiVersion(apiVersion);
  const resource = kindToResource(kind);
  const namespace =
    typeof obj.metadata?.namespace === 'string' && obj.metadata.namespace ? obj.metadata.namespace : 'null';
  // Items of a list carry no kind of their own: write it so that metaServer serves full objects.
  const full = obj.kind === kind && obj.apiVersion === apiVersion ? obj : { ...obj, kind, apiVersion };
  return {
    key: v2Key(group, version, resource, namespace, name),
    group_version_resource: gvrString(group, version, resource),
    namespace,
    name,
    resource_version: parseRv(obj.metadata?.resourceVersion),
    value: full === obj && text !== undefined ? text : JSON.stringify(full),
  };
}

/**
 * Feed one message's content into meta_v2. `operation` is insert/update/delete; `type` the
 * resource type token of the message's resource. Returns how many objects were written.
 */
export function feedV2(
  store: MetaStore,
  operation: string,
  type: string,
  source: string,
  content: unknown,
  /** `JSON.stringify(content)`, when the caller has it already. */
  text?: string,
): number {
  if (type.includes('status') || type === 'event') return 0;
  if (type === 'lease' && source === EdgedModuleName) return 0;
  if (!isObject(content) || typeof content.kind !== 'string') return 0;
  let objects: { row: MetaV2Row; obj: KubeObject }[] = [];
  if (content.kind.endsWith('List') && Array.isArray(content.items)) {
    const itemKind = content.kind.slice(0, -'List'.length);
    for (const item of content.items) {
      const row = rowOf(item, itemKind, content.apiVersion);
      if (row) objects.push({ row, obj: item as KubeObject });
    }
  } else {
    const row = rowOf(content, undefined, undefined, text);
    if (row) objects = [{ row, obj: content }];
  }
  for (const { row } of objects) {
    if (operation === 'delete') store.deleteV2(row);
    else store.putV2(row);
  }
  return objects.length;
}
