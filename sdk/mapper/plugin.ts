/**
 * Running a mapper: in edgecore's process (or a child process) as a kernel plugin, or as a
 * standalone program that attaches to a running edgecore through its DMI socket. Same code.
 */
import { readFileSync } from 'node:fs';
import { ConfigToken, definePlugin, type PluginDefinition } from '../../kernel/index.js';
import { DefaultDmiSockDir, dmiSocketPath, mapperSocketPath } from '../../protocol/index.js';
import { Mapper } from './mapper.js';
import type { MapperLogger, ProtocolDriver } from './types.js';

/** Config section of a mapper plugin (`modules.<configKey>`). */
export interface MapperPluginConfig {
  enable: boolean;
  /** This mapper's DeviceMapperService socket; default `<dir of dmi.sock>/<protocol>.sock`. */
  socketPath?: string;
  /** edgecore's DMI socket; default from `modules.deviceTwin.dmiSockPath`. */
  edgecoreSock?: string;
  /** Device reconnect back-off, ms. */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  [key: string]: unknown;
}

export interface MapperPluginOptions {
  /** Module name, e.g. `mapper-modbus`. */
  name: string;
  /** Config key, e.g. `mapperModbus`. */
  configKey: string;
  version?: string;
  /** Creates the driver (import heavy protocol libraries inside). */
  driver: () => ProtocolDriver | Promise<ProtocolDriver>;
}

/** A kernel plugin that runs the mapper (in-process or with `runAs: process`). */
export function mapperPlugin(opts: MapperPluginOptions): PluginDefinition<MapperPluginConfig> {
  return definePlugin<MapperPluginConfig>({
    name: opts.name,
    group: 'mapper',
    configKey: opts.configKey,
    async start(ctx) {
      const driver = await opts.driver();
      let dmiSockPath: string | undefined;
      try {
        const loaded = ctx.services.get(ConfigToken).config as {
          modules?: { deviceTwin?: { dmiSockPath?: string } };
        };
        dmiSockPath = loaded.modules?.deviceTwin?.dmiSockPath;
      } catch {
        dmiSockPath = undefined;
      }
      const edgecoreSocket = ctx.config.edgecoreSock || dmiSocketPath(dmiSockPath);
      const socketPath = ctx.config.socketPath || mapperSocketPath(edgecoreSocket, driver.protocol);
      const mapper = await Mapper.start({
        name: opts.name,
        version: opts.version ?? '',
        driver,
        socketPath,
        edgecoreSocket,
        log: ctx.log,
        reconnect: {
          ...(ctx.config.reconnectInitialMs ? { initialMs: ctx.config.reconnectInitialMs } : {}),
          ...(ctx.config.reconnectMaxMs ? { maxMs: ctx.config.reconnectMaxMs } : {}),
        },
      });
      return { stop: () => mapper.stop() };
    },
  });
}

/** JSON-lines logger on stderr for standalone mappers. */
export function consoleLogger(
  name: string,
  level: 'debug' | 'info' | 'warn' | 'error' = 'info',
): MapperLogger {
  const order = { debug: 0, info: 1, warn: 2, error: 3 };
  const line =
    (lvl: keyof typeof order) =>
    (obj: object, msg?: string): void => {
      if (order[lvl] < order[level]) return;
      process.stderr.write(
        JSON.stringify({ level: lvl, time: Date.now(), mapper: name, ...obj, msg }) + '\n',
      );
    };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}

/** Settings of a standalone mapper (the KubeEdge mapper template's config.yaml keys). */
export interface StandaloneConfig {
  grpc_server?: { socket_path?: string };
  common?: {
    name?: string;
    version?: string;
    api_version?: string;
    protocol?: string;
    edgecore_sock?: string;
  };
  log_level?: 'debug' | 'info' | 'warn' | 'error';
}

/**
 * The main of a standalone mapper: `--config <config.yaml>` (KubeEdge template keys
 * `grpc_server.socket_path`, `common.name`, `common.edgecore_sock`), or flags `--socket`,
 * `--edgecore-sock`, `--name`. Stops on SIGTERM / SIGINT.
 */
export async function runStandalone(
  driver: ProtocolDriver,
  argv: readonly string[] = process.argv.slice(2),
): Promise<Mapper> {
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i >= 0) return argv[i + 1];
    const eq = argv.find((a) => a.startsWith(`--${name}=`));
    return eq?.slice(name.length + 3);
  };
  let cfg: StandaloneConfig = {};
  const file = flag('config');
  if (file) {
    const { parse } = await import('yaml');
    cfg = (parse(readFileSync(file, 'utf8')) ?? {}) as StandaloneConfig;
  }
  const name = flag('name') ?? cfg.common?.name ?? `${driver.protocol}-mapper`;
  const edgecoreSocket =
    flag('edgecore-sock') ?? cfg.common?.edgecore_sock ?? dmiSocketPath(DefaultDmiSockDir);
  const socketPath =
    flag('socket') ??
    cfg.grpc_server?.socket_path ??
    mapperSocketPath(dmiSocketPath(DefaultDmiSockDir), driver.protocol);
  const log = consoleLogger(
    name,
    (flag('log-level') as StandaloneConfig['log_level']) ?? cfg.log_level ?? 'info',
  );
  const mapper = await Mapper.start({
    name,
    version: cfg.common?.version ?? '',
    apiVersion: cfg.common?.api_version ?? 'v1beta1',
    driver,
    socketPath,
    edgecoreSocket,
    log,
  });
  // Stopping closes the sockets and timers, so the process then ends on its own.
  const shutdown = (): void => void mapper.stop();
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  return mapper;
}
