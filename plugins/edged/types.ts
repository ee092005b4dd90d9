/** The parts of the Kubernetes core/v1 objects edged reads and writes (JSON as on the wire). */

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string | null;
  deletionTimestamp?: string | null;
  deletionGracePeriodSeconds?: number | null;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: Record<string, unknown>[];
}

export interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}

/** One source of a projected volume (the kube-api-access-* volume the API server adds has all four). */
export interface VolumeProjection {
  serviceAccountToken?: { path: string; expirationSeconds?: number; audience?: string } | null;
  configMap?: { name: string; items?: KeyToPath[]; optional?: boolean } | null;
  secret?: { name: string; items?: KeyToPath[]; optional?: boolean } | null;
  downwardAPI?: { items?: { path: string; mode?: number; fieldRef?: { fieldPath: string } }[] } | null;
}

export interface Volume {
  name: string;
  emptyDir?: { medium?: string; sizeLimit?: string } | null;
  hostPath?: { path: string; type?: string } | null;
  configMap?: { name: string; items?: KeyToPath[]; optional?: boolean; defaultMode?: number } | null;
  secret?: { secretName: string; items?: KeyToPath[]; optional?: boolean; defaultMode?: number } | null;
  projected?: { sources?: VolumeProjection[]; defaultMode?: number } | null;
  [other: string]: unknown;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
  };
}

export interface EnvFromSource {
  prefix?: string;
  configMapRef?: { name: string; optional?: boolean };
  secretRef?: { name: string; optional?: boolean };
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  hostPort?: number;
  hostIP?: string;
  protocol?: string;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
  mountPropagation?: string;
}

export interface ResourceList {
  cpu?: string;
  memory?: string;
  [k: string]: string | undefined;
}

export interface PodContainer {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  envFrom?: EnvFromSource[];
  ports?: ContainerPort[];
  volumeMounts?: VolumeMount[];
  imagePullPolicy?: string;
  resources?: { requests?: ResourceList; limits?: ResourceList };
  terminationMessagePath?: string;
  terminationMessagePolicy?: string;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
  securityContext?: {
    privileged?: boolean;
    runAsUser?: number;
    runAsGroup?: number;
    readOnlyRootFilesystem?: boolean;
  };
}

export interface PodSpec {
  nodeName?: string;
  serviceAccountName?: string;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  shareProcessNamespace?: boolean;
  hostname?: string;
  subdomain?: string;
  restartPolicy?: string;
  dnsPolicy?: string;
  dnsConfig?: { nameservers?: string[]; searches?: string[]; options?: { name: string; value?: string }[] };
  terminationGracePeriodSeconds?: number;
  containers: PodContainer[];
  initContainers?: PodContainer[];
  volumes?: Volume[];
  securityContext?: {
    runAsUser?: number;
    runAsGroup?: number;
    supplementalGroups?: number[];
    sysctls?: { name: string; value: string }[];
  };
  [other: string]: unknown;
}

export interface PodCondition {
  type: string;
  status: string;
  lastProbeTime?: string | null;
  lastTransitionTime?: string | null;
  reason?: string;
  message?: string;
}

export interface ContainerStateJson {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: {
    exitCode: number;
    reason?: string;
    message?: string;
    startedAt?: string | null;
    finishedAt?: string | null;
    containerID?: string;
  };
}

export interface ContainerStatusJson {
  name: string;
  state: ContainerStateJson;
  lastState: ContainerStateJson;
  ready: boolean;
  restartCount: number;
  image: string;
  imageID: string;
  containerID?: string;
  started: boolean;
}

export interface PodStatus {
  phase?: string;
  conditions?: PodCondition[];
  message?: string;
  reason?: string;
  hostIP?: string;
  hostIPs?: { ip: string }[];
  podIP?: string;
  podIPs?: { ip: string }[];
  startTime?: string;
  containerStatuses?: ContainerStatusJson[];
  qosClass?: string;
  [other: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: PodSpec;
  status?: PodStatus;
}

/** RFC 3339 to the second, as Kubernetes' metav1.Time marshals. */
export function rfc3339(ms: number = Date.now()): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** RFC 3339 with microseconds (metav1.MicroTime, e.g. a Lease's renewTime). */
export function rfc3339Micro(ms: number = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
