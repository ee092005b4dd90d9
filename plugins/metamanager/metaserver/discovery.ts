/**
 * The resources metaServer knows without the cloud, and the discovery documents kubectl and
 * client libraries read (`/api`, `/apis`, `/api/v1`, ...). KubeEdge passes discovery through to
 * the cloud and caches it in meta_v2 under the path; a cached copy is preferred when present.
 */

export interface ResourceInfo {
  group: string;
  version: string;
  resource: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
}

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];

export const BUILTIN: ResourceInfo[] = [
  { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true, shortNames: ['po'] },
  {
    group: '',
    version: 'v1',
    resource: 'configmaps',
    kind: 'ConfigMap',
    namespaced: true,
    shortNames: ['cm'],
  },
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', resource: 'services', kind: 'Service', namespaced: true, shortNames: ['svc'] },
  {
    group: '',
    version: 'v1',
    resource: 'endpoints',
    kind: 'Endpoints',
    namespaced: true,
    shortNames: ['ep'],
  },
  { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false, shortNames: ['no'] },
  {
    group: '',
    version: 'v1',
    resource: 'namespaces',
    kind: 'Namespace',
    namespaced: false,
    shortNames: ['ns'],
  },
  { group: '', version: 'v1', resource: 'events', kind: 'Event', namespaced: true, shortNames: ['ev'] },
  {
    group: '',
    version: 'v1',
    resource: 'serviceaccounts',
    kind: 'ServiceAccount',
    namespaced: true,
    shortNames: ['sa'],
  },
  {
    group: '',
    version: 'v1',
    resource: 'persistentvolumes',
    kind: 'PersistentVolume',
    namespaced: false,
    shortNames: ['pv'],
  },
  {
    group: '',
    version: 'v1',
    resource: 'persistentvolumeclaims',
    kind: 'PersistentVolumeClaim',
    namespaced: true,
    shortNames: ['pvc'],
  },
  { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', namespaced: true },
  {
    group: 'discovery.k8s.io',
    version: 'v1',
    resource: 'endpointslices',
    kind: 'EndpointSlice',
    namespaced: true,
  },
  { group: 'devices.kubeedge.io', version: 'v1beta1', resource: 'devices', kind: 'Device', namespaced: true },
  {
    group: 'devices.kubeedge.io',
    version: 'v1beta1',
    resource: 'devicemodels',
    kind: 'DeviceModel',
    namespaced: true,
  },
];

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.10-kubeedge-v1.23.1',
  gitCommit: '',
  gitTreeState: 'clean',
  buildDate: '',
  goVersion: '',
  compiler: 'gc',
  platform: 'linux/amd64',
};

function resourceList(group: string, version: string, list: ResourceInfo[]): unknown {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group ? `${group}/${version}` : version,
    resources: list
      .filter((r) => r.group === group && r.version === version)
      .map((r) => ({
        name: r.resource,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: VERBS,
        ...(r.shortNames ? { shortNames: r.shortNames } : {}),
      })),
  };
}

function apiGroup(group: string, list: ResourceInfo[]): unknown {
  const versions = [...new Set(list.filter((r) => r.group === group).map((r) => r.version))];
  const gv = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { kind: 'APIGroup', apiVersion: 'v1', name: group, versions: gv, preferredVersion: gv[0] };
}

const DISCOVERY_PATH = /^\/(?:version|api|api\/v1|apis|apis\/[^/]+(?:\/[^/]+)?)\/*$/;

/** `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>[/<version>]`. */
export function isDiscoveryPath(path: string): boolean {
  return DISCOVERY_PATH.test(path);
}

/** The discovery document of a GET path, or undefined if the path is not a discovery path. */
export function discovery(path: string, list: ResourceInfo[]): unknown {
  const p = path.replace(/\/+$/, '') || '/';
  if (p === '/version') return SERVER_VERSION;
  if (p === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
  if (p === '/api/v1') return resourceList('', 'v1', list);
  if (p === '/apis') {
    const groups = [...new Set(list.filter((r) => r.group).map((r) => r.group))];
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map((g) => apiGroup(g, list)) };
  }
  const m = /^\/apis\/([^/]+)(?:\/([^/]+))?$/.exec(p);
  if (m) {
    const group = m[1] as string;
    if (!list.some((r) => r.group === group && (!m[2] || r.version === m[2]))) return undefined;
    return m[2] ? resourceList(group, m[2], list) : apiGroup(group, list);
  }
  return undefined;
}

export const HEALTH_PATHS = new Set(['/healthz', '/livez', '/readyz']);
