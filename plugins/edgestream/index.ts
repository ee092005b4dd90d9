/**
 * edgeStream (KubeEdge's `edgestream` module) of edgecore: dials cloudStream's tunnel server with
 * the node certificate and serves each request that comes through it against edged's kubelet-API
 * server on loopback: logs as an HTTP GET whose body streams back, exec and attach as the raw bytes
 * of an upgraded connection (the 101 answer, SPDY frames, the exit status) both ways. See README.md.
 */
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import {
  definePlugin,
  edgedEndpoint,
  errorText,
  nodeName,
  type Logger,
  type ModuleConfig,
} from '../../kernel/index.js';
import {
  EdgedServerHost,
  MessageType,
  SessionKeyHostNameOverride,
  SessionKeyInternalIP,
  StreamConnectPath,
  decodeTunnelMessage,
  encodeTunnelMessage,
  parseEdgedConnection,
  type EdgedConnection,
} from '../../protocol/index.js';
import type { EdgeStreamConfig } from './config.js';

export const EdgeStreamModuleName = 'edgestream';
const StreamGroup = 'stream';
/** KubeEdge dials again every 2 s while the tunnel is down. */
const RECONNECT_MS = 2000;
/** Ping period on the tunnel (KubeEdge's `startPing`). */
const PING_MS = 5000;
/** Tunnel sends not yet flushed above which a log stream is paused. */
const HIGH_WATER = 64;

/** One request served at the edge: what comes for it from the cloud. */
interface LocalConnection {
  data(chunk: Buffer): void;
  remove(): void;
}

/** The request's path and query, as edged is asked for them. */
const requestTarget = (c: EdgedConnection): string =>
  c.url.Path + (c.url.RawQuery ? `?${c.url.RawQuery}` : '');

/** The HTTP/1.1 request head that starts an upgraded exec/attach connection to edged. */
function requestHead(c: EdgedConnection, hostPort: string): string {
  const lines = [`${c.method} ${requestTarget(c)} HTTP/1.1`, `Host: ${hostPort}`];
  for (const [k, values] of Object.entries(c.header)) {
    if (k.toLowerCase() === 'host' || k.toLowerCase() === 'content-length') continue;
    for (const v of values) lines.push(`${k}: ${v.replace(/[\r\n]/g, ' ')}`);
  }
  if (c.method !== 'GET') lines.push('Content-Length: 0');
  return lines.join('\r\n') + '\r\n\r\n';
}

export default definePlugin<EdgeStreamConfig & ModuleConfig>({
  name: EdgeStreamModuleName,
  group: StreamGroup,
  configKey: 'edgeStream',
  async start(ctx) {
    const cfg = ctx.config;
    const log: Logger = ctx.log;
    const node = nodeName(ctx.services);
    const edged = edgedEndpoint(ctx.services);
    const edgedHostPort = `${EdgedServerHost}:${edged.port}`;
    const [{ default: WebSocket }, http, net] = await Promise.all([
      import('ws'),
      import('node:http'),
      import('node:net'),
    ]);

    let stopped = false;
    let ws: InstanceType<typeof WebSocket> | undefined;
    let timer: NodeJS.Timeout | undefined;
    let lastProblem = '';

    const serve = (
      tunnel: InstanceType<typeof WebSocket>,
      locals: Map<number, LocalConnection>,
      id: number,
      type: number,
      data: Buffer,
    ): void => {
      let pending = 0;
      const waiters: (() => void)[] = [];
      const send = (t: number, chunk?: Buffer): void => {
        if (tunnel.readyState !== WebSocket.OPEN) return;
        pending++;
        tunnel.send(encodeTunnelMessage(id, t, chunk), { binary: false }, () => {
          pending--;
          if (pending < HIGH_WATER / 4) waiters.splice(0).forEach((w) => w());
        });
      };
      let removed = false;
      const finish = (): void => {
        if (removed) return;
        removed = true;
        locals.delete(id);
        send(MessageType.RemoveConnect);
      };
      let c: EdgedConnection;
      try {
        c = parseEdgedConnection(data);
      } catch (err) {
        log.warn({ id, err: errorText(err) }, 'bad connect message from the cloud');
        finish();
        return;
      }
      if (type === MessageType.LogsConnect) {
        const req = http.request(
          {
            host: EdgedServerHost,
            port: edged.port,
            path: requestTarget(c),
            method: 'GET',
            headers: c.header,
          },
          (res) => {
            res.on('data', (chunk: Buffer) => {
              send(MessageType.Data, chunk);
              if (pending >= HIGH_WATER) {
                res.pause();
                waiters.push(() => res.resume());
              }
            });
            res.on('end', finish);
            res.on('error', finish);
          },
        );
        locals.set(id, {
          data: () => {},
          remove: () => {
            removed = true;
            locals.delete(id);
            req.destroy();
          },
        });
        req.on('error', (err) => {
          if (!removed) {
            send(MessageType.Data, Buffer.from(`edged's server ${edgedHostPort}: ${errorText(err)}\n`));
            finish();
          }
        });
        req.end();
        return;
      }
      if (type === MessageType.ExecConnect || type === MessageType.AttachConnect) {
        const socket: Socket = net.connect({ host: EdgedServerHost, port: edged.port, noDelay: true });
        locals.set(id, {
          data: (chunk) => socket.write(chunk),
          remove: () => {
            removed = true;
            locals.delete(id);
            socket.end();
          },
        });
        socket.write(requestHead(c, edgedHostPort));
        socket.on('data', (chunk: Buffer) => send(MessageType.Data, chunk));
        socket.on('close', finish);
        socket.on('error', (err) => {
          log.debug({ id, err: errorText(err) }, 'edged connection failed');
          socket.destroy();
        });
        return;
      }
      log.warn({ id, type }, 'connect type not served here (metrics): removed');
      finish();
    };

    const connect = async (): Promise<void> => {
      timer = undefined;
      if (stopped) return;
      let tls: { ca: Buffer; cert: Buffer; key: Buffer };
      try {
        const [ca, cert, key] = await Promise.all([
          readFile(cfg.tlsTunnelCAFile),
          readFile(cfg.tlsTunnelCertFile),
          readFile(cfg.tlsTunnelPrivateKeyFile),
        ]);
        tls = { ca, cert, key };
      } catch (err) {
        // edgeHub writes them after its bootstrap: wait for them as KubeEdge waits on edgeHub
        problem(`the node certificate is not there yet: ${errorText(err)}`);
        return;
      }
      if (stopped) return;
      const headers: Record<string, string> = { [SessionKeyHostNameOverride]: node };
      if (edged.nodeIP) headers[SessionKeyInternalIP] = edged.nodeIP;
      const tunnel = new WebSocket(`wss://${cfg.server}${StreamConnectPath}`, {
        ...tls,
        headers,
        handshakeTimeout: cfg.handshakeTimeout * 1000,
        skipUTF8Validation: true,
        maxPayload: 64 << 20,
        perMessageDeflate: false,
      });
      ws = tunnel;
      const locals = new Map<number, LocalConnection>();
      let ping: NodeJS.Timeout | undefined;
      tunnel.on('open', () => {
        lastProblem = '';
        log.info({ server: cfg.server }, 'stream tunnel connected');
        ping = setInterval(() => tunnel.ping(), PING_MS);
      });
      tunnel.on('message', (raw: Buffer) => {
        let m;
        try {
          m = decodeTunnelMessage(raw);
        } catch (err) {
          log.warn({ err: errorText(err) }, 'bad tunnel message: reconnecting');
          tunnel.terminate();
          return;
        }
        if (m.type === MessageType.CloseConnect) {
          log.warn({ reason: m.data.toString() }, 'cloudStream closed the tunnel');
          return;
        }
        if (m.type < MessageType.Data || m.type === MessageType.AttachConnect) {
          serve(tunnel, locals, m.connectId, m.type, m.data);
          return;
        }
        const local = locals.get(m.connectId);
        if (!local) return;
        if (m.type === MessageType.Data) local.data(m.data);
        else if (m.type === MessageType.RemoveConnect) local.remove();
      });
      tunnel.on('error', (err) => problem(`stream tunnel to ${cfg.server}: ${errorText(err)}`));
      tunnel.on('close', () => {
        clearInterval(ping);
        for (const l of [...locals.values()]) l.remove();
        if (ws === tunnel) ws = undefined;
        if (!stopped && !timer) timer = setTimeout(() => void connect(), RECONNECT_MS);
      });
    };
    /** A reason the tunnel is down, logged once until it changes; then try again. */
    const problem = (text: string): void => {
      if (text !== lastProblem) log.warn(text);
      lastProblem = text;
      if (!stopped && !timer && !ws) timer = setTimeout(() => void connect(), RECONNECT_MS);
    };
    void connect();

    return {
      onMessage() {},
      stop() {
        stopped = true;
        clearTimeout(timer);
        ws?.terminate();
      },
    };
  },
});
