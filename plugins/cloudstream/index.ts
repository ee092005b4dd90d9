/**
 * cloudStream (KubeEdge's `cloudstream` module) of cloudcore: the tunnel server the edges dial
 * (`tunnelPort`, mutual TLS with their node certificates) and the stream server the API server
 * dials as if it were a node's kubelet (`streamPort`: `/containerLogs`, `/exec`, `/attach`), each
 * request forwarded through the tunnel of the node it names. See README.md.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import {
  KernelError,
  definePlugin,
  errorText,
  KubeApiError,
  requireKube,
  type Logger,
  type ModuleConfig,
} from '../../kernel/index.js';
import {
  MessageType,
  SessionKeyHostNameOverride,
  SessionKeyInternalIP,
  StreamConnectPath,
  canonicalHeader,
  decodeTunnelMessage,
  edgedConnection,
  encodeTunnelMessage,
  nodeCommonName,
} from '../../protocol/index.js';
import type { CloudStreamConfig } from './config.js';

export const CloudStreamModuleName = 'cloudstream';

/** The part of a Node cloudStream writes. */
interface NodePort {
  status?: { daemonEndpoints?: { kubeletEndpoint?: { Port?: number } } };
}

/** The part of a Pod cloudStream reads: where it runs. */
interface PodNode {
  metadata: { name: string };
  spec?: { nodeName?: string };
}

/** One request of the API server in flight through a tunnel. */
interface ApiConnection {
  data(chunk: Buffer): void;
  /** The edge ended it (RemoveConnect) or the tunnel went away. */
  end(): void;
}

/** One edge's tunnel: its websocket and the API server's requests riding it. */
class Session {
  readonly conns = new Map<number, ApiConnection>();
  closed = false;
  constructor(
    readonly node: string,
    private readonly tunnel: { send(buf: Buffer, opts: { binary: boolean }): void; terminate(): void },
  ) {}
  send(connectId: number, type: number, data?: Uint8Array): void {
    // a TEXT frame, as KubeEdge writes it (its reader refuses other frames)
    if (!this.closed) this.tunnel.send(encodeTunnelMessage(connectId, type, data), { binary: false });
  }
  /** Ends the tunnel and every request riding it. */
  close(): void {
    if (!this.closed) this.tunnel.terminate();
    this.closed = true;
    for (const c of this.conns.values()) c.end();
    this.conns.clear();
  }
}

async function readPem(file: string, field: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new KernelError(
      'ESTREAM_CONFIG',
      `modules.cloudStream.${field}: cannot read ${file}: ${errorText(err)}`,
    );
  }
}

function goHeader(req: IncomingMessage): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(req.headersDistinct)) {
    if (k === 'host' || v === undefined) continue;
    out[canonicalHeader(k)] = v;
  }
  return out;
}

/** `/containerLogs|exec|attach/{ns}/{pod}[/{uid}]/{container}` */
function parseKubeletPath(
  path: string,
): { kind: 'containerLogs' | 'exec' | 'attach'; namespace: string; pod: string } | undefined {
  const parts = path.split('/').filter((p) => p !== '');
  const kind = parts[0];
  if (kind !== 'containerLogs' && kind !== 'exec' && kind !== 'attach') return undefined;
  const n = parts.length - 1;
  if (n !== 3 && !(n === 4 && kind !== 'containerLogs')) return undefined;
  return { kind, namespace: decodeURIComponent(parts[1]!), pod: decodeURIComponent(parts[2]!) };
}

function rawReply(socket: Socket, status: number, reason: string, text: string): void {
  const body = Buffer.from(text + '\n');
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.toString()}`,
  );
}

class StreamError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export default definePlugin<CloudStreamConfig & ModuleConfig>({
  name: CloudStreamModuleName,
  group: CloudStreamModuleName,
  configKey: 'cloudStream',
  async start(ctx) {
    const cfg = ctx.config;
    const log: Logger = ctx.log;
    const [https, { WebSocketServer }] = await Promise.all([import('node:https'), import('ws')]);
    const kube = requireKube(
      ctx,
      "modules.cloudStream writes the nodes' kubelet port and checks which node a pod is on in the Kubernetes API",
    );

    const tunnelTls = {
      ca: await readPem(cfg.tlsTunnelCAFile, 'tlsTunnelCAFile'),
      cert: await readPem(cfg.tlsTunnelCertFile, 'tlsTunnelCertFile'),
      key: await readPem(cfg.tlsTunnelPrivateKeyFile, 'tlsTunnelPrivateKeyFile'),
    };
    const streamTls = {
      ca: await readPem(cfg.tlsStreamCAFile, 'tlsStreamCAFile'),
      cert: await readPem(cfg.tlsStreamCertFile, 'tlsStreamCertFile'),
      key: await readPem(cfg.tlsStreamPrivateKeyFile, 'tlsStreamPrivateKeyFile'),
    };

    /** Sessions by node name and by the node's internal IP (KubeEdge keys both). */
    const sessions = new Map<string, Session>();
    let nextId = 0;
    const timers = new Set<NodeJS.Timeout>();

    /**
     * KubeEdge's `updateNodeKubeletEndpoint`: the node's `daemonEndpoints.kubeletEndpoint.Port`
     * becomes the port the API server must dial, retried while the tunnel is up (the Node may not
     * be registered yet).
     */
    const advertise = async (session: Session): Promise<void> => {
      if (session.closed) return;
      const path = `/api/v1/nodes/${encodeURIComponent(session.node)}`;
      try {
        const node = await kube.request<NodePort>('GET', path);
        if (node.status?.daemonEndpoints?.kubeletEndpoint?.Port === cfg.streamPort) return;
        await kube.request(
          'PATCH',
          `${path}/status`,
          { status: { daemonEndpoints: { kubeletEndpoint: { Port: cfg.streamPort } } } },
          { contentType: 'application/merge-patch+json' },
        );
        log.info(
          { node: session.node, port: cfg.streamPort },
          'node kubelet endpoint set to the stream server',
        );
      } catch (err) {
        log.debug({ node: session.node, err: errorText(err) }, 'node kubelet endpoint not set yet: retrying');
        const t = setTimeout(() => {
          timers.delete(t);
          void advertise(session);
        }, 2000);
        timers.add(t);
      }
    };
    const pods = kube.informer<PodNode>({
      version: 'v1',
      resource: 'pods',
      signal: ctx.signal,
    });
    // the Node's status may be written again by the edge: keep the port while the tunnel is up
    const nodes = kube.informer<NodePort & { metadata: { name: string } }>({
      version: 'v1',
      resource: 'nodes',
      signal: ctx.signal,
    });
    nodes.addHandlers({
      update: (n) => {
        const s = sessions.get(n.metadata.name);
        if (s && n.status?.daemonEndpoints?.kubeletEndpoint?.Port !== cfg.streamPort) void advertise(s);
      },
    });

    // ---- tunnel server ----
    const wss = new WebSocketServer({ noServer: true, skipUTF8Validation: true, maxPayload: 64 << 20 });
    const tunnelServer = https.createServer({
      ...tunnelTls,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    });
    tunnelServer.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(404).end(`only ${StreamConnectPath} (websocket) is served here\n`);
    });
    tunnelServer.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const node = req.headers[SessionKeyHostNameOverride.toLowerCase()];
      const peer = (socket as TLSSocket).getPeerCertificate();
      const path = (req.url ?? '').split('?')[0];
      if (path !== StreamConnectPath && path !== `${StreamConnectPath}/`) {
        rawReply(socket, 404, 'Not Found', `no such path ${path}`);
        return;
      }
      if (typeof node !== 'string' || node === '') {
        rawReply(
          socket,
          400,
          'Bad Request',
          `header ${SessionKeyHostNameOverride} (the node name) is required`,
        );
        return;
      }
      if (peer.subject?.CN !== nodeCommonName(node)) {
        log.warn({ node, cn: peer.subject?.CN }, "tunnel refused: the certificate is not the node's");
        rawReply(socket, 403, 'Forbidden', `the client certificate is not node ${node}'s`);
        return;
      }
      const headerIp = req.headers[SessionKeyInternalIP.toLowerCase()];
      const internalIP =
        typeof headerIp === 'string' && headerIp !== ''
          ? headerIp
          : (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      wss.handleUpgrade(req, socket, head, (ws) => {
        const session = new Session(node, ws);
        // a new tunnel of the node replaces the old one
        for (const key of [node, internalIP]) {
          const old = sessions.get(key);
          if (old?.node === node) old.close();
          sessions.set(key, session);
        }
        log.info({ node, internalIP }, 'edge tunnel connected');
        void advertise(session);
        ws.on('message', (raw: Buffer) => {
          let m;
          try {
            m = decodeTunnelMessage(raw);
          } catch (err) {
            log.warn({ node, err: errorText(err) }, 'bad tunnel message: closing the tunnel');
            ws.terminate();
            return;
          }
          const conn = session.conns.get(m.connectId);
          if (m.type === MessageType.CloseConnect) {
            log.warn({ node, reason: m.data.toString() }, 'edge closed the tunnel');
            return;
          }
          if (!conn) return;
          if (m.type === MessageType.Data) conn.data(m.data);
          else if (m.type === MessageType.RemoveConnect) {
            session.conns.delete(m.connectId);
            conn.end();
          }
        });
        ws.on('close', () => {
          session.close();
          for (const key of [node, internalIP]) if (sessions.get(key) === session) sessions.delete(key);
          log.info({ node }, 'edge tunnel disconnected');
        });
        ws.on('error', (err) => log.warn({ node, err: errorText(err) }, 'edge tunnel error'));
      });
    });

    // ---- stream server (the API server's side) ----
    /** The session of the node the API server dialled, and the check that the pod is that node's. */
    const route = async (req: IncomingMessage) => {
      const url = new URL(req.url ?? '/', 'https://x');
      const target = parseKubeletPath(url.pathname);
      if (!target) throw new StreamError(404, 'Not Found', `no such path ${url.pathname}`);
      const host = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
      const session = sessions.get(host);
      if (!session)
        throw new StreamError(503, 'Service Unavailable', `no tunnel from the edge node at ${host}`);
      // the shared Pod informer's cache (edgeController's too), else the API for a pod not seen yet
      const pod =
        pods.get(target.pod, target.namespace) ??
        (await kube
          .request<PodNode>(
            'GET',
            `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.pod)}`,
          )
          .catch((err: unknown) => {
            if (err instanceof KubeApiError && err.statusCode === 404)
              throw new StreamError(404, 'Not Found', `pod ${target.namespace}/${target.pod} not found`);
            throw err;
          }));
      if (pod.spec?.nodeName !== session.node) {
        throw new StreamError(
          403,
          'Forbidden',
          `pod ${target.namespace}/${target.pod} is not on node ${session.node}: refused`,
        );
      }
      return { session, target, path: url.pathname, rawQuery: url.search.replace(/^\?/, '') };
    };
    /**
     * A request of the API server riding `session`: the edge's data is written to `out` and its end
     * ends `out`; `out` closed first (the API server went away) tells the edge (RemoveConnect).
     */
    const open = (session: Session, out: Writable): number => {
      const id = ++nextId;
      let done = false;
      session.conns.set(id, {
        data: (chunk) => out.write(chunk),
        end: () => {
          done = true;
          out.end();
        },
      });
      out.on('close', () => {
        if (!done) {
          session.conns.delete(id);
          session.send(id, MessageType.RemoveConnect);
        }
      });
      return id;
    };
    /** A failed request as the API server is told it; server faults logged. */
    const failed = (req: IncomingMessage, err: unknown): StreamError => {
      const e =
        err instanceof StreamError ? err : new StreamError(500, 'Internal Server Error', errorText(err));
      if (e.status >= 500) log.warn({ url: req.url, err: e.message }, 'stream request failed');
      return e;
    };

    const streamServer = https.createServer({
      ...streamTls,
      requestCert: true,
      rejectUnauthorized: true,
    });
    streamServer.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void (async () => {
        const r = await route(req);
        if (r.target.kind !== 'containerLogs')
          throw new StreamError(400, 'Bad Request', `${r.target.kind} needs a connection upgrade`);
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.flushHeaders();
        const id = open(r.session, res);
        const connect = edgedConnection(id, 'GET', goHeader(req), r.path, r.rawQuery);
        r.session.send(id, MessageType.LogsConnect, Buffer.from(JSON.stringify(connect)));
      })().catch((err: unknown) => {
        const e = failed(req, err);
        if (!res.headersSent) res.writeHead(e.status, { 'Content-Type': 'text/plain' }).end(e.message + '\n');
        else res.end();
      });
    });
    streamServer.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      void (async () => {
        const r = await route(req);
        if (r.target.kind === 'containerLogs')
          throw new StreamError(400, 'Bad Request', 'containerLogs is not upgraded');
        const id = open(r.session, socket);
        socket.on('data', (chunk: Buffer) => r.session.send(id, MessageType.Data, chunk));
        socket.on('error', () => socket.destroy());
        const type = r.target.kind === 'exec' ? MessageType.ExecConnect : MessageType.AttachConnect;
        const connect = edgedConnection(id, req.method ?? 'GET', goHeader(req), r.path, r.rawQuery);
        r.session.send(id, type, Buffer.from(JSON.stringify(connect)));
        if (head.length > 0) r.session.send(id, MessageType.Data, head);
      })().catch((err: unknown) => {
        const e = failed(req, err);
        rawReply(socket, e.status, e.reason, e.message);
      });
    });

    const listen = (server: Server, port: number, what: string): Promise<void> =>
      new Promise((resolve, reject) => {
        server.once('error', (err) =>
          reject(new KernelError('ESTREAM_LISTEN', `cloudStream ${what} :${port}: ${errorText(err)}`)),
        );
        server.listen(port, () => resolve());
      });
    await listen(tunnelServer, cfg.tunnelPort, 'tunnel server');
    await listen(streamServer, cfg.streamPort, 'stream server').catch(async (err: unknown) => {
      tunnelServer.close();
      throw err;
    });
    log.info({ tunnelPort: cfg.tunnelPort, streamPort: cfg.streamPort }, 'cloudStream listening');

    return {
      onMessage() {},
      async stop() {
        for (const t of timers) clearTimeout(t);
        nodes.stop();
        pods.stop();
        for (const s of new Set(sessions.values())) s.close();
        await Promise.all(
          [tunnelServer, streamServer].map(
            (s) =>
              new Promise<void>((resolve) => {
                s.close(() => resolve());
                s.closeAllConnections();
              }),
          ),
        );
      },
    };
  },
});
