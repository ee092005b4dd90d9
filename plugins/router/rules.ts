/**
 * Rules and RuleEndpoints (`rules.kubeedge.io/v1`, spec devices-dmi-router §5.2) as the router uses
 * them: each Rule resolved against the RuleEndpoints of its namespace into a {@link Route}, or a
 * problem naming the field; the route table with anchored REST path matching (§5.4) and the
 * eventbus-source lookup (§5.6). Pure code.
 */

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
}

/** `metadata.creationTimestamp` as the API sends it (RFC 3339 text, ordered as text). */
export function createdAt(obj: { metadata?: object }): string {
  const t = (obj.metadata as { creationTimestamp?: unknown } | undefined)?.creationTimestamp;
  return typeof t === 'string' ? t : '';
}

export interface RuleEndpointObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: { ruleEndpointType?: string; properties?: Record<string, string> };
}

export interface RuleStatus {
  successMessages?: number;
  failMessages?: number;
  errors?: string[];
}

export interface RuleObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: {
    source?: string;
    sourceResource?: Record<string, string>;
    target?: string;
    targetResource?: Record<string, string>;
  };
  status?: RuleStatus;
}

export type RouteSource =
  /** `path` segments, `{name}` segments match any one segment */
  | { type: 'rest'; path: string[] }
  /** the MQTT topic the edge subscribes: `<namespace>/<topic>` */
  | { type: 'eventbus'; node: string; topic: string }
  /** the `targetURL` an edge app names when it calls its serviceBus's local server */
  | { type: 'servicebus'; node: string; url: string };

export type RouteTarget =
  | { type: 'eventbus'; topic: string }
  | { type: 'servicebus'; port: number; path: string }
  | { type: 'rest'; url: string };

export interface Route {
  uid: string;
  namespace: string;
  name: string;
  source: RouteSource;
  target: RouteTarget;
}

/** The provider types (KubeEdge's `rest`, `eventbus`, `servicebus`). */
const TYPES = new Set(['rest', 'eventbus', 'servicebus']);
/** Allowed source → target pairs (the admission webhook's, §5.2, and servicebus → rest of §5.8). */
const PAIRS = new Set(['rest>eventbus', 'rest>servicebus', 'eventbus>rest', 'servicebus>rest']);

/** Path segments without empty ones (`/a//b/` → `a`, `b`). */
export function segments(path: string): string[] {
  return path.split('/').filter((s) => s !== '');
}

export const ruleKey = (namespace: string, name: string): string => `${namespace}/${name}`;

/**
 * Resolve one Rule: its endpoints (same namespace), the resources each provider needs, the pair.
 * Returns the route, or the problem naming the field (it goes to the Rule's `status.errors`).
 */
export function resolveRule(
  rule: RuleObject,
  endpoint: (namespace: string, name: string) => RuleEndpointObject | undefined,
): Route | { problem: string } {
  const namespace = rule.metadata?.namespace ?? 'default';
  const name = rule.metadata?.name ?? '';
  const spec = rule.spec ?? {};
  const ends: { type: string; properties: Record<string, string> }[] = [];
  for (const side of ['source', 'target'] as const) {
    const ref = spec[side] ?? '';
    const ep = ref === '' ? undefined : endpoint(namespace, ref);
    if (ep === undefined)
      return { problem: `spec.${side}: RuleEndpoint "${ref}" not found in namespace ${namespace}` };
    const type = ep.spec?.ruleEndpointType ?? '';
    if (!TYPES.has(type))
      return {
        problem: `spec.${side}: RuleEndpoint "${ref}" has spec.ruleEndpointType "${type}", expected rest, eventbus or servicebus`,
      };
    ends.push({ type, properties: ep.spec?.properties ?? {} });
  }
  const [src, dst] = ends as [(typeof ends)[0], (typeof ends)[0]];
  if (!PAIRS.has(`${src.type}>${dst.type}`))
    return {
      problem: `spec.source/spec.target: ${src.type} -> ${dst.type} is not supported (rest -> eventbus, rest -> servicebus, eventbus -> rest, servicebus -> rest)`,
    };
  const sr = spec.sourceResource ?? {};
  const tr = spec.targetResource ?? {};
  const need = (field: string, map: Record<string, string>, key: string): string | undefined =>
    (map[key] ?? '').trim() === ''
      ? `${field}.${key}: required for ${field === 'spec.sourceResource' ? src.type : dst.type} endpoints`
      : undefined;

  let source: RouteSource;
  if (src.type === 'rest') {
    const missing = need('spec.sourceResource', sr, 'path');
    if (missing) return { problem: missing };
    source = { type: 'rest', path: segments(sr.path as string) };
    if (source.path.length === 0)
      return { problem: 'spec.sourceResource.path: must name at least one segment' };
  } else if (src.type === 'eventbus') {
    const missing = need('spec.sourceResource', sr, 'topic') ?? need('spec.sourceResource', sr, 'node_name');
    if (missing) return { problem: missing };
    source = {
      type: 'eventbus',
      node: (sr.node_name as string).trim(),
      topic: segments(`${namespace}/${sr.topic as string}`).join('/'),
    };
  } else {
    const missing =
      need('spec.sourceResource', sr, 'target_url') ?? need('spec.sourceResource', sr, 'node_name');
    if (missing) return { problem: missing };
    source = {
      type: 'servicebus',
      node: (sr.node_name as string).trim(),
      url: (sr.target_url as string).trim(),
    };
  }

  let target: RouteTarget;
  if (dst.type === 'eventbus') {
    const missing = need('spec.targetResource', tr, 'topic');
    if (missing) return { problem: missing };
    target = { type: 'eventbus', topic: (tr.topic as string).replace(/\/+$/, '') };
  } else if (dst.type === 'servicebus') {
    const missing = need('spec.targetResource', tr, 'path');
    if (missing) return { problem: missing };
    const raw = dst.properties.service_port;
    const port = Number(raw);
    if (!/^\d+$/.test(raw ?? '') || port < 1 || port > 65535)
      return {
        problem: `RuleEndpoint "${spec.target}": spec.properties.service_port: expected a port 1-65535, got ${JSON.stringify(raw ?? null)}`,
      };
    const path = tr.path as string;
    target = { type: 'servicebus', port, path: path.startsWith('/') ? path : `/${path}` };
  } else {
    const missing = need('spec.targetResource', tr, 'resource');
    if (missing) return { problem: missing };
    const url = (tr.resource as string).trim();
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(url).protocol);
    } catch {
      ok = false;
    }
    if (!ok)
      return {
        problem: `spec.targetResource.resource: expected an absolute http(s) URL, got ${JSON.stringify(url)}`,
      };
    target = { type: 'rest', url };
  }
  return { uid: rule.metadata?.uid ?? '', namespace, name, source, target };
}

const isPlaceholder = (s: string): boolean => s.length > 2 && s.startsWith('{') && s.endsWith('}');

/** What an edge is told to set up for the eventbus and servicebus sources: topics, target URLs. */
export interface EdgeSetup {
  type: 'eventbus' | 'servicebus';
  node: string;
  /** the topic to subscribe, or the target URL to allow */
  resource: string;
}

/** The rest-, eventbus- and servicebus-source rules, built from the resolved routes. */
export class RouteTable {
  /** rest sources by namespace, longest path first */
  private readonly rest = new Map<string, Route[]>();
  /** eventbus sources by `<node>\0<topic>` */
  private readonly bus = new Map<string, Route[]>();
  /** servicebus sources by `<node>\0<target URL>`: one rule answers a call */
  private readonly calls = new Map<string, Route>();
  /** rules that lost to an older one, by `<namespace>/<name>`, with the problem */
  readonly problems = new Map<string, string>();

  /**
   * `routes` in precedence order (oldest rule first). A rest path already taken in its namespace
   * (same segments) is a problem of the later rule, returned by its key.
   */
  constructor(routes: Iterable<Route>) {
    for (const r of routes) {
      if (r.source.type === 'rest') {
        const list = this.rest.get(r.namespace) ?? [];
        const path = r.source.path.join('/');
        const taken = list.find((o) => (o.source as { path: string[] }).path.join('/') === path);
        if (taken) {
          this.problems.set(
            ruleKey(r.namespace, r.name),
            `spec.sourceResource.path: /${path} is already used by rule ${taken.name}`,
          );
          continue;
        }
        list.push(r);
        this.rest.set(r.namespace, list);
      } else if (r.source.type === 'eventbus') {
        const key = `${r.source.node}\0${r.source.topic}`;
        this.bus.set(key, [...(this.bus.get(key) ?? []), r]);
      } else {
        const key = `${r.source.node}\0${r.source.url}`;
        const taken = this.calls.get(key);
        if (taken) {
          this.problems.set(
            ruleKey(r.namespace, r.name),
            `spec.sourceResource.target_url: ${r.source.url} of node ${r.source.node} is already used by rule ${taken.namespace}/${taken.name}`,
          );
          continue;
        }
        this.calls.set(key, r);
      }
    }
    for (const list of this.rest.values())
      list.sort(
        (a, b) => (b.source as { path: string[] }).path.length - (a.source as { path: string[] }).path.length,
      );
  }

  /**
   * The rest-source rule of `namespace` whose path is a segment-wise prefix of `rest` (anchored:
   * `/test` matches `test`, `test/a`, not `testing`), the longest first; with the segments left over.
   */
  matchRest(namespace: string, rest: string[]): { route: Route; param: string[] } | undefined {
    for (const route of this.rest.get(namespace) ?? []) {
      const path = (route.source as { path: string[] }).path;
      if (path.length > rest.length) continue;
      if (path.every((p, i) => p === rest[i] || (isPlaceholder(p) && rest[i] !== ''))) {
        return { route, param: rest.slice(path.length) };
      }
    }
    return undefined;
  }

  /** The eventbus-source rules for an upload of `node` on `topic`. */
  matchBus(node: string, topic: string): readonly Route[] {
    return this.bus.get(`${node}\0${segments(topic).join('/')}`) ?? [];
  }

  /** The servicebus-source rule for a call of `node`'s edge app naming `url`. */
  matchCall(node: string, url: string): Route | undefined {
    return this.calls.get(`${node}\0${url}`);
  }

  /** What the edges must set up: the topics to subscribe, the target URLs to allow. */
  edgeSetups(): EdgeSetup[] {
    const topics = [...this.bus.values()].map(([r]): EdgeSetup => {
      const s = r!.source as { node: string; topic: string };
      return { type: 'eventbus', node: s.node, resource: s.topic };
    });
    const urls = [...this.calls.values()].map((r): EdgeSetup => {
      const s = r.source as { node: string; url: string };
      return { type: 'servicebus', node: s.node, resource: s.url };
    });
    return [...topics, ...urls];
  }
}
