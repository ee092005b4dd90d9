import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import {
  KernelFrame,
  OpKind,
  PluginHostService,
  type Hello,
  type Op,
  type PluginFrame,
  type Failure,
  type Reply,
} from '../../proto/gen/kernel/v1/plugin.js';
import type { Mailbox } from '../bus/mailbox.js';
import { decodeMessage, encodeMessage, type Message } from '../bus/message.js';
import { KernelError, errorText, isKernelError } from '../errors.js';
import type { Kernel, LoadedPlugin } from '../kernel.js';
import { SupervisedHost, type HostDeps } from '../plugin/host.js';
import { Batcher } from './batch.js';
import { grpcAddress, kernelSocketPath } from './socket.js';

/** Messages handed to a plugin process before it must report them handled (flow control). */
const DELIVERY_WINDOW = 1024;

type Call = grpc.ServerDuplexStream<PluginFrame, KernelFrame>;

/** The kernel end of one plugin process's stream. */
class Link {
  private readonly deliveries: Batcher<Message>;
  private readonly ok: number[] = [];
  private readonly failed: Failure[] = [];
  private readonly replies: Reply[] = [];
  private resultsScheduled = false;
  /** Delivered but not yet handled, oldest first, with the resolver of the mailbox's promise. */
  private readonly inFlight: { msg: Message; done: () => void }[] = [];
  private readonly onStopped = new Set<() => void>();
  host: RemoteHostBase | undefined;
  closed = false;

  constructor(
    readonly call: Call,
    private readonly server: RemoteServer,
  ) {
    this.deliveries = new Batcher((msgs) =>
      this.write({
        kind: { $case: 'deliver', value: { messages: msgs.map((m) => Buffer.from(encodeMessage(m))) } },
      }),
    );
    call.on('data', (frame: PluginFrame) => this.onFrame(frame));
    call.on('end', () => this.close('the plugin process closed its stream'));
    call.on('error', (err: Error) => this.close(`stream error: ${err.message}`));
    call.on('cancelled', () => this.close('the plugin process went away'));
  }

  write(frame: KernelFrame): void {
    if (!this.closed) this.call.write(frame);
  }

  /** Mailbox handler: resolves when the plugin reports the message handled. */
  deliver(msg: Message): Promise<void> {
    return new Promise((resolve) => {
      this.inFlight.push({ msg, done: resolve });
      this.deliveries.add(msg);
    });
  }

  stopped(): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed) return resolve();
      this.onStopped.add(resolve);
    });
  }

  /** Messages handed over but never handled: returned for requeueing, their promises settled. */
  takeUnhandled(): Message[] {
    const rest = this.inFlight.splice(0);
    for (const d of rest) d.done();
    return rest.map((d) => d.msg);
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const fn of this.onStopped) fn();
    this.onStopped.clear();
    try {
      this.call.end();
    } catch {
      // already gone
    }
    this.host?.onDisconnect(this, reason);
  }

  private onFrame(frame: PluginFrame): void {
    const kind = frame.kind;
    if (!kind) return;
    switch (kind.$case) {
      case 'hello':
        this.server.onHello(this, kind.value);
        return;
      case 'ready':
        this.host?.onReady(this);
        return;
      case 'failed': {
        // The message that made the handler throw is not handed over again (no poison loop).
        const i = this.inFlight.findIndex((d) => d.msg.header.msg_id === kind.value.msgId);
        const [failedMsg] = i >= 0 ? this.inFlight.splice(i, 1) : [];
        failedMsg?.done();
        if (kind.value.where === 'start')
          this.host?.onStartFailed(this, new KernelError('EPLUGIN_START', kind.value.error));
        else this.host?.fail(new KernelError('EPLUGIN_HANDLER', kind.value.error), 'handler', failedMsg?.msg);
        return;
      }
      case 'ops':
        for (const op of kind.value.ops) this.runOp(op);
        return;
      case 'handled':
        for (const d of this.inFlight.splice(0, kind.value.count)) d.done();
        return;
      case 'stopped':
        for (const fn of this.onStopped) fn();
        this.onStopped.clear();
        return;
    }
  }

  private runOp(op: Op): void {
    const host = this.host;
    if (!host) return this.failOp(op.seq, new KernelError('EREMOTE_PROTOCOL', 'operation before Hello'));
    let msg: Message;
    try {
      msg = decodeMessage(op.message.toString('utf8'));
    } catch (err) {
      return this.failOp(op.seq, err);
    }
    const bus = this.server.kernel.bus;
    host.box.stats.sent++;
    switch (op.kind) {
      case OpKind.OP_KIND_SEND:
        return this.settle(op.seq, bus.send(op.target, msg));
      case OpKind.OP_KIND_SEND_TO_GROUP:
        return this.settle(op.seq, bus.sendToGroup(op.target, msg));
      case OpKind.OP_KIND_REQUEST:
        return this.settleReplies(
          op.seq,
          bus.request(op.target, msg, op.timeoutMs).then((r) => [r]),
        );
      case OpKind.OP_KIND_REQUEST_GROUP:
        return this.settleReplies(op.seq, bus.requestGroup(op.target, msg, op.timeoutMs));
      case OpKind.OP_KIND_RESPOND:
        if (!bus.respond(msg))
          host.log.warn(
            { parent_msg_id: msg.header.parent_msg_id },
            'response discarded: nobody waits for it',
          );
        return;
      default:
        return this.failOp(op.seq, new KernelError('EREMOTE_PROTOCOL', `unknown operation kind ${op.kind}`));
    }
  }

  private settle(seq: number, p: Promise<void>): void {
    p.then(
      () => {
        this.ok.push(seq);
        this.scheduleResults();
      },
      (err: unknown) => this.failOp(seq, err),
    );
  }

  private settleReplies(seq: number, p: Promise<Message[]>): void {
    p.then(
      (msgs) => {
        this.replies.push({ seq, messages: msgs.map((m) => Buffer.from(encodeMessage(m))) });
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
  private ready: ((err?: Error) => void) | undefined;

  constructor(
    def: SupervisedHost['def'],
    box: Mailbox,
    deps: HostDeps,
    protected readonly server: RemoteServer,
    readonly concurrency = 1,
  ) {
    super(def, box, deps);
  }

  /** Bind a connected stream and send it Start; resolves when the plugin reports Ready. */
  protected bind(link: Link): Promise<void> {
    this.link = link;
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
            configJson: Buffer.from(JSON.stringify(k.options.config)),
            modules: k.bus.modules().map((m) => m.name),
            logLevel: String(k.log.level),
          },
        },
      });
    });
  }

  onReady(link: Link): void {
    if (link !== this.link) return;
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
    this.box.requeueFront(link.takeUnhandled());
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

  sendModules(names: string[]): void {
    this.link?.write({ kind: { $case: 'modules', value: { names } } });
  }

  /** What to do when a running plugin's process goes away. */
  protected abstract disconnected(err: KernelError): void;

  /**
   * Ask the plugin to stop and wait (at most 2 s) for its answer or the end of its stream, then
   * close the stream. Unhandled messages go back to the mailbox for the next instance.
   */
  protected async stopLink(): Promise<void> {
    const link = this.link;
    this.link = undefined;
    if (!link) return;
    if (!link.closed) {
      const stopped = link.stopped();
      link.write({ kind: { $case: 'stop', value: {} } });
      await Promise.race([stopped, new Promise((r) => setTimeout(r, 2000))]);
    }
    this.box.requeueFront(link.takeUnhandled());
    link.close('stopped by the kernel');
  }
}

/** A plugin process the kernel spawns and supervises (modules.<key>.runAs: process). */
class SpawnedHost extends RemoteHostBase {
  readonly token = randomBytes(16).toString('hex');
  private child: ChildProcess | undefined;
  private waitingHello: ((link: Link) => void) | undefined;

  constructor(
    private readonly plugin: LoadedPlugin,
    box: Mailbox,
    deps: HostDeps,
    server: RemoteServer,
  ) {
    super(plugin.def, box, deps, server, plugin.def.concurrency ?? 1);
  }

  protected async launch(): Promise<void> {
    const runner = new URL(`./runner${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
    const execArgv = import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : [];
    const hello = new Promise<Link>((resolve) => (this.waitingHello = resolve));
    const child = spawn(process.execPath, [...execArgv, fileURLToPath(runner)], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: {
        ...process.env,
        KUBEEDGE_KERNEL_SOCKET: this.server.socket,
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
        if (this.state === 'running' && !this.link) this.fail(err, 'process');
      });
    });
    exited.catch(() => undefined);
    this.log.info({ pid: child.pid }, 'plugin process spawned');
    const link = await Promise.race([hello, exited]);
    await Promise.race([this.bind(link), exited]);
  }

  /** The server found this host's Hello. */
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
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
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
    super(
      { name: hello.name, group: hello.group, configKey: hello.configKey },
      box,
      deps,
      server,
      hello.concurrency || 1,
    );
    this.first = link;
  }

  protected launch(): Promise<void> {
    return this.bind(this.first);
  }

  /** The same plugin attached again after a disconnect. */
  reattach(link: Link): void {
    this.first = link;
    this.state = 'idle';
    void this.start();
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

/** The kernel's gRPC server on its unix socket. */
export class RemoteServer {
  private readonly server = new grpc.Server();
  private readonly spawned = new Map<string, SpawnedHost>();
  private readonly attached = new Map<string, AttachedHost>();

  constructor(
    readonly kernel: Kernel,
    readonly socket: string,
  ) {}

  async listen(): Promise<void> {
    rmSync(this.socket, { force: true });
    this.server.addService(PluginHostService, { connect: (call: Call) => new Link(call, this) });
    await new Promise<void>((resolve, reject) =>
      this.server.bindAsync(grpcAddress(this.socket), grpc.ServerCredentials.createInsecure(), (err) =>
        err
          ? reject(new KernelError('EREMOTE_SPAWN', `cannot listen on ${this.socket}: ${err.message}`))
          : resolve(),
      ),
    );
    chmodSync(this.socket, 0o600);
    this.kernel.log.info({ socket: this.socket }, 'kernel socket listening for plugin processes');
  }

  spawnHost(plugin: LoadedPlugin, box: Mailbox, deps: HostDeps): SupervisedHost {
    const host = new SpawnedHost(plugin, box, deps, this);
    this.spawned.set(plugin.def.name, host);
    return host;
  }

  onHello(link: Link, hello: Hello): void {
    const spawned = this.spawned.get(hello.name);
    if (spawned) {
      if (hello.token === spawned.token && spawned.accept(link)) return;
      return this.refuse(link, `module "${hello.name}" is managed by the kernel; refusing a second process`);
    }
    const known = this.attached.get(hello.name);
    if (known) {
      if (known.state === 'running' || known.state === 'starting') {
        return this.refuse(link, `module "${hello.name}" is already attached`);
      }
      known.reattach(link);
      return;
    }
    if (this.kernel.bus.hasModule(hello.name)) {
      return this.refuse(link, `module "${hello.name}" already runs in the kernel`);
    }
    if (!hello.name) return this.refuse(link, 'Hello without a module name');
    const box = this.kernel.bus.addModule(hello.name, hello.group);
    const host = new AttachedHost(link, hello, box, this.kernel.hostDeps(hello.name, hello.configKey), this);
    this.attached.set(hello.name, host);
    this.kernel.adopt(host);
    void host.start();
  }

  /** Tell every connected plugin process which modules exist now. */
  broadcastModules(): void {
    const names = this.kernel.bus.modules().map((m) => m.name);
    for (const host of [...this.spawned.values(), ...this.attached.values()]) host.sendModules(names);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.server.forceShutdown();
    rmSync(this.socket, { force: true });
  }

  private refuse(link: Link, reason: string): void {
    this.kernel.log.warn({ reason }, 'plugin process refused');
    link.call.emit('error', { code: grpc.status.ALREADY_EXISTS, details: reason });
  }
}

export async function startServer(kernel: Kernel, configured: string): Promise<RemoteServer> {
  const server = new RemoteServer(kernel, kernelSocketPath(configured));
  await server.listen();
  return server;
}
