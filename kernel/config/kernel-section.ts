/**
 * Kernel-extension keys: ours, not KubeEdge's. A Go edgecore/cloudcore ignores unknown keys, so a
 * file using them stays acceptable to it. They are never printed by --minconfig/--defaultconfig.
 */
import { bool, int, list, obj, str, dur, type ObjectSchemaOf, type Schema } from './schema.js';

import { LOG_LEVELS, type LogLevel } from '../log.js';

export { LOG_LEVELS, type LogLevel };

export const RUN_AS = ['inprocess', 'process'] as const;
/** Where a module (plugin) runs: inside the kernel's process, or in a child process over gRPC. */
export type RunAs = (typeof RUN_AS)[number];

export interface KernelPluginRef {
  /** npm package name or a path of a third-party plugin. */
  package: string;
}

export interface KernelRestartConfig {
  /** How many times a failed plugin is restarted within `window` before the kernel gives up (0 = never restart). */
  maxRestarts: number;
  /** The window the restart budget counts in, Go duration text ("10m"); older restarts are forgotten. */
  window: string;
  /** First back-off delay, Go duration text ("1s"). */
  initialBackoff: string;
  /** Largest back-off delay, Go duration text ("30s"). */
  maxBackoff: string;
}

/** `kernel.health`: the loopback endpoint serving /healthz, /readyz and /metrics. */
export interface HealthConfig {
  enable: boolean;
  /** Listen address; a non-loopback one is refused unless allowNonLoopback. */
  address: string;
  port: number;
  allowNonLoopback: boolean;
}

/** Default health ports: beside KubeEdge's, clear of kubelet's 10248-10250 and 10255. */
export const EDGECORE_HEALTH_PORT = 10240;
export const CLOUDCORE_HEALTH_PORT = 10241;

/** The top-level `kernel:` section. Durations are Go duration strings; use `parseDuration()`. */
export interface KernelConfig {
  logLevel: LogLevel;
  /** Capacity of each module's mailbox (messages). */
  mailboxSize: number;
  /** Unix socket on which out-of-process plugins connect; empty = a temp path, only when needed. */
  socket: string;
  /** Third-party plugins to load. */
  plugins: KernelPluginRef[];
  restart: KernelRestartConfig;
  startTimeout: string;
  stopTimeout: string;
  health: HealthConfig;
}

/**
 * Default of `kernel.socket`: empty = the kernel listens only when a module runs out of process,
 * on a per-process path in the temp dir. Set it to let plugin processes attach on their own.
 */
export function defaultKernelConfig(healthPort = EDGECORE_HEALTH_PORT): KernelConfig {
  return {
    logLevel: 'info',
    mailboxSize: 1024,
    socket: '',
    plugins: [],
    restart: { maxRestarts: 5, window: '10m', initialBackoff: '1s', maxBackoff: '30s' },
    startTimeout: '30s',
    stopTimeout: '10s',
    health: { enable: true, address: '127.0.0.1', port: healthPort, allowNonLoopback: false },
  };
}

export const kernelSchema: ObjectSchemaOf<KernelConfig> = obj<KernelConfig>(
  {
    logLevel: str({ oneOf: LOG_LEVELS }),
    mailboxSize: int({ min: 1 }),
    socket: str(),
    plugins: list(obj<KernelPluginRef>({ package: str() })),
    restart: obj<KernelRestartConfig>({
      maxRestarts: int({ min: 0 }),
      window: dur(),
      initialBackoff: dur(),
      maxBackoff: dur(),
    }),
    startTimeout: dur(),
    stopTimeout: dur(),
    health: obj<HealthConfig>({
      enable: bool(),
      address: str(),
      port: int({ min: 0, max: 65535 }),
      allowNonLoopback: bool(),
    }),
  },
  { hidden: true },
);

/** The `runAs` key accepted on every module section. */
export const runAsSchema: Schema = str({ oneOf: RUN_AS, hidden: true });
/** The `enable` key of a module section (Go: `bool` without omitempty). */
export const enableSchema: Schema = bool({ omit: 'never' });
