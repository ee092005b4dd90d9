/**
 * One websocket connection to cloudHub (wire-cloud-edge §3): wss with the node certificate, the
 * upgrade headers a Go edgecore sends, one JSON text frame per message (with Go's trailing newline),
 * keepalive every heartbeat, a write deadline on every write, and the viaduct control messages
 * answered in place. Liveness (ours): a websocket ping goes with every keepalive and an answer (pong
 * or any frame) is expected within `readDeadline`, so a half-open link is noticed in seconds.
 */
import { createRequire } from 'node:module';
import type WebSocketType from 'ws';
import {
  KernelError,
  decodeMessage,
  encodeMessage,
  errorText,
  newMessage,
  type Message,
} from '../../kernel/index.js';
import { EdgeHubModuleName, ResourceGroup } from '../../protocol/index.js';

/** ws through require: CommonJS, which an ESM `import` would wrap file by file (more memory). */
const WebSocket = createRequire(import.meta.url)('ws') as typeof WebSocketType;
type WebSocket = WebSocketType;

export interface HubDialOptions {
  /** `websocket.server`, host:port. */
  server: string;
  projectId: string;
  nodeName: string;
  /** PEM: the CA that signed the cloud's server certificate, the node certificate and its key. */
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  handshakeTimeoutMs: number;
  writeDeadlineMs: number;
  readDeadlineMs: number;
  heartbeatMs: number;
}

export interface HubHandlers {
  /** A decoded cloud message (control messages are answered here and not passed on). */
  onMessage(msg: Message): void;
  /** A frame that is not a beehive message; it is skipped. */
  onBadFrame(err: Error): void;
  /** The connection ended (once), with why. */
  onClose(reason: string): void;
}

/** `wss://<server>/<projectID>/<nodeName>/events` (edge/pkg/edgehub/config). */
export function hubUrl(server: string, projectId: string, nodeName: string): string {
  return `wss://${server}/${projectId}/${nodeName}/events`;
}

/** The upgrade headers, spelled as Go's http.Header canonicalises them on the wire (§3.3). */
export function upgradeHeaders(nodeName: string, projectId: string): Record<string, string> {
  return { Node_id: nodeName, Project_id: projectId, Connectionuse: 'msg' };
}

/** The keepalive of §3.6: websocket/resource/keepalive/node, content "ping". */
export function keepaliveMessage(): Message<string> {
  return newMessage(
    { source: EdgeHubModuleName, group: ResourceGroup, operation: 'keepalive', resource: 'node' },
    'ping',
  );
}

/** Viaduct's reserved operations: consumed by the transport, answered with "ack" (§3.5). */
const CONTROL_OPERATIONS = new Set(['config', 'ping', 'pong']);

export class HubConnection {
  private closed = false;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private readTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly ws: WebSocket,
    private readonly opts: HubDialOptions,
    private readonly handlers: HubHandlers,
  ) {}

  /** Dial and upgrade; resolves once connected (the first keepalive is on its way). */
  static dial(opts: HubDialOptions, handlers: HubHandlers): Promise<HubConnection> {
    const url = hubUrl(opts.server, opts.projectId, opts.nodeName);
    const ws = new WebSocket(url, {
      headers: upgradeHeaders(opts.nodeName, opts.projectId),
      handshakeTimeout: opts.handshakeTimeoutMs,
      perMessageDeflate: false,
      followRedirects: false,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
    });
    return new Promise((resolve, reject) => {
      const fail = (detail: string): void => {
        ws.removeAllListeners();
        ws.on('error', () => undefined);
        ws.terminate();
        reject(new KernelError('EEDGEHUB_DIAL', `cannot connect to ${url}: ${detail}`));
      };
      ws.once('unexpected-response', (_req, res) =>
        fail(`the server answered HTTP ${res.statusCode ?? 0} instead of upgrading`),
      );
      ws.once('error', (err) => fail(errorText(err)));
      ws.once('open', () => {
        ws.removeAllListeners();
        const conn = new HubConnection(ws, opts, handlers);
        conn.attach();
        resolve(conn);
      });
    });
  }

  private attach(): void {
    const { ws } = this;
    ws.on('message', (data: WebSocketType.RawData) => {
      this.alive();
      this.receive(Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]));
    });
    ws.on('pong', () => this.alive());
    ws.on('error', (err) => this.close(`websocket error: ${errorText(err)}`));
    ws.on('close', (code, reason) =>
      this.close(`closed by the cloud (code ${code}${reason.length ? `: ${reason.toString()}` : ''})`),
    );
    this.heartbeat();
    this.keepaliveTimer = setInterval(() => this.heartbeat(), this.opts.heartbeatMs);
  }

  private heartbeat(): void {
    this.write(keepaliveMessage()).catch(() => undefined);
    if (this.readTimer === undefined && !this.closed) {
      this.ws.ping();
      this.readTimer = setTimeout(
        () => this.close(`no answer from the cloud within readDeadline (${this.opts.readDeadlineMs} ms)`),
        this.opts.readDeadlineMs,
      );
    }
  }

  private alive(): void {
    clearTimeout(this.readTimer);
    this.readTimer = undefined;
  }

  private receive(frame: Buffer): void {
    let msg: Message;
    try {
      msg = decodeMessage(frame.toString('utf8'));
    } catch (err) {
      this.handlers.onBadFrame(err as Error);
      return;
    }
    const op = msg.route.operation ?? '';
    if (CONTROL_OPERATIONS.has(op)) {
      const ack: Message = newMessage({ ...msg.route, operation: 'response' }, 'ack', {
        parentId: msg.header.msg_id,
      });
      this.write(ack).catch(() => undefined);
      return;
    }
    this.handlers.onMessage(msg);
  }

  get open(): boolean {
    return !this.closed;
  }

  /**
   * Write one message (`header.sync` cleared, as viaduct does). Resolves once handed to the
   * socket; rejects (and closes the connection) if that takes longer than the write deadline.
   */
  write(msg: Message): Promise<void> {
    if (this.closed) return Promise.reject(new KernelError('EEDGEHUB_DISCONNECTED', 'not connected'));
    const out: Message = msg.header.sync ? { ...msg, header: { ...msg.header, sync: false } } : msg;
    const text = `${encodeMessage(out)}\n`;
    return new Promise((resolve, reject) => {
      const deadline = setTimeout(() => {
        const why = `write of message ${msg.header.msg_id} took longer than writeDeadline (${this.opts.writeDeadlineMs} ms)`;
        this.close(why);
        reject(new KernelError('EEDGEHUB_WRITE', why));
      }, this.opts.writeDeadlineMs);
      this.ws.send(text, (err) => {
        clearTimeout(deadline);
        if (err) {
          this.close(`write failed: ${errorText(err)}`);
          reject(new KernelError('EEDGEHUB_WRITE', `write failed: ${errorText(err)}`));
        } else resolve();
      });
    });
  }

  /** Close (once): timers stopped, socket terminated, onClose called. */
  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepaliveTimer);
    clearTimeout(this.readTimer);
    this.ws.removeAllListeners();
    this.ws.on('error', () => undefined);
    this.ws.terminate();
    this.handlers.onClose(reason);
  }
}

export const RECONNECT_INITIAL_MS = 1000;
export const RECONNECT_MAX_MS = 30_000;
/** A connection that stayed up this long resets the back-off. */
export const HEALTHY_CONNECTION_MS = 10_000;

/**
 * Delay before reconnect attempt `failures` (0 for the first retry): 1 s doubling to a cap (30 s
 * at most), each drawn in [half, full] of that step (jitter, so a cloudcore restart does not see
 * every edge at once). `random` is in [0, 1).
 */
export function reconnectDelayMs(failures: number, random = Math.random(), capMs = RECONNECT_MAX_MS): number {
  const step = Math.min(capMs, RECONNECT_MAX_MS, RECONNECT_INITIAL_MS * 2 ** Math.min(failures, 30));
  return step / 2 + (step / 2) * random;
}

/**
 * The reconnect schedule: grows with each failure, starts over after a healthy connection. edgeHub
 * caps it at its heartbeat, so an edge is back within one keepalive period of the link's return,
 * however long the link was away.
 */
export class ReconnectBackoff {
  private failures = 0;
  constructor(
    private readonly random: () => number = Math.random,
    private readonly capMs = RECONNECT_MAX_MS,
  ) {}

  /** The delay before the next dial, given how long the link that just ended was up (0: never). */
  next(upMs: number): number {
    if (upMs >= HEALTHY_CONNECTION_MS) this.failures = 0;
    return reconnectDelayMs(this.failures++, this.random(), this.capMs);
  }
}

/**
 * The outbound limit (`messageQPS`, burst `messageBurst`): a token bucket, as KubeEdge's
 * flowcontrol limiter in front of the cloud. `qps` 0 turns it off (ours: KubeEdge would then let
 * no message through after the burst).
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly burst: number;

  constructor(
    private readonly qps: number,
    burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.burst = Math.max(1, burst);
    this.tokens = this.burst;
    this.last = now();
  }

  /** Take a token: 0 when taken, else the milliseconds until one is there (nothing taken). */
  take(): number {
    if (this.qps <= 0) return 0;
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.qps) / 1000);
    this.last = t;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / this.qps);
  }
}
