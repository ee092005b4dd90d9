/**
 * The Node edged registers and keeps up to date (kubelet's setters, spec edge-modules §8.3): labels
 * KubeEdge sets, capacity/allocatable read from the host, addresses, conditions, nodeInfo.
 */
import { readFileSync, statfsSync } from 'node:fs';
import { arch as osArch, cpus, release } from 'node:os';
import { rfc3339, rfc3339Micro } from './types.js';

/** status.nodeInfo.kubeletVersion of KubeEdge v1.23.1 (`<k8s>-kubeedge-<kubeedge>`). */
export const KUBELET_VERSION = 'v1.32.10-kubeedge-v1.23.1';

export interface NodeCondition {
  type: string;
  status: string;
  lastHeartbeatTime: string;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface NodeStatus {
  capacity: Record<string, string>;
  allocatable: Record<string, string>;
  conditions: NodeCondition[];
  addresses: { type: string; address: string }[];
  daemonEndpoints: { kubeletEndpoint: { Port: number } };
  nodeInfo: Record<string, string>;
}

export interface NodeInputs {
  nodeName: string;
  nodeIP: string;
  labels: Record<string, string>;
  maxPods: number;
  readOnlyPort: number;
  rootDirectory: string;
  evictionHard: Record<string, string>;
  runtimeVersion: string;
  /** undefined = ready; otherwise why not (container runtime down, network not ready, ...). */
  notReady?: string;
  registerSchedulable: boolean;
  taints?: { key: string; value?: string; effect: string }[];
}

function goArch(): string {
  const a = osArch();
  return a === 'x64' ? 'amd64' : a === 'ia32' ? '386' : a;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Static host facts, read once. */
export const host = (() => {
  let cached: Record<string, string> | undefined;
  return (): Record<string, string> => {
    if (cached) return cached;
    const machineID = readText('/etc/machine-id');
    const osRelease = readText('/etc/os-release');
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease)?.[1] ?? 'Linux';
    cached = {
      machineID,
      systemUUID: readText('/sys/class/dmi/id/product_uuid') || machineID,
      bootID: readText('/proc/sys/kernel/random/boot_id'),
      kernelVersion: release(),
      osImage: pretty,
      operatingSystem: 'linux',
      architecture: goArch(),
    };
    return cached;
  };
})();

function memTotalKi(): number {
  const m = /^MemTotal:\s+(\d+) kB/m.exec(readText('/proc/meminfo'));
  return m ? Number(m[1]) : 0;
}

function parseBytes(q: string | undefined, total: number): number {
  if (!q) return 0;
  if (q.endsWith('%')) return Math.floor((total * Number(q.slice(0, -1))) / 100);
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q);
  if (!m) return 0;
  const mult: Record<string, number> = {
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
  };
  return Number(m[1]) * (mult[m[2] ?? ''] ?? 1);
}

export function capacity(inp: NodeInputs): {
  capacity: Record<string, string>;
  allocatable: Record<string, string>;
} {
  const memKi = memTotalKi();
  let storage = 0;
  try {
    const fs = statfsSync(inp.rootDirectory);
    storage = fs.blocks * fs.bsize;
  } catch {
    try {
      const fs = statfsSync('/');
      storage = fs.blocks * fs.bsize;
    } catch {
      storage = 0;
    }
  }
  const cap: Record<string, string> = {
    cpu: String(cpus().length),
    'ephemeral-storage': `${Math.floor(storage / 1024)}Ki`,
    'hugepages-1Gi': '0',
    'hugepages-2Mi': '0',
    memory: `${memKi}Ki`,
    pods: String(inp.maxPods),
  };
  const memEvict = Math.floor(parseBytes(inp.evictionHard['memory.available'], memKi * 1024) / 1024);
  const fsEvict = parseBytes(inp.evictionHard['nodefs.available'], storage);
  const alloc: Record<string, string> = {
    ...cap,
    'ephemeral-storage': String(Math.max(0, storage - fsEvict)),
    memory: `${Math.max(0, memKi - memEvict)}Ki`,
  };
  return { capacity: cap, allocatable: alloc };
}

export function nodeConditions(
  inp: NodeInputs,
  previous: NodeCondition[] | undefined,
  now = Date.now(),
): NodeCondition[] {
  const t = rfc3339(now);
  const mk = (type: string, status: string, reason: string, message: string): NodeCondition => {
    const old = previous?.find((c) => c.type === type);
    return {
      type,
      status,
      lastHeartbeatTime: t,
      lastTransitionTime: old && old.status === status ? old.lastTransitionTime : t,
      reason,
      message,
    };
  };
  return [
    mk('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
    mk('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
    mk('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
    inp.notReady === undefined
      ? mk('Ready', 'True', 'EdgeReady', 'edge is posting ready status')
      : mk('Ready', 'False', 'KubeletNotReady', inp.notReady),
  ];
}

export function nodeStatus(inp: NodeInputs, previous?: NodeStatus): NodeStatus {
  const { capacity: cap, allocatable } = capacity(inp);
  return {
    capacity: cap,
    allocatable,
    conditions: nodeConditions(inp, previous?.conditions),
    addresses: [
      { type: 'InternalIP', address: inp.nodeIP },
      { type: 'Hostname', address: inp.nodeName },
    ],
    // set at registration; later the port cloudStream advertised is kept (the API server dials it)
    daemonEndpoints: previous?.daemonEndpoints ?? { kubeletEndpoint: { Port: inp.readOnlyPort } },
    nodeInfo: {
      ...host(),
      containerRuntimeVersion: inp.runtimeVersion,
      kubeletVersion: KUBELET_VERSION,
      kubeProxyVersion: '',
    },
  };
}

/** The Node of the first registration (`insert null/node/<name>`). */
export function initialNode(inp: NodeInputs): Record<string, unknown> {
  const h = host();
  const labels: Record<string, string> = {
    'beta.kubernetes.io/arch': h.architecture ?? goArch(),
    'beta.kubernetes.io/os': 'linux',
    'kubernetes.io/arch': h.architecture ?? goArch(),
    'kubernetes.io/hostname': inp.nodeName,
    'kubernetes.io/os': 'linux',
    'node-role.kubernetes.io/agent': '',
    'node-role.kubernetes.io/edge': '',
    ...inp.labels,
  };
  const spec: Record<string, unknown> = {};
  const taints = [...(inp.taints ?? [])];
  if (!inp.registerSchedulable) {
    spec.unschedulable = true;
    taints.push({ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' });
  }
  if (taints.length > 0) spec.taints = taints;
  return {
    kind: 'Node',
    apiVersion: 'v1',
    metadata: {
      name: inp.nodeName,
      creationTimestamp: null,
      labels,
      annotations: { 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
    },
    spec,
    status: nodeStatus(inp),
  };
}

export function lease(
  nodeName: string,
  durationSeconds: number,
  nodeUid?: string,
  base?: Record<string, unknown>,
): Record<string, unknown> {
  const md = (base?.metadata as Record<string, unknown> | undefined) ?? {};
  const metadata: Record<string, unknown> = { ...md, name: nodeName, namespace: 'kube-node-lease' };
  if (nodeUid) metadata.ownerReferences = [{ apiVersion: 'v1', kind: 'Node', name: nodeName, uid: nodeUid }];
  return {
    kind: 'Lease',
    apiVersion: 'coordination.k8s.io/v1',
    metadata,
    spec: { holderIdentity: nodeName, leaseDurationSeconds: durationSeconds, renewTime: rfc3339Micro() },
  };
}
