import type { Message } from '../bus/message.js';
import type { ConfigSection } from '../config/section.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ServiceToken, Services } from '../services.js';
import type { KernelPort } from './port.js';

/** A module's config section: `modules.<configKey>` of edgecore.yaml / cloudcore.yaml. */
export type ModuleConfig = { enable: boolean } & Record<string, unknown>;

/**
 * What a plugin sees of the kernel: its port (messaging) plus its section, logger, metrics,
 * services and the signal of its instance. The same interface is implemented in-process and over
 * gRPC for a plugin in its own process: the plugin cannot tell which.
 */
export interface PluginContext<C extends ModuleConfig = ModuleConfig> extends KernelPort {
  /** KubeEdge module name (the mailbox address). */
  readonly name: string;
  readonly group: string;
  /** The plugin's config section. */
  readonly config: C;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly services: Services;
  /** Aborted when the kernel stops this instance of the plugin, or gives up waiting for its start. */
  readonly signal: AbortSignal;
}

/** A running instance of a plugin, returned by its start(). */
export interface PluginInstance {
  /** Called for each message of the mailbox, one at a time unless `concurrency` says more. */
  onMessage?(msg: Message): void | Promise<void>;
  /** Release everything; called once, on kernel stop or before a restart. */
  stop?(): void | Promise<void>;
}

export interface RestartPolicy {
  /** Restarts allowed within `windowMs` before the plugin is given up (0 = never restart). */
  maxRestarts: number;
  /** The window the restart budget counts in (restarts older than this are forgotten). */
  windowMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

/**
 * The plugin contract. A plugin module's default export is a PluginDefinition (see definePlugin).
 * The kernel creates all mailboxes first, then starts plugins in dependency order (providers of
 * a service before the plugins that require it) and stops them in reverse.
 */
export interface PluginDefinition<C extends ModuleConfig = ModuleConfig> {
  /** KubeEdge module name = mailbox address, e.g. "metamanager", "websocket", "twin". */
  readonly name: string;
  /** KubeEdge group, e.g. "meta", "hub", "bus". */
  readonly group: string;
  /** Config section under `modules.`, e.g. "metaManager". */
  readonly configKey: string;
  /** Services the plugin needs before it starts. */
  readonly requires?: readonly ServiceToken<unknown>[];
  /** Services the plugin registers during start(). */
  readonly provides?: readonly ServiceToken<unknown>[];
  /** Async message handlers allowed in flight at once (default 1). */
  readonly concurrency?: number;
  readonly startTimeoutMs?: number;
  readonly stopTimeoutMs?: number;
  readonly restart?: Partial<RestartPolicy>;
  /**
   * The schema, defaults and validation of `modules.<configKey>` (a third-party plugin's own
   * section; built-in sections are listed in plugins/registry.ts). Read when the config is loaded.
   */
  readonly config?: ConfigSection<C>;
  start(ctx: PluginContext<C>): PluginInstance | void | Promise<PluginInstance | void>;
}

/** Identity helper that types a plugin definition. */
export function definePlugin<C extends ModuleConfig = ModuleConfig>(
  def: PluginDefinition<C>,
): PluginDefinition<C> {
  return def;
}

/**
 * One entry of a registry of built-in plugins: the config key decides whether it is enabled,
 * and the module is imported only then (a disabled plugin costs nothing).
 */
export interface PluginEntry {
  readonly configKey: string;
  /** Module specifier the out-of-process runner imports (a file URL or package name). */
  readonly specifier: string;
}
