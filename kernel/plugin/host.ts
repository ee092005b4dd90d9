import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { Bus } from '../bus/bus.js';
import type { Mailbox } from '../bus/mailbox.js';
import type { Message } from '../bus/message.js';
import { KernelError, errorText, isKernelError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ServiceRegistry } from '../services.js';
import { runAs } from './attribution.js';
import { busPort, pluginContext } from './port.js';
import type { ModuleConfig, PluginDefinition, PluginInstance, RestartPolicy } from './types.js';

export type HostState = 'idle' | 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'failed';

/** Where a failure came from. */
export type FailureSite = 'start' | 'handler' | 'callback' | 'process';

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

/**
 * One launch of a plugin. Every launch has a new generation; its signal aborts when the kernel
 * stops it or gives up waiting for its start. Whatever completes for a launch that is no longer
 * current (a start() that resolves after its timeout) is stopped at once and never attached.
 */
export interface Launch {
  readonly generation: number;
  readonly signal: AbortSignal;
}

/** Rejects with the signal's reason once it aborts (for Promise.race). */
function aborted(signal: AbortSignal): Promise<never> {
  return once(signal, 'abort').then(() => {
    throw signal.reason;
  });
}

/**
 * The restart budget: at most `maxRestarts` restarts within `windowMs`; older restarts are
 * forgotten, so a plugin that fails now and then is restarted for ever, one in a crash loop is
 * given up. The back-off doubles with each restart in the window (KubeEdge's moduleRestart).
 */
export class RestartBudget {
  private times: number[] = [];

  constructor(private readonly policy: RestartPolicy) {}

  /** The delay before the next restart at time `now` (ms), or undefined when the budget is spent. */
  next(now: number): number | undefined {
    const { maxRestarts, windowMs, initialBackoffMs, maxBackoffMs } = this.policy;
    this.times = this.times.filter((t) => now - t < windowMs);
    if (this.times.length >= maxRestarts) return undefined;
    const wait = Math.min(maxBackoffMs, initialBackoffMs * 2 ** this.times.length);
    this.times.push(now);
    return wait;
  }
}

/**
 * Supervises one plugin: start with a timeout (cancelling a start that does not finish), deliver
 * its mailbox, restart it with back-off when it fails after it started (in start during a restart,
 * in a handler, in one of its callbacks, or its process dies), give it up when the restart budget
 * of the window is spent, stop with a timeout. Subclasses say how an instance is launched (in this
 * process, or in a child process).
 */
export abstract class SupervisedHost {
  state: HostState = 'idle';
  /** Restarts since the kernel started. */
  restarts = 0;
  /** Failures reported (at start, in handlers, in callbacks, process exits). */
  failures = 0;
  lastError: string | undefined;
  /** Generation of the current launch (0 before the first). */
  generation = 0;
  private life: AbortController | undefined;
  /** Aborted by stop(): ends a restart's back-off or start at once. */
  private stopping = new AbortController();
  private restarting: Promise<void> | undefined;
  private readonly budget: RestartBudget;

  constructor(
    readonly def: Pick<PluginDefinition, 'name' | 'group' | 'configKey' | 'requires' | 'provides'>,
    readonly box: Mailbox,
    protected readonly deps: HostDeps,
  ) {
    this.budget = new RestartBudget(deps.policy);
  }

  get name(): string {
    return this.def.name;
  }

  get log(): Logger {
    return this.deps.log;
  }

  /** Launch an instance; resolves when it is ready to receive messages. */
  protected abstract launch(launch: Launch): Promise<void>;
  /** Stop the running instance (if any). */
  protected abstract halt(): Promise<void>;

  /** Is `launch` still the current one? */
  protected isCurrent(launch: Launch): boolean {
    return launch.generation === this.generation && !launch.signal.aborted;
  }

  /**
   * First start. A plugin that cannot start fails the boot: this rejects with EPLUGIN_START (or
   * EPLUGIN_START_TIMEOUT) naming the plugin and its message, and nothing is restarted.
   */
  async start(): Promise<void> {
    if (this.state === 'running' || this.state === 'starting') return;
    if (this.stopping.signal.aborted) this.stopping = new AbortController();
    try {
      await this.launchOnce();
    } catch (err) {
      this.report(err, 'start');
      await this.haltQuietly('plugin did not stop cleanly');
      this.state = 'failed';
      this.box.closedReason = `it failed to start: ${this.lastError}`;
      throw new KernelError(
        isKernelError(err, 'EPLUGIN_START_TIMEOUT') ? err.code : 'EPLUGIN_START',
        `plugin "${this.name}" failed to start: ${this.lastError}`,
        { cause: err },
      );
    }
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.state === 'starting')
      this.life?.abort(new KernelError('EPLUGIN_UNAVAILABLE', `plugin "${this.name}" is stopping`));
    await this.restarting;
    // A failed plugin was halted when it failed, and stays "failed" for status and health.
    if (this.state === 'stopped' || this.state === 'failed') return;
    this.state = 'stopping';
    await this.haltQuietly('plugin did not stop cleanly');
    this.box.closedReason ??= 'the plugin has stopped';
    this.state = 'stopped';
    this.log.info('plugin stopped');
  }

  /** Report a failure of the running instance and apply the restart policy. */
  fail(err: unknown, where: FailureSite, msg?: Message): void {
    this.report(err, where, msg);
    if (this.state !== 'running' || this.restarting) return;
    this.restarting = this.restartLoop().finally(() => (this.restarting = undefined));
  }

  /** The owner of the callbacks of one launch: an error from an old launch is only logged. */
  protected owner(launch: Launch): { fail(err: unknown): void } {
    return {
      fail: (err) => {
        if (this.isCurrent(launch)) this.fail(err, 'callback');
        else
          this.log.warn(
            { err: errorText(err), generation: launch.generation },
            'error from a stopped instance',
          );
      },
    };
  }

  private report(err: unknown, where: string, msg?: Message): void {
    this.failures++;
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

  private async launchOnce(): Promise<void> {
    this.state = 'starting';
    const life = new AbortController();
    this.life = life;
    const launch: Launch = { generation: ++this.generation, signal: life.signal };
    const ms = this.deps.startTimeoutMs;
    const deadline = AbortSignal.timeout(ms);
    try {
      await Promise.race([this.launch(launch), aborted(AbortSignal.any([life.signal, deadline]))]);
    } catch (err) {
      life.abort(err);
      if (deadline.aborted)
        throw new KernelError(
          'EPLUGIN_START_TIMEOUT',
          `start of plugin "${this.name}": no answer after ${ms} ms`,
        );
      throw err;
    }
    this.state = 'running';
    this.log.info({ restarts: this.restarts, generation: launch.generation }, 'plugin started');
  }

  private async haltQuietly(what: string): Promise<void> {
    this.box.detach();
    this.life?.abort(new KernelError('EPLUGIN_UNAVAILABLE', `plugin "${this.name}" is stopping`));
    const ms = this.deps.stopTimeoutMs;
    const deadline = AbortSignal.timeout(ms);
    try {
      await Promise.race([this.halt(), aborted(deadline)]);
    } catch (err) {
      const e = deadline.aborted
        ? new KernelError('EPLUGIN_STOP_TIMEOUT', `stop of plugin "${this.name}": no answer after ${ms} ms`)
        : err;
      this.log.error({ err: errorText(e), code: (e as KernelError).code }, what);
    }
    for (const token of this.def.provides ?? []) this.deps.services.remove(token);
  }

  /** Stop the failed instance, then start anew after a back-off, until it runs or is given up. */
  private async restartLoop(): Promise<void> {
    for (;;) {
      this.state = 'restarting';
      await this.haltQuietly('failed instance did not stop cleanly');
      if (this.stopping.signal.aborted) return;
      const wait = this.budget.next(Date.now());
      if (wait === undefined) {
        this.state = 'failed';
        const { maxRestarts, windowMs } = this.deps.policy;
        const reason = `gave up after ${maxRestarts} restarts within ${windowMs} ms; last error: ${this.lastError}`;
        this.box.closedReason = reason;
        const dropped = this.box.takeAll();
        this.box.stats.rejected += dropped.length;
        this.log.error(
          { code: 'EPLUGIN_GAVE_UP', dropped: dropped.length },
          `plugin "${this.name}" ${reason}`,
        );
        return;
      }
      this.restarts++;
      this.log.warn({ delayMs: wait, restart: this.restarts }, 'restarting plugin');
      try {
        await delay(wait, undefined, { signal: this.stopping.signal });
      } catch {
        return; // stopped meanwhile
      }
      try {
        await this.launchOnce();
        return;
      } catch (err) {
        if (this.stopping.signal.aborted) return;
        this.report(err, 'start');
      }
    }
  }
}

/** A plugin running in the kernel's own process. */
export class InProcessHost extends SupervisedHost {
  private instance: PluginInstance | undefined;

  constructor(
    private readonly full: PluginDefinition,
    box: Mailbox,
    deps: HostDeps,
  ) {
    super(full, box, deps);
  }

  protected async launch(launch: Launch): Promise<void> {
    const { deps, full } = this;
    const port = busPort(deps.bus, this.box, deps.log);
    const ctx = pluginContext(full, deps.config, port, deps, launch.signal);
    const owner = this.owner(launch);
    const instance = (await runAs(owner, () => full.start(ctx))) ?? {};
    if (!this.isCurrent(launch)) {
      // Its start was given up: stop what it built, never let it take the mailbox.
      this.log.warn({ generation: launch.generation }, 'late start of a cancelled instance: stopping it');
      await Promise.resolve(instance.stop?.()).catch((err: unknown) =>
        this.log.error({ err: errorText(err) }, 'cancelled instance did not stop cleanly'),
      );
      return;
    }
    this.instance = instance;
    for (const token of full.provides ?? []) {
      if (!deps.services.has(token)) {
        throw new KernelError(
          'EPLUGIN_INVALID',
          `plugin "${this.name}" declares it provides ${token} but did not provide it`,
        );
      }
    }
    // A plugin without a handler takes its messages and does nothing with them (in both transports).
    const onMessage = instance.onMessage?.bind(instance) ?? (() => undefined);
    this.box.attach(
      onMessage,
      (err, msg) => this.fail(err, 'handler', msg),
      full.concurrency ?? 1,
      (fn) => runAs(owner, fn),
    );
  }

  protected async halt(): Promise<void> {
    const instance = this.instance;
    this.instance = undefined;
    await instance?.stop?.();
  }
}
