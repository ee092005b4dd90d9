import type { Bus } from '../bus/bus.js';
import type { Mailbox } from '../bus/mailbox.js';
import type { Message } from '../bus/message.js';
import { KernelError, errorText } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ServiceRegistry } from '../services.js';
import { sleep, withTimeout } from './timeout.js';
import type {
  ModuleConfig,
  PluginContext,
  PluginDefinition,
  PluginInstance,
  RestartPolicy,
} from './types.js';

export type HostState = 'idle' | 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'failed';

export interface HostDeps {
  bus: Bus;
  services: ServiceRegistry;
  metrics: Metrics;
  log: Logger;
  config: ModuleConfig;
  policy: RestartPolicy;
  startTimeoutMs: number;
  stopTimeoutMs: number;
}

/** Build the in-process PluginContext over the bus for one mailbox. */
export function busContext(
  def: Pick<PluginDefinition, 'name' | 'group'>,
  box: Mailbox,
  deps: Pick<HostDeps, 'bus' | 'services' | 'metrics' | 'config'>,
  log: Logger,
  signal: AbortSignal,
): PluginContext {
  const { bus } = deps;
  const stats = box.stats;
  return {
    name: def.name,
    group: def.group,
    config: deps.config,
    log,
    metrics: deps.metrics,
    services: deps.services,
    signal,
    send(module: string, msg: Message) {
      stats.sent++;
      return bus.send(module, msg);
    },
    sendToGroup(group: string, msg: Message) {
      stats.sent++;
      return bus.sendToGroup(group, msg);
    },
    request(module: string, msg: Message, timeoutMs?: number) {
      stats.sent++;
      return bus.request(module, msg, timeoutMs);
    },
    requestGroup(group: string, msg: Message, timeoutMs?: number) {
      stats.sent++;
      return bus.requestGroup(group, msg, timeoutMs);
    },
    respond(msg: Message) {
      stats.sent++;
      if (!bus.respond(msg)) {
        log.warn({ parent_msg_id: msg.header.parent_msg_id }, 'response discarded: nobody waits for it');
      }
    },
    hasModule: (name: string) => bus.hasModule(name),
  };
}

/**
 * Supervises one plugin: start with a timeout, deliver its mailbox, restart it with back-off when
 * it throws (at start or in a handler), give it up after maxRestarts, stop with a timeout.
 * Subclasses say how an instance is launched (in this process, or in a child process).
 */
export abstract class SupervisedHost {
  state: HostState = 'idle';
  restarts = 0;
  lastError: string | undefined;
  private pending: AbortController | undefined;
  private restarting: Promise<void> | undefined;

  constructor(
    readonly def: Pick<PluginDefinition, 'name' | 'group' | 'configKey' | 'requires' | 'provides'>,
    readonly box: Mailbox,
    protected readonly deps: HostDeps,
  ) {}

  get name(): string {
    return this.def.name;
  }

  get log(): Logger {
    return this.deps.log;
  }

  /** Launch an instance; resolves when it is ready to receive messages. */
  protected abstract launch(): Promise<void>;
  /** Stop the running instance (if any). */
  protected abstract halt(): Promise<void>;

  /** Start; a failure is reported and handed to the restart policy, never thrown. */
  async start(): Promise<void> {
    if (this.state === 'running' || this.state === 'starting') return;
    try {
      await this.launchWithTimeout();
    } catch (err) {
      this.fail(err, 'start');
    }
  }

  async stop(): Promise<void> {
    this.pending?.abort();
    await this.restarting;
    if (this.state === 'stopped') return;
    this.state = 'stopping';
    await this.haltQuietly('plugin did not stop cleanly');
    this.box.closedReason ??= 'the plugin has stopped';
    this.state = 'stopped';
    this.log.info('plugin stopped');
  }

  /** Report a failure and apply the restart policy. */
  fail(err: unknown, where: 'start' | 'handler' | 'process', msg?: Message): void {
    this.report(err, where, msg);
    if (this.state === 'stopping' || this.state === 'stopped' || this.restarting) return;
    this.restarting = this.restartLoop().finally(() => (this.restarting = undefined));
  }

  private report(err: unknown, where: string, msg?: Message): void {
    this.lastError = errorText(err);
    this.log.error(
      {
        err: this.lastError,
        code: (err as KernelError).code,
        where,
        msg_id: msg?.header.msg_id,
        resource: msg?.route.resource,
      },
      `plugin "${this.name}" failed in ${where}`,
    );
  }

  private async launchWithTimeout(): Promise<void> {
    this.state = 'starting';
    await withTimeout(
      this.launch(),
      this.deps.startTimeoutMs,
      'EPLUGIN_START_TIMEOUT',
      `start of plugin "${this.name}"`,
    );
    this.state = 'running';
    this.log.info({ restarts: this.restarts }, 'plugin started');
  }

  private async haltQuietly(what: string): Promise<void> {
    this.box.detach();
    try {
      await withTimeout(
        this.halt(),
        this.deps.stopTimeoutMs,
        'EPLUGIN_STOP_TIMEOUT',
        `stop of plugin "${this.name}"`,
      );
    } catch (err) {
      this.log.error({ err: errorText(err), code: (err as KernelError).code }, what);
    }
    for (const token of this.def.provides ?? []) this.deps.services.remove(token);
  }

  /** Stop the failed instance, then start anew after a back-off, until it runs or is given up. */
  private async restartLoop(): Promise<void> {
    const { maxRestarts, initialBackoffMs, maxBackoffMs } = this.deps.policy;
    for (;;) {
      this.state = 'restarting';
      await this.haltQuietly('failed instance did not stop cleanly');
      if (this.restarts >= maxRestarts) {
        this.state = 'failed';
        const reason = `gave up after ${this.restarts} restarts; last error: ${this.lastError}`;
        this.box.closedReason = reason;
        const dropped = this.box.takeAll();
        this.box.stats.rejected += dropped.length;
        this.log.error(
          { code: 'EPLUGIN_GAVE_UP', dropped: dropped.length },
          `plugin "${this.name}" ${reason}`,
        );
        return;
      }
      const delay = Math.min(maxBackoffMs, initialBackoffMs * 2 ** this.restarts);
      this.restarts++;
      this.log.warn({ delayMs: delay, restart: this.restarts }, 'restarting plugin');
      this.pending = new AbortController();
      if (!(await sleep(delay, this.pending.signal))) return;
      try {
        await this.launchWithTimeout();
        return;
      } catch (err) {
        this.report(err, 'start');
      }
    }
  }
}

/** A plugin running in the kernel's own process. */
export class InProcessHost extends SupervisedHost {
  private instance: PluginInstance | undefined;
  private abort: AbortController | undefined;

  constructor(
    private readonly full: PluginDefinition,
    box: Mailbox,
    deps: HostDeps,
  ) {
    super(full, box, deps);
  }

  protected async launch(): Promise<void> {
    this.abort = new AbortController();
    const ctx = busContext(this.full, this.box, this.deps, this.deps.log, this.abort.signal);
    const instance = (await this.full.start(ctx)) ?? {};
    this.instance = instance;
    for (const token of this.full.provides ?? []) {
      if (!this.deps.services.has(token)) {
        throw new KernelError(
          'EPLUGIN_INVALID',
          `plugin "${this.name}" declares it provides ${token} but did not provide it`,
        );
      }
    }
    const onMessage = instance.onMessage?.bind(instance);
    if (onMessage) {
      this.box.attach(onMessage, (err, msg) => this.fail(err, 'handler', msg), this.full.concurrency ?? 1);
    }
  }

  protected async halt(): Promise<void> {
    this.abort?.abort();
    const instance = this.instance;
    this.instance = undefined;
    await instance?.stop?.();
  }
}
