/**
 * `kubeAPIConfig` to what a request needs (client-go's `clientcmd.BuildConfigFromFlags`): the
 * kubeconfig's current context, `master` overriding its server, or the in-cluster ServiceAccount.
 * Read with the `yaml` package the kernel already holds, so the informers and requests of cloudcore
 * run without loading @kubernetes/client-node.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { requireCjs } from '../cjs.js';
import type { KubeAPIConfig } from '../config/index.js';
import { KernelError, errorText } from '../errors.js';

/** Where and how to reach kube-apiserver. */
export interface RestConfig {
  /** `https://host:port` (or http), without a trailing slash. */
  server: string;
  ca?: Buffer;
  insecureSkipTLSVerify: boolean;
  tlsServerName?: string;
  cert?: Buffer;
  key?: Buffer;
  /** A bearer token, or the file holding it (re-read each minute: ServiceAccount tokens rotate). */
  token?: string;
  tokenFile?: string;
  /** The file the settings came from, for messages. */
  source: string;
}

const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

interface NamedEntry<T> {
  name?: string;
  cluster?: T;
  user?: T;
  context?: T;
}

interface KubeconfigFile {
  'current-context'?: string;
  clusters?: NamedEntry<Record<string, unknown>>[];
  users?: NamedEntry<Record<string, unknown>>[];
  contexts?: NamedEntry<{ cluster?: string; user?: string }>[];
}

function configError(message: string): KernelError {
  return new KernelError('EKUBE_CONFIG', message);
}

/** Resolve `kubeAPIConfig`; throws `EKUBE_CONFIG` naming the field, the file and what is wrong. */
export function loadRestConfig(c: KubeAPIConfig): RestConfig {
  let rest: RestConfig;
  if (c.kubeConfig !== '') rest = fromKubeconfig(c.kubeConfig);
  else if (c.master !== '')
    rest = { server: c.master, insecureSkipTLSVerify: false, source: 'kubeAPIConfig.master' };
  else rest = inCluster();
  if (c.master !== '') rest.server = c.master;
  rest.server = rest.server.replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(rest.server)) {
    throw configError(
      `kubeAPIConfig: the server ${JSON.stringify(rest.server)} (${rest.source}) is not an http(s) URL`,
    );
  }
  return rest;
}

function inCluster(): RestConfig {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  if (host === undefined || port === undefined) {
    throw configError(
      'kubeAPIConfig: set kubeConfig (absolute path of a kubeconfig) or master; not running in a cluster either',
    );
  }
  const what = 'the in-cluster ServiceAccount';
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFile(join(IN_CLUSTER_DIR, 'ca.crt'), what),
    insecureSkipTLSVerify: false,
    tokenFile: join(IN_CLUSTER_DIR, 'token'),
    source: what,
  };
}

function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw configError(`${what}: cannot read ${path}: ${errorText(err)}`);
  }
}

function fromKubeconfig(file: string): RestConfig {
  const field = `kubeAPIConfig.kubeConfig (${file})`;
  let doc: KubeconfigFile;
  try {
    const { parse } = requireCjs('yaml') as typeof import('yaml');
    doc = (parse(readFileSync(file, 'utf8')) ?? {}) as KubeconfigFile;
  } catch (err) {
    throw configError(`${field}: cannot load: ${errorText(err)}`);
  }
  const contextName = doc['current-context'];
  const context = doc.contexts?.find((x) => x.name === contextName)?.context;
  if (!contextName || context === undefined) {
    throw configError(`${field}: current-context ${JSON.stringify(contextName ?? '')} names no context`);
  }
  const cluster = doc.clusters?.find((x) => x.name === context.cluster)?.cluster;
  if (cluster === undefined) throw configError(`${field}: context ${contextName} names no known cluster`);
  const user = doc.users?.find((x) => x.name === context.user)?.user ?? {};
  const base = dirname(file);
  const str = (o: Record<string, unknown>, key: string): string | undefined =>
    typeof o[key] === 'string' && o[key] !== '' ? o[key] : undefined;
  /** `<key>-data` (base64) or `<key>` (a file, relative to the kubeconfig). */
  const bytes = (o: Record<string, unknown>, key: string): Buffer | undefined => {
    const data = str(o, `${key}-data`);
    if (data !== undefined) return Buffer.from(data, 'base64');
    const path = str(o, key);
    return path === undefined
      ? undefined
      : readFile(isAbsolute(path) ? path : join(base, path), `${field} ${key}`);
  };
  for (const unsupported of ['exec', 'auth-provider', 'username']) {
    if (user[unsupported] !== undefined) {
      throw configError(
        `${field}: user ${context.user ?? ''} authenticates with "${unsupported}", which cloudcore does not support: ` +
          'use a client certificate or a (ServiceAccount) token',
      );
    }
  }
  const tokenFile = str(user, 'tokenFile');
  return {
    server: str(cluster, 'server') ?? '',
    ca: bytes(cluster, 'certificate-authority'),
    insecureSkipTLSVerify: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: str(cluster, 'tls-server-name'),
    cert: bytes(user, 'client-certificate'),
    key: bytes(user, 'client-key'),
    token: str(user, 'token'),
    tokenFile: tokenFile === undefined || isAbsolute(tokenFile) ? tokenFile : join(base, tokenFile),
    source: file,
  };
}
