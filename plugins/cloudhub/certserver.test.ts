import { execFileSync } from 'node:child_process';
import { X509Certificate, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../kernel/log.js';
import { cleanup, requirePeer, tempDir } from '../../test/peers/util.js';
import { createCertServer, type CertRefusal } from './certserver.js';
import {
  CLIENT_AUTH,
  FilePkiStore,
  createCa,
  preparePki,
  signCertificate,
  toPem,
  type CloudPki,
} from './pki.js';
import { createToken } from './token.js';

afterAll(cleanup);

const openssl = requirePeer('openssl');
const log = createLogger('silent');

/** The recorded v1.23.1 session: the CSR a real edgecore sent for edge-1 and what cloudcore answered. */
const session = readFileSync(
  join(import.meta.dirname, '../../test/fixtures/kubeedge/kubeedge-v1.23-cloud-edge-session.jsonl'),
  'utf8',
)
  .split('\n')
  .map((l) => (l ? JSON.parse(l) : {}));
const GO_CSR = Buffer.from(
  session.find((o) => o.kind === 'https-request' && o.path === '/edge.crt').body_b64,
  'base64',
);
const GO_ISSUED = Buffer.from(
  session.find((o) => o.kind === 'https-response' && o.req === 2).body_b64,
  'base64',
);

/** openssl's text with the per-certificate values (serial, keys, ids, dates, signatures) blanked. */
function shape(text: string): string {
  return text
    .replace(/Serial Number: .*/, 'Serial Number: N')
    .replace(/(pub:|Signature Value:)\n(\s+[0-9a-f:]+\n)+/g, '$1 …\n')
    .replace(/([0-9A-F]{2}:){19}[0-9A-F]{2}/g, 'KEYID')
    .replace(/Not (Before|After) ?: .*/g, 'Not $1: DATE');
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

let pki: CloudPki;
let port: number;
const refused: CertRefusal[] = [];

/**
 * Send bytes exactly as given over TLS and parse the HTTP/1.1 answer (Content-Length framed).
 * `client` is a TLS client certificate (PEM pair).
 */
function raw(
  head: string,
  body: Buffer = Buffer.alloc(0),
  client?: { cert: string; key: string },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...client }, () => {
      socket.write(Buffer.concat([Buffer.from(head.replace(/\n/g, '\r\n')), body]));
    });
    let data = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [statusLine, ...lines] = data.subarray(0, end).toString().split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines)
        headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      const length = Number(headers['content-length']);
      if (data.length - end - 4 < length) return;
      socket.destroy();
      resolve({
        status: Number(statusLine!.split(' ')[1]),
        headers,
        body: data.subarray(end + 4, end + 4 + length),
      });
    });
    socket.once('error', reject);
  });
}

/** A Go edgecore's `GET /edge.crt` (§4.3 step 5), header for header as recorded. */
function goEdgeCrt(opts: { jwt?: string; node: string; csr?: Buffer; extra?: string }): string {
  const csr = opts.csr ?? GO_CSR;
  return (
    `GET /edge.crt HTTP/1.1\nHost: 127.0.0.1:${port}\nUser-Agent: Go-http-client/1.1\nContent-Length: ${csr.length}\n` +
    (opts.jwt !== undefined ? `Authorization: Bearer ${opts.jwt}\n` : '') +
    `Nodename: ${opts.node}\n${opts.extra ?? ''}Accept-Encoding: gzip\n\n`
  );
}

const jwtOf = (token: string): string => token.split('.').slice(1).join('.');
const certText = (der: Buffer): string =>
  execFileSync(openssl, ['x509', '-inform', 'DER', '-noout', '-text'], { input: der, encoding: 'utf8' });

beforeAll(async () => {
  const dir = await tempDir('certserver');
  pki = await preparePki({
    store: new FilePkiStore(dir),
    advertiseAddress: ['127.0.0.1'],
    dnsNames: [],
    log,
  });
  const server = createCertServer({
    pki,
    log,
    nodeExists: async (name) => {
      if (name === 'boom') throw new Error('apiserver unavailable');
      return name === 'edge-1';
    },
    onRefused: (reason) => refused.push(reason),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
});

describe('cert server :10002 (§4.4, §4.6)', () => {
  it('serves the CA DER at /ca.crt to a Go client', async () => {
    const res = await raw(
      `GET /ca.crt HTTP/1.1\nHost: 127.0.0.1:${port}\nUser-Agent: Go-http-client/1.1\nAccept-Encoding: gzip\n\n`,
    );
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.body).toEqual(pki.ca.cert);
  });

  it('issues a certificate for the exact request a Go edgecore sends (GET with body, Nodename)', async () => {
    const res = await raw(goEdgeCrt({ jwt: jwtOf(createToken(pki.ca, 12)), node: 'edge-1' }), GO_CSR);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    const text = certText(res.body);
    // field for field what a Go cloudcore issued for this very CSR
    expect(shape(text)).toBe(shape(certText(GO_ISSUED)));
    expect(text).toContain('Subject: O = system:nodes, CN = system:node:edge-1');
    expect(text).toContain('Issuer: CN = KubeEdge');
    expect(text).toMatch(/Key Usage: critical\n\s+Digital Signature, Key Encipherment\n/);
    expect(text).toMatch(/Extended Key Usage: \n\s+TLS Web Client Authentication\n/);
    const cert = new X509Certificate(res.body);
    expect(new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime()).toBe(365 * 86_400_000);
    const csrKey = execFileSync(openssl, ['req', '-inform', 'DER', '-pubkey', '-noout'], {
      input: GO_CSR,
      encoding: 'utf8',
    });
    expect(cert.publicKey.export({ type: 'spki', format: 'pem' })).toBe(csrKey);
    const dir = await tempDir('certserver-verify');
    writeFileSync(join(dir, 'ca.pem'), toPem('CERTIFICATE', pki.ca.cert));
    writeFileSync(join(dir, 'edge.pem'), toPem('CERTIFICATE', res.body));
    const verify = execFileSync(
      openssl,
      ['verify', '-purpose', 'sslclient', '-CAfile', join(dir, 'ca.pem'), join(dir, 'edge.pem')],
      { encoding: 'utf8' },
    );
    expect(verify).toContain('OK');
  });

  it('answers the ExtKeyUsages header', async () => {
    const jwt = jwtOf(createToken(pki.ca, 12));
    const ok = await raw(goEdgeCrt({ jwt, node: 'edge-1', extra: 'ExtKeyUsages: [1,2]\n' }), GO_CSR);
    expect(certText(ok.body)).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
    const bad = await raw(goEdgeCrt({ jwt, node: 'edge-1', extra: 'ExtKeyUsages: x\n' }), GO_CSR);
    expect(bad.status).toBe(500);
    expect(bad.body.toString()).toMatch(
      /^failed to sign certs for edgenode edge-1, err: unmarshal http header ExtKeyUsages fail/,
    );
  });

  it('answers a body that is not a CSR with 500 and keeps serving', async () => {
    const junk = Buffer.from('not a certificate request');
    const res = await raw(
      goEdgeCrt({ jwt: jwtOf(createToken(pki.ca, 12)), node: 'edge-1', csr: junk }),
      junk,
    );
    expect(res.status).toBe(500);
    expect(res.body.toString()).toMatch(
      /^failed to sign certs for edgenode edge-1, err: fail to signCerts, err: failed to parse csr, err: /,
    );
    const ok = await raw(goEdgeCrt({ jwt: jwtOf(createToken(pki.ca, 12)), node: 'edge-1' }), GO_CSR);
    expect(ok.status).toBe(200);
  });

  it('refuses bad tokens with 401 and KubeEdge texts', async () => {
    const expired = createToken(pki.ca, 12, Date.now() - 25 * 3600_000);
    const other = createToken(await createCa(), 12);
    const cases: [string | undefined, string][] = [
      [undefined, 'token validation failure, token is empty'],
      [jwtOf(expired), 'token validation failure, err: token has invalid claims: token is expired'],
      [jwtOf(other), 'token validation failure, err: token signature is invalid: signature is invalid'],
    ];
    for (const [jwt, text] of cases) {
      const res = await raw(goEdgeCrt({ jwt, node: 'edge-1' }), GO_CSR);
      expect([res.status, res.body.toString()]).toEqual([401, text]);
    }
    expect(refused.filter((r) => r === 'token').length).toBeGreaterThanOrEqual(3);
  });

  it('node isolation: refuses a CSR for another node than the NodeName header with 403', async () => {
    const res = await raw(goEdgeCrt({ jwt: jwtOf(createToken(pki.ca, 12)), node: 'edge-2' }), GO_CSR);
    expect(res.status).toBe(403);
    expect(res.body.toString()).toContain('refusing a certificate for CN=system:node:edge-1');
    expect(res.body.toString()).toContain('CN=system:node:edge-2');
    expect(refused).toContain('node-isolation');
  });

  it('with nodeIsolation off, copies whatever subject the CSR carries (KubeEdge)', async () => {
    const open = createCertServer({ pki, log, nodeIsolation: false, nodeExists: async () => false });
    await new Promise<void>((resolve) => open.listen(0, '127.0.0.1', resolve));
    const saved = port;
    port = (open.address() as AddressInfo).port;
    try {
      const res = await raw(goEdgeCrt({ jwt: jwtOf(createToken(pki.ca, 12)), node: 'edge-2' }), GO_CSR);
      expect(res.status).toBe(200);
      expect(new X509Certificate(res.body).subject).toBe('O=system:nodes\nCN=system:node:edge-1');
    } finally {
      port = saved;
      await new Promise((resolve) => open.close(resolve));
    }
  });

  it('rotation: a CA-signed client certificate of the node needs no token; another node is 401', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const certDer = await signCertificate(pki.ca, {
      publicKey: key.publicKey.export({ type: 'spki', format: 'der' }),
      commonName: 'system:node:edge-1',
      organization: ['system:nodes'],
      usages: [CLIENT_AUTH],
      validityDays: 1,
    });
    const client = {
      cert: toPem('CERTIFICATE', certDer),
      key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
    const ok = await raw(goEdgeCrt({ node: 'edge-1' }), GO_CSR, client);
    expect(ok.status).toBe(200);
    expect(new X509Certificate(ok.body).subject).toBe('O=system:nodes\nCN=system:node:edge-1');
    const wrong = await raw(goEdgeCrt({ node: 'edge-2' }), GO_CSR, client);
    expect([wrong.status, wrong.body.toString()]).toEqual([
      401,
      'failed to verify the certificate for edgenode: edge-2, err: request node name does not match the certificate subject',
    ]);
    // a certificate of another CA
    const foreign = await createCa();
    const foreignDer = await signCertificate(foreign, {
      publicKey: key.publicKey.export({ type: 'spki', format: 'der' }),
      commonName: 'system:node:edge-1',
      organization: ['system:nodes'],
      usages: [CLIENT_AUTH],
      validityDays: 1,
    });
    const res = await raw(goEdgeCrt({ node: 'edge-1' }), GO_CSR, {
      ...client,
      cert: toPem('CERTIFICATE', foreignDer),
    });
    expect([res.status, res.body.toString()]).toEqual([
      401,
      'failed to verify the certificate for edgenode: edge-1, err: failed to verify edge certificate: x509: certificate signed by unknown authority',
    ]);
    expect(createPublicKey(client.key).asymmetricKeyType).toBe('ec');
  });

  it('routes like go-restful: 406 for an Accept without */*, 405, 404', async () => {
    const get = (path: string, extra = '', method = 'GET') =>
      raw(`${method} ${path} HTTP/1.1\nHost: 127.0.0.1:${port}\n${extra}Content-Length: 0\n\n`);
    const notAcceptable = await get('/ca.crt', 'Accept: application/octet-stream\n');
    expect([notAcceptable.status, notAcceptable.body.toString()]).toEqual([406, '406: Not Acceptable']);
    expect((await get('/ca.crt', 'Accept: application/octet-stream, */*;q=0.1\n')).status).toBe(200);
    expect((await get('/ca.crt', 'Content-Type: application/json\n')).status).toBe(200);
    const notAllowed = await get('/edge.crt', '', 'POST');
    expect([notAllowed.status, notAllowed.body.toString()]).toEqual([405, '405: Method Not Allowed']);
    const notFound = await get('/nothing');
    expect([notFound.status, notFound.body.toString()]).toEqual([404, '404: Page Not Found']);
  });

  it('answers GET /node/{name} for keadm join', async () => {
    const get = async (name: string) => {
      const res = await raw(`GET /node/${name} HTTP/1.1\nHost: 127.0.0.1:${port}\n\n`);
      return [res.status, res.body.toString()];
    };
    expect(await get('edge-1')).toEqual([200, 'Node founded']);
    expect(await get('edge-9')).toEqual([404, 'Node not found']);
    expect(await get('boom')).toEqual([500, 'Failed to query node information']);
  });

  it('limits the body to 1 MiB', async () => {
    const big = Buffer.alloc((1 << 20) + 1);
    const res = await raw(goEdgeCrt({ jwt: jwtOf(createToken(pki.ca, 12)), node: 'edge-1', csr: big }), big);
    expect(res.status).toBe(500);
    expect(res.body.toString()).toBe(
      'failed to sign certs for edgenode edge-1, err: fail to read file when signing the cert, err: http: request body too large',
    );
  });
});
