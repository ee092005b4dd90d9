/**
 * edged's CRI client: runtime.v1 RuntimeService / ImageService over a unix socket, typed by the
 * ts-proto code generated from proto/cri/v1/api.proto. Every call has a deadline (kubelet's: T,
 * 2T for RunPodSandbox, T + grace for StopContainer, none for PullImage) and the channel accepts
 * 16 MiB messages as kubelet's does. Imported lazily from edged's start().
 */
import * as grpc from '@grpc/grpc-js';
import {
  ImageServiceClient,
  RuntimeServiceClient,
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
  VersionRequest,
  StatusRequest,
  RunPodSandboxRequest,
  StopPodSandboxRequest,
  RemovePodSandboxRequest,
  PodSandboxStatusRequest,
  ListPodSandboxRequest,
  CreateContainerRequest,
  StartContainerRequest,
  StopContainerRequest,
  RemoveContainerRequest,
  ListContainersRequest,
  ContainerStatusRequest,
  ImageStatusRequest,
  PullImageRequest,
} from '../../proto/gen/cri/v1/api.js';

/** Request codecs by client method: requests are completed with fromPartial (proto3 zero values). */
const REQUESTS: Record<string, { fromPartial(o: never): unknown }> = {
  version: VersionRequest,
  status: StatusRequest,
  runPodSandbox: RunPodSandboxRequest,
  stopPodSandbox: StopPodSandboxRequest,
  removePodSandbox: RemovePodSandboxRequest,
  podSandboxStatus: PodSandboxStatusRequest,
  listPodSandbox: ListPodSandboxRequest,
  createContainer: CreateContainerRequest,
  startContainer: StartContainerRequest,
  stopContainer: StopContainerRequest,
  removeContainer: RemoveContainerRequest,
  listContainers: ListContainersRequest,
  containerStatus: ContainerStatusRequest,
  imageStatus: ImageStatusRequest,
  pullImage: PullImageRequest,
};

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
    super(`CRI ${method} failed (${grpc.status[code] ?? code}): ${details}`);
    this.name = 'CriError';
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof CriError && err.code === grpc.status.NOT_FOUND;
}
export function isUnavailable(err: unknown): boolean {
  return err instanceof CriError && err.code === grpc.status.UNAVAILABLE;
}

type Unary<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/** Normalises `unix:/p`, `unix:///p` and a bare absolute path to what grpc-js accepts. */
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

export class CriClient {
  private readonly runtime: RuntimeServiceClient;
  private readonly image: ImageServiceClient;
  readonly timeoutMs: number;
  /** Count of calls made, per method (benchmarks). */
  readonly calls = new Map<string, number>();
  /** Time spent waiting on the runtime, ms (benchmarks: edged's own overhead = total - this). */
  criTimeMs = 0;
  private inflight = 0;
  private busySince = 0;

  constructor(opts: CriClientOptions) {
    const channelOptions: grpc.ClientOptions = {
      'grpc.max_receive_message_length': MAX_MSG_SIZE,
      'grpc.max_send_message_length': MAX_MSG_SIZE,
      'grpc.default_authority': 'localhost',
    };
    const creds = grpc.credentials.createInsecure();
    this.runtime = new RuntimeServiceClient(grpcTarget(opts.runtimeEndpoint), creds, channelOptions);
    const imageEndpoint = opts.imageEndpoint || opts.runtimeEndpoint;
    this.image = new ImageServiceClient(grpcTarget(imageEndpoint), creds, channelOptions);
    this.timeoutMs = opts.timeoutMs;
  }

  close(): void {
    this.runtime.close();
    this.image.close();
  }

  private call<Req, Res>(
    client: grpc.Client,
    method: string,
    request: Req,
    timeoutMs: number | undefined,
  ): Promise<Res> {
    const fn = (client as unknown as Record<string, Unary<unknown, Res>>)[method];
    const codec = REQUESTS[method];
    if (!fn || !codec) throw new Error(`CRI method ${method} is not in the generated client`);
    const full = codec.fromPartial(request as never);
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    // wall time with at least one call in flight (parallel calls are not counted twice)
    if (this.inflight++ === 0) this.busySince = performance.now();
    return new Promise<Res>((resolve, reject) => {
      const options: Partial<grpc.CallOptions> = {};
      if (timeoutMs !== undefined) options.deadline = Date.now() + timeoutMs;
      fn.call(client, full, new grpc.Metadata(), options, (err, res) => {
        if (--this.inflight === 0) this.criTimeMs += performance.now() - this.busySince;
        if (err) reject(new CriError(method, err.code, err.details || err.message));
        else resolve(res);
      });
    });
  }

  private rt<Res>(
    method: string,
    req: unknown,
    timeoutMs: number | undefined = this.timeoutMs,
  ): Promise<Res> {
    return this.call<unknown, Res>(this.runtime, method, req, timeoutMs);
  }
  private im<Res>(
    method: string,
    req: unknown,
    timeoutMs: number | undefined = this.timeoutMs,
  ): Promise<Res> {
    return this.call<unknown, Res>(this.image, method, req, timeoutMs);
  }

  version(timeoutMs?: number): Promise<VersionResponse> {
    return this.rt('version', { version: '0.1.0' }, timeoutMs ?? this.timeoutMs);
  }
  status(verbose = false, timeoutMs?: number): Promise<StatusResponse> {
    return this.rt('status', { verbose }, timeoutMs ?? this.timeoutMs);
  }
  async runPodSandbox(config: PodSandboxConfig): Promise<string> {
    const r = await this.rt<{ podSandboxId: string }>(
      'runPodSandbox',
      { config, runtimeHandler: '' },
      2 * this.timeoutMs,
    );
    return r.podSandboxId;
  }
  async stopPodSandbox(id: string): Promise<void> {
    await this.rt('stopPodSandbox', { podSandboxId: id });
  }
  async removePodSandbox(id: string): Promise<void> {
    await this.rt('removePodSandbox', { podSandboxId: id });
  }
  async podSandboxStatus(id: string): Promise<PodSandboxStatus | undefined> {
    const r = await this.rt<{ status?: PodSandboxStatus }>('podSandboxStatus', {
      podSandboxId: id,
      verbose: false,
    });
    return r.status;
  }
  async listPodSandbox(labelSelector: Record<string, string> = {}): Promise<PodSandbox[]> {
    const r = await this.rt<{ items: PodSandbox[] }>('listPodSandbox', {
      filter: { id: '', labelSelector },
    });
    return r.items;
  }
  async createContainer(
    podSandboxId: string,
    config: ContainerConfig,
    sandboxConfig: PodSandboxConfig,
  ): Promise<string> {
    const r = await this.rt<{ containerId: string }>('createContainer', {
      podSandboxId,
      config,
      sandboxConfig, // always: containerd 1.6.20 crashes without it (cri.md §4.4)
    });
    return r.containerId;
  }
  async startContainer(id: string): Promise<void> {
    await this.rt('startContainer', { containerId: id });
  }
  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    await this.rt(
      'stopContainer',
      { containerId: id, timeout: timeoutSeconds },
      this.timeoutMs + timeoutSeconds * 1000,
    );
  }
  async removeContainer(id: string): Promise<void> {
    await this.rt('removeContainer', { containerId: id });
  }
  async listContainers(labelSelector: Record<string, string> = {}): Promise<Container[]> {
    const r = await this.rt<{ containers: Container[] }>('listContainers', {
      filter: { id: '', podSandboxId: '', labelSelector },
    });
    return r.containers;
  }
  async containerStatus(id: string): Promise<ContainerStatus | undefined> {
    const r = await this.rt<{ status?: ContainerStatus }>('containerStatus', {
      containerId: id,
      verbose: false,
    });
    return r.status;
  }
  async imageStatus(image: string): Promise<Image | undefined> {
    const r = await this.im<{ image?: Image }>('imageStatus', {
      image: { image, annotations: {}, userSpecifiedImage: '', runtimeHandler: '' },
      verbose: false,
    });
    return r.image ?? undefined;
  }
  async pullImage(
    image: string,
    sandboxConfig: PodSandboxConfig | undefined,
    signal?: AbortSignal,
  ): Promise<string> {
    const p = this.im<{ imageRef: string }>(
      'pullImage',
      { image: { image, annotations: {}, userSpecifiedImage: image, runtimeHandler: '' }, sandboxConfig },
      undefined, // kubelet: no deadline on pulls, cancel only
    );
    if (signal) {
      signal.throwIfAborted();
    }
    return (await p).imageRef;
  }
}
