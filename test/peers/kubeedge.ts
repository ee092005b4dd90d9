/**
 * The Go KubeEdge as a test peer: edgecore (and cloudcore) built from the
 * `github.com/kubeedge/kubeedge` Go module at the version pinned in `kubeedge/VERSION` (by
 * `kubeedge/build.sh`, once per version, into a cache outside the repository).
 *
 * {@link startGoEdgecore} runs a Go edgecore against a cloudcore (ours in the tests): edgeHub
 * bootstraps its certificate with a join token against the cloudcore's cert server, edged (an
 * embedded kubelet) runs pods on a private containerd ({@link ContainerdPeer}), edgeStream dials the
 * tunnel when asked. Everything it writes is in a temp dir of its own; it is stopped by pid. The
 * tests use it to check wire compatibility, the benchmarks to measure the Go figures side by side.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { parse, stringify } from 'yaml';
import { EdgedServerPort } from '../../protocol/stream.js';
import { PAUSE_IMAGE, type ContainerdPeer } from './containerd.js';
import {
  buildWithScript,
  freePort,
  peerAsset,
  requirePeer,
  run,
  spawnPeer,
  stopOnce,
  tempDir,
  waitFor,
  type Peer,
} from './util.js';

/** The KubeEdge version of the Go peer (`test/peers/kubeedge/VERSION`). */
export const KUBEEDGE_VERSION = readFileSync(peerAsset('kubeedge/VERSION'), 'utf8').trim();

let binaries: Promise<string> | undefined;

/**
 * Returns the directory holding `edgecore` and `cloudcore` at {@link KUBEEDGE_VERSION}, building
 * them first when the cache lacks them (`test/peers/kubeedge/build.sh`, with progress lines on
 * stderr). Rejects, naming the script and its last output, when the build fails. Once per process.
 */
export function kubeedgeBinaries(): Promise<string> {
  binaries ??= buildWithScript(peerAsset('kubeedge/build.sh'), `KubeEdge ${KUBEEDGE_VERSION} (Go)`);
  return binaries;
}

/** Options of {@link startGoEdgecore}. */
export interface GoEdgecoreOptions {
  /** The node's name (`edged.hostnameOverride`). */
  nodeName: string;
  /** cloudHub's websocket, `host:port`. */
  server: string;
  /** cloudHub's cert server, `https://host:port`. */
  httpServer: string;
  /** The join token (`keadm gettoken`); edgecore removes it from its config once it has a certificate. */
  token: string;
  /** The container runtime edged drives (its CRI endpoint and pod log directory). */
  containerd: ContainerdPeer;
  /**
   * edgeStream on, dialling cloudStream's tunnel at this `host:port`; default off. The cloud asks
   * for the kubelet API at KubeEdge's fixed `127.0.0.1:10350` (Go edgeStream dials the URL it is
   * given), so edged's read-only port is then 10350: the start waits (5 min at most) until no
   * other process holds it.
   */
  tunnelServer?: string;
  /**
   * KubeEdge's default module set: eventBus (its internal MQTT broker, on a free port) and
   * deviceTwin (its DMI socket in the temp dir) run too; default false (edgeHub, metaManager, edged
   * and edgeStream only).
   */
  defaultModules?: boolean;
  /** edgeHub's heartbeat in seconds (default 15, KubeEdge's). */
  heartbeat?: number;
  /** edged's `nodeStatusUpdateFrequency` in seconds (default 10, KubeEdge's). */
  nodeStatusUpdateFrequency?: number;
}

/** A running Go edgecore from {@link startGoEdgecore}. */
export interface GoEdgecore {
  readonly pid: number;
  /** Its temp dir: config, database, certificates, kubelet root. */
  readonly dir: string;
  /** The edgecore.yaml it runs with (edgecore rewrites it: version stamp, token removed). */
  readonly configPath: string;
  /** edged's kubelet read-only port on 127.0.0.1 (`/healthz`, `/pods`). */
  readonly readOnlyPort: number;
  /**
   * Resident memory of the process now, from /proc/PID/status, in kB: all of it (`VmRSS`), its
   * anonymous part (`RssAnon`: heap, stacks) and its file-backed part (`RssFile`: mostly the
   * binary's pages, shared and reclaimable).
   */
  memoryKb(): Promise<{ VmRSS: number; RssAnon: number; RssFile: number }>;
  /** Its recent log output (klog on stderr). */
  output(): string;
  /** Stops it by pid (SIGTERM, then SIGKILL) and removes its dir. */
  stop(): Promise<void>;
}

/** The parts of KubeEdge's edgecore.yaml (v1alpha2) that {@link startGoEdgecore} sets. */
interface EdgeCoreYaml {
  database: { dataSource: string };
  modules: Record<string, Record<string, unknown>>;
}

/**
 * Starts a Go edgecore (building it first if needed) in a temp dir, with KubeEdge's default
 * configuration (`edgecore --defaultconfig`) changed to: edgeHub, metaManager and edged (and
 * edgeStream, eventBus and deviceTwin when asked) only; every file under the temp dir; edged on
 * the given containerd with its read-only port on 127.0.0.1 (a free one, or 10350 with
 * edgeStream; Go edged needs one: it waits on its `/healthz/syncloop` before it syncs a pod), no
 * per-QoS cgroups and no iptables chains (nothing left on the machine). Resolves once edged's
 * `/healthz` answers from that port; the caller waits for the Node it registers.
 */
export async function startGoEdgecore(opts: GoEdgecoreOptions): Promise<GoEdgecore> {
  const unshare = requirePeer('unshare', 'util-linux');
  const edgecore = join(await kubeedgeBinaries(), 'edgecore');
  const dir = await tempDir(`go-edgecore-${opts.nodeName}`);
  const configPath = join(dir, 'edgecore.yaml');
  const readOnlyPort = opts.tunnelServer === undefined ? await freePort() : EdgedServerPort;
  const config = parse((await run(edgecore, ['--defaultconfig'])).stdout) as EdgeCoreYaml;
  const m = config.modules;
  config.database.dataSource = join(dir, 'edgecore.db');
  const certs = {
    ca: join(dir, 'ca/rootCA.crt'),
    cert: join(dir, 'certs/server.crt'),
    key: join(dir, 'certs/server.key'),
  };
  for (const name of ['eventBus', 'deviceTwin', 'serviceBus', 'taskManager', 'dbTest']) {
    m[name] = { ...m[name], enable: false };
  }
  if (opts.defaultModules) {
    // mqttMode 0: the broker inside edgecore
    m.eventBus = {
      ...m.eventBus,
      enable: true,
      mqttMode: 0,
      mqttServerInternal: `tcp://127.0.0.1:${await freePort()}`,
    };
    m.deviceTwin = { ...m.deviceTwin, enable: true, dmiSockPath: `${dir}/` };
  }
  m.metaManager = {
    ...m.metaManager,
    enable: true,
    metaServer: { ...obj(m.metaManager?.metaServer), enable: false },
  };
  m.edgeHub = {
    ...m.edgeHub,
    enable: true,
    heartbeat: opts.heartbeat ?? 15,
    httpServer: opts.httpServer,
    token: opts.token,
    tlsCaFile: certs.ca,
    tlsCertFile: certs.cert,
    tlsPrivateKeyFile: certs.key,
    quic: { ...obj(m.edgeHub?.quic), enable: false },
    websocket: { ...obj(m.edgeHub?.websocket), enable: true, server: opts.server },
  };
  m.edgeStream = {
    ...m.edgeStream,
    enable: opts.tunnelServer !== undefined,
    ...(opts.tunnelServer !== undefined && { server: opts.tunnelServer }),
    tlsTunnelCAFile: certs.ca,
    tlsTunnelCertFile: certs.cert,
    tlsTunnelPrivateKeyFile: certs.key,
  };
  const cri = opts.containerd.endpoint;
  m.edged = {
    ...m.edged,
    enable: true,
    hostnameOverride: opts.nodeName,
    nodeIP: '127.0.0.1',
    rootDirectory: join(dir, 'kubelet'),
    podSandboxImage: PAUSE_IMAGE,
    tailoredKubeletConfig: {
      ...obj(m.edged?.tailoredKubeletConfig),
      address: '127.0.0.1',
      readOnlyPort,
      containerRuntimeEndpoint: cri,
      imageServiceEndpoint: cri,
      podLogsDir: join(dir, 'pod-logs'),
      staticPodPath: join(dir, 'manifests'),
      volumePluginDir: join(dir, 'volume-plugins'),
      cgroupDriver: 'cgroupfs',
      cgroupsPerQOS: false,
      enforceNodeAllocatable: [],
      makeIPTablesUtilChains: false,
      ...(opts.nodeStatusUpdateFrequency !== undefined && {
        nodeStatusUpdateFrequency: `${opts.nodeStatusUpdateFrequency}s`,
      }),
    },
  };
  await writeFile(configPath, stringify(config), { mode: 0o600 });

  // edged's container manager sets kernel tunables on the host (vm.overcommit_memory=1,
  // kernel.panic=10, kernel.panic_on_oops=1, ...) unless they already read as it wants, and its
  // device manager makes its socket in /var/lib/kubelet/device-plugins whatever the root
  // directory: in a mount namespace of its own, those /proc/sys files are bind-mounted files with
  // its values and /var/lib/kubelet is a directory of the temp dir, so this shared machine keeps
  // its settings and files (only an empty /var/lib/kubelet is left, the mount point).
  for (const [name, value] of Object.entries(KUBELET_SYSCTLS)) {
    await mkdir(dirname(join(dir, 'sysctl', name)), { recursive: true });
    await writeFile(join(dir, 'sysctl', name), `${value}\n`);
  }
  const spawn = (): Promise<Peer> =>
    spawnPeer(
      unshare,
      [
        '--mount',
        '--propagation',
        'slave',
        'sh',
        '-ec',
        'dir=$1; shift; for f in $SYSCTLS; do mount --bind "$dir/sysctl/$f" "/proc/sys/$f"; done; ' +
          'mkdir -p /var/lib/kubelet "$dir/var-lib-kubelet"; mount --bind "$dir/var-lib-kubelet" /var/lib/kubelet; ' +
          'exec "$@"',
        'sh',
        dir,
        edgecore,
        '--config',
        configPath,
      ],
      {
        cwd: dir,
        name: `go-edgecore ${opts.nodeName}`,
        graceMs: 10_000,
        // edgecore refuses to start while a process named kubelet runs (another test's, say)
        env: {
          ...process.env,
          CHECK_EDGECORE_ENVIRONMENT: 'false',
          SYSCTLS: Object.keys(KUBELET_SYSCTLS).join(' '),
        },
      },
    );
  let peer: Peer | undefined;
  const stop = stopOnce(dir, async () => {
    await peer?.stop();
  });
  const name = `go-edgecore ${opts.nodeName}`;
  let exited = false;
  try {
    await waitFor(
      async () => {
        if (peer !== undefined && !peer.running()) {
          // 10350 taken by another test's edgecore between the check and edged's bind: again
          if (readOnlyPort !== EdgedServerPort || !peer.output().includes('bind: address already in use')) {
            exited = true;
            return true;
          }
          peer = undefined;
        }
        if (peer === undefined) {
          // another edgecore of a test running beside this one (ours defaults to 10350 too)
          if (readOnlyPort === EdgedServerPort && !(await canListen(readOnlyPort))) return false;
          peer = await spawn();
        }
        const res = await fetch(`http://127.0.0.1:${readOnlyPort}/healthz`, {
          signal: AbortSignal.timeout(2000),
        }).catch(() => undefined);
        // the answer must be edged's, not another process's on the same port
        return res?.status === 200 && (await listensOn(peer.pid, readOnlyPort));
      },
      {
        what: `${name}: edged's /healthz on 127.0.0.1:${readOnlyPort}`,
        timeoutMs: 300_000,
        intervalMs: 250,
        details: () => peer?.output().slice(-6_000) ?? '',
      },
    );
    if (exited) throw new Error(`${name} exited early; its output:\n${peer?.output().slice(-6_000) ?? ''}`);
  } catch (err) {
    await stop();
    throw err;
  }
  const running = peer as Peer;
  return {
    pid: running.pid,
    dir,
    configPath,
    readOnlyPort,
    memoryKb: () => memoryKb(running.pid, name),
    output: () => running.output(),
    stop,
  };
}

/** Options of {@link startGoTwinEdgecore}. */
export interface GoTwinEdgecoreOptions {
  /** The node's name (`edged.hostnameOverride`; edged itself is off). */
  nodeName: string;
  /** Device ids (`namespace/name`) in its `device` table before it starts (no attributes, no twins). */
  devices: readonly string[];
}

/** A running Go edgecore from {@link startGoTwinEdgecore}. */
export interface GoTwinEdgecore extends Omit<GoEdgecore, 'readOnlyPort'> {
  /** Its internal MQTT broker, `mqtt://127.0.0.1:PORT`. */
  readonly mqttUrl: string;
  /** Its SQLite database (deviceTwin's tables `device`, `device_attr`, `device_twin`). */
  readonly dataSource: string;
}

/**
 * Starts a Go edgecore (building it first if needed) in a temp dir, with KubeEdge's default
 * configuration changed to eventBus with its internal broker (`mqttMode: 0`, on a free loopback
 * port), deviceTwin and metaManager (metaServer off) only: no edgeHub, no edged, so no cloud and
 * no container runtime. Devices reach Go's deviceTwin from its database, loaded at start: edgecore
 * is started once so that it creates its tables, stopped, given `devices` in its `device` table,
 * and started again. Resolves once its broker listens.
 */
export async function startGoTwinEdgecore(opts: GoTwinEdgecoreOptions): Promise<GoTwinEdgecore> {
  const edgecore = join(await kubeedgeBinaries(), 'edgecore');
  const dir = await tempDir(`go-edgecore-${opts.nodeName}`);
  const configPath = join(dir, 'edgecore.yaml');
  const dataSource = join(dir, 'edgecore.db');
  const port = await freePort();
  const config = parse((await run(edgecore, ['--defaultconfig'])).stdout) as EdgeCoreYaml;
  config.database.dataSource = dataSource;
  const m = config.modules;
  for (const module of Object.keys(m)) m[module] = { ...m[module], enable: false };
  m.edged = { ...m.edged, hostnameOverride: opts.nodeName };
  m.metaManager = {
    ...m.metaManager,
    enable: true,
    metaServer: { ...obj(m.metaManager?.metaServer), enable: false },
  };
  m.eventBus = { ...m.eventBus, enable: true, mqttMode: 0, mqttServerInternal: `tcp://127.0.0.1:${port}` };
  m.deviceTwin = { ...m.deviceTwin, enable: true, dmiSockPath: join(dir, 'dmi.sock') };
  await writeFile(configPath, stringify(config), { mode: 0o600 });

  const name = `go-edgecore ${opts.nodeName}`;
  let peer: Peer | undefined;
  const stop = stopOnce(dir, async () => {
    await peer?.stop();
  });
  const start = async (): Promise<Peer> => {
    const p = await spawnPeer(edgecore, ['--config', configPath], {
      cwd: dir,
      name,
      graceMs: 10_000,
      env: { ...process.env, CHECK_EDGECORE_ENVIRONMENT: 'false' },
    });
    peer = p;
    await waitFor(async () => !p.running() || (await listensOn(p.pid, port)), {
      what: `${name}: its MQTT broker on 127.0.0.1:${port}`,
      timeoutMs: 60_000,
      details: () => p.output().slice(-6_000),
    });
    if (!p.running()) throw new Error(`${name} exited early; its output:\n${p.output().slice(-6_000)}`);
    return p;
  };
  try {
    await (await start()).stop();
    const db = new Database(dataSource);
    try {
      const insert = db.prepare(
        'INSERT INTO device (id, name, description, state, last_online) VALUES (?, ?, ?, ?, ?)',
      );
      db.transaction(() => {
        for (const id of opts.devices) insert.run(id, id.slice(id.indexOf('/') + 1), '', '', '');
      })();
    } finally {
      db.close();
    }
    await start();
  } catch (err) {
    await stop();
    throw err;
  }
  const running = peer as Peer;
  return {
    pid: running.pid,
    dir,
    configPath,
    mqttUrl: `mqtt://127.0.0.1:${port}`,
    dataSource,
    memoryKb: () => memoryKb(running.pid, name),
    output: () => running.output(),
    stop,
  };
}

/** `VmRSS`, `RssAnon` and `RssFile` of process `pid` now, from /proc/PID/status, in kB. */
async function memoryKb(
  pid: number,
  name: string,
): Promise<{ VmRSS: number; RssAnon: number; RssFile: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const value = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1];
    if (value === undefined) throw new Error(`${name}: no ${field} in /proc/${pid}/status`);
    return Number(value);
  };
  return { VmRSS: kb('VmRSS'), RssAnon: kb('RssAnon'), RssFile: kb('RssFile') };
}

/** What the kubelet's container manager wants in /proc/sys (Kubernetes' `setupKernelTunables`). */
const KUBELET_SYSCTLS: Readonly<Record<string, number>> = {
  'vm/overcommit_memory': 1,
  'vm/panic_on_oom': 0,
  'kernel/panic': 10,
  'kernel/panic_on_oops': 1,
  'kernel/keys/root_maxkeys': 1_000_000,
  'kernel/keys/root_maxbytes': 25_000_000,
};

/** True when process `pid` holds the listening socket of 127.0.0.1:`port` (/proc/net/tcp, its fds). */
async function listensOn(pid: number, port: number): Promise<boolean> {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = (await readFile('/proc/net/tcp', 'utf8'))
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1] === local && f[3] === '0A') // 0A: LISTEN
    .map((f) => `socket:[${f[9]}]`);
  if (inodes.length === 0) return false;
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    if (inodes.includes(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''))) return true;
  }
  return false;
}

/** True when a server can listen on 127.0.0.1:`port` now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function obj(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}

/** Options of {@link startGoCloudcore}. */
export interface GoCloudcoreOptions {
  /** Kubeconfig of its Kubernetes identity (the control plane's `cloudcore` one). */
  kubeconfig: string;
  /** The CA cloudHub signs edge certificates with (PEM certificate, PEM EC key): edges' tokens match it. */
  caFile: string;
  caKeyFile: string;
  /** cloudHub's websocket and cert server ports on 127.0.0.1. */
  wsPort: number;
  httpsPort: number;
  /**
   * cloudStream on: its tunnel server (edges' edgeStream dial it) and stream server (kube-apiserver's
   * kubelet requests; client certificates of `clusterCaFile`), both showing `certFile`/`keyFile`
   * (a server certificate of `caFile`).
   */
  stream?: {
    tunnelPort: number;
    streamPort: number;
    certFile: string;
    keyFile: string;
    clusterCaFile: string;
  };
}

/** A running Go cloudcore from {@link startGoCloudcore}. */
export interface GoCloudcore {
  readonly pid: number;
  /** Its temp dir: config, certificates. */
  readonly dir: string;
  /** Its recent log output (klog on stderr). */
  output(): string;
  /** Stops it by pid (SIGTERM, then SIGKILL) and removes its dir. */
  stop(): Promise<void>;
}

/**
 * Starts a Go cloudcore (building it first if needed) in a temp dir, with KubeEdge's default
 * configuration (`cloudcore --defaultconfig`) changed to: cloudHub on 127.0.0.1 (websocket and
 * cert server, no unix socket, no QUIC) with the given CA, edgeController and syncController
 * (and cloudStream when asked) only (no iptablesManager: it would write the host's iptables), its monitor server on a free
 * port. KubeEdge's CRDs (ObjectSyncs, Rules) must be in the cluster. Resolves once cloudHub
 * listens on both ports.
 */
export async function startGoCloudcore(opts: GoCloudcoreOptions): Promise<GoCloudcore> {
  const cloudcore = join(await kubeedgeBinaries(), 'cloudcore');
  const dir = await tempDir('go-cloudcore');
  const configPath = join(dir, 'cloudcore.yaml');
  const config = parse((await run(cloudcore, ['--defaultconfig'])).stdout) as {
    commonConfig: Record<string, unknown>;
    kubeAPIConfig: Record<string, unknown>;
    modules: Record<string, Record<string, unknown>>;
  };
  config.commonConfig.monitorServer = { bindAddress: `127.0.0.1:${await freePort()}` };
  config.kubeAPIConfig.kubeConfig = opts.kubeconfig;
  const m = config.modules;
  for (const name of Object.keys(m)) m[name] = { ...m[name], enable: false };
  m.edgeController = { ...m.edgeController, enable: true };
  m.syncController = { ...m.syncController, enable: true };
  m.cloudHub = {
    ...m.cloudHub,
    enable: true,
    advertiseAddress: ['127.0.0.1'],
    dnsNames: [],
    tlsCAFile: opts.caFile,
    tlsCAKeyFile: opts.caKeyFile,
    tlsCertFile: join(dir, 'certs/server.crt'),
    tlsPrivateKeyFile: join(dir, 'certs/server.key'),
    unixsocket: { ...obj(m.cloudHub?.unixsocket), enable: false },
    quic: { ...obj(m.cloudHub?.quic), enable: false },
    websocket: { ...obj(m.cloudHub?.websocket), enable: true, address: '127.0.0.1', port: opts.wsPort },
    https: { ...obj(m.cloudHub?.https), enable: true, address: '127.0.0.1', port: opts.httpsPort },
  };
  if (opts.stream) {
    const { tunnelPort, streamPort, certFile, keyFile, clusterCaFile } = opts.stream;
    m.cloudStream = {
      ...m.cloudStream,
      enable: true,
      tunnelPort,
      streamPort,
      tlsTunnelCAFile: opts.caFile,
      tlsTunnelCertFile: certFile,
      tlsTunnelPrivateKeyFile: keyFile,
      tlsStreamCAFile: clusterCaFile,
      tlsStreamCertFile: certFile,
      tlsStreamPrivateKeyFile: keyFile,
    };
  }
  await writeFile(configPath, stringify(config), { mode: 0o600 });
  const name = 'go-cloudcore';
  const peer = await spawnPeer(cloudcore, ['--config', configPath], { cwd: dir, name, graceMs: 10_000 });
  const stop = stopOnce(dir, () => peer.stop());
  try {
    let exited = false;
    await waitFor(
      async () => {
        if (!peer.running()) return (exited = true);
        return (await listensOn(peer.pid, opts.httpsPort)) && listensOn(peer.pid, opts.wsPort);
      },
      {
        what: `${name}: cloudHub listening on 127.0.0.1:${opts.wsPort} (websocket) and ${opts.httpsPort} (https)`,
        timeoutMs: 120_000,
        intervalMs: 250,
        details: () => peer.output().slice(-6_000),
      },
    );
    if (exited) throw new Error(`${name} exited early; its output:\n${peer.output().slice(-6_000)}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: peer.pid, dir, output: () => peer.output(), stop };
}
