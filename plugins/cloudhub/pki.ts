/**
 * cloudcore's PKI (wire-cloud-edge §4.1): the KubeEdge CA, the cloudcore server certificate, the
 * certificates issued to edge nodes, and where they are kept (PEM files named in cloudcore.yaml, or
 * the secrets `kubeedge/casecret`, `cloudcoresecret`, `tokensecret` with KubeEdge's data keys).
 *
 * Everything is DER as KubeEdge keeps it: certificates as X.509 DER, generated keys as SEC1 DER
 * (`x509.MarshalECPrivateKey`). @peculiar/x509 (CommonJS, needs reflect-metadata) is loaded on the
 * first call, so importing this module costs nothing.
 */
import {
  KeyObject,
  X509Certificate,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import { isIP } from 'node:net';
import { chmod, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as X509Lib from '@peculiar/x509';
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
import { x509 } from '../../protocol/index.js';
import { KernelError, errorText, type Logger } from '../../kernel/index.js';

/** Namespace of KubeEdge's secrets. */
export const PKI_NAMESPACE = 'kubeedge';
/** Secret names and data keys, as KubeEdge's `pre_server.go` names them. */
export const CA_SECRET = { name: 'casecret', cert: 'cadata', key: 'cakeydata' } as const;
export const CLOUDCORE_SECRET = {
  name: 'cloudcoresecret',
  cert: 'cloudcoredata',
  key: 'cloudcorekeydata',
} as const;
export const TOKEN_SECRET = { name: 'tokensecret', key: 'tokendata' } as const;
export type PkiSecretName = typeof CA_SECRET.name | typeof CLOUDCORE_SECRET.name | typeof TOKEN_SECRET.name;

/** Validity of the CA and of the server certificate: KubeEdge's `year100` (100 × 364 days). */
export const CA_VALIDITY_DAYS = 36_400;
export const CA_SERIAL = 1024;
export const CA_COMMON_NAME = 'KubeEdge';
/** Go's `x509.ExtKeyUsage` numbers (the `ExtKeyUsages` request header) and their OIDs. */
export const EXT_KEY_USAGE_OIDS: Readonly<Record<number, string>> = {
  0: '2.5.29.37.0',
  1: '1.3.6.1.5.5.7.3.1',
  2: '1.3.6.1.5.5.7.3.2',
  3: '1.3.6.1.5.5.7.3.3',
  4: '1.3.6.1.5.5.7.3.4',
  5: '1.3.6.1.5.5.7.3.5',
  6: '1.3.6.1.5.5.7.3.6',
  7: '1.3.6.1.5.5.7.3.7',
  8: '1.3.6.1.5.5.7.3.8',
  9: '1.3.6.1.5.5.7.3.9',
  10: '1.3.6.1.4.1.311.10.3.3',
  11: '2.16.840.1.113730.4.1',
  12: '1.3.6.1.4.1.311.2.1.22',
  13: '1.3.6.1.4.1.311.61.1.1',
};
export const SERVER_AUTH = EXT_KEY_USAGE_OIDS[1]!;
export const CLIENT_AUTH = EXT_KEY_USAGE_OIDS[2]!;

const DAY_MS = 86_400_000;

export type PkiErrorCode = 'EPKI_FILE' | 'EPKI_KEY' | 'EPKI_STORE' | 'EPKI_CSR' | 'EPKI_SIGN';

/** A certificate and its private key, both DER. */
export interface KeyPairDer {
  cert: Buffer;
  key: Buffer;
}

/** What cloudHub serves with: the CA (signs edge certificates, keys the token) and its own pair. */
export interface CloudPki {
  ca: KeyPairDer;
  server: KeyPairDer;
}

/**
 * Where cloudcore keeps its PKI: KubeEdge's three secrets. A Kubernetes-backed store maps this to
 * `kubeedge/<name>` Opaque secrets; {@link FilePkiStore} keeps them in a directory.
 */
export interface PkiStore {
  /** The secret's data, or undefined when the secret does not exist. */
  get(name: PkiSecretName): Promise<Record<string, Buffer> | undefined>;
  /** Create or replace the secret (KubeEdge's `SaveSecret`). */
  put(name: PkiSecretName, data: Record<string, Buffer>): Promise<void>;
}

/**
 * A {@link PkiStore} on disk for tests and keadm: `<dir>/<secret>/<key>`, directories 0700, files
 * 0600, each file replaced atomically (written aside, then renamed).
 */
export class FilePkiStore implements PkiStore {
  constructor(readonly dir: string) {}

  async get(name: PkiSecretName): Promise<Record<string, Buffer> | undefined> {
    const folder = join(this.dir, name);
    let keys: string[];
    try {
      keys = (await readdir(folder)).filter((k) => !k.includes('.tmp-'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new KernelError('EPKI_STORE', `cannot read secret ${name} in ${folder}: ${errorText(err)}`);
    }
    const data: Record<string, Buffer> = {};
    for (const key of keys) data[key] = await readFile(join(folder, key));
    return data;
  }

  async put(name: PkiSecretName, data: Record<string, Buffer>): Promise<void> {
    const folder = join(this.dir, name);
    try {
      await mkdir(folder, { recursive: true, mode: 0o700 });
      await chmod(folder, 0o700); // also when it existed with a wider mode
      for (const [key, value] of Object.entries(data)) await writePrivateFile(join(folder, key), value);
      for (const old of await readdir(folder))
        if (!(old in data)) await rm(join(folder, old), { force: true });
    } catch (err) {
      throw new KernelError('EPKI_STORE', `cannot write secret ${name} in ${folder}: ${errorText(err)}`);
    }
  }
}

/** Write a file readable by its owner only, replacing any previous one atomically. */
export async function writePrivateFile(path: string, data: Buffer | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, data, { mode: 0o600 });
  await rename(tmp, path);
}

/** PEM text of DER bytes (`CERTIFICATE`, `EC PRIVATE KEY`, ...). */
export function toPem(label: string, der: Uint8Array): string {
  const lines =
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** The first PEM block of `text`: its label and the DER inside. */
export function fromPem(text: string, what: string): { label: string; der: Buffer } {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(text);
  if (m === null)
    throw new KernelError('EPKI_FILE', `${what}: no PEM block found (expected -----BEGIN ...-----)`);
  return { label: m[1]!, der: Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64') };
}

/** A private key from DER as KubeEdge stores it: SEC1 (generated), PKCS#8 or PKCS#1 (operator files). */
export function privateKeyFromDer(der: Buffer, what: string): KeyObject {
  for (const type of ['sec1', 'pkcs8', 'pkcs1'] as const) {
    try {
      return createPrivateKey({ key: der, format: 'der', type });
    } catch {
      // try the next encoding
    }
  }
  throw new KernelError('EPKI_KEY', `${what}: not a private key (expected SEC1, PKCS#8 or PKCS#1 DER)`);
}

const CURVES: Record<string, { namedCurve: string; hash: string }> = {
  prime256v1: { namedCurve: 'P-256', hash: 'SHA-256' },
  secp384r1: { namedCurve: 'P-384', hash: 'SHA-384' },
  secp521r1: { namedCurve: 'P-521', hash: 'SHA-512' },
};

/** The CA key as a WebCrypto signing key, with the hash Go would sign with. */
async function signingKey(
  der: Buffer,
): Promise<{ key: CryptoKey; algorithm: webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams }> {
  const key = privateKeyFromDer(der, 'CA key');
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const curve = CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
  if (key.asymmetricKeyType === 'ec' && curve !== undefined) {
    const alg = { name: 'ECDSA', namedCurve: curve.namedCurve };
    const imported = await webcrypto.subtle.importKey('pkcs8', pkcs8, alg, false, ['sign']);
    return { key: imported as CryptoKey, algorithm: { name: 'ECDSA', hash: curve.hash } };
  }
  if (key.asymmetricKeyType === 'rsa') {
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const imported = await webcrypto.subtle.importKey('pkcs8', pkcs8, alg, false, ['sign']);
    return { key: imported as CryptoKey, algorithm: alg };
  }
  throw new KernelError(
    'EPKI_KEY',
    `CA key type ${key.asymmetricKeyType ?? '?'} ${key.asymmetricKeyDetails?.namedCurve ?? ''} is not supported: use ECDSA (P-256/384/521) or RSA`,
  );
}

/** A new ECDSA P-256 key pair, and its private key as SEC1 DER. */
export async function generateP256(): Promise<{ keys: CryptoKeyPair; sec1: Buffer }> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const sec1 = KeyObject.from(keys.privateKey).export({ type: 'sec1', format: 'der' });
  return { keys, sec1 };
}

/** Go's `rand.Int(rand.Reader, MaxInt64)`: a random serial in [0, 2^63-1), hex. */
function randomSerial(): string {
  const bytes = randomBytes(8);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

/** The self-signed KubeEdge CA exactly as `x509_ca.go` makes it. */
export async function createCa(now = new Date()): Promise<KeyPairDer> {
  const X = x509();
  const { keys, sec1 } = await generateP256();
  const cert = await X.X509CertificateGenerator.createSelfSigned({
    serialNumber: CA_SERIAL.toString(16).padStart(4, '0'),
    name: [{ CN: [CA_COMMON_NAME] }],
    notBefore: now,
    notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new X.KeyUsagesExtension(
        X.KeyUsageFlags.digitalSignature | X.KeyUsageFlags.keyEncipherment | X.KeyUsageFlags.keyCertSign,
        true,
      ),
      new X.ExtendedKeyUsageExtension([SERVER_AUTH, CLIENT_AUTH]),
      new X.BasicConstraintsExtension(true, undefined, true),
      await X.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: Buffer.from(cert.rawData), key: sec1 };
}

/** What a certificate signed by the CA says (KubeEdge's `SignCerts`). */
export interface CertificateRequest {
  /** SubjectPublicKeyInfo DER of the key being certified. */
  publicKey: ArrayBuffer | Uint8Array;
  commonName: string;
  organization: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Extended key usage OIDs (at least one). */
  usages: string[];
  validityDays: number;
  now?: Date;
}

/**
 * Sign a certificate with the CA the way `x509_certs.go` does: random serial, NotBefore now,
 * KeyUsage digitalSignature+keyEncipherment (critical), the given ExtKeyUsages, AuthorityKeyId =
 * the CA's SubjectKeyId, SANs DNS then IP. Returns the certificate DER.
 */
export async function signCertificate(ca: KeyPairDer, req: CertificateRequest): Promise<Buffer> {
  if (req.commonName === '') throw new KernelError('EPKI_SIGN', 'must specify a CommonName');
  if (req.usages.length === 0) throw new KernelError('EPKI_SIGN', 'must specify at least one ExtKeyUsage');
  const X = x509();
  const caCert = new X.X509Certificate(ca.cert);
  const { key, algorithm } = await signingKey(ca.key);
  const now = req.now ?? new Date();
  const extensions: X509Lib.Extension[] = [
    new X.KeyUsagesExtension(X.KeyUsageFlags.digitalSignature | X.KeyUsageFlags.keyEncipherment, true),
    new X.ExtendedKeyUsageExtension(req.usages),
  ];
  const ski = caCert.getExtension(X.SubjectKeyIdentifierExtension);
  if (ski !== null) extensions.push(new X.AuthorityKeyIdentifierExtension(ski.keyId));
  const sans = [
    ...(req.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(req.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  if (sans.length > 0) extensions.push(new X.SubjectAlternativeNameExtension(sans));
  const subject: Record<string, string[]>[] = [];
  if (req.organization.length > 0) subject.push({ O: req.organization });
  subject.push({ CN: [req.commonName] });
  const cert = await X.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: caCert.subjectName,
    notBefore: now,
    notAfter: new Date(now.getTime() + req.validityDays * DAY_MS),
    publicKey: Buffer.from(
      req.publicKey instanceof ArrayBuffer ? new Uint8Array(req.publicKey) : req.publicKey,
    ),
    signingKey: key,
    signingAlgorithm: algorithm,
    extensions,
  });
  return Buffer.from(cert.rawData);
}

/** cloudcore's own server certificate (`CN=KubeEdge, O=KubeEdge`, serverAuth, SANs). */
export async function createServerCert(
  ca: KeyPairDer,
  sans: { advertiseAddress: string[]; dnsNames: string[] },
  now = new Date(),
): Promise<KeyPairDer> {
  for (const a of sans.advertiseAddress) {
    if (isIP(a) === 0) {
      throw new KernelError(
        'EPKI_SIGN',
        `cloudHub.advertiseAddress: "${a}" is not an IP address (DNS names go to cloudHub.dnsNames)`,
      );
    }
  }
  const { keys, sec1 } = await generateP256();
  const spki = await webcrypto.subtle.exportKey('spki', keys.publicKey);
  const cert = await signCertificate(ca, {
    publicKey: spki,
    commonName: CA_COMMON_NAME,
    organization: [CA_COMMON_NAME],
    dnsNames: sans.dnsNames,
    ipAddresses: sans.advertiseAddress,
    usages: [SERVER_AUTH],
    validityDays: CA_VALIDITY_DAYS,
    now,
  });
  return { cert, key: sec1 };
}

/** A PKCS#10 request as the cert server sees it. */
export interface ParsedCsr {
  commonName: string;
  organization: string[];
  dnsNames: string[];
  ipAddresses: string[];
  publicKey: ArrayBuffer;
}

/** Parse a DER CSR and check its self-signature (proof that the requester holds the key). */
export async function parseCsr(der: Buffer): Promise<ParsedCsr> {
  const X = x509();
  let csr: X509Lib.Pkcs10CertificateRequest;
  try {
    csr = new X.Pkcs10CertificateRequest(der);
  } catch (err) {
    throw new KernelError('EPKI_CSR', `failed to parse csr, err: ${errorText(err)}`);
  }
  if (!(await csr.verify().catch(() => false))) {
    throw new KernelError('EPKI_CSR', 'failed to parse csr, err: the CSR signature is invalid');
  }
  const san = csr.getExtension('2.5.29.17');
  const names = san === null ? [] : new X.SubjectAlternativeNameExtension(san.rawData).names.items;
  return {
    commonName: csr.subjectName.getField('CN')[0] ?? '',
    organization: csr.subjectName.getField('O'),
    dnsNames: names.filter((n) => n.type === 'dns').map((n) => n.value),
    ipAddresses: names.filter((n) => n.type === 'ip').map((n) => n.value),
    publicKey: csr.publicKey.rawData,
  };
}

/** The DNS names and IPs a certificate is valid for. */
export function certificateSans(certDer: Buffer): { dns: string[]; ip: string[] } {
  const dns: string[] = [];
  const ip: string[] = [];
  for (const entry of (new X509Certificate(certDer).subjectAltName ?? '').split(', ')) {
    if (entry.startsWith('DNS:')) dns.push(entry.slice(4));
    else if (entry.startsWith('IP Address:')) ip.push(entry.slice(11));
  }
  return { dns, ip };
}

/** The advertise addresses and DNS names the server certificate does not cover. */
export function missingSans(
  certDer: Buffer,
  want: { advertiseAddress: string[]; dnsNames: string[] },
): string[] {
  const have = certificateSans(certDer);
  const norm = (a: string): string => (isIP(a) === 6 ? new URL(`http://[${a}]`).hostname : a);
  const ips = new Set(have.ip.map(norm));
  return [
    ...want.advertiseAddress.filter((a) => !ips.has(norm(a))),
    ...want.dnsNames.filter((d) => !have.dns.includes(d)),
  ];
}

function sameKey(pair: KeyPairDer, what: string): void {
  let certKey: string;
  try {
    certKey = new X509Certificate(pair.cert).publicKey
      .export({ type: 'spki', format: 'der' })
      .toString('hex');
  } catch (err) {
    throw new KernelError('EPKI_FILE', `${what}: the certificate is not valid DER X.509: ${errorText(err)}`);
  }
  const key = createPublicKey(privateKeyFromDer(pair.key, what))
    .export({ type: 'spki', format: 'der' })
    .toString('hex');
  if (certKey !== key) {
    throw new KernelError('EPKI_KEY', `${what}: the private key does not belong to the certificate`);
  }
}

/**
 * A certificate and key from PEM files (`tlsCAFile`/`tlsCAKeyFile`, `tlsCertFile`/`tlsPrivateKeyFile`)
 * as DER; undefined when either file is not readable (KubeEdge then falls back to the secrets). The
 * key is kept as the DER inside its PEM block, as KubeEdge does (it keys the join token).
 */
export async function readPemPair(certFile?: string, keyFile?: string): Promise<KeyPairDer | undefined> {
  if (!certFile || !keyFile) return undefined;
  let certText: string;
  let keyText: string;
  try {
    certText = await readFile(certFile, 'utf8');
    keyText = await readFile(keyFile, 'utf8');
  } catch {
    return undefined;
  }
  const pair = { cert: fromPem(certText, certFile).der, key: fromPem(keyText, keyFile).der };
  sameKey(pair, `${certFile} + ${keyFile}`);
  return pair;
}

export interface PreparePkiOptions {
  store: PkiStore;
  /** cloudHub.tlsCAFile / tlsCAKeyFile / tlsCertFile / tlsPrivateKeyFile */
  files?: { caFile?: string; caKeyFile?: string; certFile?: string; keyFile?: string };
  advertiseAddress: string[];
  dnsNames: string[];
  log: Logger;
  now?: Date;
}

function fromSecret(data: Record<string, Buffer> | undefined, certKey: string, keyKey: string) {
  const cert = data?.[certKey];
  const key = data?.[keyKey];
  return cert !== undefined && key !== undefined && cert.length > 0 && key.length > 0
    ? { cert, key }
    : undefined;
}

function issuedBy(certDer: Buffer, caDer: Buffer): boolean {
  const cert = new X509Certificate(certDer);
  const ca = new X509Certificate(caDer);
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

/**
 * KubeEdge's `PrepareAllCerts`: the CA and the server pair from the PEM files if readable, else from
 * the secrets, else created and saved. Unlike KubeEdge, a stored server certificate that no longer
 * fits (another CA, expired, or missing an address of `advertiseAddress`/`dnsNames`) is replaced by
 * a new one from the same CA, so edges keep trusting it and a changed address needs no manual step.
 */
export async function preparePki(opts: PreparePkiOptions): Promise<CloudPki> {
  const { store, log } = opts;
  const files = opts.files ?? {};
  const now = opts.now ?? new Date();
  const sanWanted = { advertiseAddress: opts.advertiseAddress, dnsNames: opts.dnsNames };

  let ca = await readPemPair(files.caFile, files.caKeyFile);
  let caSource = 'files';
  if (ca === undefined) {
    ca = fromSecret(await store.get(CA_SECRET.name), CA_SECRET.cert, CA_SECRET.key);
    caSource = 'secret';
    if (ca !== undefined) sameKey(ca, `secret ${PKI_NAMESPACE}/${CA_SECRET.name}`);
  }
  if (ca === undefined) {
    ca = await createCa(now);
    caSource = 'created';
    log.info('no CA in files or secret: created a new KubeEdge CA');
  }
  if (caSource !== 'secret')
    await store.put(CA_SECRET.name, { [CA_SECRET.cert]: ca.cert, [CA_SECRET.key]: ca.key });

  let server = await readPemPair(files.certFile, files.keyFile);
  let serverSource = 'files';
  if (server !== undefined) {
    const missing = missingSans(server.cert, sanWanted);
    if (missing.length > 0) {
      log.warn(
        { file: files.certFile, missing },
        `the server certificate does not name ${missing.join(', ')}: edges dialing those addresses will fail the hostname check; reissue it with these SANs`,
      );
    }
  } else {
    server = fromSecret(await store.get(CLOUDCORE_SECRET.name), CLOUDCORE_SECRET.cert, CLOUDCORE_SECRET.key);
    serverSource = 'secret';
    if (server !== undefined) {
      sameKey(server, `secret ${PKI_NAMESPACE}/${CLOUDCORE_SECRET.name}`);
      const missing = missingSans(server.cert, sanWanted);
      const stale = !issuedBy(server.cert, ca.cert)
        ? 'it was signed by another CA'
        : new Date(new X509Certificate(server.cert).validTo).getTime() <= now.getTime()
          ? 'it has expired'
          : missing.length > 0
            ? `it does not name ${missing.join(', ')}`
            : undefined;
      if (stale !== undefined) {
        log.info(`replacing the stored cloudcore server certificate: ${stale}`);
        server = undefined;
      }
    }
  }
  if (server === undefined) {
    server = await createServerCert(ca, sanWanted, now);
    serverSource = 'created';
  }
  if (serverSource !== 'secret') {
    await store.put(CLOUDCORE_SECRET.name, {
      [CLOUDCORE_SECRET.cert]: server.cert,
      [CLOUDCORE_SECRET.key]: server.key,
    });
  }
  log.info({ ca: caSource, server: serverSource }, 'PKI ready');
  return { ca, server };
}

/** PEM text of a stored key pair for node:tls (`cert`, `key`). */
export function tlsPair(pair: KeyPairDer): { cert: string; key: string } {
  return {
    cert: toPem('CERTIFICATE', pair.cert),
    key: privateKeyFromDer(pair.key, 'key').export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}
