/** Kubernetes objects the full-stack tests and benchmarks apply with kubectl. */
import { BUSYBOX_IMAGE } from '../peers/containerd.js';

export interface PodOptions {
  labels?: Record<string, string>;
  /** Spec fields added to (or replacing) the defaults, e.g. `volumes`, `restartPolicy`. */
  spec?: Record<string, unknown>;
}

/**
 * A pod in `default` bound to `nodeName`, one busybox container `c` (the fields of `container`
 * added or replacing), no service account token, 1 s grace.
 */
export function busyboxPod(
  nodeName: string,
  name: string,
  container: Record<string, unknown>,
  opts: PodOptions = {},
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', ...(opts.labels && { labels: opts.labels }) },
    spec: {
      nodeName,
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'c', image: BUSYBOX_IMAGE, imagePullPolicy: 'IfNotPresent', ...container }],
      ...opts.spec,
    },
  };
}

/**
 * A busybox container `web` serving `page` with httpd on port 80, published on the node's
 * `hostPort`.
 */
export const httpdContainer = (
  page: string,
  hostPort: number,
): {
  name: string;
  image: string;
  imagePullPolicy: string;
  command: string[];
  ports: { containerPort: number; hostPort: number; protocol: string }[];
} => ({
  name: 'web',
  image: BUSYBOX_IMAGE,
  imagePullPolicy: 'IfNotPresent',
  command: ['sh', '-c', `mkdir -p /www && echo ${page} > /www/index.html && exec httpd -f -p 80 -h /www`],
  ports: [{ containerPort: 80, hostPort, protocol: 'TCP' }],
});

/** A container command that sleeps until SIGTERM, which ends it at once. */
export const SLEEP_UNTIL_TERM = ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 1; done"];

/** A Node with the edge role label, as the tests create it for an edge that has no kubelet. */
export const edgeNode = (name: string): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, labels: { 'node-role.kubernetes.io/edge': '' } },
});

/** A ConfigMap in `default`. */
export const configMap = (name: string, data: Record<string, string>): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'default' },
  data,
});
