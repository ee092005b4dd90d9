import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { LRUCache } from 'lru-cache';
import {
  errorText,
  hostOf,
  isKernelError,
  isLoopbackHost,
  KernelError,
  newMessage,
  type PluginContext,
} from '../../../kernel/index.js';
import { DynamicControllerGroup, ErrConnectionLost, MetaServerSource } from '../../../protocol/index.js';
import { gvrString, v2Key } from '../imitator.js';
import { Checkpointer } from '../checkpointer.js';
import type { MetaStore, WatchEvent } from '../store.js';
import { BUILTIN, discovery, HEALTH_PATHS, isDiscoveryPath, type ResourceInfo } from './discovery.js';
import { parseFieldSelector, parseLabelSelector, type FieldSelector, type Selector } from './selectors.js';
import { eventLine, statusObject, WatchStream } from './watch.js';

/**
 * metaServer (spec edge-modules §3.10): a Kubernetes-compatible API at the edge, served from
 * meta_v2. Reads (get, list, watch) are local; writes go to the cloud as an Application.
 *
 * It has no authentication (KubeEdge's `requireAuthorization` is refused at start, see index.ts),
 * so it listens on a loopback address only and answers only requests whose Host is a loopback
 * name (a web page cannot reach it through DNS rebinding).
 */

export interface MetaServerOptions {
  /** host:port */
  server: string;
  nodeName: string;
  /** Cloud reachable (edgeHub connected and the websocket module present). */
  connected: () => boolean;
  contextSendModule: string;
}

const MAX_BODY = 3 * 1024 * 1024;
const APPLICATION_TIMEOUT_MS = 10_000;
/** Bound of the serialised unfiltered lists kept for repeated list requests. */
const LIST_CACHE_BYTES = 8 * 1024 * 1024;
/** The longest watch `timeoutSeconds` a timer can hold (larger values are clamped to it). */
const MAX_WATCH_TIMEOUT_S = Math.floor(0x7fffffff / 1000);

/** One open watch stream. */
interface Watcher {
  stream: WatchStream;
  /** Its group_version_resource. */
  gvr: string;
  /** Only this namespace ('' = all). */
  ns: string;
  /** Only this name ('' = all). */
  name: string;
  /** Label and field selectors, when given. */
  filter: ((obj: Record<string, unknown>) => boolean) | undefined;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

interface Target {
  info: ResourceInfo;
  gvr: string;
  namespace: string;
  name: string;
  subresource: string;
  watchPath: boolean;
}

export class MetaServer {
  private http: Server | undefined;
  private readonly streams = new Set<WatchStream>();
  /** Open watches by group_version_resource. */
  private readonly watchers = new Map<string, Set<Watcher>>();
  private offStore: (() => void) | undefined;
  /** Unfiltered list bodies by resource and namespace, valid while the resource's generation holds. */
  private readonly listCache = new LRUCache<string, { generation: number; items: Buffer }>({
    maxSize: LIST_CACHE_BYTES,
    sizeCalculation: (e) => Math.max(1, e.items.length),
  });
  /** Started by the first watch: keeps WAL checkpoints off the commits that precede events. */
  readonly checkpointer: Checkpointer;

  constructor(
    private readonly ctx: PluginContext,
    private readonly store: MetaStore,
    private readonly opts: MetaServerOptions,
  ) {
    this.checkpointer = new Checkpointer(store.db, ctx.log);
  }

  async listen(): Promise<{ host: string; port: number }> {
    const { host, port } = parseListenAddress(this.opts.server);
    const handle = (req: IncomingMessage, res: ServerResponse): void => {
      this.serve(req, res).catch((err) => this.sendError(req, res, err));
    };
    const http = createServer(handle);
    // `Expect: 100-continue`: a body over the limit is refused before the client sends it.
    http.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      if (declaredLength(req) <= MAX_BODY) res.writeContinue();
      handle(req, res);
    });
    http.keepAliveTimeout = 30_000;
    this.http = http;
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(port, host, () => {
        http.off('error', reject);
        resolve();
      });
    });
    this.offStore = this.store.watch(this.fanOut);
    this.store.onCommit = () => this.checkpointer.wrote();
    const addr = http.address();
    return { host, port: typeof addr === 'object' && addr ? addr.port : port };
  }

  async close(): Promise<void> {
    this.offStore?.();
    this.offStore = undefined;
    this.store.onCommit = undefined;
    for (const s of this.streams) s.end();
    this.streams.clear();
    this.watchers.clear();
    this.listCache.clear();
    await this.checkpointer.stop();
    const http = this.http;
    if (!http) return;
    await new Promise<void>((resolve) => {
      http.close(() => resolve());
      http.closeAllConnections();
    });
  }

  /** Known resources: the built-in ones and any group/version/resource stored in meta_v2. */
  private resources(): ResourceInfo[] {
    const list = [...BUILTIN];
    for (const gvr of this.store.gvrs()) {
      const m = /^([^/]*)\/([^,]+), Resource=(.+)$/.exec(gvr);
      if (!m) continue;
      const [, group, version, resource] = m as unknown as [string, string, string, string];
      if (list.some((r) => r.group === group && r.version === version && r.resource === resource)) continue;
      list.push({ group, version, resource, kind: kindOf(resource), namespaced: true });
    }
    return list;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const host = req.headers.host ?? '';
    if (!isLoopbackHost(hostOf(host))) {
      throw new HttpError(
        403,
        'Forbidden',
        `Host ${JSON.stringify(host)}: metaServer has no authentication and answers only loopback names (localhost, 127.0.0.1, [::1])`,
      );
    }
    if (declaredLength(req) > MAX_BODY) {
      throw new HttpError(413, 'RequestEntityTooLarge', `request body larger than ${MAX_BODY} bytes`);
    }
    const { path, segments, query } = parseRequestTarget(req.url ?? '');
    const method = req.method ?? 'GET';
    if (method === 'GET' && HEALTH_PATHS.has(path)) {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('ok');
      return;
    }
    const target = this.target(segments);
    if (!target) {
      if (method === 'GET' && isDiscoveryPath(path)) {
        // KubeEdge keeps the cloud's discovery documents in meta_v2 under their path.
        const cached = this.store.getV2(path);
        if (cached !== undefined) return this.sendText(res, 200, cached);
        const doc = discovery(path, this.resources());
        if (doc !== undefined) return this.sendJson(res, 200, doc);
      }
      throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    }
    if (method === 'GET') {
      const watch = target.watchPath || isTrue(query.get('watch'));
      if (target.subresource && target.subresource !== 'status') {
        throw new HttpError(
          404,
          'NotFound',
          `${target.info.resource}/${target.subresource}: not served by metaServer`,
        );
      }
      if (watch) return this.watch(req, res, target, query);
      if (target.name) return this.get(res, target);
      return this.list(res, target, query);
    }
    if (['POST', 'PUT', 'PATCH', 'DELETE'].includes(method))
      return this.write(req, res, target, method, query);
    throw new HttpError(405, 'MethodNotAllowed', `method ${method} is not supported`);
  }

  /** `/api/v1/...` or `/apis/<g>/<v>/...` (decoded path segments) as a resource target. */
  private target(seg: string[]): Target | undefined {
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api' && seg.length >= 3) {
      group = '';
      version = seg[1] as string;
      rest = seg.slice(2);
    } else if (seg[0] === 'apis' && seg.length >= 4) {
      group = seg[1] as string;
      version = seg[2] as string;
      rest = seg.slice(3);
    } else return undefined;
    let watchPath = false;
    if (rest[0] === 'watch') {
      watchPath = true;
      rest = rest.slice(1);
    }
    let namespace = '';
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1] as string;
      rest = rest.slice(2);
    }
    const [resource, name = '', ...sub] = rest;
    if (!resource) return undefined;
    const info = this.resources().find(
      (r) => r.group === group && r.version === version && r.resource === resource,
    );
    if (!info) return undefined;
    return {
      info,
      gvr: gvrString(group, version, resource),
      namespace,
      name,
      subresource: sub.join('/'),
      watchPath,
    };
  }

  private get(res: ServerResponse, t: Target): void {
    const ns = t.info.namespaced ? t.namespace || 'null' : 'null';
    const value = this.store.getV2(v2Key(t.info.group, t.info.version, t.info.resource, ns, t.name));
    if (value === undefined) {
      const what = t.info.group ? `${t.info.resource}.${t.info.group}` : t.info.resource;
      throw new HttpError(404, 'NotFound', `${what} "${t.name}" not found`, {
        name: t.name,
        group: t.info.group,
        kind: t.info.resource,
      });
    }
    this.sendText(res, 200, value);
  }

  private selectors(
    t: Target,
    q: URLSearchParams,
  ): { labels: Selector; fields: FieldSelector; filtered: boolean } {
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(q.get('fieldSelector'), t.info.resource);
    return { labels, fields, filtered: Boolean(q.get('labelSelector') || q.get('fieldSelector')) };
  }

  private list(res: ServerResponse, t: Target, q: URLSearchParams): void {
    const { labels, fields, filtered } = this.selectors(t, q);
    const ns = (t.info.namespaced ? t.namespace || fields.namespace : undefined) || undefined;
    let items: Buffer;
    if (filtered) {
      const values = this.store.listV2(t.gvr, ns).filter((v) => {
        const obj = JSON.parse(v) as Record<string, unknown>;
        const md = (obj.metadata ?? {}) as { labels?: Record<string, string> };
        return labels(md.labels) && fields(obj);
      });
      items = Buffer.from(`,"items":[${values.join(',')}]}`);
    } else items = this.listItems(t.gvr, ns);
    const apiVersion = t.info.group ? `${t.info.group}/${t.info.version}` : t.info.version;
    const head = JSON.stringify({
      kind: `${t.info.kind}List`,
      apiVersion,
      metadata: { resourceVersion: String(this.store.revision) },
    });
    const headBytes = Buffer.from(head.slice(0, -1));
    res.cork();
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': headBytes.length + items.length,
    });
    res.write(headBytes);
    res.end(items);
    res.uncork();
  }

  /**
   * `,"items":[…]}` of an unfiltered list, serialised once per change of the resource: repeated
   * lists (informers relisting, kubectl polling) cost no SQLite read and no copy.
   */
  private listItems(gvr: string, ns: string | undefined): Buffer {
    const key = `${gvr}\u0000${ns ?? ''}`;
    const generation = this.store.generation(gvr);
    const hit = this.listCache.get(key);
    if (hit && hit.generation === generation) return hit.items;
    const items = Buffer.from(`,"items":[${this.store.listV2(gvr, ns).join(',')}]}`);
    this.listCache.set(key, { generation, items }); // refused when larger than the whole cache
    return items;
  }

  private watch(req: IncomingMessage, res: ServerResponse, t: Target, q: URLSearchParams): void {
    const { labels, fields, filtered } = this.selectors(t, q);
    const rvText = q.get('resourceVersion') ?? '';
    if (rvText !== '' && !/^\d+$/.test(rvText)) {
      throw new HttpError(
        400,
        'BadRequest',
        `resourceVersion: Invalid value: "${rvText}": expected an unsigned integer`,
      );
    }
    const timeout = q.get('timeoutSeconds');
    if (timeout !== null && !/^\d+$/.test(timeout)) {
      throw new HttpError(
        400,
        'BadRequest',
        `timeoutSeconds: Invalid value: "${timeout}": expected an integer`,
      );
    }
    // 0 or absent: no timeout of ours; beyond what a timer holds: clamped (about 24 days).
    const timeoutS = timeout === null ? 0 : Math.min(Number(timeout), MAX_WATCH_TIMEOUT_S);
    const ns = t.info.namespaced ? t.namespace || fields.namespace || '' : '';
    const name = t.name || fields.objectName || '';
    const filter = filtered
      ? (obj: Record<string, unknown>) =>
          labels(((obj.metadata ?? {}) as { labels?: Record<string, string> }).labels) && fields(obj)
      : undefined;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const stream = new WatchStream(res, (queued) => {
      detach();
      this.ctx.log.warn(
        { path: req.url, queued, client: req.socket.remotePort },
        'metaServer: watch dropped, the client reads too slowly (it lists again)',
      );
    });
    const w: Watcher = { stream, gvr: t.gvr, ns, name, filter };
    // Registered before anything is read: nothing can happen in between (one thread).
    let set = this.watchers.get(t.gvr);
    if (!set) this.watchers.set(t.gvr, (set = new Set()));
    set.add(w);
    this.streams.add(stream);
    this.checkpointer.start();
    const watchers = set;
    const detach = (): void => {
      watchers.delete(w);
      if (watchers.size === 0 && this.watchers.get(t.gvr) === watchers) this.watchers.delete(t.gvr);
      this.streams.delete(stream);
      clearTimeout(timer);
    };
    const finish = (last?: Buffer): void => {
      detach();
      stream.end(last);
    };
    const timer = timeoutS > 0 ? setTimeout(finish, timeoutS * 1000) : undefined;
    res.on('close', () => finish());
    const rv = rvText === '' ? 0 : Number(rvText);
    const replay: Buffer[] = [];
    if (rv === 0) {
      for (const v of this.store.listV2(t.gvr, ns || undefined)) {
        if (name || filter) {
          const obj = JSON.parse(v) as Record<string, unknown>;
          if (name && (obj.metadata as { name?: string } | undefined)?.name !== name) continue;
          if (filter && !filter(obj)) continue;
        }
        replay.push(eventLine('ADDED', v));
      }
    } else {
      const missed = this.store.eventsSince(rv);
      if (missed === undefined) {
        const status = statusObject(
          410,
          'Expired',
          `too old resource version: ${rv} (${this.store.history.from})`,
        );
        finish(eventLine('ERROR', JSON.stringify(status)));
        return;
      }
      for (const ev of missed) if (this.matches(w, ev)) replay.push(eventLine(ev.type, ev.value));
    }
    void stream.replay(replay);
  }

  private matches(w: Watcher, ev: WatchEvent): boolean {
    return (
      ev.gvr === w.gvr &&
      (!w.ns || ev.namespace === w.ns) &&
      (!w.name || ev.name === w.name) &&
      (!w.filter || w.filter(JSON.parse(ev.value) as Record<string, unknown>))
    );
  }

  /**
   * One store event to every matching watcher: the watchers of its resource are found by key,
   * the line is encoded once and the same bytes written to each; a selector's object is parsed
   * once, shared by every filtered watcher.
   */
  private readonly fanOut = (ev: WatchEvent): void => {
    const set = this.watchers.get(ev.gvr);
    if (!set) return;
    let line: Buffer | undefined;
    let obj: Record<string, unknown> | undefined;
    for (const w of set) {
      if (w.ns && ev.namespace !== w.ns) continue;
      if (w.name && ev.name !== w.name) continue;
      if (w.filter && !w.filter((obj ??= JSON.parse(ev.value) as Record<string, unknown>))) continue;
      w.stream.push((line ??= eventLine(ev.type, ev.value)));
    }
  };

  /** create/update/patch/delete: to the cloud as an Application; refused while disconnected. */
  private async write(
    req: IncomingMessage,
    res: ServerResponse,
    t: Target,
    method: string,
    q: URLSearchParams,
  ): Promise<void> {
    const body = await readBody(req);
    if (body.length > 0 && method !== 'PATCH') {
      try {
        JSON.parse(body.toString('utf8'));
      } catch (err) {
        throw new HttpError(400, 'BadRequest', `the request body is not JSON: ${errorText(err)}`);
      }
    }
    if (!this.opts.connected())
      throw new HttpError(500, 'InternalError', `Internal error occurred: ${ErrConnectionLost}`);
    const verb =
      method === 'POST'
        ? 'create'
        : method === 'DELETE'
          ? 'delete'
          : method === 'PATCH'
            ? 'patch'
            : t.subresource === 'status'
              ? 'updatestatus'
              : 'update';
    const key = v2Key(
      t.info.group,
      t.info.version,
      t.info.resource,
      t.info.namespaced ? t.namespace || 'null' : 'null',
      t.name,
    );
    const option = Buffer.from(
      JSON.stringify(
        method === 'PATCH'
          ? { PatchType: req.headers['content-type'] ?? '', Options: Object.fromEntries(q) }
          : Object.fromEntries(q),
      ),
    ).toString('base64');
    const reqBody = body.length ? body.toString('base64') : null;
    const id = createHash('sha256')
      .update([this.opts.nodeName, key, verb, option, reqBody ?? '', t.subresource].join('\u0000'))
      .digest('hex');
    const app = {
      ID: id,
      Key: key,
      Verb: verb,
      Nodename: this.opts.nodeName,
      Option: option,
      ReqBody: reqBody,
      Subresource: t.subresource,
      RespBody: null,
      Status: 'PreApplying',
      Reason: '',
      Error: { ErrStatus: { metadata: {} } },
      Timestamp: '0001-01-01T00:00:00Z',
    };
    const msg = newMessage(
      { source: MetaServerSource, group: DynamicControllerGroup, resource: 'null', operation: 'null' },
      app,
    );
    let reply;
    try {
      reply = await this.ctx.request(this.opts.contextSendModule, msg, APPLICATION_TIMEOUT_MS);
    } catch (err) {
      throw new HttpError(
        isKernelError(err, 'EBUS_TIMEOUT') ? 504 : 500,
        isKernelError(err, 'EBUS_TIMEOUT') ? 'Timeout' : 'InternalError',
        errorText(err),
      );
    }
    let answer = reply.content as Record<string, unknown> | string | null;
    if (typeof answer === 'string') {
      try {
        answer = JSON.parse(answer) as Record<string, unknown>;
      } catch {
        throw new HttpError(
          502,
          'InternalError',
          'the cloud answered the Application with something that is not JSON',
        );
      }
    }
    const a = (answer ?? {}) as {
      Status?: string;
      Reason?: string;
      RespBody?: string | null;
      Error?: { ErrStatus?: Record<string, unknown> };
    };
    if (a.Status === 'Rejected' || a.Status === 'Failed') {
      const st = a.Error?.ErrStatus ?? {};
      const code = typeof st.code === 'number' ? st.code : 500;
      this.sendJson(res, code, {
        kind: 'Status',
        apiVersion: 'v1',
        ...st,
        status: 'Failure',
        message: st.message ?? a.Reason ?? 'rejected by the cloud',
        code,
      });
      return;
    }
    const out = a.RespBody ? Buffer.from(a.RespBody, 'base64').toString('utf8') : '{}';
    this.sendText(res, verb === 'create' ? 201 : 200, out);
  }

  private sendJson(res: ServerResponse, code: number, body: unknown): void {
    this.sendText(res, code, JSON.stringify(body));
  }

  private sendText(res: ServerResponse, code: number, text: string): void {
    res
      .writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
      .end(text);
  }

  private sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    let e: HttpError;
    if (err instanceof HttpError) e = err;
    else if (isKernelError(err, 'EMETA_BAD_SELECTOR')) e = new HttpError(400, 'BadRequest', err.message);
    else {
      this.ctx.log.error({ err: errorText(err) }, 'metaServer request failed');
      e = new HttpError(500, 'InternalError', `Internal error occurred: ${errorText(err)}`);
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    // A request body left unread (413, or refused before reading) is not drained: close instead.
    if (!req.complete) res.setHeader('Connection', 'close');
    this.sendJson(res, e.code, statusObject(e.code, e.reason, e.message, e.details));
  }
}

/** `host:port` of metaServer.server; only a loopback host is accepted (there is no authentication). */
function parseListenAddress(server: string): { host: string; port: number } {
  const field = 'modules.metaManager.metaServer.server';
  const m = /^(.*):(\d{1,5})$/.exec(server);
  const port = Number(m?.[2]);
  if (!m || port > 65535) {
    throw new KernelError(
      'ECONFIG_INVALID',
      `${field}: expected "<host>:<port>", got ${JSON.stringify(server)}`,
    );
  }
  const host = hostOf(m[1] as string);
  if (!isLoopbackHost(host)) {
    throw new KernelError(
      'ECONFIG_INVALID',
      `${field}: ${JSON.stringify(server)} is not a loopback address; metaServer serves every object (Secrets included) without authentication, so it listens only on 127.0.0.1, ::1 or localhost`,
    );
  }
  return { host, port };
}

/** The declared Content-Length (0 when absent or not a number). */
function declaredLength(req: IncomingMessage): number {
  const n = Number(req.headers['content-length'] ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/**
 * The origin-form request target (`/path?query`), its decoded segments and its query. Anything
 * else, or malformed percent-encoding, is a 400.
 */
function parseRequestTarget(raw: string): { path: string; segments: string[]; query: URLSearchParams } {
  const shown = JSON.stringify(raw.length > 200 ? `${raw.slice(0, 200)}...` : raw);
  if (!raw.startsWith('/')) {
    throw new HttpError(400, 'BadRequest', `request target ${shown}: expected a path beginning with "/"`);
  }
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = q < 0 ? '' : raw.slice(q + 1);
  try {
    const segments = path
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent);
    decodeURIComponent(query.replace(/\+/g, ' '));
    return { path, segments, query: new URLSearchParams(query) };
  } catch {
    throw new HttpError(400, 'BadRequest', `request target ${shown}: malformed percent-encoding`);
  }
}

function isTrue(v: string | null): boolean {
  return v === 'true' || v === '1';
}

/** pkg/metaserver/util UnsafeResourceToKind, for resources known only from meta_v2. */
function kindOf(resource: string): string {
  const k = resource.charAt(0).toUpperCase() + resource.slice(1);
  if (k.endsWith('ies')) return `${k.slice(0, -3)}y`;
  if (k.endsWith('ses')) return k.slice(0, -2);
  if (k.endsWith('s')) return k.slice(0, -1);
  return k;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY)
      throw new HttpError(413, 'RequestEntityTooLarge', `request body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
