/**
 * The cloud's Kubernetes access, a kernel service (`KubeToken`) of cloudcore only: requests to
 * kube-apiserver behind one client-side rate limit (qps/burst) with retries of 429 and transient
 * 5xx, one shared informer factory (one list+watch per distinct collection and selectors, whatever
 * the number of users) and, on demand, @kubernetes/client-node's API clients. See README.md.
 *
 * Requests and informers speak JSON over node:http(s) with a keep-alive agent: the idle cloudcore
 * never loads @kubernetes/client-node (~67 MB resident once loaded). Its `KubeConfig` and API
 * clients are imported on the first `kubeConfig()` / `api()` call only; edgecore never loads it.
 */
import { readFileSync } from 'node:fs';
import type { Agent as HttpAgent, IncomingMessage } from 'node:http';
import type * as K8s from '@kubernetes/client-node';
import { requireCjs } from '../cjs.js';
import type { KubeAPIConfig } from '../config/index.js';
import { KernelError, errorText } from '../errors.js';
import type { Logger } from '../log.js';
import { loadRestConfig, type RestConfig } from './kubeconfig.js';
import { InFlightLimit, TokenBucket, retryDelay, sleep } from './limiter.js';
import type {
  InformerHandlers,
  InformerOptions,
  KubeApi,
  KubeRequestOptions,
  KubeStats,
  KubernetesListObject,
  KubernetesObject,
  SharedInformer,
} from './types.js';

export type * from './types.js';

// node:http(s) loaded on first use: edgecore imports this module (through the kernel) and never needs them.
const http = (): typeof import('node:http') => requireCjs('node:http') as typeof import('node:http');
const https = (): typeof import('node:https') => requireCjs('node:https') as typeof import('node:https');

/** A Kubernetes API answer that is not 2xx (`statusCode` 0: no answer at all). */
export class KubeApiError extends KernelError {
  constructor(
    readonly statusCode: number,
    message: string,
    /** The Status `reason` (`NotFound`, `AlreadyExists`, `Expired`, ...) when the body had one. */
    readonly reason?: string,
  ) {
    super('EKUBE_API', message);
  }
}

/** A request whose caller's `signal` aborted before it was sent. */
const abandoned = (what: string): KernelError =>
  new KernelError('EKUBE_ABANDONED', `${what}: abandoned by its caller before it was sent`);

const INITIAL_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;
/** client-go re-reads a token file at most once a minute. */
const TOKEN_FILE_TTL_MS = 60_000;
/**
 * A request (head and body) that takes longer is abandoned with status 0, so a half-open
 * connection to an API server that went away cannot hold a caller for good.
 */
const REQUEST_TIMEOUT_MS = 60_000;
/** Requests (not watches) open at once over the keep-alive agent: each open one holds a connection. */
const MAX_REQUESTS_IN_FLIGHT = 32;
/**
 * client-go's watch length: the server ends each watch after a random 5-10 minutes
 * (`timeoutSeconds`), and the watch is opened again from the last resourceVersion. A watch still
 * open this long after its own timeout is on a dead connection: it is cut and opened again.
 */
const MIN_WATCH_TIMEOUT_S = 300;
const WATCH_DEADLINE_GRACE_MS = 30_000;

/** The service the kernel registers under `KubeToken` for a cloudcore config. */
export function createKubeApi(config: KubeAPIConfig, log: Logger): KubeApi {
  return new KubeClient(config, log.child({ module: 'kube' }));
}

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: string;
}

async function readBody(res: IncomingMessage): Promise<string> {
  res.setEncoding('utf8');
  let body = '';
  for await (const chunk of res) body += chunk as string;
  return body;
}

/** The message and reason of a Status body, else the start of the text. */
function statusOf(body: string): { message: string; reason?: string } {
  try {
    const s = JSON.parse(body) as { message?: unknown; reason?: unknown };
    if (typeof s.message === 'string') {
      return { message: s.message, reason: typeof s.reason === 'string' ? s.reason : undefined };
    }
  } catch {
    // not a Status object
  }
  return { message: body.slice(0, 300) };
}

class KubeClient implements KubeApi {
  readonly qps: number;
  readonly burst: number;
  readonly bucket: TokenBucket;
  /** The bucket of priority requests (client-go's defaults, as its separate leader-election client). */
  private readonly priorityBucket = new TokenBucket(0, 0);
  private readonly inFlight = new InFlightLimit(MAX_REQUESTS_IN_FLIGHT);
  readonly counters = { requests: 0, lists: 0, watches: 0, retries: 0 };
  private rest: RestConfig | undefined;
  private agent: HttpAgent | undefined;
  private token: { value: string; readAt: number } | undefined;
  private heavy: Promise<{ lib: typeof K8s; kc: K8s.KubeConfig; http: K8s.HttpLibrary }> | undefined;
  private readonly informers = new Map<string, Informer<KubernetesObject>>();
  readonly stopping = new AbortController();

  constructor(
    private readonly config: KubeAPIConfig,
    readonly log: Logger,
  ) {
    this.bucket = new TokenBucket(config.qps, config.burst);
    this.qps = this.bucket.qps;
    this.burst = this.bucket.burst;
  }

  /** The resolved `kubeAPIConfig`, loaded on first use (a failure is thrown again next time). */
  private restConfig(): RestConfig {
    if (this.rest === undefined) {
      const rest = loadRestConfig(this.config);
      const contentType = this.config.contentType;
      if (contentType !== '' && !contentType.includes('json')) {
        this.log.info(
          { contentType },
          'kubeAPIConfig.contentType: this client speaks JSON only, JSON is used',
        );
      }
      const tls = {
        keepAlive: true,
        ca: rest.ca,
        cert: rest.cert,
        key: rest.key,
        rejectUnauthorized: !rest.insecureSkipTLSVerify,
        servername: rest.tlsServerName,
      };
      this.agent = rest.server.startsWith('https:')
        ? new (https().Agent)(tls)
        : new (http().Agent)({ keepAlive: true });
      this.rest = rest;
      this.log.info(
        { server: rest.server, from: rest.source, qps: this.qps, burst: this.burst },
        'kubernetes client ready',
      );
    }
    return this.rest;
  }

  private bearer(rest: RestConfig): string | undefined {
    if (rest.tokenFile === undefined) return rest.token;
    const now = Date.now();
    if (this.token === undefined || now - this.token.readAt > TOKEN_FILE_TTL_MS) {
      try {
        this.token = { value: readFileSync(rest.tokenFile, 'utf8').trim(), readAt: now };
      } catch (err) {
        if (this.token === undefined) {
          throw new KernelError(
            'EKUBE_CONFIG',
            `cannot read the token file ${rest.tokenFile}: ${errorText(err)}`,
          );
        }
        this.log.warn(
          { file: rest.tokenFile, err: errorText(err) },
          'cannot read the token file again: using the last token',
        );
      }
    }
    return this.token?.value;
  }

  /** Opens one request (no limit, no retry); resolves with the response head. */
  open(
    method: string,
    path: string,
    body?: string,
    contentType = 'application/json',
    signal?: AbortSignal,
  ): Promise<IncomingMessage> {
    const rest = this.restConfig();
    const headers: Record<string, string | number> = {
      Accept: 'application/json',
      'User-Agent': 'kubeedge-ts-cloudcore',
    };
    const token = this.bearer(rest);
    if (token !== undefined) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) {
      headers['Content-Type'] = contentType;
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    const send = rest.server.startsWith('https:') ? https().request : http().request;
    return new Promise((resolve, reject) => {
      const req = send(`${rest.server}${path}`, { method, headers, agent: this.agent, signal }, resolve);
      req.once('error', (err) => reject(new KubeApiError(0, `${method} ${path}: ${errorText(err)}`)));
      req.end(body);
    });
  }

  /** Runs `attempt` under the rate limit, again (after a wait) while its answer says "try again". */
  async limited<R>(
    what: string,
    attempt: () => Promise<R>,
    answer: (r: R) => { status: number; retryAfter: string | undefined; discard(): Promise<unknown> },
    bucket = this.bucket,
    signal?: AbortSignal,
  ): Promise<R> {
    for (let n = 0; ; n++) {
      await bucket.take(signal);
      if (signal?.aborted) throw abandoned(what);
      this.counters.requests++;
      const r = await attempt();
      const a = answer(r);
      const wait = retryDelay(a.status, a.retryAfter, n);
      if (wait === undefined || this.stopping.signal.aborted) return r;
      this.counters.retries++;
      this.log.warn(
        { request: what, status: a.status, waitMs: wait, attempt: n },
        'kubernetes request answered "try again": retrying',
      );
      await a.discard().catch(() => undefined);
      await sleep(wait, this.stopping.signal);
    }
  }

  async request<T>(method: string, path: string, body?: unknown, opts: KubeRequestOptions = {}): Promise<T> {
    const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const what = `${method} ${path}`;
    const send = async (): Promise<Answer> => {
      const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]);
      const head = await this.open(method, path, text, opts.contentType, signal);
      const body = await readBody(head).catch((err: unknown) => {
        throw new KubeApiError(0, `${what}: ${errorText(err)}`);
      });
      return { status: head.statusCode ?? 0, retryAfter: header(head, 'retry-after'), body };
    };
    // a priority request has its own token bucket and is not counted in the in-flight bound: it
    // never waits behind the queued ones
    const res = await this.limited(
      what,
      opts.priority ? send : () => this.inFlight.run(send, opts.signal, () => abandoned(what)),
      (a) => ({ status: a.status, retryAfter: a.retryAfter, discard: async () => undefined }),
      opts.priority ? this.priorityBucket : this.bucket,
      opts.signal,
    );
    if (res.status < 200 || res.status >= 300) {
      const { message, reason } = statusOf(res.body);
      throw new KubeApiError(res.status, `${method} ${path}: ${res.status} ${message}`, reason);
    }
    return (res.body === '' ? undefined : JSON.parse(res.body)) as T;
  }

  private loadHeavy(): Promise<{ lib: typeof K8s; kc: K8s.KubeConfig; http: K8s.HttpLibrary }> {
    this.heavy ??= (async () => {
      const rest = this.restConfig();
      const lib = await import('@kubernetes/client-node');
      const kc = new lib.KubeConfig();
      kc.loadFromClusterAndUser(
        {
          name: 'cloudcore',
          server: rest.server,
          caData: rest.ca?.toString('base64'),
          skipTLSVerify: rest.insecureSkipTLSVerify,
          tlsServerName: rest.tlsServerName,
        },
        {
          name: 'cloudcore',
          certData: rest.cert?.toString('base64'),
          keyData: rest.key?.toString('base64'),
          token: rest.token,
          authProvider: rest.tokenFile
            ? { name: 'tokenFile', config: { tokenFile: rest.tokenFile } }
            : undefined,
        },
      );
      const inner = lib.createConfiguration().httpApi;
      const http = lib.wrapHttpLibrary({
        send: (req) =>
          this.limited(
            `${req.getHttpMethod()} ${req.getUrl()}`,
            () => inner.send(req).toPromise(),
            (res) => ({
              status: res.httpStatusCode,
              retryAfter: res.headers['retry-after'],
              discard: () => res.body.text(),
            }),
          ),
      });
      return { lib, kc, http };
    })();
    this.heavy.catch(() => (this.heavy = undefined));
    return this.heavy;
  }

  async kubeConfig(): Promise<K8s.KubeConfig> {
    return (await this.loadHeavy()).kc;
  }

  async api<T extends K8s.ApiType>(ctor: K8s.ApiConstructor<T>): Promise<T> {
    const { lib, kc, http } = await this.loadHeavy();
    const server = kc.getCurrentCluster()?.server ?? '';
    return new ctor(
      lib.createConfiguration({
        baseServer: new lib.ServerConfiguration(server, {}),
        authMethods: { default: kc },
        httpApi: http,
      }),
    );
  }

  informer<T extends KubernetesObject>(opts: InformerOptions): SharedInformer<T> {
    if (this.stopping.signal.aborted)
      throw new KernelError('EKUBE_STOPPED', 'the Kubernetes client is stopped');
    const { key, path } = informerKey(opts);
    let shared = this.informers.get(key) as Informer<T> | undefined;
    if (shared === undefined) {
      shared = new Informer<T>(this, key, path, () => this.informers.delete(key));
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
    this.agent?.destroy();
  }
}

/** An object as Kubernetes sends it over a watch: with `kind` and `apiVersion` (Go's SetMetaType). */
export function withTypeMeta<T extends KubernetesObject>(obj: T, kind: string, apiVersion: string): T {
  return { ...obj, kind: obj.kind ?? kind, apiVersion: obj.apiVersion ?? apiVersion };
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

interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

const objectKey = (o: KubernetesObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/**
 * One list+watch loop and its cache, shared by its users (client-go's reflector): list, then watch
 * from the list's resourceVersion; a watch the server ends is opened again from the last
 * resourceVersion; 410 Gone (or an ERROR event saying so) relists, telling handlers what changed
 * meanwhile; any other error starts again after a back-off of 1 s doubling to 30 s.
 */
class Informer<T extends KubernetesObject> {
  private users = 0;
  private readonly handlers = new Set<InformerHandlers<T>>();
  private readonly cache = new Map<string, T>();
  private resourceVersion = '';
  private readonly stopping = new AbortController();
  private backoffMs = INITIAL_BACKOFF_MS;
  readonly synced: Promise<void>;
  private markSynced!: () => void;
  private failSync!: (err: unknown) => void;

  constructor(
    private readonly client: KubeClient,
    readonly key: string,
    private readonly path: string,
    private readonly onStopped: () => void,
  ) {
    this.synced = new Promise<void>((resolve, reject) => {
      this.markSynced = resolve;
      this.failSync = reject;
    });
    this.synced.catch(() => undefined); // a user who never awaits it must not see an unhandled rejection
    void this.run();
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.resourceVersion === '') await this.relist();
        this.markSynced();
        await this.watch();
      } catch (err) {
        if (this.stopped) break;
        if (err instanceof KernelError && err.code === 'EKUBE_CONFIG') {
          this.client.log.error({ key: this.key, err: errorText(err) }, 'informer cannot start');
          this.failSync(err);
          return;
        }
        if (err instanceof KubeApiError && (err.statusCode === 410 || err.reason === 'Expired')) {
          this.resourceVersion = '';
          continue;
        }
        const waitMs = this.backoffMs;
        this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
        this.client.log.warn(
          { key: this.key, err: errorText(err), waitMs },
          'kubernetes list/watch failed: starting again',
        );
        await sleep(waitMs, this.stopping.signal);
      }
    }
  }

  private async relist(): Promise<void> {
    this.client.counters.lists++;
    const list = await this.client.request<KubernetesListObject<T>>('GET', this.key);
    if (this.stopped) return;
    // list items carry no kind/apiVersion: give them the list's, as the objects of watch events have
    const kind = list.kind?.replace(/List$/, '');
    const fresh = new Map<string, T>();
    for (const item of list.items ?? []) {
      const obj = { ...item, kind: item.kind ?? kind, apiVersion: item.apiVersion ?? list.apiVersion };
      fresh.set(objectKey(obj), obj);
    }
    for (const [k, old] of this.cache) if (!fresh.has(k)) this.remove(old);
    for (const obj of fresh.values()) this.upsert(obj);
    this.resourceVersion = list.metadata?.resourceVersion ?? '';
    this.backoffMs = INITIAL_BACKOFF_MS;
  }

  /** One watch request, until the server ends it (resolves) or it fails (rejects). */
  private async watch(): Promise<void> {
    const timeoutSeconds = Math.floor(MIN_WATCH_TIMEOUT_S * (1 + Math.random()));
    const query = new URLSearchParams({
      watch: 'true',
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(timeoutSeconds),
    });
    const deadline = AbortSignal.timeout(timeoutSeconds * 1000 + WATCH_DEADLINE_GRACE_MS);
    const signal = AbortSignal.any([this.stopping.signal, deadline]);
    const sep = this.key.includes('?') ? '&' : '?';
    const path = `${this.key}${sep}${query}`;
    const res = await this.client
      .limited(
        `WATCH ${this.key}`,
        async () => {
          if (this.stopped) return undefined;
          this.client.counters.watches++;
          return this.client.open('GET', path, undefined, undefined, signal);
        },
        (r) => ({
          status: r?.statusCode ?? 200,
          retryAfter: header(r, 'retry-after'),
          discard: () => readBody(r!),
        }),
      )
      .catch((err: unknown) => {
        if (this.stopped) return undefined;
        throw err;
      });
    if (res === undefined) return;
    if (res.statusCode !== 200) {
      const body = await readBody(res);
      const { message, reason } = statusOf(body);
      throw new KubeApiError(res.statusCode ?? 0, `WATCH ${this.key}: ${res.statusCode} ${message}`, reason);
    }
    res.setEncoding('utf8');
    let partial = '';
    try {
      for await (const chunk of res) {
        const lines = (partial + (chunk as string)).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) if (line.trim() !== '') this.event(JSON.parse(line) as WatchEvent<T>);
      }
    } catch (err) {
      if (this.stopped) return;
      throw err;
    }
  }

  private event(e: WatchEvent<T>): void {
    if (e.type === 'ERROR') {
      const status = e.object as unknown as { code?: number; message?: string; reason?: string };
      throw new KubeApiError(
        status.code ?? 0,
        `WATCH ${this.key}: ${status.message ?? 'error event'}`,
        status.reason,
      );
    }
    if (e.type === 'ADDED' || e.type === 'MODIFIED') this.upsert(e.object);
    else if (e.type === 'DELETED') this.remove(e.object);
    this.resourceVersion = e.object.metadata?.resourceVersion ?? this.resourceVersion;
    this.backoffMs = INITIAL_BACKOFF_MS;
  }

  private upsert(obj: T): void {
    const k = objectKey(obj);
    const old = this.cache.get(k);
    if (old !== undefined && old.metadata?.resourceVersion === obj.metadata?.resourceVersion) return;
    this.cache.set(k, obj);
    this.emit(old === undefined ? 'add' : 'update', obj);
  }

  private remove(obj: T): void {
    if (this.cache.delete(objectKey(obj))) this.emit('delete', obj);
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
    return this.cache.get(`${namespace ?? ''}/${name}`);
  }

  list(namespace?: string): readonly T[] {
    const all = [...this.cache.values()];
    return namespace === undefined ? all : all.filter((o) => (o.metadata?.namespace ?? '') === namespace);
  }

  private addHandlers(h: InformerHandlers<T>): () => void {
    this.handlers.add(h);
    for (const obj of this.cache.values()) this.call(h, 'add', obj);
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
    this.stopping.abort();
    this.handlers.clear();
    this.failSync(new KernelError('EKUBE_STOPPED', `informer ${this.key} stopped before it synced`));
    this.onStopped();
  }
}

function header(res: IncomingMessage | undefined, name: string): string | undefined {
  const v = res?.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
