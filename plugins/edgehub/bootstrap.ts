/**
 * edgeHub's certificate manager (wire-cloud-edge §4.3, §4.5): decide whether the node needs a
 * certificate, bootstrap one with the join token, rotate it with the current certificate, and the
 * rotation schedule. Requests go through node:https exactly as a Go edgecore sends them: `GET` with
 * the CSR as body and an explicit Content-Length, `Nodename` header, no Accept header.
 *
 * @peculiar/x509 (for the CSR; CommonJS, needs reflect-metadata) is loaded only when a certificate
 * is requested.
 */
import {
  KeyObject,
  X509Certificate,
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { dirname } from 'node:path';
type CryptoKeyPair = webcrypto.CryptoKeyPair;
import {
  MAX_CERT_BODY_BYTES as MAX_BODY_BYTES,
  NODE_ORGANIZATION,
  nodeCommonName,
  x509,
} from '../../protocol/index.js';
import { errorText } from '../../kernel/index.js';
import {
  BootstrapError,
  caFetchError,
  caHashError,
  certHttpError,
  tokenFormatError,
  transportError,
} from './errors.js';

/** Where `keadm join` writes the token; its trimmed content overrides `edgeHub.token`. */
export const DEFAULT_BOOTSTRAP_FILE = '/etc/kubeedge/bootstrap-edgecore.conf';
/** The Go client's timeout for the cert server. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** A certificate with less validity left than this is renewed with the token. */
export const EXPIRY_MARGIN_MS = 10 * 60_000;

/** `edgeHub.tlsCaFile`, `tlsCertFile`, `tlsPrivateKeyFile`. */
export interface EdgeCertFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface IssuedCert {
  commonName: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * The token to bootstrap with: the whitespace-trimmed content of the bootstrap file when it exists,
 * else `edgeHub.token`.
 */
export async function resolveToken(
  configToken: string,
  bootstrapFile = DEFAULT_BOOTSTRAP_FILE,
): Promise<{ token: string; source: string }> {
  try {
    return { token: (await readFile(bootstrapFile, 'utf8')).trim(), source: bootstrapFile };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new BootstrapError(
        'EBOOTSTRAP_FILES',
        `cannot read the bootstrap file ${bootstrapFile}: ${errorText(err)}`,
      );
    }
    return { token: configToken, source: 'modules.edgeHub.token' };
  }
}

export type CertProblem = 'missing' | 'unloadable' | 'wrong-node' | 'stale' | 'expired' | 'expiring';

export type CertCheck = { ok: true; cert: IssuedCert } | { ok: false; problem: CertProblem; detail: string };

function commonNameOf(cert: X509Certificate): string {
  const line = cert.subject.split('\n').find((l) => l.startsWith('CN='));
  return line === undefined ? '' : line.slice(3);
}

function issued(cert: X509Certificate): IssuedCert {
  return {
    commonName: commonNameOf(cert),
    serial: cert.serialNumber,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

const spkiHex = (key: KeyObject): string => key.export({ type: 'spki', format: 'der' }).toString('hex');

/**
 * Does this node need a new certificate from the token? KubeEdge re-applies when the files do not
 * load or the CN is not `system:node:<node>`; this also catches an expired or nearly expired
 * certificate, one not issued by the CA in `caFile`, and a token whose caHash says the cloud's CA
 * changed (a stale certificate from an earlier cloudcore).
 */
export async function checkEdgeCert(
  files: EdgeCertFiles,
  nodeName: string,
  opts: { token?: string; now?: Date; expiryMarginMs?: number } = {},
): Promise<CertCheck> {
  const now = (opts.now ?? new Date()).getTime();
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(await readFile(files.certFile));
    key = createPrivateKey(await readFile(files.keyFile));
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    return {
      ok: false,
      problem: missing ? 'missing' : 'unloadable',
      detail: `${files.certFile} / ${files.keyFile}: ${errorText(err)}`,
    };
  }
  if (spkiHex(cert.publicKey) !== spkiHex(createPublicKey(key))) {
    return {
      ok: false,
      problem: 'unloadable',
      detail: `the key in ${files.keyFile} does not belong to ${files.certFile}`,
    };
  }
  const info = issued(cert);
  if (info.commonName !== nodeCommonName(nodeName)) {
    return {
      ok: false,
      problem: 'wrong-node',
      detail: `${files.certFile} is for CN=${info.commonName}, this node is ${nodeName} (CN=${nodeCommonName(nodeName)})`,
    };
  }
  if (now >= info.notAfter.getTime()) {
    return {
      ok: false,
      problem: 'expired',
      detail: `${files.certFile} expired at ${info.notAfter.toISOString()}`,
    };
  }
  if (info.notAfter.getTime() - now < (opts.expiryMarginMs ?? EXPIRY_MARGIN_MS)) {
    return {
      ok: false,
      problem: 'expiring',
      detail: `${files.certFile} expires at ${info.notAfter.toISOString()}`,
    };
  }
  let caDer: Buffer | undefined;
  try {
    caDer = Buffer.from(new X509Certificate(await readFile(files.caFile)).raw);
  } catch {
    caDer = undefined;
  }
  if (caDer === undefined) {
    return { ok: false, problem: 'stale', detail: `the CA file ${files.caFile} is missing or unreadable` };
  }
  const ca = new X509Certificate(caDer);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    return {
      ok: false,
      problem: 'stale',
      detail: `${files.certFile} was not issued by the CA in ${files.caFile}`,
    };
  }
  const tokenHash = opts.token?.split('.');
  if (tokenHash?.length === 4 && tokenHash[0] !== createHash('sha256').update(caDer).digest('hex')) {
    return {
      ok: false,
      problem: 'stale',
      detail: `the token is for another CA than ${files.caFile}: the cloud's CA changed since this certificate was issued`,
    };
  }
  return { ok: true, cert: info };
}

/** A new P-256 key and the CSR of §4.3 step 4: `C=CN, ST=Zhejiang, L=Hangzhou, O=system:nodes, CN=system:node:<node>`. */
export async function createCsr(nodeName: string): Promise<{ csr: Buffer; keyPem: string }> {
  const X = x509();
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const csr = await X.Pkcs10CertificateRequestGenerator.create({
    name: [
      { C: ['CN'] },
      { ST: ['Zhejiang'] },
      { L: ['Hangzhou'] },
      { O: [NODE_ORGANIZATION] },
      { CN: [nodeCommonName(nodeName)] },
    ],
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const keyPem = KeyObject.from(keys.privateKey).export({ type: 'sec1', format: 'pem' }).toString();
  return { csr: Buffer.from(csr.rawData), keyPem };
}

interface HttpsGet {
  url: string;
  headers?: Record<string, string | number>;
  body?: Buffer;
  /** PEM CA to verify the server (with hostname check); absent = no verification. */
  ca?: string;
  clientCert?: { cert: Buffer; key: Buffer };
  timeoutMs?: number;
}

/** One GET over node:https; the body (read up to 1 MiB) and status, or a mapped transport error. */
function httpsGet(opts: HttpsGet): Promise<{ status: number; body: Buffer }> {
  const url = new URL(opts.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method: 'GET',
        protocol: url.protocol,
        host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: url.port || 443,
        path: `${url.pathname}${url.search}`,
        headers: opts.headers ?? {},
        agent: false,
        minVersion: 'TLSv1.2',
        rejectUnauthorized: opts.ca !== undefined,
        ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
        ...(opts.clientCert ?? {}),
        signal: AbortSignal.timeout(opts.timeoutMs ?? REQUEST_TIMEOUT_MS),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            res.destroy();
            reject(
              new BootstrapError('EBOOTSTRAP_HTTP', `${opts.url} answered more than ${MAX_BODY_BYTES} bytes`),
            );
          } else chunks.push(chunk);
        });
        res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.once('error', (err) => reject(transportError(err, opts.url)));
      },
    );
    req.once('error', (err) => reject(transportError(err, opts.url)));
    req.end(opts.body);
  });
}

/** Write a PEM file atomically with the given mode, creating its directory. */
async function writePem(path: string, text: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, text, { mode });
  await rename(tmp, path);
}

function pemCert(der: Uint8Array): string {
  return new X509Certificate(der).toString();
}

interface CertRequest {
  httpServer: string;
  nodeName: string;
  caPem: string;
  authorization?: string;
  clientCert?: { cert: Buffer; key: Buffer };
  timeoutMs?: number;
}

/** §4.3 steps 4–6: a new key and CSR, `GET /edge.crt` with it, the issued certificate checked. */
async function requestCert(o: CertRequest): Promise<{ der: Buffer; keyPem: string }> {
  const { csr, keyPem } = await createCsr(o.nodeName);
  const url = `${o.httpServer.replace(/\/+$/, '')}/edge.crt`;
  const headers: Record<string, string | number> = { 'Content-Length': csr.length, Nodename: o.nodeName };
  if (o.authorization !== undefined) headers.Authorization = o.authorization;
  const res = await httpsGet({
    url,
    headers,
    body: csr,
    ca: o.caPem,
    clientCert: o.clientCert,
    timeoutMs: o.timeoutMs,
  });
  if (res.status !== 200)
    throw certHttpError(res.status, res.body.toString('utf8'), o.clientCert !== undefined);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(res.body);
  } catch (err) {
    throw new BootstrapError(
      'EBOOTSTRAP_BAD_CERT',
      `${url} answered 200 without a DER certificate: ${errorText(err)}`,
    );
  }
  const ca = new X509Certificate(o.caPem);
  if (spkiHex(cert.publicKey) !== spkiHex(createPublicKey(keyPem)) || !cert.verify(ca.publicKey)) {
    throw new BootstrapError(
      'EBOOTSTRAP_BAD_CERT',
      `${url} answered a certificate that is not for the key just generated or not signed by the CA`,
    );
  }
  return { der: res.body, keyPem };
}

async function store(files: EdgeCertFiles, der: Buffer, keyPem: string, caDer?: Buffer): Promise<void> {
  try {
    if (caDer !== undefined) await writePem(files.caFile, pemCert(caDer), 0o644);
    await writePem(files.keyFile, keyPem, 0o600);
    await writePem(files.certFile, pemCert(der), 0o644);
  } catch (err) {
    throw new BootstrapError(
      'EBOOTSTRAP_FILES',
      `failed to save the edge certificate files: ${errorText(err)}`,
    );
  }
}

export interface BootstrapOptions extends EdgeCertFiles {
  /** `edgeHub.httpServer`, e.g. `https://192.168.1.10:10002` */
  httpServer: string;
  nodeName: string;
  token: string;
  /** Where the token came from, for error messages. */
  tokenSource?: string;
  timeoutMs?: number;
}

/**
 * Token bootstrap (§4.3): fetch `/ca.crt` without verification, check the token's caHash against
 * the raw bytes, request a certificate, and store CA (0644), certificate (0644) and key (0600) as
 * PEM. Nothing is written unless the whole exchange succeeds.
 */
export async function bootstrap(o: BootstrapOptions): Promise<IssuedCert> {
  const base = o.httpServer.replace(/\/+$/, '');
  const caUrl = `${base}/ca.crt`;
  const parts = o.token.split('.');
  if (parts.length !== 4) throw tokenFormatError(o.token, o.tokenSource ?? 'modules.edgeHub.token');
  const ca = await httpsGet({ url: caUrl, timeoutMs: o.timeoutMs }).catch((err: unknown) => {
    throw err instanceof BootstrapError && err.code === 'EBOOTSTRAP_UNREACHABLE'
      ? err
      : caFetchError(caUrl, errorText(err));
  });
  if (ca.status !== 200)
    throw caFetchError(caUrl, `status ${ca.status}: ${ca.body.toString('utf8').slice(0, 200)}`);
  const caHash = createHash('sha256').update(ca.body).digest('hex');
  if (parts[0] !== caHash) throw caHashError(parts[0]!, caHash, caUrl);
  let caPem: string;
  try {
    caPem = pemCert(ca.body);
  } catch (err) {
    throw caFetchError(caUrl, `the body is not a DER certificate: ${errorText(err)}`);
  }
  const { der, keyPem } = await requestCert({
    httpServer: base,
    nodeName: o.nodeName,
    caPem,
    authorization: `Bearer ${parts.slice(1).join('.')}`,
    timeoutMs: o.timeoutMs,
  });
  await store(o, der, keyPem, ca.body);
  return issued(new X509Certificate(der));
}

export interface RotateOptions extends EdgeCertFiles {
  httpServer: string;
  nodeName: string;
  timeoutMs?: number;
}

/**
 * Rotation (§4.5): a new key and CSR sent with the current certificate as TLS client certificate
 * and no Authorization header; the new pair replaces the old one.
 */
export async function rotate(o: RotateOptions): Promise<IssuedCert> {
  let caPem: string;
  let clientCert: { cert: Buffer; key: Buffer };
  try {
    caPem = await readFile(o.caFile, 'utf8');
    clientCert = { cert: await readFile(o.certFile), key: await readFile(o.keyFile) };
  } catch (err) {
    throw new BootstrapError('EBOOTSTRAP_FILES', `cannot rotate: ${errorText(err)}`);
  }
  const { der, keyPem } = await requestCert({
    httpServer: o.httpServer,
    nodeName: o.nodeName,
    caPem,
    clientCert,
    timeoutMs: o.timeoutMs,
  });
  await store(o, der, keyPem);
  return issued(new X509Certificate(der));
}

/**
 * When to rotate: NotBefore + a uniformly jittered 70–90 % of the lifetime (KubeEdge's
 * `jitteryDuration`). `random` is in [0, 1).
 */
export function rotationDeadline(notBefore: Date, notAfter: Date, random = Math.random()): Date {
  const total = notAfter.getTime() - notBefore.getTime();
  return new Date(notBefore.getTime() + total * (0.7 + 0.2 * random));
}

/**
 * Delay before the next rotation attempt after `failures` failed ones: 2 s doubling with 10 %
 * jitter for the first 4 retries (KubeEdge's backoff of 5 steps), then every 32 s.
 */
export function rotationRetryDelayMs(failures: number, random = Math.random()): number {
  if (failures >= 5) return 32_000;
  return 2 ** failures * 1000 * (1 + 0.1 * random);
}
