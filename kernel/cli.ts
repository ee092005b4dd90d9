import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type ConfigKind,
  type ConfigLayout,
  type ConfigSection,
  type LoadedConfig,
  defaultConfig,
  defineConfigLayout,
  minConfig,
  parseConfig,
  readConfigText,
  renderConfig,
} from './config/index.js';
import { KernelError, errorText, isKernelError } from './errors.js';
import { serveHealth, type HealthServer } from './health.js';
import { Kernel } from './kernel.js';
import { importPlugin, resolvePluginPackage } from './plugin/load.js';
import { createLogger, LOG_LEVELS, type LogLevel } from './log.js';
import type { PluginEntry } from './plugin/types.js';
import { KUBEEDGE_VERSION, VERSION } from './version.js';

export interface MainOptions {
  /** The file's kind and its built-in module sections (plugins/registry.ts). */
  layout: ConfigLayout;
  registry: readonly PluginEntry[];
  defaultConfigPath: string;
  argv?: string[];
  /** Called once, when every enabled plugin has started ("kernel ready"). */
  onReady?: () => void;
}

function usage(kind: ConfigKind, defaultConfigPath: string): string {
  return `Usage: ${kind} [flags]

${kind === 'edgecore' ? 'EdgeCore is the core edge part of KubeEdge' : 'CloudCore is the core cloud part of KubeEdge'} (TypeScript build).

Flags:
  --config FILE      config file (default ${defaultConfigPath})
  --minconfig        print a minimal configuration for reference, then exit
  --defaultconfig    print the default configuration, then exit
  --log-level LEVEL  one of ${LOG_LEVELS.join(', ')} (overrides kernel.logLevel)
  --version          print the version, then exit
  -h, --help         print this help, then exit
`;
}

/**
 * The command line of edgecore and cloudcore. Returns the exit code for early exits; for a run it
 * resolves when the kernel has stopped after SIGTERM/SIGINT.
 */
export async function main(options: MainOptions): Promise<number> {
  const { layout, defaultConfigPath } = options;
  const { kind } = layout;
  let flags;
  try {
    flags = parseArgs({
      args: options.argv ?? process.argv.slice(2),
      options: {
        config: { type: 'string' },
        minconfig: { type: 'boolean' },
        defaultconfig: { type: 'boolean' },
        'log-level': { type: 'string' },
        version: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`${kind}: ${errorText(err)}\n\n${usage(kind, defaultConfigPath)}`);
    return 2;
  }
  if (flags.help) {
    process.stdout.write(usage(kind, defaultConfigPath));
    return 0;
  }
  if (flags.version) {
    process.stdout.write(`KubeEdge ${KUBEEDGE_VERSION} (kubeedge-ts ${VERSION})\n`);
    return 0;
  }
  if (flags.minconfig) {
    process.stdout.write(renderConfig(layout, minConfig(layout), 'min'));
    return 0;
  }
  if (flags.defaultconfig) {
    process.stdout.write(renderConfig(layout, defaultConfig(layout), 'default'));
    return 0;
  }
  const level = flags['log-level'];
  if (level !== undefined && !LOG_LEVELS.includes(level as LogLevel)) {
    process.stderr.write(`${kind}: --log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${level}"\n`);
    return 2;
  }
  let config;
  try {
    config = await loadConfig(layout, flags.config ?? defaultConfigPath);
  } catch (err) {
    process.stderr.write(`${kind}: ${errorText(err)}\n`);
    return 1;
  }
  const log = createLogger((level as LogLevel | undefined) ?? config.config.kernel.logLevel, {
    component: kind,
  });
  for (const w of config.warnings) log.warn({ path: w.path, line: w.line }, w.message);

  // No plugin can end the process: stray errors are reported and the kernel goes on.
  process.on('unhandledRejection', (reason) =>
    log.error(
      { err: errorText(reason), code: isKernelError(reason) ? reason.code : undefined },
      'unhandled promise rejection',
    ),
  );
  process.on('uncaughtException', (err) =>
    log.error({ err: errorText(err), stack: err.stack }, 'uncaught exception'),
  );

  let exitCode = 0;
  let stopping: Promise<void> | undefined;
  let health: HealthServer | undefined;
  let shutdown: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    shutdown = () => {
      stopping ??= kernel
        .stop()
        .then(() => health?.close())
        .then(resolve);
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now');
        process.exit(130);
      }
      log.info({ signal }, 'shutting down');
      shutdown();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  const kernel = new Kernel({
    config,
    registry: options.registry,
    logger: log,
    onFatal: (err) => {
      log.fatal({ code: err.code }, `shutting down: ${err.message}`);
      exitCode = 1;
      shutdown();
    },
  });
  try {
    health = await serveHealth(kernel, config.config.kernel.health, log);
    await kernel.start();
    options.onReady?.();
  } catch (err) {
    log.error(
      { err: errorText(err), code: err instanceof KernelError ? err.code : undefined },
      'kernel failed to start',
    );
    process.stderr.write(`${kind}: ${errorText(err)}\n`);
    await kernel.stop();
    await health?.close();
    log.flush();
    return 1;
  }
  // Run until a signal, even when no plugin holds the event loop open.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  await stopped;
  clearInterval(keepAlive);
  log.flush();
  return exitCode;
}

/**
 * Load a config file with the layout's sections and those the third-party plugins it names
 * (`kernel.plugins`) declare on their definition (`config`), so that their sections are defaulted
 * and validated with file and line like the built-in ones. Throws KernelError (ECONFIG_*,
 * EPLUGIN_*).
 */
export async function loadConfig(layout: ConfigLayout, file: string): Promise<LoadedConfig> {
  const text = readConfigText(file);
  const loaded = parseConfig(layout, text, file);
  const base = dirname(resolve(file));
  const extra: Record<string, ConfigSection> = {};
  for (const { package: pkg } of loaded.config.kernel.plugins) {
    const def = await importPlugin(
      resolvePluginPackage(pkg, base),
      `plugin package "${pkg}" (kernel.plugins)`,
    );
    if (!def.config) continue;
    if (Object.hasOwn(layout.sections, def.configKey)) {
      throw new KernelError(
        'EPLUGIN_INVALID',
        `plugin package "${pkg}" (kernel.plugins): declares the section modules.${def.configKey}, which is built in`,
      );
    }
    extra[def.configKey] = def.config;
  }
  if (Object.keys(extra).length === 0) return loaded;
  return parseConfig(defineConfigLayout(layout.kind, { ...layout.sections, ...extra }), text, file);
}
