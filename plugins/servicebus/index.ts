/**
 * serviceBus (KubeEdge's `servicebus` module, group `bus`) of edgecore: the cloud router's REST
 * calls for an HTTP app on this node (spec edge-modules §6.1): `http://127.0.0.1:<port><path>`
 * called with the method, headers and body it was given, its status, headers and body sent back;
 * and the local server through which an edge app calls a cloud URL (§6.2, `server.ts`).
 */
import { request as httpRequest } from 'node:http';
import {
  DatabaseToken,
  definePlugin,
  errorText,
  newMessage,
  type Message,
  type ModuleConfig,
} from '../../kernel/index.js';
import {
  BusGroup,
  EdgeHubModuleName,
  HubGroup,
  RouterServiceBusSource,
  ServiceBusModuleName,
  UserGroup,
  canonicalHeader,
  HopByHopHeaders,
} from '../../protocol/index.js';
import type { ServiceBusConfig } from './config.js';
import { LocalServer, targetUrls } from './server.js';

/** The largest answer of an app passed on: the cloud router's limit (KubeEdge reads 5 MB). */
const MAX_ANSWER_BYTES = 12 * 2 ** 20;
/** KubeEdge's marker of the answers serviceBus makes itself (not the app's). */
const SERVER_HEADER = { Server: ['kubeedge-edgecore'] };

interface HttpRequestContent {
  header?: Record<string, string[] | string>;
  body?: string;
  method?: string;
}
export interface HttpResponseContent {
  header: Record<string, string[]>;
  status_code: number;
  body: string;
}

/** Go's CanonicalMIMEHeaderKey. */
const made = (status: number, text: string): HttpResponseContent => ({
  header: SERVER_HEADER,
  status_code: status,
  body: Buffer.from(`${text}\n`, 'utf8').toString('base64'),
});

/** One call of the local app; every failure is an answer (status 400/502/504) naming it. */
export function callApp(msg: Message, timeoutMs: number): Promise<HttpResponseContent> {
  const resource = msg.route.resource ?? '';
  const parts = resource.split(':');
  const port = Number(parts[0]);
  if (
    parts.length < 2 ||
    !/^\d+$/.test(parts[0] ?? '') ||
    port < 1 ||
    port > 65535 ||
    !parts[1]?.startsWith('/')
  )
    return Promise.resolve(
      made(400, `servicebus: resource ${JSON.stringify(resource)}: expected <port>:/<path>`),
    );
  const path = parts.slice(1).join(':');
  const content = (typeof msg.content === 'string' ? safeJson(msg.content) : msg.content) as
    HttpRequestContent | undefined;
  if (content === undefined || content === null || typeof content !== 'object')
    return Promise.resolve(made(400, 'servicebus: content: expected an HTTP request {header, body, method}'));
  const method = (msg.route.operation || content.method || 'GET').toUpperCase();
  const body = Buffer.from(content.body ?? '', 'base64');
  const headers: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(content.header ?? {})) {
    if (!HopByHopHeaders.has(k.toLowerCase()))
      headers[canonicalHeader(k)] = Array.isArray(v) ? v : [String(v)];
  }
  headers.Accept ??= ['*/*'];
  if (body.length > 0) headers['Content-Length'] = [String(body.length)];
  const where = `127.0.0.1:${port}`;
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_ANSWER_BYTES) {
          res.destroy();
          resolve(
            made(502, `servicebus: the answer of ${where}${path} is larger than ${MAX_ANSWER_BYTES} bytes`),
          );
          return;
        }
        chunks.push(c);
      });
      res.on('error', (err) =>
        resolve(made(502, `servicebus: reading the answer of ${where}: ${errorText(err)}`)),
      );
      res.on('end', () => {
        const header: Record<string, string[]> = {};
        for (const [k, v] of Object.entries(res.headersDistinct)) {
          if (v !== undefined && !HopByHopHeaders.has(k)) header[canonicalHeader(k)] = v;
        }
        resolve({
          header,
          status_code: res.statusCode ?? 502,
          body: Buffer.concat(chunks, size).toString('base64'),
        });
      });
    });
    req.on('timeout', () => {
      req.destroy();
      resolve(
        made(
          504,
          `servicebus: ${where}${path} did not answer within ${timeoutMs / 1000} s (modules.serviceBus.timeout)`,
        ),
      );
    });
    req.on('error', (err) =>
      resolve(made(502, `servicebus: cannot call ${where}${path}: ${errorText(err)}`)),
    );
    req.end(body);
  });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export default definePlugin<ServiceBusConfig & ModuleConfig>({
  name: ServiceBusModuleName,
  group: BusGroup,
  configKey: 'serviceBus',
  requires: [DatabaseToken],
  // each call waits for its app: many side by side (KubeEdge runs one goroutine per message)
  concurrency: 256,
  async start(ctx) {
    const timeoutMs = (ctx.config.timeout > 0 ? ctx.config.timeout : 60) * 1000;
    const local = new LocalServer({
      address: ctx.config.server,
      port: ctx.config.port,
      timeoutMs,
      urls: targetUrls(ctx.services.get(DatabaseToken)),
      request: (msg, ms) => ctx.request(EdgeHubModuleName, msg, ms),
      log: ctx.log,
    });
    // a port taken is logged, not fatal: the next `start` tries again
    const listenFailed = (err: unknown): void =>
      ctx.log.error({ err: errorText(err) }, 'servicebus: local server not listening');
    await local.resume().catch(listenFailed);
    ctx.log.info({ timeoutMs }, 'servicebus started');
    return {
      async onMessage(msg) {
        if (msg.route.source !== RouterServiceBusSource) {
          ctx.log.debug({ source: msg.route.source, op: msg.route.operation }, 'servicebus: ignored');
          return;
        }
        const url = msg.route.resource ?? '';
        if ((msg.route.operation === 'start' || msg.route.operation === 'stop') && url === '') {
          ctx.log.warn({ op: msg.route.operation }, 'servicebus: start/stop without a target URL ignored');
          return;
        }
        if (msg.route.operation === 'start') {
          ctx.log.info({ url }, 'servicebus: target URL allowed');
          await local.allow(url).catch(listenFailed);
          return;
        }
        if (msg.route.operation === 'stop') {
          ctx.log.info({ url }, 'servicebus: target URL no longer allowed');
          await local.forbid(url);
          return;
        }
        const answer = await callApp(msg, timeoutMs);
        // operation upload also for the answers serviceBus makes itself, so cloudHub routes them to
        // the router (KubeEdge leaves them without operation and the caller times out)
        const reply = newMessage(
          { source: ServiceBusModuleName, group: UserGroup, operation: 'upload', resource: '' },
          answer,
          { parentId: msg.header.msg_id },
        );
        try {
          await ctx.sendToGroup(HubGroup, reply);
        } catch (err) {
          ctx.log.warn(
            { err: errorText(err), resource: msg.route.resource },
            'servicebus: answer not sent to the cloud',
          );
        }
      },
      stop: () => local.close(),
    };
  },
});
