import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../kernel/log.js';
import { cleanup, requirePeer, tempDir } from '../peers/util.js';
// the cloud end of the exchange, as a real peer of the edge's client
import { createCertServer } from '../../plugins/cloudhub/certserver.js';
import { FilePkiStore, createCa, preparePki, tlsPair, type CloudPki } from '../../plugins/cloudhub/pki.js';
import { createToken } from '../../plugins/cloudhub/token.js';
import {
  bootstrap,
  checkEdgeCert,
  createCsr,
  resolveToken,
  rotate,
  rotationDeadline,
  rotationRetryDelayMs,
  type EdgeCertFiles,
} from '../../plugins/edgehub/bootstrap.js';
import { BootstrapError } from '../../plugins/edgehub/errors.js';

afterAll(cleanup);

const openssl = requirePeer('openssl');
const log = createLogger('silent');
const servers: Server[] = [];

async function listen(server: Server): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
afterAll(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

async function cloud(advertiseAddress = ['127.0.0.1']): Promise<{ pki: CloudPki; url: string }> {
  const pki = await preparePki({
    store: new FilePkiStore(await tempDir('bootstrap-pki')),
    advertiseAddress,
    dnsNames: [],
    log,
  });
  const url = await listen(createCertServer({ pki, log, nodeExists: async () => false }));
  return { pki, url };
}

async function edgeFiles(): Promise<EdgeCertFiles> {
  const dir = await tempDir('bootstrap-edge');
  return {
    caFile: join(dir, 'ca', 'rootCA.crt'),
    certFile: join(dir, 'certs', 'server.crt'),
    keyFile: join(dir, 'certs', 'server.key'),
  };
}

async function failure(p: Promise<unknown>): Promise<BootstrapError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BootstrapError);
  return err as BootstrapError;
}

let main: { pki: CloudPki; url: string };
beforeAll(async () => {
  main = await cloud();
});

describe('edge token bootstrap (§4.3) against the cert server', () => {
  it('gets a certificate for the node and writes CA, cert and key (key owner-only)', async () => {
    const files = await edgeFiles();
    expect(await checkEdgeCert(files, 'edge-1')).toMatchObject({ ok: false, problem: 'missing' });
    const issued = await bootstrap({
      ...files,
      httpServer: main.url,
      nodeName: 'edge-1',
      token: createToken(main.pki.ca, 12),
    });
    expect(issued.commonName).toBe('system:node:edge-1');
    expect(statSync(files.keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(files.certFile).mode & 0o777).toBe(0o644);
    expect(statSync(files.caFile).mode & 0o777).toBe(0o644);
    expect(readFileSync(files.keyFile, 'utf8')).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
    expect(Buffer.from(new X509Certificate(readFileSync(files.caFile)).raw)).toEqual(main.pki.ca.cert);
    const text = execFileSync(openssl, ['x509', '-noout', '-subject', '-issuer', '-in', files.certFile], {
      encoding: 'utf8',
    });
    expect(text).toBe('subject=O = system:nodes, CN = system:node:edge-1\nissuer=CN = KubeEdge\n');
    expect(
      execFileSync(openssl, ['verify', '-purpose', 'sslclient', '-CAfile', files.caFile, files.certFile], {
        encoding: 'utf8',
      }),
    ).toContain('OK');
    expect(
      execFileSync(openssl, ['ec', '-in', files.keyFile, '-noout', '-check'], {
        encoding: 'utf8',
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    ).toBe('');
    expect(await checkEdgeCert(files, 'edge-1')).toMatchObject({
      ok: true,
      cert: { commonName: 'system:node:edge-1' },
    });
    expect(await checkEdgeCert(files, 'edge-2')).toMatchObject({ ok: false, problem: 'wrong-node' });
    // a token of another cloudcore says the CA changed: the certificate is stale
    const otherToken = createToken(await createCa(), 12);
    expect(await checkEdgeCert(files, 'edge-1', { token: otherToken })).toMatchObject({
      ok: false,
      problem: 'stale',
    });
    expect(
      await checkEdgeCert(files, 'edge-1', { now: new Date(issued.notAfter.getTime() - 60_000) }),
    ).toMatchObject({ ok: false, problem: 'expiring' });
    expect(
      await checkEdgeCert(files, 'edge-1', { now: new Date(issued.notAfter.getTime() + 1) }),
    ).toMatchObject({ ok: false, problem: 'expired' });
  });

  it('sends what a Go edgecore sends: GET with the CSR body, Content-Length, Nodename, no Accept', async () => {
    const seen: { method: string; path: string; headers: string[]; body: Buffer }[] = [];
    const inner = createCertServer({ pki: main.pki, log, nodeExists: async () => false });
    const url = await listen(
      createHttpsServer({ ...tlsPair(main.pki.server) }, (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          seen.push({
            method: req.method!,
            path: req.url!,
            headers: req.rawHeaders,
            body: Buffer.concat(chunks),
          });
          if (req.url === '/ca.crt') inner.emit('request', req, res);
          else res.writeHead(418).end('seen');
        });
      }),
    );
    const files = await edgeFiles();
    const token = createToken(main.pki.ca, 12);
    const err = await failure(bootstrap({ ...files, httpServer: url, nodeName: 'edge-1', token }));
    expect(err.code).toBe('EBOOTSTRAP_HTTP');
    const [ca, cert] = seen;
    expect(ca).toMatchObject({ method: 'GET', path: '/ca.crt', body: Buffer.alloc(0) });
    expect(cert).toMatchObject({ method: 'GET', path: '/edge.crt' });
    const names = (h: string[]) => h.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names(ca!.headers).sort()).toEqual(['connection', 'host']);
    expect(names(cert!.headers).sort()).toEqual([
      'authorization',
      'connection',
      'content-length',
      'host',
      'nodename',
    ]);
    const header = (n: string) => cert!.headers[cert!.headers.findIndex((h) => h.toLowerCase() === n) + 1];
    expect(header('nodename')).toBe('edge-1');
    expect(header('authorization')).toBe(`Bearer ${token.split('.').slice(1).join('.')}`);
    expect(Number(header('content-length'))).toBe(cert!.body.length);
    expect(
      execFileSync(openssl, ['req', '-inform', 'DER', '-noout', '-subject'], {
        input: cert!.body,
        encoding: 'utf8',
      }),
    ).toBe('subject=C = CN, ST = Zhejiang, L = Hangzhou, O = system:nodes, CN = system:node:edge-1\n');
  });

  it('loads @peculiar/x509 only when a certificate is made', () => {
    const probe = [
      "await import('./plugins/edgehub/bootstrap.ts');",
      "await import('./plugins/cloudhub/certserver.ts');",
      "const { createRequire } = await import('node:module');",
      "console.log(Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@peculiar')).length);",
    ].join(' ');
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
      cwd: join(import.meta.dirname, '../..'),
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('0');
  });

  it('builds the CSR of §4.3 step 4', async () => {
    const { csr } = await createCsr('edge-1');
    const text = execFileSync(openssl, ['req', '-inform', 'DER', '-noout', '-text', '-verify'], {
      input: csr,
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    expect(text).toContain(
      'Subject: C = CN, ST = Zhejiang, L = Hangzhou, O = system:nodes, CN = system:node:edge-1',
    );
    expect(text).toContain('ASN1 OID: prime256v1');
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(text).not.toContain('Subject Alternative Name');
    // the same ASN.1 structure, element for element, as the CSR a Go edgecore v1.23.1 sent
    const structure = (der: Buffer): string =>
      execFileSync(openssl, ['asn1parse', '-inform', 'DER'], { input: der, encoding: 'utf8' })
        .replace(/^\s*\d+:d=(\d+)\s+hl=\d+ l=\s*\d+/gm, 'd=$1')
        .replace(/INTEGER\s+:[0-9A-F]+/g, 'INTEGER');
    const goCsr = readFileSync(
      join(import.meta.dirname, '../fixtures/kubeedge/kubeedge-v1.23-cloud-edge-session.jsonl'),
      'utf8',
    )
      .split('\n')
      .map((l) => (l ? JSON.parse(l) : {}))
      .find((o) => o.kind === 'https-request' && o.path === '/edge.crt').body_b64;
    expect(structure(csr)).toBe(structure(Buffer.from(goCsr, 'base64')));
  });

  it('explains a token in the wrong format', async () => {
    const files = await edgeFiles();
    const token = createToken(main.pki.ca, 12);
    const run = (t: string) =>
      failure(bootstrap({ ...files, httpServer: main.url, nodeName: 'edge-1', token: t }));
    const bare = await run(token.split('.').slice(1).join('.'));
    expect(bare.code).toBe('EBOOTSTRAP_TOKEN_FORMAT');
    expect(bare.message).toContain('credentials are in the wrong format');
    expect(bare.message).toContain('caHash prefix');
    expect(bare.message).toContain(
      '4-part value printed by `keadm gettoken` (caHash.header.payload.signature)',
    );
    expect(bare.message).not.toContain(token.split('.')[3]); // the secret part is not logged
    expect((await run(Buffer.from(token).toString('base64'))).message).toContain('base64-encoded');
    expect((await run('')).message).toContain('the token is empty');
  });

  it('refuses a token of another CA (CA hash mismatch) before sending anything', async () => {
    const files = await edgeFiles();
    const err = await failure(
      bootstrap({
        ...files,
        httpServer: main.url,
        nodeName: 'edge-1',
        token: createToken(await createCa(), 12),
      }),
    );
    expect(err.code).toBe('EBOOTSTRAP_CA_HASH');
    expect(err.message).toMatch(
      /^failed to validate CA certificate\. tokenCAhash: [0-9a-f]{64}, CAhash: [0-9a-f]{64}: the token was issued by another cloudcore/,
    );
    expect(() => statSync(files.caFile)).toThrow(); // nothing written
  });

  it('maps an expired token (401) to "get a fresh token"', async () => {
    const files = await edgeFiles();
    const expired = createToken(main.pki.ca, 12, Date.now() - 25 * 3600_000);
    const err = await failure(
      bootstrap({ ...files, httpServer: main.url, nodeName: 'edge-1', token: expired }),
    );
    expect(err.code).toBe('EBOOTSTRAP_TOKEN_REJECTED');
    expect(err.message).toContain(
      'failed to call http, code: 401, message: token validation failure, err: token has invalid claims: token is expired',
    );
    expect(err.message).toContain('keadm gettoken');
  });

  it('names the address missing from the server certificate (IP SAN)', async () => {
    const other = await cloud(['127.0.0.2']);
    const files = await edgeFiles();
    const err = await failure(
      bootstrap({
        ...files,
        httpServer: other.url,
        nodeName: 'edge-1',
        token: createToken(other.pki.ca, 12),
      }),
    );
    expect(err.code).toBe('EBOOTSTRAP_SERVER_SAN');
    expect(err.message).toMatch(/^x509: certificate is valid for 127.0.0.2, not 127.0.0.1: /);
    expect(err.message).toContain('add 127.0.0.1 to cloudHub.advertiseAddress');
    // the user's notes: a server certificate with no IP SAN at all
    const none = await cloud([]);
    const noIp = await failure(
      bootstrap({ ...files, httpServer: none.url, nodeName: 'edge-1', token: createToken(none.pki.ca, 12) }),
    );
    expect(noIp.code).toBe('EBOOTSTRAP_SERVER_SAN');
    expect(noIp.message).toMatch(
      /^x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs: .*add 127.0.0.1 to cloudHub.advertiseAddress/,
    );
  });

  it('reads the bootstrap file over the config token', async () => {
    const dir = await tempDir('bootstrap-file');
    const file = join(dir, 'bootstrap-edgecore.conf');
    expect(await resolveToken('from-config', file)).toEqual({
      token: 'from-config',
      source: 'modules.edgeHub.token',
    });
    writeFileSync(file, '  a.b.c.d\n');
    expect(await resolveToken('from-config', file)).toEqual({ token: 'a.b.c.d', source: file });
  });
});

describe('rotation (§4.5)', () => {
  it('rotates with the current certificate as client certificate and no token', async () => {
    const files = await edgeFiles();
    const first = await bootstrap({
      ...files,
      httpServer: main.url,
      nodeName: 'edge-1',
      token: createToken(main.pki.ca, 12),
    });
    const next = await rotate({ ...files, httpServer: main.url, nodeName: 'edge-1' });
    expect(next.serial).not.toBe(first.serial);
    expect(next.commonName).toBe('system:node:edge-1');
    expect(await checkEdgeCert(files, 'edge-1')).toMatchObject({ ok: true, cert: { serial: next.serial } });
    expect(statSync(files.keyFile).mode & 0o777).toBe(0o600);
  });

  it('is refused with a certificate of another node', async () => {
    const files = await edgeFiles();
    await bootstrap({
      ...files,
      httpServer: main.url,
      nodeName: 'edge-1',
      token: createToken(main.pki.ca, 12),
    });
    const before = readFileSync(files.certFile, 'utf8');
    const err = await failure(rotate({ ...files, httpServer: main.url, nodeName: 'edge-2' }));
    expect(err.code).toBe('EBOOTSTRAP_CERT_REJECTED');
    expect(err.message).toContain(
      'failed to call http, code: 401, message: failed to verify the certificate for edgenode: edge-2',
    );
    expect(readFileSync(files.certFile, 'utf8')).toBe(before); // nothing replaced
  });

  it('schedules at 70–90 % of the lifetime and backs off 2 s ×2 then 32 s', () => {
    const nb = new Date('2026-01-01T00:00:00Z');
    const na = new Date('2027-01-01T00:00:00Z');
    const life = na.getTime() - nb.getTime();
    expect(rotationDeadline(nb, na, 0).getTime()).toBe(nb.getTime() + 0.7 * life);
    expect(rotationDeadline(nb, na, 0.5).getTime()).toBe(nb.getTime() + 0.8 * life);
    expect(rotationDeadline(nb, na, 0.999999).getTime()).toBeLessThan(nb.getTime() + 0.9 * life);
    expect([1, 2, 3, 4, 5, 9].map((f) => rotationRetryDelayMs(f, 0))).toEqual([
      2000, 4000, 8000, 16000, 32000, 32000,
    ]);
    expect(rotationRetryDelayMs(1, 0.999)).toBeCloseTo(2200, -1);
  });
});

describe('refusals seen through an intermediary that alters the request', () => {
  /** The cert server behind a relay that rewrites the /edge.crt request headers. */
  async function relayed(alter: (headers: Record<string, string | string[] | undefined>) => void) {
    const pki = await preparePki({
      store: new FilePkiStore(await tempDir('bootstrap-relay')),
      advertiseAddress: ['127.0.0.1'],
      dnsNames: [],
      log,
    });
    const inner = createCertServer({ pki, log, nodeExists: async () => false });
    const url = await listen(
      createHttpsServer({ ...tlsPair(pki.server) }, (req, res) => {
        if (req.url === '/edge.crt') alter(req.headers);
        inner.emit('request', req, res);
      }),
    );
    const files = await edgeFiles();
    return failure(
      bootstrap({ ...files, httpServer: url, nodeName: 'edge-1', token: createToken(pki.ca, 12) }),
    );
  }

  it("maps go-restful's 406 (an Accept without */*) to its fix", async () => {
    const err = await relayed((h) => (h.accept = 'application/octet-stream'));
    expect(err.code).toBe('EBOOTSTRAP_NOT_ACCEPTABLE');
    expect(err.message).toContain('failed to call http, code: 406, message: 406: Not Acceptable');
  });

  it("maps node isolation's 403 (a CSR for another node than the NodeName header)", async () => {
    const err = await relayed((h) => (h.nodename = 'edge-2'));
    expect(err.code).toBe('EBOOTSTRAP_NODE_REFUSED');
    expect(err.message).toContain('failed to call http, code: 403, message: node isolation');
    expect(err.message).toContain('hostnameOverride');
  });
});
