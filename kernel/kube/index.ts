/**
 * The cloud's Kubernetes access, a kernel service (`KubeToken`) of cloudcore only: the kubeconfig
 * of `kubeAPIConfig`, client-node API clients behind one client-side rate limit (qps/burst) with
 * retries of 429 and transient 5xx, and one shared informer factory (one list+watch per distinct
 * collection and selectors, whatever the number of users). See README.md.
 *
 * @kubernetes/client-node (~70 MB resident once loaded) is imported on the first call that needs
 * it, never at import of this module: edgecore never loads it.
 */
import type * as K8s from '@kubernetes/client-node';
import type { KubeAPIConfig } from '../config/index.js';
import { KernelError, errorText } from '../errors.js';
import type { Logger } from '../log.js';
import { TokenBucket, retryDelay, sleep } from './limiter.js';
import type {
  InformerHandlers,
  InformerOptions,
  KubeApi,
  KubeStats,
  KubernetesListObject,
  KubernetesObject,
  SharedInformer,
} from './types.js';

export type * from './types.js';

type Lib = typeof K8s;

/** A Kubernetes API answer that is not 2xx; `statusCode` is the HTTP status (client-node's shape). */
export class KubeApiError extends KernelError {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super('EKUBE_API', message);
  }
}

/** The client's loaded parts, made on first use. */
interface Loaded {
  lib: Lib;
  kc: K8s.KubeConfig;
  server: string;
  http: K8s.HttpLibrary;
}

const INITIAL_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;

/** The service the kernel registers under `KubeToken` for a cloudcore config. */
export function createKubeApi(config: KubeAPIConfig, log: Logger): KubeApi {
  return new KubeClient(config, log.child({ module: 'kube' }));
}

class KubeClient implements KubeApi {
  readonly qps: number;
  readonly burst: number;
  readonly bucket: TokenBucket;
  readonly counters = { requests: 0, lists: 0, watches: 0, retries: 0 };
  private loaded: Promise<Loaded> | undefined;
  private readonly informers = new Map<string, Informer<KubernetesObject>>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly config: KubeAPIConfig,
    readonly log: Logger,
  ) {
    this.bucket = new TokenBucket(config.qps, config.burst);
    this.qps = this.bucket.qps;
    this.burst = this.bucket.burst;
  }

  load(): Promise<Loaded> {
    this.loaded ??= this.loadClient();
    return this.loaded;
  }

  private async loadClient(): Promise<Loaded> {
    const lib = await import('@kubernetes/client-node');
    const kc = loadKubeConfig(lib, this.config);
    const server = kc.getCurrentCluster()?.server ?? '';
    const contentType = this.config.contentType;
    if (contentType !== '' && !contentType.includes('json')) {
      this.log.info(
        { contentType },
        'kubeAPIConfig.contentType: @kubernetes/client-node speaks JSON only, JSON is used',
      );
    }
    const inner = lib.createConfiguration().httpApi;
    const http = lib.wrapHttpLibrary({ send: (req) => this.send(inner, req) });
    this.log.info({ server, qps: this.qps, burst: this.burst }, 'kubernetes client ready');
    return { lib, kc, server, http };
  }

  /** Send one request under the rate limit, again while the answer says "try again". */
  private async send(inner: K8s.HttpLibrary, req: K8s.RequestContext): Promise<K8s.ResponseContext> {
    for (let attempt = 0; ; attempt++) {
      await this.bucket.take();
      this.counters.requests++;
      const res = await inner.send(req).toPromise();
      const wait = retryDelay(res.httpStatusCode, res.headers['retry-after'], attempt);
      if (wait === undefined || this.stopping.signal.aborted) return res;
      this.counters.retries++;
      this.log.warn(
        { method: req.getHttpMethod(), url: req.getUrl(), status: res.httpStatusCode, waitMs: wait, attempt },
        'kubernetes request answered "try again": retrying',
      );
      await res.body.text().catch(() => '');
      await sleep(wait, this.stopping.signal);
    }
  }

  async kubeConfig(): Promise<K8s.KubeConfig> {
    return (await this.load()).kc;
  }

  async api<T extends K8s.ApiType>(ctor: K8s.ApiConstructor<T>): Promise<T> {
    const { lib, kc, server, http } = await this.load();
    return new ctor(
      lib.createConfiguration({
        baseServer: new lib.ServerConfiguration(server, {}),
        authMethods: { default: kc },
        httpApi: http,
      }),
    );
  }

  async getJson<T>(path: string): Promise<T> {
    const { lib, kc, server, http } = await this.load();
    const req = new lib.RequestContext(server + path, lib.HttpMethod.GET);
    req.setHeaderParam('Accept', 'application/json');
    await kc.applySecurityAuthentication(req);
    const res = await http.send(req).toPromise();
    const body = await res.body.text();
    if (res.httpStatusCode < 200 || res.httpStatusCode >= 300) {
      let reason = body.slice(0, 300);
      try {
        reason = (JSON.parse(body) as { message?: string }).message ?? reason;
      } catch {
        // not a Status object: keep the text
      }
      throw new KubeApiError(res.httpStatusCode, `GET ${path}: ${res.httpStatusCode} ${reason}`);
    }
    return JSON.parse(body) as T;
  }

  informer<T extends KubernetesObject>(opts: InformerOptions): SharedInformer<T> {
    if (this.stopping.signal.aborted)
      throw new KernelError('EKUBE_STOPPED', 'the Kubernetes client is stopped');
    const { key, path } = informerKey(opts);
    let shared = this.informers.get(key) as Informer<T> | undefined;
    if (shared === undefined) {
      shared = new Informer<T>(this, key, path, opts.labelSelector, opts.fieldSelector, () =>
        this.informers.delete(key),
      );
      this.informers.set(key, shared as unknown as Informer<KubernetesObject>);
    }
    return shared.user(opts.signal);
  }

  stats(): KubeStats {
    return { ...this.counters, informers: this.informers.size };
  }

  stop(): void {
    this.stopping.abort();
    for (const informer of [...this.informers.values()]) informer.stop();
  }
}

/** Loads `kubeAPIConfig`: its kubeconfig file (or in-cluster), `master` overriding the server. */
function loadKubeConfig(lib: Lib, c: KubeAPIConfig): K8s.KubeConfig {
  const kc = new lib.KubeConfig();
  if (c.kubeConfig !== '') {
    try {
      kc.loadFromFile(c.kubeConfig);
    } catch (err) {
      throw new KernelError(
        'EKUBE_CONFIG',
        `kubeAPIConfig.kubeConfig: cannot load ${c.kubeConfig}: ${errorText(err)}`,
      );
    }
  } else if (c.master === '') {
    if (process.env.KUBERNETES_SERVICE_HOST === undefined) {
      throw new KernelError(
        'EKUBE_CONFIG',
        'kubeAPIConfig: set kubeConfig (absolute path of a kubeconfig) or master; not running in a cluster either',
      );
    }
    kc.loadFromCluster();
  }
  if (c.master !== '') {
    const current = kc.getCurrentCluster();
    if (current === null) {
      kc.loadFromClusterAndUser(
        { name: 'master', server: c.master, skipTLSVerify: false },
        { name: 'master' },
      );
    } else {
      kc.loadFromOptions({
        clusters: kc.clusters.map((cl) => (cl.name === current.name ? { ...cl, server: c.master } : cl)),
        users: kc.users,
        contexts: kc.contexts,
        currentContext: kc.currentContext,
      });
    }
  }
  if (kc.getCurrentCluster() === null) {
    throw new KernelError(
      'EKUBE_CONFIG',
      `kubeAPIConfig.kubeConfig: ${c.kubeConfig} has no current context with a cluster`,
    );
  }
  return kc;
}

/** The collection path of `opts` and the sharing key (path and selectors). */
export function informerKey(opts: InformerOptions): { key: string; path: string } {
  let path: string;
  if (opts.path !== undefined) {
    if (opts.resource !== undefined || opts.namespace !== undefined || !/^\/[^?#]+$/.test(opts.path)) {
      throw new KernelError(
        'EKUBE_INFORMER',
        `informer: path must be an API collection path like /api/v1/nodes, without resource/namespace, got ${JSON.stringify(opts)}`,
      );
    }
    path = opts.path.replace(/\/+$/, '');
  } else {
    if (!opts.version || !opts.resource) {
      throw new KernelError(
        'EKUBE_INFORMER',
        `informer: give path, or version and resource (group empty for core), got ${JSON.stringify(opts)}`,
      );
    }
    const base = opts.group ? `/apis/${opts.group}/${opts.version}` : `/api/${opts.version}`;
    const ns = opts.namespace ? `/namespaces/${encodeURIComponent(opts.namespace)}` : '';
    path = `${base}${ns}/${opts.resource}`;
  }
  const query = new URLSearchParams();
  if (opts.labelSelector) query.set('labelSelector', opts.labelSelector);
  if (opts.fieldSelector) query.set('fieldSelector', opts.fieldSelector);
  const q = query.toString();
  return { key: q === '' ? path : `${path}?${q}`, path };
}

/**
 * One list+watch loop and its cache (client-node's `ListWatch`), shared by its users: relists on
 * 410 Gone (ListWatch does), starts again after any list or watch error with back-off (1 s
 * doubling to 30 s), rate-limited with the client's other requests.
 */
class Informer<T extends KubernetesObject> {
  private users = 0;
  private readonly handlers = new Set<InformerHandlers<T>>();
  private lw: K8s.ListWatch<T> | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private backoffMs = INITIAL_BACKOFF_MS;
  readonly synced: Promise<void>;
  private markSynced!: () => void;
  private failSync!: (err: unknown) => void;

  constructor(
    private readonly client: KubeClient,
    readonly key: string,
    private readonly path: string,
    private readonly labelSelector: string | undefined,
    private readonly fieldSelector: string | undefined,
    private readonly onStopped: () => void,
  ) {
    this.synced = new Promise<void>((resolve, reject) => {
      this.markSynced = resolve;
      this.failSync = reject;
    });
    this.synced.catch(() => undefined); // a user who never awaits it must not see an unhandled rejection
    void this.run();
  }

  private async run(): Promise<void> {
    let loaded: Loaded;
    try {
      loaded = await this.client.load();
    } catch (err) {
      this.client.log.error({ key: this.key, err: errorText(err) }, 'informer cannot start');
      this.failSync(err);
      return;
    }
    if (this.stopped) return;
    const { lib, kc } = loaded;
    const real = new lib.Watch(kc);
    const watch: K8s.Watch = {
      config: kc,
      watch: async (path, query, callback, done) => {
        await this.client.bucket.take();
        const aborted = new AbortController();
        aborted.abort();
        if (this.stopped) return aborted;
        this.client.counters.watches++;
        this.client.counters.requests++;
        const request = await real.watch(
          path,
          query,
          (phase: string, obj: unknown, event: unknown) => {
            this.backoffMs = INITIAL_BACKOFF_MS;
            callback(phase, obj, event);
          },
          done,
        );
        if (this.stopped) request.abort(); // stopped while the watch was opening
        return request;
      },
    };
    const list = (): Promise<KubernetesListObject<T>> => {
      this.client.counters.lists++;
      return this.client.getJson<KubernetesListObject<T>>(this.key);
    };
    const lw = new lib.ListWatch<T>(this.path, watch, list, false, this.labelSelector, this.fieldSelector);
    lw.on('add', (obj) => this.emit('add', obj));
    lw.on('update', (obj) => this.emit('update', obj));
    lw.on('delete', (obj) => this.emit('delete', obj));
    lw.on('error', (err: unknown) => this.retry(err));
    this.lw = lw;
    await this.startOnce();
  }

  private async startOnce(): Promise<void> {
    this.timer = undefined;
    const lw = this.lw;
    if (this.stopped || lw === undefined) return;
    await lw.start();
    if (!this.stopped && lw.latestResourceVersion() !== '') this.markSynced();
  }

  private retry(err: unknown): void {
    if (this.stopped || this.timer !== undefined) return;
    const waitMs = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    this.client.log.warn(
      { key: this.key, err: errorText(err), waitMs },
      'kubernetes list/watch failed: starting again',
    );
    this.timer = setTimeout(() => void this.startOnce(), waitMs);
  }

  private emit(verb: keyof InformerHandlers<T>, obj: T): void {
    for (const h of [...this.handlers]) this.call(h, verb, obj);
  }

  private call(h: InformerHandlers<T>, verb: keyof InformerHandlers<T>, obj: T): void {
    try {
      h[verb]?.(obj);
    } catch (err) {
      this.client.log.error(
        { key: this.key, verb, name: obj.metadata?.name, err: errorText(err) },
        'informer handler failed',
      );
    }
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw?.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.lw?.list(namespace) ?? [];
  }

  private addHandlers(h: InformerHandlers<T>): () => void {
    this.handlers.add(h);
    for (const obj of this.list()) this.call(h, 'add', obj);
    return () => this.handlers.delete(h);
  }

  /** A new user's handle; its stop (or its signal) releases it, the last release stops the loop. */
  user(signal: AbortSignal | undefined): SharedInformer<T> {
    this.users++;
    const mine = new Set<() => void>();
    let released = false;
    const stop = (): void => {
      if (released) return;
      released = true;
      signal?.removeEventListener('abort', stop);
      for (const remove of mine) remove();
      if (--this.users === 0) this.stop();
    };
    const handle: SharedInformer<T> = {
      key: this.key,
      synced: this.synced,
      get: (name, namespace) => this.get(name, namespace),
      list: (namespace) => this.list(namespace),
      addHandlers: (h) => {
        if (released)
          throw new KernelError('EKUBE_STOPPED', `informer ${this.key}: handlers added after stop`);
        const remove = this.addHandlers(h);
        mine.add(remove);
        return () => {
          mine.delete(remove);
          remove();
        };
      },
      stop,
    };
    if (signal?.aborted) stop();
    else signal?.addEventListener('abort', stop, { once: true });
    return handle;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    void this.lw?.stop();
    this.handlers.clear();
    this.failSync(new KernelError('EKUBE_STOPPED', `informer ${this.key} stopped before it synced`));
    this.onStopped();
  }
}
