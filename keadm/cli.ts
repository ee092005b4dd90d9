/**
 * keadm's command line: `init`, `gettoken`, `join`, `reset` with KubeEdge's flag names, plus flags
 * for every path it writes (so nothing has to touch /etc or /var). Returns the exit code; never
 * exits the process.
 */
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { errorText, type KubeApi, type Logger } from '../kernel/index.js';
import { createLogger, LOG_LEVELS, type LogLevel } from '../kernel/log.js';
import { KUBEEDGE_VERSION, VERSION } from '../kernel/version.js';
import { getToken, init, kubeClient, resetCloud } from './cloud.js';
import {
  DEFAULT_CONFIG_DIR,
  DEFAULT_DATA_DIR,
  DEFAULT_RUN_DIR,
  DEFAULT_UNIT_DIR,
  keadmError,
  layout,
} from './common.js';
import { join } from './join.js';
import { stopService, type ServiceMode, type ServiceOptions } from './service.js';

/** Where the package's own files are (given by bin/keadm.ts, which knows where it was built). */
export interface KeadmDefaults {
  crdsDir: string;
  cloudcoreBin: string;
  edgecoreBin: string;
  /** `$HOME/.kube/config` (KubeEdge's default for --kube-config). */
  kubeConfig: string;
}

export interface KeadmIo {
  out(text: string): void;
  err(text: string): void;
}

const COMMON = `  --config-dir DIR          configuration, CA and certificates (default ${DEFAULT_CONFIG_DIR})
  --run-dir DIR             pid and log files when no systemd runs (default ${DEFAULT_RUN_DIR})
  --unit-dir DIR            systemd unit files (default ${DEFAULT_UNIT_DIR})
  --service MODE            auto (systemd when /run/systemd/system exists), systemd or process (default auto)
  --set PATH=VALUE          set a key of the written config, e.g. --set modules.edgeHub.heartbeat=10 (repeatable)
  --log-level LEVEL         ${LOG_LEVELS.join(', ')} (default warn)
  -h, --help                this help
`;

const HELP: Record<string, string> = {
  keadm: `keadm: install KubeEdge's cloudcore and edgecore (kubeedge-ts ${VERSION}, KubeEdge ${KUBEEDGE_VERSION})

Usage: keadm COMMAND [flags]

Commands:
  init      on the cloud: CRDs, PKI and token secrets, cloudcore.yaml, cloudcore started
  gettoken  on the cloud: print the token edge nodes join with
  join      on an edge node: check the cloud, write edgecore.yaml and the bootstrap file, start edgecore
  reset     undo init or join on this machine
  version   print the version

Run "keadm COMMAND --help" for a command's flags.
`,
  init: `Usage: keadm init --advertise-address IP[,IP...] [flags]

Creates the namespace kubeedge, KubeEdge's CRDs (devices, reliablesyncs, rules; waits until
Established), the secrets casecret, cloudcoresecret and tokensecret (kept when they exist), writes
DIR/config/cloudcore.yaml, and starts cloudcore (systemd unit, else a detached process), waiting
for its /readyz. Safe to run again.

Flags:
  --advertise-address IPS   addresses edge nodes reach cloudcore at (server certificate SANs); required
  --kube-config FILE        kubeconfig of the cluster (default $HOME/.kube/config)
  --crds-dir DIR            the CRD manifests to apply (default the package's crds/)
  --cloudcore-bin FILE      cloudcore's script (default the package's dist/bin/cloudcore.js)
${COMMON}`,
  gettoken: `Usage: keadm gettoken [--kube-config FILE]

Prints the join token (secret kubeedge/tokensecret, key tokendata).

Flags:
  --kube-config FILE        kubeconfig of the cluster (default $HOME/.kube/config)
  -h, --help                this help
`,
  join: `Usage: keadm join --cloudcore-ipport IP:PORT --token TOKEN [flags]

Checks first, and stops with the fix when: the token is not <caHash>.<header>.<payload>.<signature>
or has expired or belongs to another CA; the node name is already registered; the cloud's
certificate does not name IP; the clocks differ by more than a minute; --cgroupdriver differs from
the runtime's. Then writes DIR/config/edgecore.yaml and DIR/bootstrap-edgecore.conf (owner-only)
and starts edgecore (systemd unit, else a detached process), waiting for its /readyz.

Flags:
  --cloudcore-ipport IP:PORT        cloudcore's websocket address (cloudHub.websocket, port 10000); required
  --token TOKEN                     the output of "keadm gettoken" on the cloud; required
  --edgenode-name NAME              this node's name (default the host name)
  --certport PORT                   cloudcore's certificate server port (default 10002)
  --remote-runtime-endpoint URL     CRI endpoint (default unix:///run/containerd/containerd.sock)
  --cgroupdriver DRIVER             cgroupfs or systemd, as the runtime's (default cgroupfs)
  --data-dir DIR                    edgecore's database (default ${DEFAULT_DATA_DIR})
  --edgecore-bin FILE               edgecore's script (default the package's dist/bin/edgecore.js)
${COMMON}`,
  reset: `Usage: keadm reset [flags]

Stops the cloudcore and/or edgecore that init/join started here (unit or pid file), removes what
they wrote (DIR/config, DIR/ca, DIR/certs, DIR/bootstrap-edgecore.conf, the data dir, pid and log
files) and, on the cloud, deletes the secrets kubeedge/casecret, cloudcoresecret and tokensecret.
The namespace and the CRDs stay (KubeEdge deletes the whole kubeedge namespace).

Flags:
  --kube-config FILE        kubeconfig for the secrets (default: the one in cloudcore.yaml)
  --data-dir DIR            edgecore's database (default ${DEFAULT_DATA_DIR})
  --force                   accepted for KubeEdge compatibility (reset never asks)
${COMMON}`,
};

const FLAGS = {
  'advertise-address': { type: 'string' },
  'kube-config': { type: 'string' },
  'crds-dir': { type: 'string' },
  'cloudcore-bin': { type: 'string' },
  'edgecore-bin': { type: 'string' },
  'cloudcore-ipport': { type: 'string' },
  token: { type: 'string' },
  'edgenode-name': { type: 'string' },
  certport: { type: 'string' },
  'remote-runtime-endpoint': { type: 'string' },
  cgroupdriver: { type: 'string' },
  'config-dir': { type: 'string' },
  'data-dir': { type: 'string' },
  'run-dir': { type: 'string' },
  'unit-dir': { type: 'string' },
  service: { type: 'string' },
  set: { type: 'string', multiple: true },
  force: { type: 'boolean' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Flags each command takes (others are refused, naming the command's help). */
const ACCEPTS: Record<string, readonly (keyof typeof FLAGS)[]> = {
  init: ['advertise-address', 'kube-config', 'crds-dir', 'cloudcore-bin'],
  gettoken: ['kube-config'],
  join: [
    'cloudcore-ipport',
    'token',
    'edgenode-name',
    'certport',
    'remote-runtime-endpoint',
    'cgroupdriver',
    'data-dir',
    'edgecore-bin',
  ],
  reset: ['kube-config', 'data-dir', 'force'],
};
const SERVICE_FLAGS = ['config-dir', 'run-dir', 'unit-dir', 'service', 'set', 'log-level', 'help'] as const;

export async function runKeadm(
  argv: readonly string[],
  defaults: KeadmDefaults,
  io: KeadmIo,
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    io.out(HELP.keadm!);
    return command === undefined ? 2 : 0;
  }
  if (command === 'version' || command === '--version') {
    io.out(`keadm kubeedge-ts ${VERSION} (KubeEdge ${KUBEEDGE_VERSION})\n`);
    return 0;
  }
  const help = HELP[command];
  if (help === undefined) {
    io.err(`keadm: unknown command "${command}"\n\n${HELP.keadm}`);
    return 2;
  }
  let flags;
  try {
    flags = parseArgs({ args: [...rest], options: FLAGS, strict: true, allowPositionals: false }).values;
    const allowed = new Set<string>([
      ...ACCEPTS[command]!,
      ...(command === 'gettoken' ? ['help', 'log-level'] : SERVICE_FLAGS),
    ]);
    const extra = Object.keys(flags).find((f) => !allowed.has(f));
    if (extra !== undefined) throw new Error(`unknown flag --${extra} for "keadm ${command}"`);
  } catch (err) {
    io.err(`keadm ${command}: ${errorText(err)}\n\n${help}`);
    return 2;
  }
  if (flags.help) {
    io.out(help);
    return 0;
  }
  const level = (flags['log-level'] ?? 'warn') as LogLevel;
  if (!LOG_LEVELS.includes(level)) {
    io.err(`keadm ${command}: --log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${level}"\n`);
    return 2;
  }
  const log = createLogger(level, { component: 'keadm' });
  const say = (line: string): void => io.out(`${line}\n`);
  const required = (name: keyof typeof FLAGS): string => {
    const v = flags[name];
    if (typeof v !== 'string' || v === '') {
      throw keadmError('EKEADM_FLAG', `--${name} is required (see keadm ${command} --help)`);
    }
    return v;
  };
  const mode = flags.service ?? 'auto';
  // absolute: the started service must not depend on keadm's working directory
  const configDir = resolve(flags['config-dir'] ?? DEFAULT_CONFIG_DIR);
  let kube: KubeApi | undefined;
  try {
    if (!['auto', 'systemd', 'process'].includes(mode)) {
      throw keadmError('EKEADM_FLAG', `--service: expected auto, systemd or process, got "${mode}"`);
    }
    const service: ServiceOptions = {
      mode: mode as ServiceMode,
      runDir: resolve(flags['run-dir'] ?? DEFAULT_RUN_DIR),
      unitDir: resolve(flags['unit-dir'] ?? DEFAULT_UNIT_DIR),
    };
    const sets = flags.set ?? [];
    switch (command) {
      case 'gettoken':
        kube = kubeClient(flags['kube-config'] ?? defaults.kubeConfig, log);
        io.out(`${await getToken(kube)}\n`);
        break;
      case 'init': {
        const advertiseAddress = required('advertise-address')
          .split(',')
          .map((a) => a.trim())
          .filter((a) => a !== '');
        kube = kubeClient(flags['kube-config'] ?? defaults.kubeConfig, log);
        await init(
          kube,
          {
            advertiseAddress,
            kubeConfig: flags['kube-config'] ?? defaults.kubeConfig,
            configDir,
            crdsDir: flags['crds-dir'] ?? defaults.crdsDir,
            cloudcoreBin: resolve(flags['cloudcore-bin'] ?? defaults.cloudcoreBin),
            sets,
            service,
          },
          log,
          say,
        );
        break;
      }
      case 'join': {
        const certPort = Number(flags.certport ?? '10002');
        if (!Number.isInteger(certPort) || certPort < 1 || certPort > 65535) {
          throw keadmError('EKEADM_FLAG', `--certport: expected a port number, got "${flags.certport}"`);
        }
        await join(
          {
            cloudcoreIpPort: required('cloudcore-ipport'),
            token: required('token'),
            certPort,
            nodeName: flags['edgenode-name'] ?? hostname().toLowerCase(),
            runtimeEndpoint: flags['remote-runtime-endpoint'] ?? 'unix:///run/containerd/containerd.sock',
            cgroupDriver: flags.cgroupdriver ?? 'cgroupfs',
            configDir,
            dataDir: resolve(flags['data-dir'] ?? DEFAULT_DATA_DIR),
            edgecoreBin: resolve(flags['edgecore-bin'] ?? defaults.edgecoreBin),
            sets,
            service,
          },
          say,
        );
        break;
      }
      case 'reset':
        kube = await reset(
          flags['kube-config'],
          configDir,
          resolve(flags['data-dir'] ?? DEFAULT_DATA_DIR),
          service,
          log,
          say,
        );
        break;
    }
    return 0;
  } catch (err) {
    io.err(`keadm ${command}: ${errorText(err)}\n`);
    return 1;
  } finally {
    kube?.stop();
    log.flush();
  }
}

/** `keadm reset`: the cloud part when cloudcore.yaml is here, the edge part when edgecore.yaml is. */
async function reset(
  kubeConfigFlag: string | undefined,
  configDir: string,
  dataDir: string,
  service: ServiceOptions,
  log: Logger,
  say: (line: string) => void,
): Promise<KubeApi | undefined> {
  const files = layout(configDir);
  const cloudConfig = files.configFile('cloudcore');
  const edgeConfig = files.configFile('edgecore');
  let kube: KubeApi | undefined;
  if (existsSync(cloudConfig) || kubeConfigFlag !== undefined) {
    let kubeConfig = kubeConfigFlag;
    if (kubeConfig === undefined) {
      const parsed = parseYaml(readFileSync(cloudConfig, 'utf8')) as {
        kubeAPIConfig?: { kubeConfig?: unknown };
      };
      const k = parsed.kubeAPIConfig?.kubeConfig;
      kubeConfig = typeof k === 'string' && k !== '' ? k : undefined;
    }
    kube = kubeConfig === undefined ? undefined : kubeClient(kubeConfig, log);
    await resetCloud(kube, cloudConfig, service, say);
  }
  if (existsSync(edgeConfig) || existsSync(`${service.runDir}/edgecore.pid`)) {
    const stopped = await stopService('edgecore', service, edgeConfig);
    say(stopped === undefined ? 'edgecore was not running as a service' : `stopped edgecore (${stopped})`);
    await rm(dataDir, { recursive: true, force: true });
    await rm(`${service.runDir}/edgecore.log`, { force: true });
  }
  for (const path of files.owned) await rm(path, { recursive: true, force: true });
  say(`removed ${files.owned.join(', ')}`);
  return kube;
}
