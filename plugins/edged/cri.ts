/**
 * edged's CRI client: runtime.v1 RuntimeService / ImageService over a unix socket, nice-grpc
 * clients of the generic definitions ts-proto generates from proto/cri/v1/api.proto. Every call
 * has a deadline (kubelet's: T, 2T for RunPodSandbox, T + grace for StopContainer, none for
 * PullImage) and the channel accepts 16 MiB messages as kubelet's does. Imported lazily from
 * edged's start().
 */
import type { Channel, Client } from 'nice-grpc';
import { ClientError, Status, deadlineMiddleware, grpc, type DeadlineOptions } from '../../proto/rpc.js';
import {
  ImageServiceDefinition,
  RuntimeServiceDefinition,
  type ContainerConfig,
  type ContainerStatus,
  type Container,
  type Image,
  type PodSandbox,
  type PodSandboxConfig,
  type PodSandboxStatus,
  type StatusResponse,
  type VersionResponse,
  ContainerState,
  PodSandboxState,
} from '../../proto/gen/cri/v1/api.js';

export { ContainerState, PodSandboxState };
export type {
  ContainerConfig,
  ContainerStatus,
  Container,
  Image,
  PodSandbox,
  PodSandboxConfig,
  PodSandboxStatus,
};

/** kubelet's max gRPC message size (k8s.io/cri-client maxMsgSize). */
export const MAX_MSG_SIZE = 16 * 1024 * 1024;

/** A CRI call that failed: the gRPC code and the runtime's message, with the method named. */
export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`CRI ${method} failed (${Status[code] ?? code}): ${details}`);
    this.name = 'CriError';
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof CriError && err.code === Status.NOT_FOUND;
}
export function isUnavailable(err: unknown): boolean {
  return err instanceof CriError && err.code === Status.UNAVAILABLE;
}

/** Normalises `unix:/p`, `unix:///p` and a bare absolute path to `unix:///p` (what grpc-js takes). */
export function grpcTarget(endpoint: string): string {
  if (endpoint.startsWith('unix://')) return endpoint;
  if (endpoint.startsWith('unix:')) return `unix://${endpoint.slice('unix:'.length)}`;
  if (endpoint.startsWith('/')) return `unix://${endpoint}`;
  return endpoint;
}

export interface CriClientOptions {
  runtimeEndpoint: string;
  imageEndpoint?: string;
  /** kubelet's runtimeRequestTimeout (T), ms. */
  timeoutMs: number;
}

const CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': MAX_MSG_SIZE,
  'grpc.max_send_message_length': MAX_MSG_SIZE,
  'grpc.default_authority': 'localhost',
};

export class CriClient {
  private readonly channels: Channel[];
  private readonly runtime: Client<typeof RuntimeServiceDefinition, DeadlineOptions>;
  private readonly image: Client<typeof ImageServiceDefinition, DeadlineOptions>;
  readonly timeoutMs: number;
  /** Count of calls made, per method (benchmarks). */
  readonly calls = new Map<string, number>();
  /** Time spent waiting on the runtime, ms (benchmarks: edged's own overhead = total - this). */
  criTimeMs = 0;
  private inflight = 0;
  private busySince = 0;

  constructor(opts: CriClientOptions) {
    const factory = grpc.createClientFactory().use(deadlineMiddleware);
    const runtimeChannel = grpc.createChannel(grpcTarget(opts.runtimeEndpoint), undefined, CHANNEL_OPTIONS);
    const imageEndpoint = opts.imageEndpoint || opts.runtimeEndpoint;
    const imageChannel =
      imageEndpoint === opts.runtimeEndpoint
        ? runtimeChannel
        : grpc.createChannel(grpcTarget(imageEndpoint), undefined, CHANNEL_OPTIONS);
    this.channels = [...new Set([runtimeChannel, imageChannel])];
    this.runtime = factory.create(RuntimeServiceDefinition, runtimeChannel);
    this.image = factory.create(ImageServiceDefinition, imageChannel);
    this.timeoutMs = opts.timeoutMs;
  }

  close(): void {
    for (const c of this.channels) c.close();
  }

  /** Runs one call: counted, timed, its failure turned into a CriError naming the method. */
  private async call<Res>(method: string, fn: () => Promise<Res>): Promise<Res> {
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    // wall time with at least one call in flight (parallel calls are not counted twice)
    if (this.inflight++ === 0) this.busySince = performance.now();
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ClientError) throw new CriError(method, err.code, err.details);
      throw err;
    } finally {
      if (--this.inflight === 0) this.criTimeMs += performance.now() - this.busySince;
    }
  }

  private deadline(ms = this.timeoutMs): DeadlineOptions {
    return { deadlineMs: ms };
  }

  version(timeoutMs?: number): Promise<VersionResponse> {
    return this.call('version', () => this.runtime.version({ version: '0.1.0' }, this.deadline(timeoutMs)));
  }
  status(verbose = false, timeoutMs?: number): Promise<StatusResponse> {
    return this.call('status', () => this.runtime.status({ verbose }, this.deadline(timeoutMs)));
  }
  async runPodSandbox(config: PodSandboxConfig): Promise<string> {
    const r = await this.call('runPodSandbox', () =>
      this.runtime.runPodSandbox({ config, runtimeHandler: '' }, this.deadline(2 * this.timeoutMs)),
    );
    return r.podSandboxId;
  }
  async stopPodSandbox(id: string): Promise<void> {
    await this.call('stopPodSandbox', () =>
      this.runtime.stopPodSandbox({ podSandboxId: id }, this.deadline()),
    );
  }
  async removePodSandbox(id: string): Promise<void> {
    await this.call('removePodSandbox', () =>
      this.runtime.removePodSandbox({ podSandboxId: id }, this.deadline()),
    );
  }
  async podSandboxStatus(id: string): Promise<PodSandboxStatus | undefined> {
    const r = await this.call('podSandboxStatus', () =>
      this.runtime.podSandboxStatus({ podSandboxId: id, verbose: false }, this.deadline()),
    );
    return r.status;
  }
  async listPodSandbox(labelSelector: Record<string, string> = {}): Promise<PodSandbox[]> {
    const r = await this.call('listPodSandbox', () =>
      this.runtime.listPodSandbox({ filter: { id: '', labelSelector } }, this.deadline()),
    );
    return r.items;
  }
  async createContainer(
    podSandboxId: string,
    config: ContainerConfig,
    sandboxConfig: PodSandboxConfig,
  ): Promise<string> {
    const r = await this.call('createContainer', () =>
      this.runtime.createContainer(
        // sandboxConfig always: containerd 1.6.20 crashes without it (cri.md §4.4)
        { podSandboxId, config, sandboxConfig },
        this.deadline(),
      ),
    );
    return r.containerId;
  }
  async startContainer(id: string): Promise<void> {
    await this.call('startContainer', () =>
      this.runtime.startContainer({ containerId: id }, this.deadline()),
    );
  }
  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    await this.call('stopContainer', () =>
      this.runtime.stopContainer(
        { containerId: id, timeout: timeoutSeconds },
        this.deadline(this.timeoutMs + timeoutSeconds * 1000),
      ),
    );
  }
  async removeContainer(id: string): Promise<void> {
    await this.call('removeContainer', () =>
      this.runtime.removeContainer({ containerId: id }, this.deadline()),
    );
  }
  async listContainers(labelSelector: Record<string, string> = {}): Promise<Container[]> {
    const r = await this.call('listContainers', () =>
      this.runtime.listContainers({ filter: { id: '', podSandboxId: '', labelSelector } }, this.deadline()),
    );
    return r.containers;
  }
  async containerStatus(id: string): Promise<ContainerStatus | undefined> {
    const r = await this.call('containerStatus', () =>
      this.runtime.containerStatus({ containerId: id, verbose: false }, this.deadline()),
    );
    return r.status;
  }
  /** The URL of the runtime's streaming server that runs `cmd` in the container (kubectl exec). */
  async exec(
    containerId: string,
    cmd: string[],
    io: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean },
  ): Promise<string> {
    const r = await this.call('exec', () => this.runtime.exec({ containerId, cmd, ...io }, this.deadline()));
    return r.url;
  }
  /** The URL of the runtime's streaming server attached to the container's process (kubectl attach). */
  async attach(
    containerId: string,
    io: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean },
  ): Promise<string> {
    const r = await this.call('attach', () => this.runtime.attach({ containerId, ...io }, this.deadline()));
    return r.url;
  }
  async imageStatus(image: string): Promise<Image | undefined> {
    const r = await this.call('imageStatus', () =>
      this.image.imageStatus(
        { image: { image, annotations: {}, userSpecifiedImage: '', runtimeHandler: '' }, verbose: false },
        this.deadline(),
      ),
    );
    return r.image ?? undefined;
  }
  /** kubelet: no deadline on pulls. */
  async pullImage(image: string, sandboxConfig: PodSandboxConfig | undefined): Promise<string> {
    const r = await this.call('pullImage', () =>
      this.image.pullImage({
        image: { image, annotations: {}, userSpecifiedImage: image, runtimeHandler: '' },
        sandboxConfig,
      }),
    );
    return r.imageRef;
  }
}
