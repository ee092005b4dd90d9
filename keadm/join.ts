/**
 * `keadm join`: the checks that catch what users of the notes tripped on, each failure saying its
 * fix, before anything is written; then edgecore.yaml, the bootstrap file, and edgecore started.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Document } from 'yaml';
import { parseConfig } from '../kernel/config/index.js';
import { errorText } from '../kernel/index.js';
import { CA_PATH, CHECK_NODE_PATH } from '../protocol/index.js';
import { edgeLayout } from '../plugins/registry.js';
import { CriClient } from '../plugins/edged/cri.js';
import { applySets, keadmError, layout, waitReady, writeOwnerOnly } from './common.js';
import { startService, type ServiceOptions } from './service.js';

/** Clock difference to the cloud beyond which join refuses (certificates would look not yet valid or expired). */
export const MAX_CLOCK_SKEW_MS = 60_000;
export const CGROUP_DRIVERS = ['cgroupfs', 'systemd'] as const;

export interface JoinOptions {
  cloudcoreIpPort: string;
  certPort: number;
  token: string;
  nodeName: string;
  runtimeEndpoint: string;
  cgroupDriver: string;
  configDir: string;
  dataDir: string;
  edgecoreBin: string;
  sets: string[];
  service: ServiceOptions;
}

/** The token's shape and expiry: `<caHash>.<header>.<payload>.<signature>`, `exp` in the future. */
export function checkToken(token: string, now = Date.now()): { caHash: string; exp?: number } {
  const parts = token.trim().split('.');
  if (parts.length !== 4 || !/^[0-9a-f]{64}$/.test(parts[0]!)) {
    // the notes' first error: the secret's base64 `data.tokendata` pasted as the token
    const decoded = Buffer.from(token.trim(), 'base64').toString('utf8').trim();
    if (/^[0-9a-f]{64}(\.[\w-]+){3}$/.test(decoded)) {
      throw keadmError(
        'EKEADM_TOKEN_FORMAT',
        'the token is in the wrong format: this is the base64 of the token, as the secret kubeedge/tokensecret stores it; ' +
          'fix: pass it decoded (base64 -d), or the line `keadm gettoken` prints, which is decoded already',
      );
    }
    throw keadmError(
      'EKEADM_TOKEN_FORMAT',
      `the token is in the wrong format: expected 4 parts <caHash>.<jwtHeader>.<jwtPayload>.<jwtSignature> ` +
        `(the first a 64-digit hex SHA-256), got ${parts.length} part(s); fix: pass the whole line \`keadm gettoken\` prints on the cloud`,
    );
  }
  let exp: unknown;
  try {
    exp = (JSON.parse(Buffer.from(parts[2]!, 'base64url').toString('utf8')) as { exp?: unknown }).exp;
  } catch {
    throw keadmError(
      'EKEADM_TOKEN_FORMAT',
      'the token is in the wrong format: its JWT payload is not base64url JSON; fix: pass the whole line `keadm gettoken` prints on the cloud',
    );
  }
  if (typeof exp === 'number' && exp * 1000 <= now) {
    throw keadmError(
      'EKEADM_TOKEN_EXPIRED',
      `the token expired at ${new Date(exp * 1000).toISOString()} (now ${new Date(now).toISOString()}); ` +
        'fix: get a fresh one with `keadm gettoken` on the cloud (cloudcore renews it every cloudHub.tokenRefreshDuration, 12 h by default; each lives twice that)',
    );
  }
  return { caHash: parts[0]!, exp: typeof exp === 'number' ? exp : undefined };
}

interface CertServerAnswer {
  status: number;
  body: Buffer;
  date: string | undefined;
  peer: X509Certificate | undefined;
}

/** One GET to the cert server, TLS not verified (as KubeEdge's keadm does for these calls). */
function get(host: string, port: number, path: string): Promise<CertServerAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host, port, path, method: 'GET', rejectUnauthorized: false, timeout: 10_000, agent: false },
      (res) => {
        const raw = (res.socket as TLSSocket).getPeerCertificate?.(false)?.raw;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks),
            date: res.headers.date,
            peer: raw === undefined ? undefined : new X509Certificate(raw),
          }),
        );
        res.once('error', reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.once('error', reject);
    req.end();
  });
}

/** Does the certificate name `host` (an IP SAN for an address, a DNS SAN for a name)? */
function certNames(cert: X509Certificate, host: string): boolean {
  return isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
}

/**
 * Ask the runtime for its cgroup driver: containerd's verbose CRI status carries its config, whose
 * runc options say `SystemdCgroup`. Undefined when it cannot tell.
 */
async function runtimeCgroupDriver(endpoint: string): Promise<string | undefined> {
  const cri = new CriClient({ runtimeEndpoint: endpoint, timeoutMs: 3000 });
  try {
    const status = await cri.status(true);
    const found = (value: unknown): boolean | undefined => {
      if (value === null || typeof value !== 'object') return undefined;
      for (const [k, v] of Object.entries(value)) {
        if (k === 'SystemdCgroup' && typeof v === 'boolean') return v;
        const inner = found(v);
        if (inner !== undefined) return inner;
      }
      return undefined;
    };
    for (const text of Object.values(status.info)) {
      try {
        const systemd = found(JSON.parse(text));
        if (systemd !== undefined) return systemd ? 'systemd' : 'cgroupfs';
      } catch {
        // not JSON
      }
    }
    return undefined;
  } finally {
    cri.close();
  }
}

/** Every check of join; throws the first failure, returns the warnings. */
export async function preflight(opts: JoinOptions, now = Date.now): Promise<string[]> {
  const warnings: string[] = [];
  const { caHash } = checkToken(opts.token, now());
  if (!(CGROUP_DRIVERS as readonly string[]).includes(opts.cgroupDriver)) {
    throw keadmError(
      'EKEADM_FLAG',
      `--cgroupdriver: expected cgroupfs or systemd, got "${opts.cgroupDriver}"`,
    );
  }
  const host = splitHostPort(opts.cloudcoreIpPort).host;
  const where = `https://${host}:${opts.certPort}`;
  let node: CertServerAnswer;
  let ca: CertServerAnswer;
  try {
    node = await get(host, opts.certPort, `${CHECK_NODE_PATH}${encodeURIComponent(opts.nodeName)}`);
    ca = await get(host, opts.certPort, CA_PATH);
  } catch (err) {
    throw keadmError(
      'EKEADM_CLOUD_UNREACHABLE',
      `cannot reach cloudcore's certificate server at ${where}: ${errorText(err)}; fix: check that cloudcore runs, ` +
        'that cloudHub.https is enabled on that port (--certport) and that no firewall blocks it',
    );
  }
  const cloudTime = node.date === undefined ? Number.NaN : Date.parse(node.date);
  const local = now();
  if (Number.isFinite(cloudTime) && Math.abs(cloudTime - local) > MAX_CLOCK_SKEW_MS + 1000) {
    throw keadmError(
      'EKEADM_CLOCK_SKEW',
      `this machine's clock says ${new Date(local).toISOString()} but the cloud's says ${new Date(cloudTime).toISOString()} ` +
        `(more than ${MAX_CLOCK_SKEW_MS / 1000} s apart): certificates would look expired or not yet valid; ` +
        'fix: synchronise the clocks (e.g. timedatectl set-ntp true, or chrony) on both machines',
    );
  }
  if (node.status === 200) {
    throw keadmError(
      'EKEADM_NODE_EXISTS',
      `node "${opts.nodeName}" is already registered in the cluster (${where}${CHECK_NODE_PATH}${opts.nodeName} answered 200); ` +
        `fix: choose another --edgenode-name, or remove the old node first (kubectl delete node ${opts.nodeName})`,
    );
  }
  if (node.status !== 404) {
    throw keadmError(
      'EKEADM_NODE_CHECK',
      `cannot check whether node "${opts.nodeName}" exists: ${where}${CHECK_NODE_PATH}${opts.nodeName} answered ` +
        `${node.status} ${node.body.toString('utf8').slice(0, 200)}; fix: see cloudcore's log`,
    );
  }
  if (ca.status === 200) {
    const served = createHash('sha256').update(ca.body).digest('hex');
    if (served !== caHash) {
      throw keadmError(
        'EKEADM_TOKEN_CA',
        `the token was made for another CA (its hash ${caHash.slice(0, 12)}..., the cloud's CA ${served.slice(0, 12)}...); ` +
          'fix: get the token from this cloud with `keadm gettoken`',
      );
    }
  }
  if (node.peer !== undefined && !certNames(node.peer, host)) {
    throw keadmError(
      'EKEADM_CLOUD_SAN',
      `the cloud's certificate does not name ${host} (it names: ${node.peer.subjectAltName ?? 'nothing'}), so edgecore's TLS check would fail; ` +
        `fix: on the cloud, add ${host} to the advertise addresses (keadm init --advertise-address ...,${host}), which reissues the certificate, or join with an address it names`,
    );
  }
  try {
    const driver = await runtimeCgroupDriver(opts.runtimeEndpoint);
    if (driver === undefined) {
      warnings.push(
        `the runtime at ${opts.runtimeEndpoint} does not say its cgroup driver: make sure it uses ${opts.cgroupDriver} (containerd: SystemdCgroup in config.toml)`,
      );
    } else if (driver !== opts.cgroupDriver) {
      throw keadmError(
        'EKEADM_CGROUP_DRIVER',
        `--cgroupdriver ${opts.cgroupDriver} does not match the runtime's (${driver} at ${opts.runtimeEndpoint}): pods would fail to start; ` +
          `fix: join with --cgroupdriver ${driver}, or change the runtime's (containerd: SystemdCgroup in config.toml) and restart it`,
      );
    }
  } catch (err) {
    if (err instanceof Error && 'code' in err && String(err.code).startsWith('EKEADM_')) throw err;
    warnings.push(
      `cannot ask the runtime at ${opts.runtimeEndpoint} for its cgroup driver (${errorText(err)}): make sure it runs and uses ${opts.cgroupDriver}`,
    );
  }
  return warnings;
}

export function splitHostPort(ipPort: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(ipPort);
  const port = m === null ? Number.NaN : Number(m[2]);
  if (m === null || !(port > 0 && port < 65536)) {
    throw keadmError(
      'EKEADM_FLAG',
      `--cloudcore-ipport: expected IP:PORT (e.g. 192.168.1.10:10000), got "${ipPort}"`,
    );
  }
  return { host: m[1]!, port };
}

/** `keadm join`: preflight, edgecore.yaml + bootstrap file, edgecore started. */
export async function join(opts: JoinOptions, say: (line: string) => void): Promise<void> {
  const { host } = splitHostPort(opts.cloudcoreIpPort);
  const files = layout(opts.configDir);
  const configFile = files.configFile('edgecore');
  const token = opts.token.trim();
  const doc = new Document({
    apiVersion: 'edgecore.config.kubeedge.io/v1alpha2',
    kind: 'EdgeCore',
    database: { dataSource: `${opts.dataDir}/edgecore.db` },
    modules: {
      edgeHub: {
        enable: true,
        httpServer: `https://${host.includes(':') ? `[${host}]` : host}:${opts.certPort}`,
        websocket: { enable: true, server: opts.cloudcoreIpPort },
        tlsCaFile: files.caFile,
        tlsCertFile: files.certFile,
        tlsPrivateKeyFile: files.keyFile,
        // also here: edgeHub reads the bootstrap file at KubeEdge's fixed path only; it empties this after use
        token,
      },
      edged: {
        hostnameOverride: opts.nodeName,
        tailoredKubeletConfig: {
          cgroupDriver: opts.cgroupDriver,
          containerRuntimeEndpoint: opts.runtimeEndpoint,
          imageServiceEndpoint: opts.runtimeEndpoint,
        },
      },
      deviceTwin: { dmiSockPath: `${opts.configDir}/` },
    },
  });
  applySets(doc, opts.sets);
  const text = doc.toString();
  const config = parseConfig(edgeLayout, text, configFile).config;

  for (const w of await preflight(opts)) say(`warning: ${w}`);
  say('pre-flight checks passed');

  await writeOwnerOnly(files.bootstrapFile, `${token}\n`);
  await writeOwnerOnly(configFile, text);
  say(`wrote ${configFile} and ${files.bootstrapFile}`);

  const started = await startService('edgecore', opts.edgecoreBin, configFile, opts.service);
  const health = config.kernel.health;
  if (health.enable) {
    await waitReady({
      what: 'edgecore',
      url: `http://${health.address}:${health.port}/readyz`,
      timeoutMs: 60_000,
      running: started.running,
      logHint: started.logHint,
    });
  }
  say(`edgecore started as ${started.how}`);
  say(`KubeEdge edgecore is running; node "${opts.nodeName}" joins the cluster once it has its certificate`);
}
