/**
 * The cloud's Kubernetes access as plugins see it (`KubeToken`). Types only: importing this file
 * loads nothing; @kubernetes/client-node is loaded only by `kubeConfig()` and `api()`.
 */
import type {
  ApiConstructor,
  ApiType,
  KubeConfig,
  KubernetesListObject,
  KubernetesObject,
} from '@kubernetes/client-node';

/**
 * What to list and watch. Either `path`, the collection's API path (`/api/v1/nodes`,
 * `/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices`), or `version` + `resource` and
 * `group` (empty or absent for the core group) with an optional `namespace`.
 */
export interface InformerOptions {
  path?: string;
  group?: string;
  version?: string;
  resource?: string;
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Aborting it is the same as this user's `stop()`. */
  signal?: AbortSignal;
}

/** Event handlers of one informer user. `add` is also called for what the cache holds already. */
export interface InformerHandlers<T extends KubernetesObject> {
  add?(obj: T): void;
  update?(obj: T): void;
  delete?(obj: T): void;
}

/**
 * One user's view of a shared informer: every user of the same key shares one list+watch and one
 * cache. The list+watch ends when its last user stops (or the kernel stops).
 */
export interface SharedInformer<T extends KubernetesObject> {
  /** The sharing key: the collection path and the selectors. */
  readonly key: string;
  /** Resolves once the cache holds the first full list (client-go's HasSynced); rejects if stopped before. */
  readonly synced: Promise<void>;
  get(name: string, namespace?: string): T | undefined;
  list(namespace?: string): readonly T[];
  /** Add handlers (replaying the cache as `add`); returns the function that removes them. */
  addHandlers(handlers: InformerHandlers<T>): () => void;
  /** This user is done: its handlers are removed; the last user's stop ends the list+watch. */
  stop(): void;
}

/** Options of {@link KubeApi.request}. */
export interface KubeRequestOptions {
  /** Content-Type of the body: `application/json` (default), `application/merge-patch+json`, ... */
  contentType?: string;
  /**
   * Not behind the queue: its own token bucket (client-go's 5 qps, burst 10) and not counted in
   * the bound on requests open at once. For the few requests that must not wait behind a burst
   * (leader election's Lease); never for bulk work.
   */
  priority?: boolean;
  /**
   * Abandon the request while it waits: aborted before it got a token and a free slot, it is
   * never sent and rejects with `EKUBE_ABANDONED` (also before a retry); once sent it runs to its
   * answer.
   */
  signal?: AbortSignal;
}

/** Counters of the client, for tests, logs and benchmarks. */
export interface KubeStats {
  /** Requests sent (each retry counts), lists of informers, watch requests opened. */
  requests: number;
  lists: number;
  watches: number;
  /** Requests sent again after 429 or a transient 5xx. */
  retries: number;
  /** Distinct informers (list+watch loops) running now. */
  informers: number;
}

/** The cloud's Kubernetes client (kernel service `KubeToken`, cloudcore only). */
export interface KubeApi {
  /** The client-side rate limit in force (qps 0 in the config means client-go's 5 / 10). */
  readonly qps: number;
  readonly burst: number;
  /** client-node's KubeConfig of `kubeAPIConfig` (loads client-node, ~67 MB). */
  kubeConfig(): Promise<KubeConfig>;
  /** A client-node API client (`api(CoreV1Api)`), rate-limited and retried (loads client-node, ~67 MB). */
  api<T extends ApiType>(ctor: ApiConstructor<T>): Promise<T>;
  /**
   * One request by API path (`GET /api/v1/namespaces/kubeedge/secrets/casecret`), JSON in and out,
   * rate-limited and retried; a non-2xx answer throws `KubeApiError` (`EKUBE_API`, `statusCode`,
   * `reason`). Does not load client-node.
   */
  request<T>(method: string, path: string, body?: unknown, opts?: KubeRequestOptions): Promise<T>;
  /** The shared informer of `opts` (one list+watch per distinct key, whatever the number of users). */
  informer<T extends KubernetesObject>(opts: InformerOptions): SharedInformer<T>;
  stats(): KubeStats;
  /** Stop every informer (the kernel does it at stop). */
  stop(): void;
}

export type { KubernetesListObject, KubernetesObject };
