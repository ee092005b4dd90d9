import { parseArgs } from 'node:util';
import { type ConfigKind, loadConfigFile, minConfig, defaultConfig, renderConfig } from './config/index.js';
import { KernelError, errorText, isKernelError } from './errors.js';
import { serveHealth, type HealthServer } from './health.js';
import { Kernel } from './kernel.js';
import { createLogger, LOG_LEVELS, type LogLevel } from './log.js';
import type { PluginEntry } from './plugin/types.js';
import { KUBEEDGE_VERSION, VERSION } from './version.js';

export interface MainOptions {
  kind: ConfigKind;
  registry: readonly PluginEntry[];
  defaultConfigPath: string;
  argv?: string[];
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
  const { kind, defaultConfigPath } = options;
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
    process.stdout.write(renderConfig(kind, minConfig(kind), 'min'));
    return 0;
  }
  if (flags.defaultconfig) {
    process.stdout.write(renderConfig(kind, defaultConfig(kind), 'default'));
    return 0;
  }
  const level = flags['log-level'];
  if (level !== undefined && !LOG_LEVELS.includes(level as LogLevel)) {
    process.stderr.write(`${kind}: --log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${level}"\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfigFile(kind, flags.config ?? defaultConfigPath);
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
