/**
 * The start-up checks of the container runtime, each with its own clear message (the user's notes'
 * "common errors"): a Docker runtime type, an unreachable CRI socket, a cgroup driver that does not
 * match containerd's, and a sandbox (pause) image containerd cannot find.
 */
import { KernelError } from '../../kernel/index.js';
import { CriError, type CriClient } from './cri.js';

export const CONTAINERD_SNIPPET = `modules:
  edged:
    tailoredKubeletConfig:
      containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
      imageServiceEndpoint: unix:///run/containerd/containerd.sock
      cgroupDriver: cgroupfs   # must match SystemdCgroup in /etc/containerd/config.toml
(legacy layout: remoteRuntimeEndpoint / remoteImageEndpoint: unix:///run/containerd/containerd.sock, runtimeType: remote)`;

/** `runtimeType: docker` (or `containerRuntime: docker`): refused with how to switch. */
export function dockerProblem(runtimeType: string | undefined): KernelError | undefined {
  if (!runtimeType || runtimeType.toLowerCase() !== 'docker') return undefined;
  return new KernelError(
    'EEDGED_DOCKER_UNSUPPORTED',
    `modules.edged.runtimeType is "docker": edged talks only to CRI runtimes (dockershim was removed). ` +
      `Install containerd (Debian: apt-get install containerd) and point edged at its socket:\n${CONTAINERD_SNIPPET}`,
  );
}

export function unreachableProblem(endpoint: string, err: unknown): KernelError {
  const detail = err instanceof CriError ? err.details : String(err);
  let hint = 'is containerd running? (systemctl status containerd)';
  if (/ENOENT/.test(detail))
    hint = 'the socket does not exist: is containerd installed and running, and is the path right?';
  else if (/ECONNREFUSED/.test(detail))
    hint = 'nothing listens on the socket: start containerd (systemctl start containerd)';
  else if (/unknown service runtime\.v1/.test(detail))
    hint =
      'the CRI plugin is disabled in containerd: remove "cri" from disabled_plugins in /etc/containerd/config.toml and restart containerd';
  else if (/EACCES/.test(detail)) hint = 'permission denied: run edgecore as root';
  return new KernelError(
    'EEDGED_RUNTIME_UNREACHABLE',
    `cannot reach the container runtime at ${endpoint} (tailoredKubeletConfig.containerRuntimeEndpoint): ${detail}; ${hint}`,
  );
}

interface CriConfigInfo {
  sandboxImage?: string;
  containerd?: {
    defaultRuntimeName?: string;
    runtimes?: Record<string, { options?: { SystemdCgroup?: boolean } | null }>;
  };
}

/** containerd's CRI config from verbose Status (info.config). */
export async function runtimeConfig(cri: CriClient): Promise<CriConfigInfo | undefined> {
  const st = await cri.status(true);
  const text = st.info.config;
  if (!text) return undefined;
  try {
    return JSON.parse(text) as CriConfigInfo;
  } catch {
    return undefined;
  }
}

export function cgroupProblem(cfg: CriConfigInfo | undefined, cgroupDriver: string): KernelError | undefined {
  const rt = cfg?.containerd?.runtimes?.[cfg.containerd.defaultRuntimeName ?? 'runc'];
  if (!rt) return undefined;
  const systemd = rt.options?.SystemdCgroup === true;
  const theirs = systemd ? 'systemd' : 'cgroupfs';
  if (theirs === cgroupDriver) return undefined;
  return new KernelError(
    'EEDGED_CGROUP_DRIVER',
    `cgroup driver mismatch: edged uses "${cgroupDriver}" (modules.edged.tailoredKubeletConfig.cgroupDriver) but containerd's ` +
      `runtime "${cfg?.containerd?.defaultRuntimeName ?? 'runc'}" uses "${theirs}" (SystemdCgroup = ${systemd} in containerd's config.toml). ` +
      `Set cgroupDriver: ${theirs} in edgecore.yaml, or SystemdCgroup = ${cgroupDriver === 'systemd'} and restart containerd.`,
  );
}

export async function sandboxImageProblem(
  cri: CriClient,
  cfg: CriConfigInfo | undefined,
  podSandboxImage: string,
): Promise<KernelError | undefined> {
  const image = cfg?.sandboxImage;
  if (!image) return undefined;
  const present = await cri.imageStatus(image);
  if (present) return undefined;
  return new KernelError(
    'EEDGED_SANDBOX_IMAGE',
    `containerd's sandbox (pause) image "${image}" (sandbox_image in containerd's config.toml) is not in its image store: ` +
      `pods cannot start until it can be pulled. Offline, import it into the CRI namespace ` +
      `(ctr -n k8s.io images import pause.tar) or set sandbox_image to an image that is present` +
      (podSandboxImage && podSandboxImage !== image
        ? ` (note: modules.edged.podSandboxImage "${podSandboxImage}" does not choose the image containerd runs)`
        : '') +
      '.',
  );
}
