/**
 * edgeHub at work: certificates, the connection loop with back-off, routing both ways, the
 * connection state, the outbox while disconnected, and certificate rotation.
 */
import { readFile } from 'node:fs/promises';
import type Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import {
  CloudConnection,
  ConfigToken,
  KernelError,
  errorText,
  isKernelError,
  newErrorMessage,
  nodeName,
  type Message,
  type ModuleConfig,
  type PluginContext,
} from '../../kernel/index.js';
import { EdgeHubModuleName, ErrConnectionLost } from '../../protocol/index.js';
import {
  bootstrap,
  checkEdgeCert,
  resolveToken,
  rotate,
  rotationDeadline,
  rotationRetryDelayMs,
  type EdgeCertFiles,
  type IssuedCert,
} from './bootstrap.js';
import { HubConnection, ReconnectBackoff, TokenBucket } from './client.js';
import type { EdgeHubConfig } from './config.js';
import { edgeHubMetrics, type EdgeHubMetrics } from './metrics.js';
import { Outbox } from './queue.js';
import { clearTokenInFile } from './token-file.js';
import { CONNECTION_NOTICE_GROUPS, connectionNotice, downstream } from './routing.js';

/** Messages read from the outbox and written per round while draining it. */
const DRAIN_BATCH = 256;
/** Sync requests remembered at most, and for how long (beyond metaManager's 60 s timeout). */
const MAX_WAITING = 10_000;
const WAITING_TTL_MS = 10 * 60_000;
/** How long stop() waits for the connection loop to notice. */
const STOP_WAIT_MS = 2000;
/** setTimeout's limit (about 24.8 days); longer waits are taken in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** resolveToken's name for a token read from the config (not the bootstrap file). */
const TOKEN_SOURCE = 'modules.edgeHub.token';

/** `modules.edgeHub` as the kernel hands it to the plugin. */
export type EdgeHubSection = EdgeHubConfig & ModuleConfig;

export interface EdgeHubDeps {
  ctx: PluginContext<EdgeHubSection>;
  db: Database.Database;
  cloud: CloudConnection;
  /** Where `keadm join` writes the token (its content wins over modules.edgeHub.token). */
  bootstrapFile?: string;
  /** Outbox bound (rows). */
  outboxLimit?: number;
}

export class EdgeHub {
  private readonly ctx: PluginContext<EdgeHubSection>;
  private readonly c: EdgeHubConfig;
  private readonly node: string;
  private readonly files: EdgeCertFiles;
  private readonly outbox: Outbox;
  private conn: HubConnection | undefined;
  private draining = false;
  private readonly limiter: TokenBucket;
  /**
   * Sync requests written to the cloud and not answered yet, failed at once if the link breaks.
   * Bounded: a request the cloud never answers is forgotten after its requester gave up.
   */
  private readonly waiting = new LRUCache<string, Message>({ max: MAX_WAITING, ttl: WAITING_TTL_MS });
  private stopped = false;
  private wake: (() => void) | undefined;
  private rotationTimer: NodeJS.Timeout | undefined;
  private rotationFailures = 0;
  private loopDone: Promise<void> | undefined;
  private readonly metrics: EdgeHubMetrics;
  /** a connection ended or a dial failed before: the next connection is a reconnect */
  private retrying = false;

  constructor(private readonly deps: EdgeHubDeps) {
    this.ctx = deps.ctx;
    this.c = deps.ctx.config;
    this.node = nodeName(deps.ctx.services);
    if (!this.node) {
      throw new KernelError(
        'ECONFIG_INVALID',
        'modules.edged.hostnameOverride: edgeHub needs the node name (it names the node to the cloud)',
      );
    }
    if (!this.c.websocket.enable) {
      throw new KernelError(
        'ECONFIG_INVALID',
        'modules.edgeHub.quic.enable: QUIC (Google QUIC of quic-go 0.10) is not supported; use modules.edgeHub.websocket',
      );
    }
    this.files = {
      caFile: this.c.tlsCaFile,
      certFile: this.c.tlsCertFile,
      keyFile: this.c.tlsPrivateKeyFile,
    };
    this.limiter = new TokenBucket(this.c.messageQPS, this.c.messageBurst);
    this.outbox = new Outbox(deps.db, {
      limit: deps.outboxLimit,
      onDropped: (count) =>
        this.ctx.log.warn({ count }, 'edgeHub outbox full: oldest messages for the cloud dropped'),
    });
    if (this.outbox.size > 0) {
      this.ctx.log.info({ queued: this.outbox.size }, 'messages for the cloud kept from before the restart');
    }
    this.metrics = edgeHubMetrics(deps.ctx.metrics, {
      connected: () => this.conn?.open === true,
      outboxDepth: () => this.outbox.size,
    });
  }

  start(): void {
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.rotationTimer);
    this.wake?.();
    this.conn?.close('edgeHub stopping');
    // a bootstrap request or a dial in progress ends on its own timeout; do not wait that long
    await Promise.race([this.loopDone, new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref())]);
    this.outbox.flush();
  }

  /** A message of an edge module for the cloud (everything the `websocket` mailbox receives). */
  upstream(msg: Message): void {
    if (msg.header.sync && !msg.header.parent_msg_id) return this.request(msg);
    const conn = this.conn;
    if (conn?.open && !this.draining && this.outbox.size === 0 && this.limiter.take() === 0) {
      conn.write(msg).then(this.sent, () => this.outbox.push(msg));
      return;
    }
    this.outbox.push(msg);
    // over the rate limit: the outbox holds it until the limiter lets it go
    if (conn?.open) void this.drain(conn);
  }

  /** A sync request: written now and answered by the cloud's reply, or failed at once when offline. */
  private request(msg: Message): void {
    const conn = this.conn;
    if (!conn?.open) return this.fail(msg);
    this.waiting.set(msg.header.msg_id, msg);
    conn.write(msg).then(this.sent, () => {
      if (this.waiting.delete(msg.header.msg_id)) this.fail(msg);
    });
  }

  /** Answer a sync request with the coded "connection lost" error (operation `error`). */
  private fail(msg: Message): void {
    const reply = newErrorMessage(msg, ErrConnectionLost, {
      source: EdgeHubModuleName,
      ...(msg.route.group !== undefined ? { group: msg.route.group } : {}),
    });
    this.ctx.respond(reply);
  }

  /** A message of a module written to the cloud. */
  private readonly sent = (): void => this.metrics.message('out');

  private deliver(msg: Message): void {
    this.metrics.message('in');
    const d = downstream(msg);
    const { source, group, operation, resource } = msg.route;
    const failed = (err: unknown): void =>
      this.ctx.log.error(
        { source, group, operation, resource, err: errorText(err) },
        'cloud message not delivered',
      );
    switch (d.to) {
      case 'respond':
        this.waiting.delete(msg.header.parent_msg_id ?? '');
        this.ctx.respond(msg);
        return;
      case 'group':
        this.ctx.sendToGroup(d.name, msg).catch(failed);
        return;
      case 'module':
        this.ctx.send(d.name, msg).catch(failed);
        return;
      case 'drop':
        // constant text: the kernel's log folds a flood of these into one line with a count
        this.ctx.log.warn({ source, group, operation, resource, why: d.why }, 'cloud message dropped');
    }
  }

  private setConnected(connected: boolean): void {
    if (this.deps.cloud.connected === connected) return;
    this.deps.cloud.set(connected);
    // at shutdown the other modules are stopping too: the flag is enough
    for (const group of this.stopped ? [] : CONNECTION_NOTICE_GROUPS) {
      this.ctx.sendToGroup(group, connectionNotice(group, connected)).catch((err: unknown) => {
        if (!isKernelError(err, 'EBUS_NO_GROUP'))
          this.ctx.log.error({ group, err: errorText(err) }, 'connection notice not delivered');
      });
    }
    if (!connected) {
      for (const msg of this.waiting.values()) this.fail(msg);
      this.waiting.clear();
    }
  }

  /** Wait `ms` unless stopped meanwhile. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  private async loop(): Promise<void> {
    // capped at the heartbeat: back within one keepalive period of the link's return
    const backoff = new ReconnectBackoff(Math.random, this.c.heartbeat * 1000);
    while (!this.stopped) {
      let upSince = 0;
      let dialing = false;
      try {
        const cert = await this.certificates();
        if (this.stopped) break;
        this.scheduleRotation(cert);
        dialing = true;
        const { closed } = await this.connect();
        upSince = Date.now();
        if (this.retrying) this.metrics.reconnected();
        const reason = await closed;
        this.ctx.log.warn({ reason }, 'disconnected from the cloud');
      } catch (err) {
        const code = isKernelError(err) ? err.code : undefined;
        if (dialing) this.metrics.dialFailed();
        else this.metrics.bootstrapFailure(code ?? 'error');
        this.ctx.log.error({ code, err: errorText(err) }, 'cannot connect to the cloud');
      }
      this.conn = undefined;
      this.retrying = true;
      this.setConnected(false);
      if (this.stopped) break;
      const delay = backoff.next(upSince > 0 ? Date.now() - upSince : 0);
      this.ctx.log.info({ delayMs: Math.round(delay) }, 'reconnecting to the cloud');
      await this.sleep(delay);
    }
  }

  /** A valid node certificate: the one on disk, or a new one bootstrapped with the token. */
  private async certificates(): Promise<IssuedCert> {
    const { token, source } = await resolveToken(this.c.token, this.deps.bootstrapFile);
    const check = await checkEdgeCert(this.files, this.node, { token });
    if (check.ok) return check.cert;
    if (token === '') {
      throw new KernelError(
        'EEDGEHUB_NO_CERT',
        `no usable node certificate (${check.detail}) and no token to request one: ` +
          'put the token of `keadm gettoken` in modules.edgeHub.token or the bootstrap file',
      );
    }
    this.ctx.log.info({ problem: check.problem, detail: check.detail }, 'requesting a node certificate');
    const cert = await bootstrap({
      ...this.files,
      httpServer: this.c.httpServer,
      nodeName: this.node,
      token,
      tokenSource: source,
    });
    this.ctx.log.info({ serial: cert.serial, notAfter: cert.notAfter }, 'node certificate issued');
    if (source === TOKEN_SOURCE) {
      const file = this.ctx.services.get(ConfigToken).file;
      const result = await clearTokenInFile(file, token).catch((err: unknown) => errorText(err));
      this.ctx.log.info(
        { file, result },
        'the token in the config file after the bootstrap (a credential: cleared when the file held it)',
      );
    }
    return cert;
  }

  /**
   * Dial; resolves once connected with a promise of the close reason (wrapped: an async function
   * returning a bare promise would resolve only when that one does).
   */
  private async connect(): Promise<{ closed: Promise<string> }> {
    const [ca, cert, key] = await Promise.all(
      [this.files.caFile, this.files.certFile, this.files.keyFile].map((f) => readFile(f)),
    );
    const ws = this.c.websocket;
    let closed!: (reason: string) => void;
    const done = new Promise<string>((resolve) => (closed = resolve));
    const conn = await HubConnection.dial(
      {
        server: ws.server,
        projectId: this.c.projectID,
        nodeName: this.node,
        ca: ca as Buffer,
        cert: cert as Buffer,
        key: key as Buffer,
        handshakeTimeoutMs: ws.handshakeTimeout * 1000,
        writeDeadlineMs: ws.writeDeadline * 1000,
        readDeadlineMs: ws.readDeadline * 1000,
        heartbeatMs: this.c.heartbeat * 1000,
      },
      {
        onMessage: (msg) => this.deliver(msg),
        onBadFrame: (err) =>
          this.ctx.log.error(
            { err: errorText(err) },
            'frame from the cloud is not a beehive message; skipped',
          ),
        onClose: closed,
      },
    );
    if (this.stopped) {
      conn.close('edgeHub stopping');
      return { closed: done };
    }
    this.conn = conn;
    this.ctx.log.info({ server: ws.server, node: this.node }, 'connected to the cloud');
    this.setConnected(true);
    void this.drain(conn);
    return { closed: done };
  }

  /** Send the outbox in order, batch by batch, at the limiter's pace, while the connection lasts. */
  private async drain(conn: HubConnection): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      let sent = 0;
      while (conn.open && this.outbox.size > 0) {
        const batch = this.outbox.head(DRAIN_BATCH);
        const done: number[] = [];
        const writes: Promise<void>[] = [];
        for (const q of batch) {
          for (let wait = this.limiter.take(); wait > 0 && conn.open; wait = this.limiter.take()) {
            await new Promise((r) => setTimeout(r, wait));
          }
          if (!conn.open) break;
          writes.push(
            conn.write(q.msg).then(() => {
              done.push(q.id);
              this.sent();
            }),
          );
        }
        await Promise.allSettled(writes);
        this.outbox.remove(done);
        sent += done.length;
        if (done.length < batch.length) break;
      }
      if (sent > 0) this.ctx.log.info({ sent, left: this.outbox.size }, 'queued messages sent to the cloud');
    } catch (err) {
      this.ctx.log.error({ err: errorText(err) }, 'cannot read the edgeHub outbox');
    } finally {
      this.draining = false;
    }
  }

  private scheduleRotation(cert: IssuedCert): void {
    if (!this.c.rotateCertificates || this.rotationTimer !== undefined) return;
    const at = rotationDeadline(cert.notBefore, cert.notAfter).getTime();
    this.armRotation(at - Date.now());
  }

  private armRotation(delayMs: number): void {
    const step = Math.max(0, Math.min(delayMs, MAX_TIMER_MS));
    this.rotationTimer = setTimeout(() => {
      if (step < delayMs) return this.armRotation(delayMs - step);
      void this.rotateNow();
    }, step);
    this.rotationTimer.unref();
  }

  private async rotateNow(): Promise<void> {
    try {
      const cert = await rotate({ ...this.files, httpServer: this.c.httpServer, nodeName: this.node });
      this.rotationFailures = 0;
      this.ctx.log.info({ serial: cert.serial, notAfter: cert.notAfter }, 'node certificate rotated');
      this.rotationTimer = undefined;
      this.scheduleRotation(cert);
      // the connection carries the old certificate: reconnect with the new one
      this.conn?.close('certificate rotated');
    } catch (err) {
      this.metrics.bootstrapFailure(isKernelError(err) ? err.code : 'error');
      const delay = rotationRetryDelayMs(this.rotationFailures++);
      this.ctx.log.error({ err: errorText(err), retryMs: Math.round(delay) }, 'certificate rotation failed');
      this.armRotation(delay);
    }
  }
}
