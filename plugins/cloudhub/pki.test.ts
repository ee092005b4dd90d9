import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../kernel/log.js';
import { cleanup, requirePeer, tempDir } from '../../test/peers/util.js';
import {
  CA_SECRET,
  CLIENT_AUTH,
  CLOUDCORE_SECRET,
  FilePkiStore,
  TOKEN_SECRET,
  createCa,
  createServerCert,
  missingSans,
  parseCsr,
  preparePki,
  signCertificate,
  toPem,
  type KeyPairDer,
} from './pki.js';
import { createToken, hashCa, startTokenRefresh, verifyAuthorization, verifyJwt } from './token.js';

afterAll(cleanup);

const openssl = requirePeer('openssl');
const log = createLogger('silent');
const DAY = 86_400_000;

/** `openssl <args>` with DER input on stdin; its text output. */
function ssl(args: string[], input: Buffer): string {
  return execFileSync(openssl, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'ignore'] });
}
const certText = (der: Buffer): string => ssl(['x509', '-inform', 'DER', '-noout', '-text'], der);

/** A Go cloudcore's CA as served at /ca.crt in the recorded v1.23.1 session. */
function goCaDer(): Buffer {
  const lines = readFileSync(
    join(import.meta.dirname, '../../test/fixtures/kubeedge/kubeedge-v1.23-cloud-edge-session.jsonl'),
    'utf8',
  ).split('\n');
  const res = lines
    .map((l) => (l ? JSON.parse(l) : {}))
    .find((o) => o.kind === 'https-response' && o.req === 1);
  return Buffer.from(res.body_b64, 'base64');
}

/** openssl's text with the per-certificate values (keys, ids, dates, signatures) blanked. */
function shape(text: string): string {
  return text
    .replace(/(pub:|Signature Value:)\n(\s+[0-9a-f:]+\n)+/g, '$1 …\n')
    .replace(/([0-9A-F]{2}:){19}[0-9A-F]{2}/g, 'KEYID')
    .replace(/Not (Before|After) ?: .*/g, 'Not $1: DATE');
}

describe('CA and server certificate (§4.1)', () => {
  let ca: KeyPairDer;

  it('creates the CA exactly as a Go cloudcore does', async () => {
    const now = new Date('2026-11-28T08:01:34Z');
    ca = await createCa(now);
    const text = certText(ca.cert);
    expect(text).toContain('Serial Number: 1024 (0x400)');
    expect(text).toContain('Issuer: CN = KubeEdge');
    expect(text).toContain('Subject: CN = KubeEdge');
    expect(text).toContain('Not Before: Nov 28 08:01:34 2026 GMT');
    expect(text).toContain('Not After : Jul 27 08:01:34 2126 GMT'); // now + 36 400 days
    expect(text).toMatch(/Key Usage: critical\n\s+Digital Signature, Key Encipherment, Certificate Sign/);
    expect(text).toMatch(
      /Extended Key Usage: \n\s+TLS Web Server Authentication, TLS Web Client Authentication/,
    );
    expect(text).toMatch(/Basic Constraints: critical\n\s+CA:TRUE\n/);
    expect(text).toContain('ASN1 OID: prime256v1');
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    // the same structure, field for field, as the CA a real cloudcore v1.23.1 made
    expect(shape(text)).toBe(shape(certText(goCaDer())));
    // the key is SEC1 DER (x509.MarshalECPrivateKey) and belongs to the certificate
    const key = ssl(['ec', '-inform', 'DER', '-noout', '-text'], ca.key);
    expect(key).toContain('ASN1 OID: prime256v1');
    expect(createPrivateKey({ key: ca.key, format: 'der', type: 'sec1' }).asymmetricKeyType).toBe('ec');
  });

  it('issues the server certificate with SANs from advertiseAddress and dnsNames', async () => {
    const server = await createServerCert(ca, {
      advertiseAddress: ['127.0.0.1', '10.8.30.38'],
      dnsNames: ['cloud.example'],
    });
    const text = certText(server.cert);
    expect(text).toContain('Subject: O = KubeEdge, CN = KubeEdge');
    expect(text).toContain('Issuer: CN = KubeEdge');
    expect(text).toMatch(/Key Usage: critical\n\s+Digital Signature, Key Encipherment\n/);
    expect(text).toMatch(/Extended Key Usage: \n\s+TLS Web Server Authentication\n/);
    expect(text).toMatch(
      /Subject Alternative Name: \n\s+DNS:cloud.example, IP Address:127.0.0.1, IP Address:10.8.30.38\n/,
    );
    expect(text).toMatch(/Authority Key Identifier: \n/);
    const x = new X509Certificate(server.cert);
    expect(new Date(x.validTo).getTime() - new Date(x.validFrom).getTime()).toBe(36_400 * DAY);
    expect(BigInt(`0x${x.serialNumber}`)).toBeLessThan(2n ** 63n - 1n);
    // openssl verifies the chain for TLS server use
    const dir = await tempDir('pki-verify');
    writeFileSync(join(dir, 'ca.pem'), toPem('CERTIFICATE', ca.cert));
    writeFileSync(join(dir, 'server.pem'), toPem('CERTIFICATE', server.cert));
    expect(
      execFileSync(
        openssl,
        ['verify', '-purpose', 'sslserver', '-CAfile', join(dir, 'ca.pem'), join(dir, 'server.pem')],
        {
          encoding: 'utf8',
        },
      ),
    ).toContain('OK');
    expect(
      missingSans(server.cert, {
        advertiseAddress: ['127.0.0.1', '127.0.0.2'],
        dnsNames: ['cloud.example', 'x'],
      }),
    ).toEqual(['127.0.0.2', 'x']);
    // IPv6 addresses compare in any notation; a name in advertiseAddress is refused
    const v6 = await createServerCert(ca, { advertiseAddress: ['::1', 'fd00::10'], dnsNames: [] });
    expect(certText(v6.cert)).toContain('IP Address:0:0:0:0:0:0:0:1, IP Address:FD00:0:0:0:0:0:0:10');
    expect(missingSans(v6.cert, { advertiseAddress: ['0::1', 'FD00::10'], dnsNames: [] })).toEqual([]);
    await expect(createServerCert(ca, { advertiseAddress: ['cloud.example'], dnsNames: [] })).rejects.toThrow(
      /advertiseAddress: "cloud.example" is not an IP address/,
    );
  });

  it('signs a CSR copying CN, O and SANs, with the requested usages and validity', async () => {
    const dir = await tempDir('pki-csr');
    const keyFile = join(dir, 'k.pem');
    writeFileSync(
      keyFile,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }),
    );
    const csrDer = execFileSync(openssl, [
      'req',
      '-new',
      '-key',
      keyFile,
      '-outform',
      'DER',
      '-subj',
      '/C=CN/ST=Zhejiang/L=Hangzhou/O=system:nodes/CN=system:node:edge-1',
      '-addext',
      'subjectAltName=DNS:edge-1.local,IP:192.168.1.7',
    ]);
    const csr = await parseCsr(csrDer);
    expect(csr).toMatchObject({
      commonName: 'system:node:edge-1',
      organization: ['system:nodes'],
      dnsNames: ['edge-1.local'],
      ipAddresses: ['192.168.1.7'],
    });
    const der = await signCertificate(ca, { ...csr, usages: [CLIENT_AUTH], validityDays: 365 });
    const text = certText(der);
    expect(text).toContain('Subject: O = system:nodes, CN = system:node:edge-1');
    expect(text).toMatch(/Extended Key Usage: \n\s+TLS Web Client Authentication\n/);
    expect(text).toMatch(/DNS:edge-1.local, IP Address:192.168.1.7/);
    const x = new X509Certificate(der);
    expect(new Date(x.validTo).getTime() - new Date(x.validFrom).getTime()).toBe(365 * DAY);
    // a tampered CSR (signature no longer matches) is refused
    const bad = Buffer.from(csrDer);
    bad.writeUInt8(bad.readUInt8(bad.length - 5) ^ 0xff, bad.length - 5);
    await expect(parseCsr(bad)).rejects.toThrow(/failed to parse csr/);
    await expect(parseCsr(Buffer.from('not a csr'))).rejects.toThrow(/failed to parse csr/);
  });
});

describe('store and precedence (§4.1)', () => {
  it('keeps secrets owner-only and reuses them on the next start', async () => {
    const dir = await tempDir('pki-store');
    const store = new FilePkiStore(join(dir, 'secrets'));
    const first = await preparePki({ store, advertiseAddress: ['127.0.0.1'], dnsNames: [], log });
    expect(statSync(join(dir, 'secrets', CA_SECRET.name)).mode & 0o777).toBe(0o700);
    for (const [secret, key] of [
      [CA_SECRET.name, CA_SECRET.cert],
      [CA_SECRET.name, CA_SECRET.key],
      [CLOUDCORE_SECRET.name, CLOUDCORE_SECRET.cert],
      [CLOUDCORE_SECRET.name, CLOUDCORE_SECRET.key],
    ] as const) {
      expect(statSync(join(dir, 'secrets', secret, key)).mode & 0o777).toBe(0o600);
    }
    expect((await store.get(CA_SECRET.name))?.[CA_SECRET.cert]).toEqual(first.ca.cert);
    const second = await preparePki({ store, advertiseAddress: ['127.0.0.1'], dnsNames: [], log });
    expect(second.ca.cert).toEqual(first.ca.cert);
    expect(second.server.cert).toEqual(first.server.cert);
    // a new advertise address: same CA, a new server certificate naming it (KubeEdge keeps the stale one)
    const third = await preparePki({
      store,
      advertiseAddress: ['127.0.0.1', '127.0.0.2'],
      dnsNames: [],
      log,
    });
    expect(third.ca.cert).toEqual(first.ca.cert);
    expect(
      missingSans(third.server.cert, { advertiseAddress: ['127.0.0.1', '127.0.0.2'], dnsNames: [] }),
    ).toEqual([]);
    expect((await store.get(CLOUDCORE_SECRET.name))?.[CLOUDCORE_SECRET.cert]).toEqual(third.server.cert);
  });

  it('prefers readable PEM files (operator CA, any key encoding) and saves them to the secrets', async () => {
    const dir = await tempDir('pki-files');
    const caKey = join(dir, 'rootCA.key');
    const caCrt = join(dir, 'rootCA.crt');
    execFileSync(
      openssl,
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        caKey,
        '-out',
        caCrt,
        '-subj',
        '/CN=operator-ca',
        '-days',
        '10',
      ],
      { stdio: 'ignore' },
    );
    const store = new FilePkiStore(join(dir, 'secrets'));
    const pki = await preparePki({
      store,
      files: {
        caFile: caCrt,
        caKeyFile: caKey,
        certFile: join(dir, 'none.crt'),
        keyFile: join(dir, 'none.key'),
      },
      advertiseAddress: ['127.0.0.1'],
      dnsNames: [],
      log,
    });
    expect(new X509Certificate(pki.ca.cert).subject).toBe('CN=operator-ca');
    // the server certificate is signed by the operator's RSA CA
    expect(new X509Certificate(pki.server.cert).verify(new X509Certificate(pki.ca.cert).publicKey)).toBe(
      true,
    );
    expect((await store.get(CA_SECRET.name))?.[CA_SECRET.key]).toEqual(pki.ca.key);
    // a malformed file is an error naming it, not a silent fallback
    writeFileSync(caCrt, 'garbage');
    await expect(
      preparePki({
        store,
        files: { caFile: caCrt, caKeyFile: caKey },
        advertiseAddress: [],
        dnsNames: [],
        log,
      }),
    ).rejects.toThrow(caCrt);
  });
});

describe('token (§4.2)', () => {
  it('has 4 parts: caHash of the CA DER, HS256 JWT keyed with the CA key DER, exp = now + 2 × refresh', async () => {
    const ca = await createCa();
    const now = Date.UTC(2026, 10, 28, 8, 0, 0);
    const token = createToken(ca, 12, now);
    const parts = token.split('.');
    expect(parts).toHaveLength(4);
    expect(parts[0]).toBe(hashCa(ca.cert));
    expect(parts[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(parts[1]).toBe('eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9');
    expect(JSON.parse(Buffer.from(parts[2]!, 'base64url').toString())).toEqual({
      exp: now / 1000 + 24 * 3600,
    });
    expect(parts[3]).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // the signature is HMAC-SHA256 over header.payload with the CA key DER (checked with openssl)
    const mac = execFileSync(
      openssl,
      ['dgst', '-sha256', '-mac', 'HMAC', '-macopt', `hexkey:${ca.key.toString('hex')}`, '-binary'],
      { input: `${parts[1]}.${parts[2]}` },
    );
    expect(mac.toString('base64url')).toBe(parts[3]);

    const jwt = parts.slice(1).join('.');
    expect(verifyAuthorization(`Bearer ${jwt}`, ca.key, now)).toBeUndefined();
    expect(verifyAuthorization(`anything ${jwt}`, ca.key, now)).toBeUndefined(); // the scheme word is not checked
    expect(verifyAuthorization(`Bearer ${jwt}`, ca.key, now + 24 * 3600_000)).toBe(
      'token validation failure, err: token has invalid claims: token is expired',
    );
    const other = await createCa();
    expect(verifyAuthorization(`Bearer ${jwt}`, other.key, now)).toBe(
      'token validation failure, err: token signature is invalid: signature is invalid',
    );
    expect(verifyAuthorization(undefined, ca.key, now)).toBe('token validation failure, token is empty');
    expect(verifyAuthorization(jwt, ca.key, now)).toBe('token validation failure, token cannot be split');
    expect(verifyAuthorization('Bearer a.b', ca.key, now)).toBe(
      'token validation failure, err: token is malformed: token contains an invalid number of segments',
    );
    expect(verifyAuthorization('Bearer !!.e30.x', ca.key, now)).toMatch(
      /^token validation failure, err: token is malformed/,
    );
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${parts[2]}.`;
    expect(verifyJwt(none, ca.key, now)).toMatch(/want \*jwt.SigningMethodHMAC/);
  });

  it('is saved to tokensecret at start and refreshed every tokenRefreshDuration', async () => {
    const dir = await tempDir('pki-token');
    const store = new FilePkiStore(dir);
    const ca = await createCa();
    let refreshed: () => void = () => {};
    const lines = createLogger('info', {}, (line) => {
      if (line.includes('join token refreshed')) refreshed();
    });
    const exp = (token: string): number =>
      JSON.parse(Buffer.from(token.split('.')[2]!, 'base64url').toString()).exp;
    const stored = async (): Promise<string | undefined> =>
      (await store.get(TOKEN_SECRET.name))?.[TOKEN_SECRET.key]?.toString();
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const refresher = await startTokenRefresh({ ca, store, refreshHours: 12, log: lines });
    try {
      const first = refresher.token;
      expect(await stored()).toBe(first);
      expect(verifyAuthorization(`Bearer ${first.split('.').slice(1).join('.')}`, ca.key)).toBeUndefined();
      const tick = new Promise<void>((resolve) => (refreshed = resolve));
      vi.advanceTimersByTime(12 * 3600_000);
      await tick;
      expect(exp(refresher.token)).toBe(exp(first) + 12 * 3600);
      expect(await stored()).toBe(refresher.token);
    } finally {
      refresher.stop();
      vi.useRealTimers();
    }
    await expect(startTokenRefresh({ ca, store, refreshHours: 0, log })).rejects.toThrow(
      /tokenRefreshDuration/,
    );
  });
});
