/**
 * The router's flows (spec devices-dmi-router §5.4–§5.7, wire-cloud-edge §5.13): the route table
 * kept from the Rule/RuleEndpoint informers, the REST entry, rest → eventbus, rest → servicebus,
 * eventbus → rest, servicebus → rest, what the edges set up for them (MQTT subscriptions, allowed
 * target URLs), and the status counters of each message.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  errorText,
  isKernelError,
  newMessage,
  type Logger,
  type Message,
  type PluginContext,
} from '../../kernel/index.js';
import {
  RouterEventBusSource,
  RouterServiceBusSource,
  ServiceBusModuleName,
  UserGroup,
  nodeResource,
  canonicalHeader,
  CloudHubModuleName,
  HopByHopHeaders,
} from '../../protocol/index.js';
import {
  RouteTable,
  createdAt,
  resolveRule,
  ruleKey,
  segments,
  type EdgeSetup,
  type Route,
  type RuleEndpointObject,
  type RuleObject,
} from './rules.js';
import type { RuleStatuses } from './status.js';
import type { Forwarder } from './forward.js';

/** KubeEdge's MaxMessageBytes: request bodies and edge answers at most 12 MiB. */
export const MAX_MESSAGE_BYTES = 12 * 2 ** 20;
/** cloudHub's answer to "is it written to the node's connection?" comes at once; this is a bound. */
const HUB_TIMEOUT_MS = 10_000;
/** Edge setups (subscriptions, target URLs) not delivered (node offline) are offered again this often. */
export const SUBSCRIBE_RETRY_MS = 5_000;
/** The header KubeEdge's serviceBus puts on the answers it makes itself (not the app's). */
const EDGE_SERVER_HEADER = 'kubeedge-edgecore';

/** The HTTPRequest / HTTPResponse contents of serviceBus messages (common/types/http.go). */
export interface HttpRequestContent {
  header: Record<string, string[]>;
  body: string;
  method: string;
  url: string;
}
export interface HttpResponseContent {
  header?: Record<string, string[]>;
  status_code?: number;
  body?: string;
}

/** An http.Header map of a Node header object, without hop-by-hop headers. */
export function goHeader(headers: Record<string, string[] | undefined>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HopByHopHeaders.has(k.toLowerCase())) continue;
    out[canonicalHeader(k)] = v;
  }
  return out;
}

export interface RouterOptions {
  ctx: Pick<PluginContext, 'request' | 'log'>;
  statuses: RuleStatuses;
  /** modules.router.restTimeout, in ms */
  restTimeoutMs: number;
  /** Several cloudcores: a call for a node connected to another one goes there (`forward.ts`). */
  forwarder?: Forwarder;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** cloudHub could not write to the node's connection: the call may belong to another cloudcore. */
class NotDelivered extends HttpError {
  constructor(
    readonly node: string,
    readonly body: Buffer,
    err: unknown,
  ) {
    super(503, `node ${node}: not delivered: ${errorText(err)}\n`);
  }
}

export class Router {
  private readonly endpoints = new Map<string, RuleEndpointObject>();
  private readonly rules = new Map<string, RuleObject>();
  private table = new RouteTable([]);
  /** servicebus replies waited for, by the request's msg_id */
  private readonly pending = new Map<string, (content: unknown) => void>();
  /** what each edge should have set up (topics subscribed, target URLs allowed), by type, node, resource */
  private setUp = new Map<string, EdgeSetup>();
  /** setups and teardowns not delivered yet, by the same key: the latest wins */
  private readonly unsent = new Map<string, EdgeSetup & { remove: boolean }>();
  private readonly retry: NodeJS.Timeout;
  /** problems are reported once both informers listed everything (before, an endpoint may be on its way) */
  synced = false;
  private scheduled: NodeJS.Immediate | undefined;
  private readonly log: Logger;

  constructor(private readonly o: RouterOptions) {
    this.log = o.ctx.log;
    this.retry = setInterval(() => void this.sendSetups(), SUBSCRIBE_RETRY_MS);
    this.retry.unref();
  }

  stop(): void {
    clearInterval(this.retry);
    clearImmediate(this.scheduled);
    for (const resolve of this.pending.values()) resolve(undefined);
    this.pending.clear();
  }

  // ---- informer events

  endpointChanged(ep: RuleEndpointObject, deleted = false): void {
    const key = ruleKey(ep.metadata?.namespace ?? 'default', ep.metadata?.name ?? '');
    if (deleted) this.endpoints.delete(key);
    else this.endpoints.set(key, ep);
    this.schedule();
  }

  ruleChanged(rule: RuleObject, deleted = false): void {
    const key = ruleKey(rule.metadata?.namespace ?? 'default', rule.metadata?.name ?? '');
    const uid = rule.metadata?.uid ?? '';
    if (deleted) {
      this.rules.delete(key);
      this.o.statuses.forget(uid);
      this.schedule();
      return;
    }
    this.o.statuses.track(rule);
    const old = this.rules.get(key);
    this.rules.set(key, rule);
    // our own status patches come back as updates: only a new spec (or object) changes routes
    if (old?.metadata?.uid === uid && JSON.stringify(old.spec) === JSON.stringify(rule.spec)) return;
    this.schedule();
  }

  /** One rebuild for the events of one turn (the informers' first lists replay every object). */
  private schedule(): void {
    this.scheduled ??= setImmediate(() => {
      this.scheduled = undefined;
      this.rebuild();
    });
  }

  /** Resolve every rule again; report problems; bring the edges' subscriptions in line. */
  rebuild(): void {
    const routes: Route[] = [];
    const problems = new Map<string, string>();
    const ordered = [...this.rules.values()].sort(
      (a, b) =>
        createdAt(a).localeCompare(createdAt(b)) ||
        (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''),
    );
    for (const rule of ordered) {
      const r = resolveRule(rule, (ns, name) => this.endpoints.get(ruleKey(ns, name)));
      if ('problem' in r) problems.set(rule.metadata?.uid ?? '', r.problem);
      else routes.push(r);
    }
    this.table = new RouteTable(routes);
    for (const r of routes) {
      const p = this.table.problems.get(ruleKey(r.namespace, r.name));
      if (p !== undefined) problems.set(r.uid, p);
    }
    if (this.synced) {
      for (const rule of this.rules.values()) {
        const uid = rule.metadata?.uid ?? '';
        const problem = problems.get(uid);
        if (problem !== undefined)
          this.log.warn(
            { rule: ruleKey(rule.metadata?.namespace ?? '', rule.metadata?.name ?? ''), problem },
            'router: rule not routed',
          );
        this.o.statuses.problem(uid, problem);
      }
    }
    const wanted = new Map(this.table.edgeSetups().map((s) => [`${s.type}\0${s.node}\0${s.resource}`, s]));
    for (const [k, s] of wanted) if (!this.setUp.has(k)) this.unsent.set(k, { ...s, remove: false });
    for (const [k, s] of this.setUp) if (!wanted.has(k)) this.unsent.set(k, { ...s, remove: true });
    this.setUp = wanted;
    void this.sendSetups();
  }

  /**
   * What the edges set up for the eventbus and servicebus sources: `node/<node>/<ns>/<topic>`
   * subscribe/unsubscribe for eventBus (flow B, §5.6 step 1), `node/<node>/<target URL>`
   * start/stop for serviceBus (flow D, §5.8 step 1).
   */
  private async sendSetups(): Promise<void> {
    for (const [k, s] of [...this.unsent]) {
      const [source, operation] =
        s.type === 'eventbus'
          ? [RouterEventBusSource, s.remove ? 'unsubscribe' : 'subscribe']
          : [RouterServiceBusSource, s.remove ? 'stop' : 'start'];
      const msg = newMessage(
        { source, group: UserGroup, operation, resource: nodeResource(s.node, s.resource) },
        null,
      );
      try {
        await this.toEdge(msg);
        if (this.unsent.get(k) === s) this.unsent.delete(k);
      } catch (err) {
        this.log.debug(
          { node: s.node, resource: s.resource, operation, err: errorText(err) },
          'router: not sent yet',
        );
      }
    }
  }

  /**
   * Hand a message to cloudHub for its node and wait until cloudHub has written it to the node's
   * connection; rejects at once when the node is not connected to this cloudcore.
   */
  private async toEdge(msg: Message): Promise<void> {
    let reply: Message;
    try {
      reply = await this.o.ctx.request(CloudHubModuleName, msg, HUB_TIMEOUT_MS);
    } catch (err) {
      if (isKernelError(err, 'EBUS_NO_MODULE')) throw new Error('cloudHub is not running in this cloudcore');
      throw err;
    }
    if (reply.route.operation === 'error') throw new Error(errorText(reply.content));
  }

  // ---- messages from the edges (cloudHub: upload + group user → router)

  fromEdge(msg: Message): void {
    const parent = msg.header.parent_msg_id ?? '';
    const wake = parent === '' ? undefined : this.pending.get(parent);
    if (wake) {
      this.pending.delete(parent);
      wake(msg.content);
      return;
    }
    const [first, node = '', ...rest] = (msg.route.resource ?? '').split('/');
    if (first !== 'node' || node === '') {
      this.log.warn({ resource: msg.route.resource }, 'router: message without node/<node>/ dropped');
      return;
    }
    if (parent !== '') {
      this.log.info({ node, parent_msg_id: parent }, 'router: an answer came after its request was given up');
      return;
    }
    if (msg.route.source === ServiceBusModuleName) {
      void this.callFromEdge(node, rest.join('/'), msg);
      return;
    }
    const topic = rest.join('/');
    const routes = this.table.matchBus(node, topic);
    if (routes.length === 0) {
      this.log.debug({ node, topic }, 'router: no rule has this eventbus source');
      return;
    }
    const payload = typeof msg.content === 'string' ? msg.content : JSON.stringify(msg.content ?? null);
    for (const route of routes) void this.postToRest(route, node, topic, payload);
  }

  /** Flow B: the MQTT payload POSTed to the rule's URL (§5.6 step 5). */
  private async postToRest(route: Route, node: string, topic: string, payload: string): Promise<void> {
    const { url } = route.target as { url: string };
    try {
      if (payload === '') throw new Error('empty MQTT payload'); // KubeEdge: invalid convert to []byte
      const res = await fetch(url, {
        method: 'POST',
        body: payload,
        signal: AbortSignal.timeout(this.o.restTimeoutMs),
      });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`POST ${url} answered ${res.status}`);
      this.o.statuses.success(route.uid);
    } catch (err) {
      const reason = `eventbus ${node}/${topic} -> ${url}: ${errorText(err)}`;
      this.o.statuses.fail(route.uid, reason);
      this.log.warn(
        { rule: ruleKey(route.namespace, route.name), node, topic, err: errorText(err) },
        'router: not delivered to the rest target',
      );
    }
  }

  /**
   * Flow D (§5.8): an edge app's call of `url` through its serviceBus. The request's body (the
   * app's `{method, targetURL, payload}` JSON, base64 as Go's []byte) is POSTed to the rule's URL;
   * a 2xx answer's body goes back as the `response`, anything else as an `error` naming it.
   */
  private async callFromEdge(node: string, url: string, msg: Message): Promise<void> {
    const route = this.table.matchCall(node, url);
    let answer: Message;
    try {
      if (!route)
        throw new Error(`no rule has a servicebus source with target_url ${url} and node_name ${node}`);
      const target = (route.target as { url: string }).url;
      const body =
        typeof msg.content === 'string'
          ? Buffer.from(msg.content, 'base64')
          : Buffer.from(JSON.stringify(msg.content ?? null));
      const res = await fetch(target, {
        method: 'POST',
        body,
        headers: { 'Content-Type': 'application/json' },
        signal: AbortSignal.timeout(this.o.restTimeoutMs),
      });
      const text = (await readLimited(res, MAX_MESSAGE_BYTES, `the answer of ${target}`)).toString('utf8');
      if (!res.ok) throw new Error(`POST ${target} answered ${res.status}: ${text.slice(0, 200)}`);
      this.o.statuses.success(route.uid);
      answer = newMessage(
        {
          source: ServiceBusModuleName,
          group: UserGroup,
          operation: 'response',
          resource: msg.route.resource,
        },
        text,
        { parentId: msg.header.msg_id },
      );
    } catch (err) {
      const reason = `servicebus ${node} ${url}: ${errorText(err)}`;
      if (route) this.o.statuses.fail(route.uid, reason);
      this.log.warn({ node, url, err: errorText(err) }, 'router: an edge app call not answered');
      answer = newMessage(
        { source: ServiceBusModuleName, group: UserGroup, operation: 'error', resource: msg.route.resource },
        reason,
        { parentId: msg.header.msg_id },
      );
    }
    try {
      await this.toEdge(answer);
    } catch (err) {
      this.log.warn({ node, url, err: errorText(err) }, 'router: the answer to an edge app call not sent');
    }
  }

  // ---- the REST entry (§5.4)

  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let route: Route | undefined;
    try {
      const url = new URL(req.url ?? '/', 'http://router');
      const [node = '', namespace = '', ...rest] = segments(url.pathname).map((s) => {
        try {
          return decodeURIComponent(s);
        } catch {
          throw new HttpError(400, `malformed percent-encoding in the path ${url.pathname}\n`);
        }
      });
      if (node === '' || namespace === '' || rest.length === 0)
        throw new HttpError(404, `expected /{node}/{namespace}/{path}, got ${url.pathname}\n`);
      const match = this.table.matchRest(namespace, rest);
      if (!match)
        throw new HttpError(
          404,
          `no rule of namespace ${namespace} has a rest source whose path matches /${rest.join('/')}\n`,
        );
      route = match.route;
      const body = await readBody(req);
      const param = match.param.join('/');
      if (route.target.type === 'eventbus') {
        await this.publish(node, route.target.topic, param, body);
        this.o.statuses.success(route.uid);
        reply(res, 200, 'message delivered');
        return;
      }
      const { port, path } = route.target as { port: number; path: string };
      const answer = await this.callEdge(
        node,
        req,
        `${port}:${path}${param ? `/${param}` : ''}${url.search}`,
        body,
      );
      const edgeMade =
        answer.header?.Server?.includes(EDGE_SERVER_HEADER) && (answer.status_code ?? 0) >= 400;
      const data = Buffer.from(answer.body ?? '', 'base64');
      if (edgeMade) this.o.statuses.fail(route.uid, `servicebus ${node}:${port}: ${data.toString('utf8')}`);
      else this.o.statuses.success(route.uid);
      for (const [k, v] of Object.entries(goHeader(answer.header ?? {}))) res.setHeader(k, v);
      res.setHeader('Content-Length', data.length);
      res.writeHead(answer.status_code ?? 200);
      res.end(data);
    } catch (caught) {
      let err = caught;
      if (caught instanceof NotDelivered && this.o.forwarder !== undefined) {
        // counted by the holder's router, not here
        const holder = await this.o.forwarder.holder(caught.node, req);
        if (holder !== undefined)
          try {
            await this.o.forwarder.forward(holder, req, caught.body, res);
            return;
          } catch (fwd) {
            err = new HttpError(503, `node ${caught.node}: not delivered: ${errorText(fwd)}\n`);
          }
      }
      const status = err instanceof HttpError ? err.status : 500;
      if (route !== undefined) this.o.statuses.fail(route.uid, errorText(err).trim());
      if (status >= 500)
        this.log.warn({ url: req.url, status, err: errorText(err) }, 'router: request failed');
      if (status === 413) req.resume();
      reply(res, status, errorText(err));
    }
  }

  /** Flow A: the body published on the rule's topic at the edge (§5.5). */
  private async publish(node: string, topic: string, param: string, body: Buffer): Promise<void> {
    const resource = nodeResource(node, `${topic}${param ? `/${param}` : ''}`);
    const msg = newMessage(
      { source: RouterEventBusSource, group: UserGroup, operation: 'publish', resource },
      body.toString('utf8'),
    );
    try {
      await this.toEdge(msg);
    } catch (err) {
      throw new NotDelivered(node, body, err);
    }
  }

  /** Flow C: the request forwarded to the node's serviceBus, its answer awaited (§5.7). */
  private async callEdge(
    node: string,
    req: IncomingMessage,
    target: string,
    body: Buffer,
  ): Promise<HttpResponseContent> {
    const method = req.method ?? 'GET';
    const content: HttpRequestContent = {
      header: goHeader(req.headersDistinct),
      body: body.toString('base64'),
      method,
      url: '',
    };
    const msg = newMessage(
      {
        source: RouterServiceBusSource,
        group: UserGroup,
        operation: method,
        resource: nodeResource(node, target),
      },
      content,
    );
    const id = msg.header.msg_id;
    // registered before sending: a fast answer is not lost
    let timer: NodeJS.Timeout | undefined;
    const answered = new Promise<unknown>((resolve) => {
      this.pending.set(id, resolve);
      timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(undefined);
      }, this.o.restTimeoutMs);
    });
    try {
      await this.toEdge(msg);
    } catch (err) {
      clearTimeout(timer);
      this.pending.delete(id);
      throw new NotDelivered(node, body, err);
    }
    const answer = await answered;
    clearTimeout(timer);
    if (answer === undefined)
      throw new HttpError(
        504,
        `node ${node}: no answer from its serviceBus within ${this.o.restTimeoutMs / 1000} s (modules.router.restTimeout)\n`,
      );
    if (
      typeof answer !== 'object' ||
      answer === null ||
      typeof (answer as HttpResponseContent).status_code !== 'number'
    )
      throw new HttpError(502, `node ${node}: invalid answer from its serviceBus\n`);
    return answer as HttpResponseContent;
  }
}

function reply(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(text.endsWith('\n') ? text : `${text}\n`, 'utf8');
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length });
  res.end(body);
}

/** A fetch answer's body, at most `limit` bytes (more is an error naming `what`). */
async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body ?? []) {
    size += (chunk as Uint8Array).length;
    if (size > limit) throw new Error(`${what} is larger than ${limit} bytes`);
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks, size);
}

/** The request body, at most {@link MAX_MESSAGE_BYTES}; more is a 413. */
function readBody(req: IncomingMessage): Promise<Buffer> {
  const tooLarge = (): HttpError =>
    new HttpError(
      413,
      `request body too large: at most ${MAX_MESSAGE_BYTES} bytes (12 MiB), as KubeEdge's router\n`,
    );
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_MESSAGE_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > MAX_MESSAGE_BYTES) {
        req.off('data', onData);
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}
