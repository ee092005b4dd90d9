import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter, on, once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createServer, ServerError, Status, type Server } from 'nice-grpc';
import {
  OpKind,
  PluginHostDefinition,
  type Failure,
  type Hello,
  type KernelFrame,
  type Ops,
  type PluginFrame,
  type Reply,
} from '../../proto/gen/kernel/v1/plugin.js';
import type { Bus } from '../bus/bus.js';
import type { Mailbox } from '../bus/mailbox.js';
import type { Message } from '../bus/message.js';
import type { LoadedConfig } from '../config/index.js';
import { KernelError, errorText, isKernelError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { SupervisedHost, type HostDeps, type Launch } from '../plugin/host.js';
import type { LoadedPlugin } from '../plugin/load.js';
import type { CloudConnection } from '../tokens.js';
import { Batcher, decodeBatch, encodeBatch } from './batch.js';
import { MetricsSink } from './metrics-sink.js';
import {
  grpcAddress,
  prepareKernelSocket,
  sameToken,
  withPrivateUmask,
  type KernelSocket,
} from './socket.js';

/** Messages handed to a plugin process and not yet acknowledged, at most (flow control). */
const DELIVERY_WINDOW = 1024;
/** How often a plugin process sends its metrics registry. */
const METRICS_INTERVAL_MS = 5000;

/** What the server needs of the kernel (the kernel implements it; the server never imports it). */
export interface KernelSide {
  readonly bus: Bus;
  readonly log: Logger;
  readonly cloud: CloudConnection;
  readonly metrics: Metrics;
  readonly loaded: LoadedConfig;
  /** Deps of a host for a module that attached on its own. */
  hostDeps(name: string, configKey: string): HostDeps;
  /** Supervise a host the kernel did not create. */
  adopt(host: SupervisedHost): void;
}

interface Delivery {
  msg: Message;
  done: () => void;
}

/** The kernel end of one plugin process's stream. */
class Link {
  private readonly out = new EventEmitter();
  private readonly deliveries: Batcher<Message>;
  private nextSeq = 0;
  private flushedSeq = 0;
  /** Delivered and not yet acknowledged, by sequence number (insertion = delivery order). */
  private readonly unacked = new Map<number, Delivery>();
  private readonly ok: number[] = [];
  private readonly failed: Failure[] = [];
  private readonly replies: Reply[] = [];
  private resultsScheduled = false;
  private readonly onStopped = new Set<() => void>();
  host: RemoteHostBase | undefined;
  closed = false;

  constructor(private readonly server: RemoteServer) {
    this.deliveries = new Batcher((msgs) => {
      const firstSeq = this.flushedSeq + 1;
      this.flushedSeq += msgs.length;
      this.write({ kind: { $case: 'deliver', value: { firstSeq, messages: encodeBatch(msgs) } } });
    });
  }

  /** Frames for the plugin process, until the link closes. */
  async *frames(signal: AbortSignal): AsyncGenerator<KernelFrame> {
    for await (const [frame] of on(this.out, 'frame', { signal, close: ['end'] })) yield frame as KernelFrame;
  }

  /** Read the plugin's frames until its stream ends. */
  async consume(requests: AsyncIterable<PluginFrame>): Promise<void> {
    try {
      for await (const frame of requests) this.onFrame(frame);
      this.close('the plugin process closed its stream');
    } catch (err) {
      this.close(`stream error: ${errorText(err)}`);
    }
  }

  write(frame: KernelFrame): void {
    if (!this.closed) this.out.emit('frame', frame);
  }

  /** End the stream with an error status; the process gets no Start (and no config). */
  refuse(code: Status, reason: string): void {
    this.server.kernel.log.warn({ reason }, 'plugin process refused');
    this.out.emit('error', new ServerError(code, reason));
    this.close(reason);
  }

  /** Mailbox handler: resolves when the plugin acknowledges this delivery by its sequence number. */
  deliver(msg: Message): Promise<void> {
    return new Promise((done) => {
      this.unacked.set(++this.nextSeq, { msg, done });
      this.deliveries.add(msg);
    });
  }

  /** Deliveries not acknowledged, in delivery order, their mailbox promises settled (for requeueing). */
  takeUnacked(): Message[] {
    const rest = [...this.unacked.values()];
    this.unacked.clear();
    for (const d of rest) d.done();
    return rest.map((d) => d.msg);
  }

  get pending(): number {
    return this.unacked.size;
  }

  stopped(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) return resolve();
      this.onStopped.add(resolve);
    });
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const fn of this.onStopped) fn();
    this.onStopped.clear();
    this.out.emit('end');
    this.host?.onDisconnect(this, reason);
  }

  private ack(seq: number): Delivery | undefined {
    const d = this.unacked.get(seq);
    if (!d) return undefined;
    this.unacked.delete(seq);
    d.done();
    return d;
  }

  private onFrame(frame: PluginFrame): void {
    const kind = frame.kind;
    if (!kind) return;
    if (kind.$case === 'hello') return this.server.onHello(this, kind.value);
    const host = this.host;
    if (!host)
      return this.refuse(Status.PERMISSION_DENIED, `${kind.$case} before a Hello the kernel accepted`);
    switch (kind.$case) {
      case 'ready':
        return host.onReady(this);
      case 'failed': {
        // The delivery whose handler threw counts as handled: it is not handed over again.
        const d = kind.value.seq ? this.ack(kind.value.seq) : undefined;
        const where = kind.value.where;
        if (where === 'start')
          return host.onStartFailed(this, new KernelError('EPLUGIN_START', kind.value.error));
        return host.fail(
          new KernelError('EPLUGIN_HANDLER', kind.value.error),
          where === 'callback' ? 'callback' : 'handler',
          d?.msg,
        );
      }
      case 'ops':
        return this.runOps(kind.value);
      case 'acks':
        for (const seq of kind.value.seqs) this.ack(seq);
        return;
      case 'stopped':
        for (const fn of this.onStopped) fn();
        this.onStopped.clear();
        return;
      case 'cloud':
        this.server.kernel.cloud.set(kind.value.connected);
        return;
      case 'metrics':
        try {
          this.server.sink.update(host.name, Buffer.from(kind.value.json).toString('utf8'));
        } catch (err) {
          host.log.warn({ err: errorText(err) }, 'metrics from the plugin process ignored');
        }
        return;
    }
  }

  private runOps(ops: Ops): void {
    const host = this.host as RemoteHostBase;
    let msgs: (Message | Error)[];
    try {
      msgs = decodeBatch(ops.messages);
    } catch (err) {
      return this.refuse(Status.INVALID_ARGUMENT, errorText(err));
    }
    const bus = this.server.kernel.bus;
    for (const [i, msg] of msgs.entries()) {
      const seq = ops.firstSeq + i;
      if (msg instanceof Error) {
        this.failOp(seq, msg);
        continue;
      }
      const target = ops.targets[i] ?? '';
      const timeoutMs = ops.timeoutsMs[i] ?? 0;
      host.box.stats.sent++;
      switch (ops.kinds[i]) {
        case OpKind.OP_KIND_SEND:
          this.settle(seq, bus.enqueue(target, msg));
          break;
        case OpKind.OP_KIND_SEND_TO_GROUP:
          this.settle(seq, bus.enqueueGroup(target, msg));
          break;
        case OpKind.OP_KIND_REQUEST:
          this.settleReplies(
            seq,
            bus.request(target, msg, timeoutMs).then((r) => [r]),
          );
          break;
        case OpKind.OP_KIND_REQUEST_GROUP:
          this.settleReplies(seq, bus.requestGroup(target, msg, timeoutMs));
          break;
        case OpKind.OP_KIND_RESPOND:
          if (!bus.respond(msg))
            host.log.warn(
              { parent_msg_id: msg.header.parent_msg_id },
              'response discarded: nobody waits for it',
            );
          break;
        default:
          this.failOp(seq, new KernelError('EREMOTE_PROTOCOL', `unknown operation kind ${ops.kinds[i]}`));
      }
    }
  }

  private settle(seq: number, err: KernelError | undefined): void {
    if (err) return this.failOp(seq, err);
    this.ok.push(seq);
    this.scheduleResults();
  }

  private settleReplies(seq: number, p: Promise<Message[]>): void {
    p.then(
      (msgs) => {
        this.replies.push({ seq, messages: encodeBatch(msgs) });
        this.scheduleResults();
      },
      (err: unknown) => this.failOp(seq, err),
    );
  }

  private failOp(seq: number, err: unknown): void {
    this.failed.push({
      seq,
      code: isKernelError(err) ? err.code : 'EREMOTE_PROTOCOL',
      error: errorText(err),
    });
    this.scheduleResults();
  }

  private scheduleResults(): void {
    if (this.resultsScheduled) return;
    this.resultsScheduled = true;
    setImmediate(() => {
      this.resultsScheduled = false;
      this.write({
        kind: {
          $case: 'results',
          value: { ok: this.ok.splice(0), failed: this.failed.splice(0), replies: this.replies.splice(0) },
        },
      });
    });
  }
}

/** Shared behaviour of a plugin that lives in another process. */
abstract class RemoteHostBase extends SupervisedHost {
  protected link: Link | undefined;
  private launch_: Launch | undefined;
  private ready: ((err?: Error) => void) | undefined;

  constructor(
    def: SupervisedHost['def'],
    box: Mailbox,
    deps: HostDeps,
    protected readonly server: RemoteServer,
  ) {
    super(def, box, deps);
  }

  /** Bind a connected stream to a launch and send it Start; resolves when the plugin reports Ready. */
  protected bind(link: Link, launch: Launch): Promise<void> {
    this.link = link;
    this.launch_ = launch;
    link.host = this;
    const k = this.server.kernel;
    return new Promise<void>((resolve, reject) => {
      this.ready = (err) => (err ? reject(err) : resolve());
      link.write({
        kind: {
          $case: 'start',
          value: {
            name: this.def.name,
            group: this.def.group,
            sectionJson: Buffer.from(JSON.stringify(this.deps.config)),
            configJson: Buffer.from(JSON.stringify(k.loaded)),
            modules: k.bus.modules().map((m) => m.name),
            logLevel: String(k.log.level),
            cloudConnected: k.cloud.connected,
            metricsIntervalMs: METRICS_INTERVAL_MS,
          },
        },
      });
    });
  }

  onReady(link: Link): void {
    if (link !== this.link) return;
    if (!this.launch_ || !this.isCurrent(this.launch_)) return link.close('its launch was cancelled');
    this.box.attach(
      (msg) => link.deliver(msg),
      (err, msg) => this.fail(err, 'handler', msg),
      DELIVERY_WINDOW,
    );
    this.ready?.();
    this.ready = undefined;
  }

  /** start() threw in the plugin process: the launch fails like an in-process start. */
  onStartFailed(link: Link, err: KernelError): void {
    if (link !== this.link) return;
    if (this.ready) {
      this.ready(err);
      this.ready = undefined;
    } else this.fail(err, 'start');
  }

  onDisconnect(link: Link, reason: string): void {
    if (link !== this.link) return;
    this.link = undefined;
    this.box.detach();
    this.box.requeueFront(link.takeUnacked());
    const err = new KernelError(
      'EREMOTE_DISCONNECTED',
      `plugin process of "${this.name}" disconnected: ${reason}`,
    );
    if (this.ready) {
      this.ready(err);
      this.ready = undefined;
      return;
    }
    this.disconnected(err);
  }

  send(frame: KernelFrame): void {
    this.link?.write(frame);
  }

  /** Deliveries the plugin process has not acknowledged yet. */
  get unacknowledged(): number {
    return this.link?.pending ?? 0;
  }

  /** What to do when a running plugin's process goes away. */
  protected abstract disconnected(err: KernelError): void;

  /**
   * Ask the plugin to stop and wait (at most 2 s) for its answer or the end of its stream, then
   * close the stream. Unacknowledged messages go back to the mailbox for the next instance.
   */
  protected async stopLink(): Promise<void> {
    const link = this.link;
    this.link = undefined;
    if (!link) return;
    if (!link.closed) {
      const stopped = link.stopped();
      link.write({ kind: { $case: 'stop', value: {} } });
      await Promise.race([stopped, delay(2000, undefined, { ref: false })]);
    }
    this.box.requeueFront(link.takeUnacked());
    link.close('stopped by the kernel');
  }
}

/** A plugin process the kernel spawns and supervises (modules.<key>.runAs: process). */
class SpawnedHost extends RemoteHostBase {
  /** Credential of the current launch: a process of an older launch cannot attach. */
  token = '';
  private child: ChildProcess | undefined;
  private waitingHello: ((link: Link) => void) | undefined;

  constructor(
    private readonly plugin: LoadedPlugin,
    box: Mailbox,
    deps: HostDeps,
    server: RemoteServer,
  ) {
    super(plugin.def, box, deps, server);
  }

  protected async launch(launch: Launch): Promise<void> {
    const ts = import.meta.url.endsWith('.ts');
    const runner = new URL(`./runner${ts ? '.ts' : '.js'}`, import.meta.url);
    const hello = new Promise<Link>((resolve) => (this.waitingHello = resolve));
    this.token = randomBytes(16).toString('hex');
    const child = spawn(process.execPath, [...(ts ? ['--import', 'tsx'] : []), fileURLToPath(runner)], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: {
        ...process.env,
        KUBEEDGE_KERNEL_SOCKET: this.server.socket.path,
        KUBEEDGE_PLUGIN: this.plugin.specifier,
        KUBEEDGE_PLUGIN_TOKEN: this.token,
      },
    });
    this.child = child;
    const exited = new Promise<never>((_, reject) => {
      child.once('error', (err) =>
        reject(new KernelError('EREMOTE_SPAWN', `cannot start plugin process: ${err.message}`)),
      );
      child.once('exit', (code, signal) => {
        if (this.child === child) this.child = undefined;
        const err = new KernelError(
          'EREMOTE_DISCONNECTED',
          `plugin process exited (${signal ?? `code ${code}`})`,
        );
        reject(err);
        if (this.state === 'running' && this.isCurrent(launch) && !this.link) this.fail(err, 'process');
      });
    });
    exited.catch(() => undefined);
    // A launch given up before it is ready takes its process with it: SIGTERM lets the plugin
    // see its signal abort and stop what a late start built; SIGKILL if it is not gone within the
    // stop timeout.
    const cancel = (): void => {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), this.deps.stopTimeoutMs).unref();
    };
    launch.signal.addEventListener('abort', cancel, { once: true });
    this.log.info({ pid: child.pid, generation: launch.generation }, 'plugin process spawned');
    try {
      const link = await Promise.race([hello, exited]);
      await Promise.race([this.bind(link, launch), exited]);
    } finally {
      launch.signal.removeEventListener('abort', cancel);
    }
  }

  /** The server found this host's Hello with the current launch's token. */
  accept(link: Link): boolean {
    if (!this.waitingHello) return false;
    this.waitingHello(link);
    this.waitingHello = undefined;
    return true;
  }

  protected disconnected(err: KernelError): void {
    this.fail(err, 'process');
  }

  protected async halt(): Promise<void> {
    this.waitingHello = undefined;
    const child = this.child;
    await this.stopLink();
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), this.deps.stopTimeoutMs);
    await gone;
    clearTimeout(timer);
  }

  /** pid of the running plugin process (tests use it to kill -9 it). */
  get pid(): number | undefined {
    return this.child?.pid;
  }
}

/** A plugin process that started on its own and attached to the kernel's socket. */
class AttachedHost extends RemoteHostBase {
  private first: Link;

  constructor(link: Link, hello: Hello, box: Mailbox, deps: HostDeps, server: RemoteServer) {
    super({ name: hello.name, group: hello.group, configKey: hello.configKey }, box, deps, server);
    this.first = link;
  }

  protected launch(launch: Launch): Promise<void> {
    return this.bind(this.first, launch);
  }

  /** Start on the current link; a failure leaves it waiting for the next attach. */
  begin(): void {
    this.start().catch((err: unknown) => {
      this.state = 'idle';
      this.log.warn({ err: errorText(err) }, 'attached plugin did not start');
    });
  }

  /** The same plugin attached again after a disconnect. */
  reattach(link: Link): void {
    this.first = link;
    this.state = 'idle';
    this.box.closedReason = undefined;
    this.begin();
  }

  protected disconnected(err: KernelError): void {
    // Not ours to restart: keep the mailbox (bounded) until the process attaches again.
    this.state = 'idle';
    this.log.warn(
      { err: err.message, queued: this.box.depth },
      'attached plugin went away; its messages are queued',
    );
  }

  protected halt(): Promise<void> {
    return this.stopLink();
  }
}

/** The kernel's gRPC server (nice-grpc) on its private unix socket. */
export class RemoteServer {
  private server: Server | undefined;
  private readonly spawned = new Map<string, SpawnedHost>();
  private readonly attached = new Map<string, AttachedHost>();
  /** Where the plugin processes' metrics go: the kernel's registry. */
  readonly sink: MetricsSink;

  constructor(
    readonly kernel: KernelSide,
    readonly socket: KernelSocket,
  ) {
    this.sink = new MetricsSink(() => kernel.metrics.registry);
  }

  async listen(): Promise<void> {
    const server = createServer({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
    server.add(PluginHostDefinition, {
      connect: (requests, context) => {
        const link = new Link(this);
        void link.consume(requests);
        // ts-proto's Exact<> check of a oneof union cannot be satisfied by a typed generator;
        // the frames are KernelFrame values, checked where they are built.
        return link.frames(context.signal) as AsyncIterable<never>;
      },
    });
    try {
      await withPrivateUmask(() => server.listen(grpcAddress(this.socket.path)));
    } catch (err) {
      this.socket.remove();
      throw new KernelError('EREMOTE_SPAWN', `cannot listen on ${this.socket.path}: ${errorText(err)}`);
    }
    this.server = server;
    this.kernel.log.info({ socket: this.socket.path }, 'kernel socket listening for plugin processes');
  }

  spawnHost(plugin: LoadedPlugin, box: Mailbox, deps: HostDeps): SupervisedHost {
    const host = new SpawnedHost(plugin, box, deps, this);
    this.spawned.set(plugin.def.name, host);
    return host;
  }

  onHello(link: Link, hello: Hello): void {
    const spawned = this.spawned.get(hello.name);
    if (spawned) {
      if (sameToken(hello.token, spawned.token) && spawned.accept(link)) return;
      return link.refuse(
        Status.ALREADY_EXISTS,
        `module "${hello.name}" is managed by the kernel; refusing a process without its current credential`,
      );
    }
    if (!sameToken(hello.token, this.socket.token)) {
      return link.refuse(
        Status.PERMISSION_DENIED,
        `plugin "${hello.name}": missing or wrong token (a process attaching on its own presents the content of ${this.socket.tokenFile})`,
      );
    }
    if (!hello.name) return link.refuse(Status.INVALID_ARGUMENT, 'Hello without a module name');
    const known = this.attached.get(hello.name);
    if (known) {
      if (known.state === 'running' || known.state === 'starting') {
        return link.refuse(Status.ALREADY_EXISTS, `module "${hello.name}" is already attached`);
      }
      return known.reattach(link);
    }
    if (this.kernel.bus.hasModule(hello.name)) {
      return link.refuse(Status.ALREADY_EXISTS, `module "${hello.name}" already runs in the kernel`);
    }
    const box = this.kernel.bus.addModule(hello.name, hello.group);
    const host = new AttachedHost(link, hello, box, this.kernel.hostDeps(hello.name, hello.configKey), this);
    this.attached.set(hello.name, host);
    this.kernel.adopt(host);
    host.begin();
  }

  private hosts(): RemoteHostBase[] {
    return [...this.spawned.values(), ...this.attached.values()];
  }

  /** Tell every connected plugin process which modules exist now. */
  broadcastModules(): void {
    const names = this.kernel.bus.modules().map((m) => m.name);
    for (const host of this.hosts()) host.send({ kind: { $case: 'modules', value: { names } } });
  }

  /** Push the kernel's cloud-connection state to every plugin process. */
  broadcastCloud(connected: boolean): void {
    for (const host of this.hosts()) host.send({ kind: { $case: 'cloud', value: { connected } } });
  }

  async close(): Promise<void> {
    this.server?.forceShutdown();
    this.server = undefined;
    this.socket.remove();
  }
}

export async function startServer(kernel: KernelSide, configured: string): Promise<RemoteServer> {
  const server = new RemoteServer(kernel, prepareKernelSocket(configured));
  await server.listen();
  return server;
}
