import { dirname, resolve as resolvePath } from 'node:path';
import { Bus } from './bus/bus.js';
import { type LoadedConfig, moduleSection, parseDuration } from './config/index.js';
import { databaseSource, lockDatabase, type DatabaseLock } from './db.js';
import { provideKernelServices } from './kernel-services.js';
import { KernelError } from './errors.js';
import { createLogger, type Logger } from './log.js';
import { Metrics } from './metrics.js';
import { InProcessHost, type HostDeps, type SupervisedHost } from './plugin/host.js';
import { importPlugin, resolvePluginPackage, type LoadedPlugin } from './plugin/load.js';
import { startOrder } from './plugin/order.js';
import type { ModuleConfig, PluginDefinition, PluginEntry } from './plugin/types.js';
import type { KernelSide, RemoteServer } from './remote/server.js';
import { ServiceRegistry } from './services.js';
import { CloudConnection } from './tokens.js';

export interface KernelOptions {
  config: LoadedConfig;
  /** Built-in plugins (plugins/registry.ts): imported only when their section is enabled. */
  registry: readonly PluginEntry[];
  logger?: Logger;
  /** The kernel cannot go on (e.g. its database file was deleted): the process should stop. */
  onFatal?: (err: KernelError) => void;
}

export interface PluginStatus {
  name: string;
  group: string;
  state: string;
  /** Restarts since the kernel started. */
  restarts: number;
  /** Failures reported (at start, in handlers, in callbacks, process exits). */
  failures: number;
  runAs: 'inprocess' | 'process';
  lastError?: string;
}

/**
 * The microkernel: loads the plugins the config enables, gives them a mailbox each, injects the
 * kernel's services, starts them in dependency order and stops them in reverse. It knows no
 * plugin by name.
 */
export class Kernel implements KernelSide {
  readonly bus: Bus;
  readonly services = new ServiceRegistry();
  readonly metrics = new Metrics();
  readonly cloud = new CloudConnection();
  readonly log: Logger;
  private hosts: SupervisedHost[] = [];
  /** True once every plugin was started, until stop (health: /readyz). */
  started = false;
  private dbLock: DatabaseLock | undefined;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private remote: RemoteServer | undefined;
  private readonly releaseServices: () => void;

  constructor(readonly options: KernelOptions) {
    const k = options.config.config.kernel;
    this.log = options.logger ?? createLogger(k.logLevel);
    this.bus = new Bus(k.mailboxSize);
    this.bus.onStrayReply = (msg) => {
      this.metrics.inc('stray_replies');
      this.log.warn(
        { parent_msg_id: msg.header.parent_msg_id, resource: msg.route.resource },
        'reply discarded: nobody waits for it',
      );
    };
    this.releaseServices = provideKernelServices(this.services, {
      config: options.config,
      log: this.log,
      metrics: this.metrics,
      cloud: this.cloud,
      onDatabaseLost: (err) => this.options.onFatal?.(err),
    });
    this.cloud.onChange((connected) => this.remote?.broadcastCloud(connected));
    this.metrics.addModuleSource(() =>
      this.hosts.map((h) => ({
        module: h.name,
        stats: h.box.stats,
        depth: () => h.box.depth,
        restarts: () => h.restarts,
        running: () => h.state === 'running',
      })),
    );
  }

  /** The loaded config. */
  get loaded(): LoadedConfig {
    return this.options.config;
  }

  /**
   * Load, order and start every enabled plugin. Configuration problems reject, and so does a plugin
   * that cannot start (EPLUGIN_START / EPLUGIN_START_TIMEOUT naming it): the boot fails as a whole;
   * restarts are for failures after a successful start.
   */
  start(): Promise<void> {
    this.starting ??= this.startPlugins().catch(async (err: unknown) => {
      // A failed boot takes down what it started (as avvio closes a failed boot).
      await this.shutdown();
      throw err;
    });
    return this.starting;
  }

  private async startPlugins(): Promise<void> {
    // One edgecore per database: a second one is refused before any plugin touches it.
    const source = databaseSource(this.options.config);
    if (source !== undefined && source !== ':memory:') this.dbLock = lockDatabase(source);
    const plugins = await this.loadPlugins();
    // A plugin in a process of its own gets the kernel's services there, but no other plugin's.
    const ordered = startOrder(
      plugins,
      (p) => p.def,
      (token) => this.services.has(token),
      (p) =>
        this.section(p.def.configKey).runAs === 'process'
          ? `its own process (${p.def.name})`
          : 'the kernel process',
    );
    const k = this.options.config.config.kernel;
    if (k.socket || ordered.some((p) => this.section(p.def.configKey).runAs === 'process')) {
      const { startServer } = await import('./remote/server.js');
      this.remote = await startServer(this, k.socket);
    }
    // All mailboxes exist before any plugin starts (a plugin may send during its start).
    const boxes = ordered.map((p) => this.bus.addModule(p.def.name, p.def.group));
    for (const [i, p] of ordered.entries()) {
      const box = boxes[i]!;
      const deps = this.hostDeps(p.def.name, p.def.configKey, p.def);
      const host =
        deps.config.runAs === 'process' && this.remote
          ? this.remote.spawnHost(p, box, deps)
          : new InProcessHost(p.def, box, deps);
      this.hosts.push(host);
    }
    for (const host of this.hosts) await host.start();
    this.started = true;
    this.log.info({ plugins: this.hosts.map((h) => h.name) }, 'kernel ready');
  }

  /** Stop every plugin in reverse start order, each within its stop timeout. */
  async stop(): Promise<void> {
    // A stop during start (an early SIGTERM) waits for the start, so no plugin outlives it.
    await this.starting?.catch(() => undefined);
    await this.shutdown();
  }

  /** Stop every plugin in reverse start order and release the kernel's resources, once. */
  private shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      this.started = false;
      for (const host of [...this.hosts].reverse()) await host.stop();
      this.bus.close();
      await this.remote?.close();
      this.remote = undefined;
      this.releaseServices();
      this.dbLock?.release();
      this.dbLock = undefined;
      this.log.info('kernel stopped');
    })();
    return this.stopping;
  }

  /** What a host of this module needs: its logger, config section, restart policy and timeouts. */
  hostDeps(
    name: string,
    configKey: string,
    def?: Pick<PluginDefinition, 'restart' | 'startTimeoutMs' | 'stopTimeoutMs'>,
  ): HostDeps {
    const k = this.options.config.config.kernel;
    return {
      bus: this.bus,
      services: this.services,
      metrics: this.metrics,
      log: this.log.child({ module: name }),
      config: this.section(configKey),
      policy: {
        maxRestarts: k.restart.maxRestarts,
        windowMs: parseDuration(k.restart.window),
        initialBackoffMs: parseDuration(k.restart.initialBackoff),
        maxBackoffMs: parseDuration(k.restart.maxBackoff),
        ...def?.restart,
      },
      startTimeoutMs: def?.startTimeoutMs ?? parseDuration(k.startTimeout),
      stopTimeoutMs: def?.stopTimeoutMs ?? parseDuration(k.stopTimeout),
    };
  }

  /** Take over a host the kernel did not create (a plugin process that attached on its own). */
  adopt(host: SupervisedHost): void {
    this.hosts.push(host);
    this.remote?.broadcastModules();
  }

  /** The unix socket plugin processes connect to, while the kernel listens on one. */
  get socketPath(): string | undefined {
    return this.remote?.socket.path;
  }

  /** The host of a module (tests and tools). */
  host(name: string): SupervisedHost | undefined {
    return this.hosts.find((h) => h.name === name);
  }

  status(): PluginStatus[] {
    return this.hosts.map((h) => ({
      name: h.name,
      group: h.def.group,
      state: h.state,
      restarts: h.restarts,
      failures: h.failures,
      runAs: h instanceof InProcessHost ? 'inprocess' : 'process',
      ...(h.lastError ? { lastError: h.lastError } : {}),
    }));
  }

  section(key: string): ModuleConfig & { runAs?: string } {
    return (moduleSection(this.options.config.config, key) ?? { enable: false }) as ModuleConfig & {
      runAs?: string;
    };
  }

  private async loadPlugins(): Promise<LoadedPlugin[]> {
    const cfg = this.options.config;
    const out: LoadedPlugin[] = [];
    for (const entry of this.options.registry) {
      if (!this.section(entry.configKey).enable) continue;
      out.push({
        def: await importPlugin(entry.specifier, `built-in plugin for modules.${entry.configKey}`),
        specifier: entry.specifier,
      });
    }
    const base = cfg.file ? dirname(resolvePath(cfg.file)) : process.cwd();
    for (const { package: pkg } of cfg.config.kernel.plugins) {
      const specifier = resolvePluginPackage(pkg, base);
      const def = await importPlugin(specifier, `plugin package "${pkg}" (kernel.plugins)`);
      if (def.config && cfg.unknownModules.some((k) => k.toLowerCase() === def.configKey.toLowerCase())) {
        throw new KernelError(
          'EPLUGIN_INVALID',
          `plugin package "${pkg}" (kernel.plugins): modules.${def.configKey} was loaded without the section ` +
            'the plugin declares (load the config with loadConfig)',
        );
      }
      if (!this.section(def.configKey).enable) {
        this.log.info(
          { plugin: def.name, configKey: def.configKey },
          `third-party plugin disabled: set modules.${def.configKey}.enable: true`,
        );
        continue;
      }
      out.push({ def, specifier });
    }
    const names = new Set<string>();
    for (const p of out) {
      if (names.has(p.def.name))
        throw new KernelError('EPLUGIN_DUPLICATE', `two plugins are named "${p.def.name}"`);
      names.add(p.def.name);
    }
    const claimed = new Set(out.map((p) => p.def.configKey.toLowerCase()));
    for (const key of cfg.unknownModules) {
      if (!claimed.has(key.toLowerCase())) {
        this.log.warn(
          { path: `modules.${key}` },
          `modules.${key}: unknown module, ignored (no plugin claims this section)`,
        );
      }
    }
    return out;
  }
}
