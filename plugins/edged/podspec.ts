/**
 * Pure mapping of a Pod onto CRI configs (cri.md §2.3, §2.4) and of observed CRI state back onto
 * the Pod status (§2.9). No I/O here.
 */
import { createHash } from 'node:crypto';
import type { ContainerStatus, PodSandboxConfig, ContainerConfig, PodSandboxStatus } from './cri.js';
import {
  rfc3339,
  type ContainerStateJson,
  type ContainerStatusJson,
  type Pod,
  type PodCondition,
  type PodContainer,
  type PodStatus,
} from './types.js';

export const LABEL_POD_NAME = 'io.kubernetes.pod.name';
export const LABEL_POD_NAMESPACE = 'io.kubernetes.pod.namespace';
export const LABEL_POD_UID = 'io.kubernetes.pod.uid';
export const LABEL_CONTAINER_NAME = 'io.kubernetes.container.name';
export const ANN_HASH = 'io.kubernetes.container.hash';
export const ANN_RESTART_COUNT = 'io.kubernetes.container.restartCount';
export const ANN_TERMINATION_PATH = 'io.kubernetes.container.terminationMessagePath';
export const ANN_TERMINATION_POLICY = 'io.kubernetes.container.terminationMessagePolicy';
export const ANN_GRACE = 'io.kubernetes.pod.terminationGracePeriod';
export const ANN_DELETION_GRACE = 'io.kubernetes.pod.deletionGracePeriod';
export const ANN_PORTS = 'io.kubernetes.container.ports';

/** CRI enum values (proto numbers). */
const NS_POD = 0;
const NS_CONTAINER = 1;
const NS_NODE = 2;
const SANDBOX_READY = 0;
const CONTAINER_CREATED = 0;
const CONTAINER_RUNNING = 1;
const CONTAINER_EXITED = 2;

export interface PodPaths {
  podLogsDir: string;
  rootDirectory: string;
  cgroupDriver: string;
  cgroupsPerQOS: boolean;
  /** The host's resolv.conf (dnsPolicy `Default`, and `ClusterFirst` without `clusterDNS`). */
  dns: PodDns;
  /** kubelet's `clusterDNS` and `clusterDomain` (dnsPolicy `ClusterFirst`); none: the host's DNS. */
  clusterDNS?: string[];
  clusterDomain?: string;
}

export interface PodDns {
  servers: string[];
  searches: string[];
  options: string[];
}

/**
 * A pod's resolv.conf as kubelet builds it (pkg/kubelet/network/dns): `ClusterFirst` (the default;
 * `ClusterFirstWithHostNet` for host-network pods) uses `clusterDNS` with the search path
 * `<ns>.svc.<domain> svc.<domain> <domain>` before the host's and `ndots:5`; without `clusterDNS`,
 * and for `Default` or a host-network `ClusterFirst` pod, the host's; `None` only the pod's
 * `dnsConfig`, which is appended in every case.
 */
export function podDns(pod: Pod, paths: PodPaths): PodDns {
  const policy = pod.spec.dnsPolicy ?? 'ClusterFirst';
  const clusterDNS = paths.clusterDNS ?? [];
  const cluster =
    clusterDNS.length > 0 &&
    (policy === 'ClusterFirstWithHostNet' || (policy === 'ClusterFirst' && !pod.spec.hostNetwork));
  const d = paths.clusterDomain ?? 'cluster.local';
  const base: PodDns =
    policy === 'None'
      ? { servers: [], searches: [], options: [] }
      : cluster
        ? {
            servers: clusterDNS,
            searches: [
              `${pod.metadata.namespace ?? 'default'}.svc.${d}`,
              `svc.${d}`,
              d,
              ...paths.dns.searches,
            ],
            options: ['ndots:5'],
          }
        : paths.dns;
  const extra = pod.spec.dnsConfig;
  const options = [...base.options];
  for (const o of extra?.options ?? []) {
    const text = o.value === undefined ? o.name : `${o.name}:${o.value}`;
    const at = options.findIndex((x) => x.split(':')[0] === o.name);
    if (at >= 0) options[at] = text;
    else options.push(text);
  }
  return {
    servers: [...new Set([...base.servers, ...(extra?.nameservers ?? [])])].slice(0, 3),
    searches: [...new Set([...base.searches, ...(extra?.searches ?? [])])].slice(0, 32),
    options,
  };
}

export function podKey(pod: Pod): string {
  return `${pod.metadata.namespace ?? 'default'}/${pod.metadata.name ?? ''}`;
}

export function podLogDirectory(pod: Pod, podLogsDir: string): string {
  return `${podLogsDir}/${pod.metadata.namespace ?? 'default'}_${pod.metadata.name ?? ''}_${pod.metadata.uid ?? ''}`;
}

export function podDir(pod: Pod, root: string): string {
  return `${root}/pods/${pod.metadata.uid ?? ''}`;
}

/** kubelet's container hash stand-in: fnv-1a 32 over name and image (what triggers a restart). */
export function containerHash(c: PodContainer): string {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(`${c.name}\u0000${c.image}`)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16);
}

/** Image reference with `:latest` appended when it has neither tag nor digest (§2.5). */
export function normalizeImage(image: string): string {
  if (image.includes('@')) return image;
  const lastSlash = image.lastIndexOf('/');
  return image.slice(lastSlash + 1).includes(':') ? image : `${image}:latest`;
}

/** API-server defaulting of imagePullPolicy (static pods need it locally). */
export function pullPolicy(c: PodContainer): string {
  if (c.imagePullPolicy) return c.imagePullPolicy;
  const img = normalizeImage(c.image);
  return !img.includes('@') && img.endsWith(':latest') ? 'Always' : 'IfNotPresent';
}

function parseQuantity(q: string | undefined): number {
  if (q === undefined) return 0;
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(q.trim());
  if (!m) return 0;
  const n = Number(m[1]);
  const units: Record<string, number> = {
    '': 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
  };
  return n * (units[m[2] ?? ''] ?? 1);
}

export function qosClass(pod: Pod): string {
  let any = false;
  let guaranteed = true;
  for (const c of pod.spec.containers) {
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    if (Object.keys(req).length > 0 || Object.keys(lim).length > 0) any = true;
    for (const r of ['cpu', 'memory']) {
      const l = lim[r];
      const q = req[r] ?? l;
      if (!l || parseQuantity(q) !== parseQuantity(l)) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

export function cgroupParent(pod: Pod, paths: PodPaths): string {
  if (!paths.cgroupsPerQOS) return '';
  const uid = pod.metadata.uid ?? '';
  const qos = qosClass(pod);
  if (paths.cgroupDriver === 'systemd') {
    const u = uid.replace(/-/g, '_');
    if (qos === 'Guaranteed') return `/kubepods.slice/kubepods-pod${u}.slice`;
    const q = qos.toLowerCase();
    return `/kubepods.slice/kubepods-${q}.slice/kubepods-${q}-pod${u}.slice`;
  }
  if (qos === 'Guaranteed') return `/kubepods/pod${uid}`;
  return `/kubepods/${qos.toLowerCase()}/pod${uid}`;
}

function namespaceOptions(pod: Pod): { network: number; pid: number; ipc: number; targetId: string } {
  return {
    network: pod.spec.hostNetwork ? NS_NODE : NS_POD,
    pid: pod.spec.hostPID ? NS_NODE : pod.spec.shareProcessNamespace ? NS_POD : NS_CONTAINER,
    ipc: pod.spec.hostIPC ? NS_NODE : NS_POD,
    targetId: '',
  };
}

function protocolOf(p: string | undefined): number {
  return p === 'UDP' ? 1 : p === 'SCTP' ? 2 : 0;
}

function podHostname(pod: Pod): string {
  if (pod.spec.hostNetwork) return '';
  let h = pod.spec.hostname || pod.metadata.name || '';
  if (h.length > 63) h = h.slice(0, 63).replace(/[-.]+$/, '');
  return h;
}

/** PodSandboxConfig as kubelet builds it (§2.3). */
export function sandboxConfig(pod: Pod, attempt: number, paths: PodPaths): PodSandboxConfig {
  const md = pod.metadata;
  const labels: Record<string, string> = {
    ...(md.labels ?? {}),
    [LABEL_POD_NAME]: md.name ?? '',
    [LABEL_POD_NAMESPACE]: md.namespace ?? 'default',
    [LABEL_POD_UID]: md.uid ?? '',
  };
  const portMappings = pod.spec.containers.flatMap((c) =>
    (c.ports ?? []).map((p) => ({
      protocol: protocolOf(p.protocol),
      containerPort: p.containerPort,
      hostPort: p.hostPort ?? 0,
      hostIp: p.hostIP ?? '',
    })),
  );
  const sysctls: Record<string, string> = {};
  for (const s of pod.spec.securityContext?.sysctls ?? []) sysctls[s.name.replace(/\//g, '.')] = s.value;
  const sc = pod.spec.securityContext ?? {};
  return {
    metadata: { name: md.name ?? '', uid: md.uid ?? '', namespace: md.namespace ?? 'default', attempt },
    hostname: podHostname(pod),
    logDirectory: podLogDirectory(pod, paths.podLogsDir),
    dnsConfig: podDns(pod, paths),
    portMappings,
    labels,
    annotations: { ...(md.annotations ?? {}) },
    linux: {
      cgroupParent: cgroupParent(pod, paths),
      securityContext: {
        namespaceOptions: namespaceOptions(pod), // always sent (cri.md §4.4 trap 1)
        runAsUser: sc.runAsUser !== undefined ? { value: sc.runAsUser } : undefined,
        runAsGroup:
          sc.runAsUser !== undefined && sc.runAsGroup !== undefined ? { value: sc.runAsGroup } : undefined,
        readonlyRootfs: false,
        supplementalGroups: sc.supplementalGroups ?? [],
        privileged: pod.spec.containers.some((c) => c.securityContext?.privileged === true),
        seccompProfilePath: '',
        seccomp: { profileType: 0, localhostRef: '' },
        supplementalGroupsPolicy: 0,
      },
      sysctls,
    },
  };
}

/** Expands `$(VAR)` references against env (`$$` escapes; unknown references stay literal). */
export function expandVars(s: string, env: Map<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) => {
    if (m === '$$') return '$';
    return name !== undefined && env.has(name) ? (env.get(name) ?? '') : m;
  });
}

export interface ContainerInputs {
  imageRef: string;
  restartCount: number;
  envs: { key: string; value: string }[];
  mounts: { containerPath: string; hostPath: string; readonly: boolean; propagation: number }[];
}

/** ContainerConfig as kubelet builds it (§2.4). */
export function containerConfig(pod: Pod, c: PodContainer, inputs: ContainerInputs): ContainerConfig {
  const md = pod.metadata;
  const env = new Map(inputs.envs.map((e) => [e.key, e.value]));
  const annotations: Record<string, string> = {
    [ANN_HASH]: containerHash(c),
    [ANN_RESTART_COUNT]: String(inputs.restartCount),
    [ANN_TERMINATION_PATH]: c.terminationMessagePath ?? '/dev/termination-log',
    [ANN_TERMINATION_POLICY]: c.terminationMessagePolicy ?? 'File',
  };
  if (pod.spec.terminationGracePeriodSeconds !== undefined)
    annotations[ANN_GRACE] = String(pod.spec.terminationGracePeriodSeconds);
  if (md.deletionGracePeriodSeconds !== undefined && md.deletionGracePeriodSeconds !== null)
    annotations[ANN_DELETION_GRACE] = String(md.deletionGracePeriodSeconds);
  if (c.ports && c.ports.length > 0) annotations[ANN_PORTS] = JSON.stringify(c.ports);
  return {
    metadata: { name: c.name, attempt: inputs.restartCount },
    image: { image: inputs.imageRef, annotations: {}, userSpecifiedImage: c.image, runtimeHandler: '' },
    command: (c.command ?? []).map((s) => expandVars(s, env)),
    args: (c.args ?? []).map((s) => expandVars(s, env)),
    workingDir: c.workingDir ?? '',
    envs: inputs.envs,
    mounts: inputs.mounts,
    labels: {
      [LABEL_POD_NAME]: md.name ?? '',
      [LABEL_POD_NAMESPACE]: md.namespace ?? 'default',
      [LABEL_POD_UID]: md.uid ?? '',
      [LABEL_CONTAINER_NAME]: c.name,
    },
    annotations,
    logPath: `${c.name}/${inputs.restartCount}.log`,
    stdin: c.stdin ?? false,
    stdinOnce: c.stdinOnce ?? false,
    tty: c.tty ?? false,
    linux: {
      securityContext: {
        privileged: c.securityContext?.privileged ?? false,
        namespaceOptions: namespaceOptions(pod), // the same modes as the sandbox
        readonlyRootfs: c.securityContext?.readOnlyRootFilesystem ?? false,
        runAsUser:
          (c.securityContext?.runAsUser ?? pod.spec.securityContext?.runAsUser) !== undefined
            ? { value: c.securityContext?.runAsUser ?? pod.spec.securityContext?.runAsUser ?? 0 }
            : undefined,
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Observed state -> status
// ---------------------------------------------------------------------------------------------

export interface Observed {
  sandboxes: PodSandboxStatus[]; // newest first
  containers: ContainerStatus[]; // newest first
}

export function restartCountOf(c: ContainerStatus): number {
  const n = Number(c.annotations[ANN_RESTART_COUNT] ?? c.metadata?.attempt ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/** ns string (int64) -> ms number; safe for timestamps. */
export function nsToMs(ns: string): number {
  if (!ns || ns === '0') return 0;
  return Number(BigInt(ns) / 1_000_000n);
}

export function byNewest<T extends { createdAt: string }>(a: T, b: T): number {
  const x = BigInt(a.createdAt || '0');
  const y = BigInt(b.createdAt || '0');
  return x > y ? -1 : x < y ? 1 : 0;
}

export function instancesOf(obs: Observed, name: string): ContainerStatus[] {
  return obs.containers
    .filter((c) => c.metadata?.name === name)
    .sort((a, b) => restartCountOf(b) - restartCountOf(a) || byNewest(a, b));
}

export function newestSandbox(obs: Observed): PodSandboxStatus | undefined {
  return obs.sandboxes[0];
}

export function sandboxReady(pod: Pod, obs: Observed): boolean {
  const sb = newestSandbox(obs);
  if (!sb || sb.state !== SANDBOX_READY) return false;
  if (obs.sandboxes.filter((s) => s.state === SANDBOX_READY).length > 1) return false;
  const hostNet = sb.linux?.namespaces?.options?.network === NS_NODE;
  if (hostNet !== (pod.spec.hostNetwork === true)) return false;
  if (!pod.spec.hostNetwork && !sb.network?.ip) return false;
  return true;
}

/** ShouldContainerBeRestarted (§2.6) for an exited/created instance. */
export function shouldRestart(pod: Pod, last: ContainerStatus | undefined): boolean {
  if (pod.metadata.deletionTimestamp) return false;
  if (!last) return true;
  if (last.state === CONTAINER_RUNNING) return false;
  if (last.state !== CONTAINER_EXITED) return true;
  const policy = pod.spec.restartPolicy ?? 'Always';
  if (policy === 'Never') return false;
  if (policy === 'OnFailure') return last.exitCode !== 0;
  return true;
}

function terminatedOf(c: ContainerStatus): ContainerStateJson {
  const t: NonNullable<ContainerStateJson['terminated']> = {
    exitCode: c.exitCode,
    reason: c.reason || undefined,
    message: c.message || undefined,
    startedAt: c.startedAt && c.startedAt !== '0' ? rfc3339(nsToMs(c.startedAt)) : null,
    finishedAt: c.finishedAt && c.finishedAt !== '0' ? rfc3339(nsToMs(c.finishedAt)) : null,
    containerID: `containerd://${c.id}`,
  };
  return { terminated: t };
}

export interface Failure {
  reason: string;
  message: string;
}

export interface StatusInputs {
  nodeIP: string;
  runtimeName: string;
  startTime: string;
  /** Last failure per container name (ErrImagePull, CrashLoopBackOff, RunContainerError...). */
  failures: Map<string, Failure>;
  /** The status sent last (for lastTransitionTime and terminal phases). */
  previous?: PodStatus;
  now?: number;
}

export function computeStatus(pod: Pod, obs: Observed, inp: StatusInputs): PodStatus {
  const now = inp.now ?? Date.now();
  const statuses: ContainerStatusJson[] = [];
  for (const c of pod.spec.containers) {
    const inst = instancesOf(obs, c.name);
    const cur = inst[0];
    const prev = inst[1];
    let state: ContainerStateJson;
    let lastState: ContainerStateJson = prev && prev.state === CONTAINER_EXITED ? terminatedOf(prev) : {};
    if (!cur) state = { waiting: { reason: 'ContainerCreating' } };
    else if (cur.state === CONTAINER_RUNNING)
      state = { running: { startedAt: rfc3339(nsToMs(cur.startedAt)) } };
    else if (cur.state === CONTAINER_EXITED) state = terminatedOf(cur);
    else if (cur.state === CONTAINER_CREATED) state = { waiting: {} };
    else state = { waiting: {} };
    const failure = inp.failures.get(c.name);
    if (failure && (!cur || cur.state !== CONTAINER_RUNNING) && shouldRestart(pod, cur)) {
      if (cur && cur.state === CONTAINER_EXITED) lastState = terminatedOf(cur);
      state = { waiting: { reason: failure.reason, message: failure.message || undefined } };
    }
    const running = cur?.state === CONTAINER_RUNNING;
    const s: ContainerStatusJson = {
      name: c.name,
      state,
      lastState,
      ready: running,
      restartCount: cur ? restartCountOf(cur) : 0,
      image: cur?.image?.image || c.image,
      imageID: cur ? cur.imageId || cur.imageRef : '',
      started: running,
    };
    if (cur) s.containerID = `${inp.runtimeName}://${cur.id}`;
    statuses.push(s);
  }
  statuses.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  // phase (getPhase)
  let phase: string;
  const prevPhase = inp.previous?.phase;
  if (prevPhase === 'Succeeded' || prevPhase === 'Failed') phase = prevPhase;
  else {
    let running = 0;
    let waiting = 0;
    let stopped = 0;
    let succeeded = 0;
    for (const s of statuses) {
      if (s.state.running) running++;
      else if (s.state.terminated) {
        stopped++;
        if (s.state.terminated.exitCode === 0) succeeded++;
      } else if (s.state.waiting) {
        if (s.lastState.terminated) {
          stopped++;
          if (s.lastState.terminated.exitCode === 0) succeeded++;
        } else waiting++;
      }
    }
    const policy = pod.spec.restartPolicy ?? 'Always';
    if (waiting > 0) phase = 'Pending';
    else if (running > 0) phase = 'Running';
    else if (stopped > 0) {
      if (policy === 'Always') phase = 'Running';
      else if (stopped === succeeded) phase = 'Succeeded';
      else if (policy === 'Never') phase = 'Failed';
      else phase = 'Running';
    } else phase = 'Pending';
  }

  const prevConds = inp.previous?.conditions ?? pod.status?.conditions ?? [];
  const cond = (type: string, ok: boolean, reason?: string, message?: string): PodCondition => {
    const status = ok ? 'True' : 'False';
    const old = prevConds.find((x) => x.type === type);
    const c: PodCondition = {
      type,
      status,
      lastProbeTime: null,
      lastTransitionTime:
        old && old.status === status && old.lastTransitionTime ? old.lastTransitionTime : rfc3339(now),
    };
    if (reason) c.reason = reason;
    if (message) c.message = message;
    return c;
  };
  const unready = statuses.filter((s) => !s.ready).map((s) => s.name);
  const allReady = unready.length === 0;
  let readyReason: string | undefined;
  let readyMessage: string | undefined;
  if (!allReady) {
    if (phase === 'Succeeded') readyReason = 'PodCompleted';
    else if (phase === 'Failed') readyReason = 'PodFailed';
    else {
      readyReason = 'ContainersNotReady';
      readyMessage = `containers with unready status: [${unready.join(' ')}]`;
    }
  }
  const conditions: PodCondition[] = [
    cond('PodReadyToStartContainers', sandboxReady(pod, obs)),
    cond('Initialized', true),
    cond('Ready', allReady, readyReason, readyMessage),
    cond('ContainersReady', allReady, readyReason, readyMessage),
    cond('PodScheduled', true),
  ];
  const sb = newestSandbox(obs);
  let podIP = '';
  if (pod.spec.hostNetwork) podIP = inp.nodeIP;
  else if (sb && sb.state === SANDBOX_READY && sb.network?.ip) podIP = sb.network.ip;
  const status: PodStatus = {
    phase,
    conditions,
    hostIP: inp.nodeIP,
    hostIPs: [{ ip: inp.nodeIP }],
    startTime: inp.startTime,
    containerStatuses: statuses,
    qosClass: qosClass(pod),
  };
  if (podIP) {
    status.podIP = podIP;
    status.podIPs = [{ ip: podIP }];
  }
  return status;
}

/** kubelet's grace period for a kill: deletion grace, else spec, else 30; at least 2 s. */
export function gracePeriod(pod: Pod): number {
  const g = pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
  return Math.max(2, g);
}

/** Short hash used for static pod UIDs. */
export function md5hex(text: string): string {
  return createHash('md5').update(text).digest('hex');
}
