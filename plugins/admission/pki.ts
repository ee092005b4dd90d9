/**
 * The webhooks' own PKI: a self-signed CA kept in the Secret `kubeedge/admissioncasecret` (made on
 * the first start, reused after, so a restart does not change the caBundle kube-apiserver trusts
 * more than needed), and a serving certificate for the advertised host, made at each start and
 * kept in memory only. ECDSA P-256, through @peculiar/x509 (loaded by `protocol`'s `x509()`).
 */
import { X509Certificate, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import type { V1Secret } from '@kubernetes/client-node';
import { KernelError, KubeApiError, errorText, type KubeApi, type Logger } from '../../kernel/index.js';
import { x509 } from '../../protocol/index.js';

export const CA_SECRET_NAMESPACE = 'kubeedge';
/** The Secret of the CA and its data keys (KubeEdge's key names for its own CA). */
export const CA_SECRET = { name: 'admissioncasecret', cert: 'cadata', key: 'cakeydata' } as const;
const CA_VALIDITY_DAYS = 3650;
const SERVING_VALIDITY_DAYS = 365;
const DAY_MS = 86_400_000;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A certificate (DER) and its private key (PKCS#8 DER). */
export interface CertPair {
  cert: Buffer;
  key: Buffer;
}

const serial = (): string => {
  const b = randomBytes(8);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
};

async function newKeys(): Promise<{ keys: webcrypto.CryptoKeyPair; pkcs8: Buffer }> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  return { keys, pkcs8: Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

/** A new self-signed CA. */
export async function createCa(now = new Date()): Promise<CertPair> {
  const X = x509();
  const { keys, pkcs8 } = await newKeys();
  const cert = await X.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=kubeedge-admission-ca',
    notBefore: now,
    notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new X.BasicConstraintsExtension(true, undefined, true),
      new X.KeyUsagesExtension(X.KeyUsageFlags.keyCertSign | X.KeyUsageFlags.cRLSign, true),
      await X.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: Buffer.from(cert.rawData), key: pkcs8 };
}

/** A serving certificate for `host` (an IP or a DNS name) signed by `ca`. */
export async function createServingCert(ca: CertPair, host: string, now = new Date()): Promise<CertPair> {
  const X = x509();
  const caCert = new X.X509Certificate(ca.cert);
  const signingKey = await webcrypto.subtle.importKey('pkcs8', ca.key, EC, false, ['sign']);
  const { keys, pkcs8 } = await newKeys();
  const ski = caCert.getExtension(X.SubjectKeyIdentifierExtension);
  const cert = await X.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${host}`,
    issuer: caCert.subject,
    notBefore: now,
    notAfter: new Date(now.getTime() + SERVING_VALIDITY_DAYS * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: signingKey as webcrypto.CryptoKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new X.BasicConstraintsExtension(false),
      new X.KeyUsagesExtension(X.KeyUsageFlags.digitalSignature | X.KeyUsageFlags.keyEncipherment, true),
      new X.ExtendedKeyUsageExtension([SERVER_AUTH]),
      new X.SubjectAlternativeNameExtension([{ type: isIP(host) === 0 ? 'dns' : 'ip', value: host }]),
      ...(ski === null ? [] : [new X.AuthorityKeyIdentifierExtension(ski.keyId)]),
    ],
  });
  return { cert: Buffer.from(cert.rawData), key: pkcs8 };
}

/** PEM of a certificate (DER). */
export const certPem = (der: Buffer): string => new X509Certificate(der).toString();
/** PEM of a private key (PKCS#8 DER). */
export const keyPem = (der: Buffer): string =>
  createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
    .export({ type: 'pkcs8', format: 'pem' })
    .toString();

function caFromSecret(secret: V1Secret): CertPair {
  const cert = secret.data?.[CA_SECRET.cert];
  const key = secret.data?.[CA_SECRET.key];
  const what = `secret ${CA_SECRET_NAMESPACE}/${CA_SECRET.name}`;
  if (cert === undefined || key === undefined) {
    throw new KernelError(
      'EADMISSION_PKI',
      `${what}: expected data keys ${CA_SECRET.cert} and ${CA_SECRET.key}; delete the secret to have a new CA made`,
    );
  }
  const pair = { cert: Buffer.from(cert, 'base64'), key: Buffer.from(key, 'base64') };
  try {
    const certKey = new X509Certificate(pair.cert).publicKey.export({ type: 'spki', format: 'der' });
    const ownKey = createPublicKey(createPrivateKey({ key: pair.key, format: 'der', type: 'pkcs8' }));
    if (!certKey.equals(ownKey.export({ type: 'spki', format: 'der' })))
      throw new Error('the key does not belong to the certificate');
  } catch (err) {
    throw new KernelError(
      'EADMISSION_PKI',
      `${what}: not a usable CA (${errorText(err)}); delete the secret to have a new CA made`,
    );
  }
  return pair;
}

const status = (err: unknown): number | undefined =>
  err instanceof KubeApiError ? err.statusCode : undefined;

/** The CA of the Secret, made and stored on the first start (a concurrent cloudcore's wins). */
export async function loadOrCreateCa(kube: KubeApi, log: Logger): Promise<CertPair> {
  const secrets = `/api/v1/namespaces/${CA_SECRET_NAMESPACE}/secrets`;
  const read = async (): Promise<V1Secret | undefined> => {
    try {
      return await kube.request<V1Secret>('GET', `${secrets}/${CA_SECRET.name}`);
    } catch (err) {
      if (status(err) === 404) return undefined;
      throw new KernelError(
        'EADMISSION_PKI',
        `cannot read secret ${CA_SECRET_NAMESPACE}/${CA_SECRET.name}: ${errorText(err)}`,
      );
    }
  };
  const existing = await read();
  if (existing !== undefined) return caFromSecret(existing);
  const ca = await createCa();
  const body: V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: CA_SECRET.name, namespace: CA_SECRET_NAMESPACE },
    type: 'Opaque',
    data: { [CA_SECRET.cert]: ca.cert.toString('base64'), [CA_SECRET.key]: ca.key.toString('base64') },
  };
  try {
    await kube.request('POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: CA_SECRET_NAMESPACE },
    });
  } catch (err) {
    if (status(err) !== 409 && status(err) !== 403) throw err; // 403: no right to create, it may exist
  }
  try {
    await kube.request('POST', secrets, body);
  } catch (err) {
    if (status(err) !== 409)
      throw new KernelError(
        'EADMISSION_PKI',
        `cannot create secret ${CA_SECRET_NAMESPACE}/${CA_SECRET.name}: ${errorText(err)}`,
      );
    const other = await read(); // another cloudcore made it first
    if (other !== undefined) return caFromSecret(other);
  }
  log.info({ secret: `${CA_SECRET_NAMESPACE}/${CA_SECRET.name}` }, 'admission: created the webhooks CA');
  return ca;
}
