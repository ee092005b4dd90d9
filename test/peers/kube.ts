/**
 * A real Kubernetes control plane for cloud tests: etcd, kube-apiserver and, when asked,
 * kube-controller-manager and kube-scheduler, all built from the `k8s.io/kubernetes` Go module at
 * the version pinned in `kube/VERSION` (by `kube/build.sh`, once per version, into a cache outside
 * the repository) and started on free loopback ports in a temp dir of their own, with a private
 * PKI made by openssl. Stopped by pid; the temp dir is removed.
 *
 * Besides the admin identity (`system:masters`), the control plane has a `cloudcore` identity: the
 * ServiceAccount `kubeedge/cloudcore` bound to KubeEdge's cloudcore ClusterRole
 * (`kube/cloudcore-rbac.yaml`), with a kubeconfig of its own.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createKubeApi } from '../../kernel/kube/index.js';
import type { KubeApi } from '../../kernel/kube/types.js';
import type { Logger } from '../../kernel/log.js';
import {
  buildWithScript,
  errorMessage,
  freePort,
  onCleanup,
  peerAsset,
  progress,
  removeTempDir,
  run,
  spawnPeer,
  tempDir,
  waitFor,
  type Peer,
} from './util.js';

/** The Kubernetes version the control plane is built at (`test/peers/kube/VERSION`). */
export const KUBE_VERSION = readFileSync(peerAsset('kube/VERSION'), 'utf8').trim();

/** Options of {@link startControlPlane}. */
export interface ControlPlaneOptions {
  /**
   * Also start kube-controller-manager and kube-scheduler (needed where pods are scheduled,
   * ServiceAccounts made, nodes' taints managed); default false. The control plane is then
   * ready only once the ServiceAccount `default/default` exists, so pods can be created at once.
   */
  withControllers?: boolean;
  /**
   * kube-controller-manager's `--node-monitor-grace-period` in seconds (default: its own, 50 s):
   * how long a node may stay silent before the node lifecycle controller marks it NotReady. Its
   * `--node-monitor-period` is then 1 s, so a test sees the change within a second of the grace.
   */
  nodeMonitorGracePeriodSeconds?: number;
}

/** Result of {@link ControlPlane.get}: the status and body of one API request. */
export interface ApiResponse {
  status: number;
  body: string;
}

/** A running control plane from {@link startControlPlane}. */
export interface ControlPlane {
  /** The Kubernetes version of the binaries (`/version`'s gitVersion). */
  readonly version: string;
  /** `https://127.0.0.1:PORT` of kube-apiserver. */
  readonly server: string;
  /** The control plane's temp dir (certificates, kubeconfigs, etcd data). */
  readonly dir: string;
  /** Directory of the built binaries (etcd, kube-apiserver, ..., kubectl). */
  readonly binDir: string;
  /** Admin kubeconfig (`/O=system:masters/CN=admin` client certificate). */
  readonly kubeconfigPath: string;
  /** Kubeconfig of the `cloudcore` identity (ServiceAccount kubeedge/cloudcore, token). */
  readonly cloudcoreKubeconfigPath: string;
  /** The cluster CA (EC P-256): it signs every certificate here, e.g. cloudcore's stream cert. */
  readonly caPath: string;
  readonly caKeyPath: string;
  /** Admin client certificate and key. */
  readonly adminCertPath: string;
  readonly adminKeyPath: string;
  /** Pids of the running processes by name (`etcd`, `kube-apiserver`, ...). */
  readonly pids: Readonly<Record<string, number>>;
  /**
   * Stops kube-apiserver (SIGTERM, by pid) and starts it again with the same flags on the same
   * etcd and port; resolves once its /readyz answers 200 again. The other processes keep running.
   */
  restartApiServer(): Promise<void>;
  /**
   * Runs the built kubectl with the admin kubeconfig (or `opts.kubeconfig`); resolves with its
   * stdout, rejects with its stderr when it exits non-zero. `opts.input` is piped to stdin
   * (`kubectl(['apply', '-f', '-'], { input: yaml })`).
   */
  kubectl(args: readonly string[], opts?: { input?: string; kubeconfig?: string }): Promise<string>;
  /** One GET as admin, without retries (so a 429 or 503 shows as such). */
  get(path: string): Promise<ApiResponse>;
  /**
   * Waits until each named CRD (`devices.devices.kubeedge.io`) is Established and a list of
   * each of its served versions answers 200: right after Established, lists answer 429 "storage is
   * (re)initializing" for a few seconds, which @kubernetes/client-node does not retry.
   */
  waitForCrds(names: readonly string[], timeoutMs?: number): Promise<void>;
  /** Recent log output of one process (`kube-apiserver`, ...). */
  output(name: string): string;
  /** Stops every process by pid (scheduler, controller-manager, apiserver, etcd) and removes the dir. */
  stop(): Promise<void>;
}

let binaries: Promise<string> | undefined;

/**
 * Returns the directory holding the control-plane binaries at {@link KUBE_VERSION}, building them
 * first when the cache lacks them (`test/peers/kube/build.sh`: about 1,300 CPU-seconds, with
 * progress lines on stderr). Rejects, naming the script and its last output, when the build fails.
 * Once per process.
 */
export function kubeBinaries(): Promise<string> {
  binaries ??= buildWithScript(
    peerAsset('kube/build.sh'),
    `the Kubernetes ${KUBE_VERSION} test control plane`,
  );
  return binaries;
}

/** Starts a control plane (building its binaries first if needed) and waits until it is ready. */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binDir = await kubeBinaries();
  const bin = (name: string): string => join(binDir, name);
  const started = Date.now();
  const seconds = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const dir = await tempDir('kubeedge-kube');
  const peers: Peer[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    unregister();
    for (const peer of [...peers].reverse()) await peer.stop();
    await removeTempDir(dir);
  };
  const unregister = onCleanup(stop);

  try {
    const port = distinctFreePorts();
    const [etcdPort, etcdPeerPort, apiPort] = [await port(), await port(), await port()];
    const server = `https://127.0.0.1:${apiPort}`;
    const pki = await makePki(dir);
    const kubeconfigPath = join(dir, 'admin.kubeconfig');
    await writeKubeconfig(kubeconfigPath, server, pki.ca, 'admin', {
      'client-certificate': pki.admin.cert,
      'client-key': pki.admin.key,
    });
    const adminTls = {
      ca: readFileSync(pki.ca),
      cert: readFileSync(pki.admin.cert),
      key: readFileSync(pki.admin.key),
    };
    const get = (path: string): Promise<ApiResponse> => httpsGet(server + path, adminTls);
    const start = async (name: string, args: string[], graceMs = 10_000): Promise<Peer> => {
      if (stopped) throw new Error(`control plane in ${dir} stopped while starting ${name}`);
      const peer = await spawnPeer(bin(name), args, { cwd: dir, name, graceMs });
      peers.push(peer);
      return peer;
    };
    const ready = async (peer: Peer, what: string, check: () => Promise<boolean>, timeoutMs = 60_000) => {
      await waitFor(
        async () => {
          if (!peer.running()) throw new Error(`${peer.name} exited early`);
          return check();
        },
        { what, timeoutMs, intervalMs: 200, details: () => peer.output().slice(-4_000) },
      );
      progress(`kube: ${peer.name} ready (${seconds()})`);
    };

    const etcdPeerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = await start('etcd', [
      '--name=kube-test',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${etcdPeerUrl}`,
      `--initial-advertise-peer-urls=${etcdPeerUrl}`,
      `--initial-cluster=kube-test=${etcdPeerUrl}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await ready(etcd, `etcd on ${etcdUrl}`, async () => {
      const res = await fetch(`${etcdUrl}/health`);
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    });

    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${pki.apiserver.cert}`,
      `--tls-private-key-file=${pki.apiserver.key}`,
      `--client-ca-file=${pki.ca}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.serviceAccountKey}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      // 127.0.0.1 cannot be an Endpoints address: without this it complains every 10 s
      '--endpoint-reconciler-type=none',
      // for `kubectl logs/exec` through an edge node's stream port (cloudcore's cloudStream)
      `--kubelet-client-certificate=${pki.kubeletClient.cert}`,
      `--kubelet-client-key=${pki.kubeletClient.key}`,
      '--kubelet-preferred-address-types=InternalIP',
      '--profiling=false',
    ];
    const startApiServer = async (): Promise<Peer> => {
      const apiserver = await start('kube-apiserver', apiserverArgs);
      await ready(
        apiserver,
        `kube-apiserver /readyz on ${server}`,
        async () => (await get('/readyz')).status === 200,
      );
      return apiserver;
    };
    await startApiServer();

    const kubectl = async (
      args: readonly string[],
      o: { input?: string; kubeconfig?: string } = {},
    ): Promise<string> =>
      (
        await run(bin('kubectl'), ['--kubeconfig', o.kubeconfig ?? kubeconfigPath, ...args], {
          input: o.input,
        })
      ).stdout;

    // The cloudcore identity: ServiceAccount + KubeEdge's ClusterRole, and a kubeconfig with its token.
    const cloudcoreIdentity = async (): Promise<string> => {
      await kubectl(['apply', '-f', peerAsset('kube/cloudcore-rbac.yaml')]);
      const token = (
        await kubectl(['create', 'token', 'cloudcore', '-n', 'kubeedge', '--duration=24h'])
      ).trim();
      const path = join(dir, 'cloudcore.kubeconfig');
      await writeKubeconfig(path, server, pki.ca, 'cloudcore', { token });
      return path;
    };

    const startControllers = async (): Promise<void> => {
      const [kcmPort, schedulerPort] = [await port(), await port()];
      const kcmKubeconfig = join(dir, 'controller-manager.kubeconfig');
      await writeKubeconfig(kcmKubeconfig, server, pki.ca, 'system:kube-controller-manager', {
        'client-certificate': pki.controllerManager.cert,
        'client-key': pki.controllerManager.key,
      });
      const schedulerKubeconfig = join(dir, 'scheduler.kubeconfig');
      await writeKubeconfig(schedulerKubeconfig, server, pki.ca, 'system:kube-scheduler', {
        'client-certificate': pki.scheduler.cert,
        'client-key': pki.scheduler.key,
      });
      const component = (kubeconfig: string, port: number, name: string): string[] => [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${port}`,
        `--cert-dir=${join(dir, name)}`,
      ];
      const kcm = await start('kube-controller-manager', [
        ...component(kcmKubeconfig, kcmPort, 'controller-manager'),
        `--service-account-private-key-file=${pki.serviceAccountKey}`,
        `--root-ca-file=${pki.ca}`,
        '--use-service-account-credentials=true',
        `--cluster-signing-cert-file=${pki.ca}`,
        `--cluster-signing-key-file=${pki.caKey}`,
        ...(opts.nodeMonitorGracePeriodSeconds === undefined
          ? []
          : [
              `--node-monitor-grace-period=${opts.nodeMonitorGracePeriodSeconds}s`,
              '--node-monitor-period=1s',
            ]),
      ]);
      const scheduler = await start(
        'kube-scheduler',
        component(schedulerKubeconfig, schedulerPort, 'scheduler'),
      );
      const healthz = (port: number) => async () =>
        (await httpsGet(`https://127.0.0.1:${port}/healthz`, { insecure: true })).status === 200;
      await Promise.all([
        ready(kcm, `kube-controller-manager /healthz on 127.0.0.1:${kcmPort}`, healthz(kcmPort)),
        ready(scheduler, `kube-scheduler /healthz on 127.0.0.1:${schedulerPort}`, healthz(schedulerPort)),
      ]);
      // Pods are refused until the ServiceAccount controller has made default/default.
      await waitFor(
        async () => (await get('/api/v1/namespaces/default/serviceaccounts/default')).status === 200,
        {
          what: 'ServiceAccount default/default (made by kube-controller-manager)',
          timeoutMs: 60_000,
          intervalMs: 200,
          details: () => kcm.output().slice(-4_000),
        },
      );
    };
    const [cloudcoreKubeconfigPath] = await Promise.all([
      cloudcoreIdentity(),
      opts.withControllers ? startControllers() : undefined,
    ]);
    progress(`kube: control plane ${KUBE_VERSION} ready on ${server} in ${seconds()}`);

    const byName = (name: string): Peer | undefined => peers.find((p) => p.name === name);
    return {
      version: KUBE_VERSION,
      server,
      dir,
      binDir,
      kubeconfigPath,
      cloudcoreKubeconfigPath,
      caPath: pki.ca,
      caKeyPath: pki.caKey,
      adminCertPath: pki.admin.cert,
      adminKeyPath: pki.admin.key,
      get pids() {
        return Object.fromEntries(peers.map((p) => [p.name, p.pid]));
      },
      async restartApiServer() {
        const old = byName('kube-apiserver');
        if (!old) throw new Error(`control plane in ${dir}: kube-apiserver is not running`);
        await old.stop();
        peers.splice(peers.indexOf(old), 1);
        progress('kube: kube-apiserver stopped; starting it again');
        const fresh = await startApiServer();
        // back in its place: stop() ends the controllers before it, etcd after it
        peers.splice(peers.indexOf(fresh), 1);
        peers.splice(1, 0, fresh);
      },
      kubectl,
      get,
      waitForCrds: (names, timeoutMs = 60_000) => waitForCrds(get, names, timeoutMs),
      output: (name) => byName(name)?.output() ?? '',
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A source of free loopback ports that never gives the same port twice. */
function distinctFreePorts(): () => Promise<number> {
  const used = new Set<number>();
  return async () => {
    let port = await freePort();
    while (used.has(port)) port = await freePort();
    used.add(port);
    return port;
  };
}

interface CustomResourceDefinition {
  spec: { group: string; names: { plural: string }; versions: { name: string; served: boolean }[] };
  status?: { conditions?: { type: string; status: string }[] };
}

async function waitForCrds(
  get: (path: string) => Promise<ApiResponse>,
  names: readonly string[],
  timeoutMs: number,
): Promise<void> {
  await Promise.all(
    names.map(async (name) => {
      let crd: CustomResourceDefinition | undefined;
      await waitFor(
        async () => {
          const res = await get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
          if (res.status !== 200) throw new Error(`GET CRD ${name}: ${res.status} ${res.body.slice(0, 200)}`);
          crd = JSON.parse(res.body) as CustomResourceDefinition;
          return (
            crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false
          );
        },
        { what: `CRD ${name} Established`, timeoutMs, intervalMs: 200 },
      );
      const { group, names: crdNames, versions } = (crd as CustomResourceDefinition).spec;
      for (const version of versions.filter((v) => v.served)) {
        const path = `/apis/${group}/${version.name}/${crdNames.plural}?limit=1`;
        await waitFor(
          async () => {
            const res = await get(path);
            if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${res.body.slice(0, 200)}`);
            return true;
          },
          {
            what: `a list of ${crdNames.plural}.${group}/${version.name} to answer 200`,
            timeoutMs,
            intervalMs: 200,
          },
        );
      }
    }),
  );
}

/** Paths of a certificate and its key. */
interface CertFiles {
  cert: string;
  key: string;
}

interface Pki {
  ca: string;
  caKey: string;
  apiserver: CertFiles;
  admin: CertFiles;
  controllerManager: CertFiles;
  scheduler: CertFiles;
  kubeletClient: CertFiles;
  serviceAccountKey: string;
}

/**
 * The control plane's PKI, made with the openssl CLI: one EC P-256 CA, kube-apiserver's serving
 * certificate (SANs 127.0.0.1, the first service IP and the `kubernetes` service names), client
 * certificates of admin (system:masters), the controller-manager, the scheduler and apiserver's
 * kubelet client, and an RSA 2048 ServiceAccount signing key.
 */
async function makePki(dir: string): Promise<Pki> {
  const pki = join(dir, 'pki');
  const file = (name: string): string => join(pki, name);
  const config = file('openssl.cnf');
  await run('mkdir', ['-m', '0700', pki]);
  await writeFile(
    config,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      'CN = unused',
      '[ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign, digitalSignature',
      'subjectKeyIdentifier = hash',
      '[server]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature, keyEncipherment',
      'extendedKeyUsage = serverAuth',
      'authorityKeyIdentifier = keyid',
      'subjectAltName = IP:127.0.0.1, IP:10.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, ' +
        'DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local',
      '[client]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature, keyEncipherment',
      'extendedKeyUsage = clientAuth',
      'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'),
  );
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = file('ca.crt');
  const caKey = file('ca.key');
  await run('openssl', [
    ...['req', '-x509', ...ec, '-keyout', caKey, '-out', ca, '-subj', '/CN=kubeedge-ts-test-ca'],
    ...['-days', '3650', '-sha256', '-config', config, '-extensions', 'ca'],
  ]);
  const leaf = async (name: string, subject: string, extensions: 'server' | 'client'): Promise<CertFiles> => {
    const files = { cert: file(`${name}.crt`), key: file(`${name}.key`) };
    const csr = file(`${name}.csr`);
    await run('openssl', [
      'req',
      '-new',
      ...ec,
      '-keyout',
      files.key,
      '-out',
      csr,
      '-subj',
      subject,
      '-config',
      config,
    ]);
    await run('openssl', [
      ...['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-out', files.cert],
      ...['-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '365', '-sha256'],
      ...['-extfile', config, '-extensions', extensions],
    ]);
    return files;
  };
  const serviceAccountKey = file('service-account.key');
  const [apiserver, admin, controllerManager, scheduler, kubeletClient] = await Promise.all([
    leaf('apiserver', '/CN=kube-apiserver', 'server'),
    leaf('admin', '/O=system:masters/CN=admin', 'client'),
    leaf('controller-manager', '/CN=system:kube-controller-manager', 'client'),
    leaf('scheduler', '/CN=system:kube-scheduler', 'client'),
    leaf('apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', 'client'),
    run('openssl', [
      'genpkey',
      '-algorithm',
      'RSA',
      '-pkeyopt',
      'rsa_keygen_bits:2048',
      '-out',
      serviceAccountKey,
    ]),
  ]);
  return { ca, caKey, apiserver, admin, controllerManager, scheduler, kubeletClient, serviceAccountKey };
}

/** Writes a kubeconfig for one user of the control plane (files by path, not embedded). */
async function writeKubeconfig(
  path: string,
  server: string,
  caPath: string,
  user: string,
  credentials: Record<string, string>,
): Promise<void> {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'kubeedge-ts-test', cluster: { server, 'certificate-authority': caPath } }],
    users: [{ name: user, user: credentials }],
    contexts: [{ name: user, context: { cluster: 'kubeedge-ts-test', user } }],
    'current-context': user,
  };
  await writeFile(path, stringify(config), { mode: 0o600 });
}

/** One HTTPS GET with TLS options; resolves with status and body (never rejects on a status). */
export function httpsGet(
  url: string,
  tls: { ca?: string | Buffer; cert?: Buffer; key?: Buffer; insecure?: boolean },
): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: 'GET',
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        rejectUnauthorized: !tls.insecure,
        timeout: 10_000,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in 10 s`)));
    req.on('error', (err) => reject(new Error(`GET ${url}: ${errorMessage(err)}`)));
    req.end();
  });
}

/** The kernel's Kubernetes service for the control plane's `cloudcore` identity (client-go's default rate). */
export function cloudcoreKube(plane: ControlPlane, log: Logger): KubeApi {
  return createKubeApi(
    { master: '', contentType: '', qps: 0, burst: 0, kubeConfig: plane.cloudcoreKubeconfigPath },
    log,
  );
}
