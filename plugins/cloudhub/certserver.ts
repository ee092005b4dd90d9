/**
 * cloudHub's HTTPS server on `https.port` (10002, wire-cloud-edge §4.4, §4.6): `GET /ca.crt`,
 * `GET /edge.crt` (token bootstrap, and rotation with the current certificate as TLS client
 * certificate) and `GET /node/{name}` for keadm's pre-check. Status codes and texts are KubeEdge's,
 * including go-restful's 404/405/406 routing answers.
 *
 * Node isolation (on by default, unlike KubeEdge which copies whatever subject the CSR carries): a
 * certificate is only issued as `O=system:nodes, CN=system:node:<NodeName header>`; a CSR naming
 * another node is refused with 403.
 */
import { X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { errorText, isKernelError, type Logger } from '../../kernel/index.js';
import { CLIENT_AUTH, EXT_KEY_USAGE_OIDS, parseCsr, signCertificate, tlsPair, type CloudPki } from './pki.js';
import { verifyAuthorization } from './token.js';
import {
  CA_PATH,
  CERT_PATH,
  CHECK_NODE_PATH,
  MAX_CERT_BODY_BYTES as MAX_BODY_BYTES,
  NODE_NAME_HEADER,
  NODE_ORGANIZATION,
  nodeCommonName,
} from '../../protocol/index.js';

export const EXT_KEY_USAGES_HEADER = 'extkeyusages';
/** Default `cloudHub.edgeCertSigningDuration` (days). */
export const DEFAULT_EDGE_CERT_DAYS = 365;

/** Why a request was refused, for counters (bootstrap failures by reason). */
export type CertRefusal = 'token' | 'certificate' | 'node-isolation' | 'sign' | 'routing';

export interface CertServerOptions {
  pki: CloudPki;
  /** Days an edge certificate is valid (`cloudHub.edgeCertSigningDuration`). */
  edgeCertSigningDuration?: number;
  /** Does a Node object of this name exist? (Kubernetes lookup; a throw answers 500.) */
  nodeExists(name: string): Promise<boolean>;
  /** Issue certificates only for the node named in the NodeName header (default true). */
  nodeIsolation?: boolean;
  log: Logger;
  onRefused?(reason: CertRefusal, node: string): void;
}

class HttpAnswer extends Error {
  constructor(
    readonly status: number,
    readonly text: string,
    readonly reason: CertRefusal,
  ) {
    super(text);
  }
}

/** An HTTPS server (not yet listening) answering as KubeEdge's cert server does. */
export function createCertServer(opts: CertServerOptions): Server {
  const { pki, log } = opts;
  const days = opts.edgeCertSigningDuration ?? DEFAULT_EDGE_CERT_DAYS;
  const isolation = opts.nodeIsolation ?? true;
  const caCert = new X509Certificate(pki.ca.cert);

  const sendText = (res: ServerResponse, status: number, text: string): void => {
    res.writeHead(status, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
  };
  const sendDer = (res: ServerResponse, der: Buffer): void => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': der.length });
    res.end(der);
  };

  /** go-restful's route selection: path (404), method (405), Accept (406); Content-Type is ignored. */
  const route = (req: IncomingMessage): 'ca' | 'cert' | { node: string } => {
    const path = (req.url ?? '/').split('?')[0]!;
    let target: 'ca' | 'cert' | { node: string } | undefined;
    if (path === CA_PATH) target = 'ca';
    else if (path === CERT_PATH) target = 'cert';
    else if (path.startsWith(CHECK_NODE_PATH) && /^[^/]+$/.test(path.slice(CHECK_NODE_PATH.length))) {
      try {
        target = { node: decodeURIComponent(path.slice(CHECK_NODE_PATH.length)) };
      } catch {
        target = undefined; // a malformed escape matches no route
      }
    }
    if (target === undefined) throw new HttpAnswer(404, '404: Page Not Found', 'routing');
    if (req.method !== 'GET') throw new HttpAnswer(405, '405: Method Not Allowed', 'routing');
    const accept = req.headers.accept || '*/*';
    if (!accept.split(',').some((m) => m.split(';')[0]!.trim() === '*/*')) {
      throw new HttpAnswer(406, '406: Not Acceptable', 'routing');
    }
    return target;
  };

  const readBody = (req: IncomingMessage, node: string): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          req.removeAllListeners('data');
          req.pause();
          reject(
            new HttpAnswer(
              500,
              `failed to sign certs for edgenode ${node}, err: fail to read file when signing the cert, err: http: request body too large`,
              'sign',
            ),
          );
        } else chunks.push(chunk);
      });
      req.once('end', () => resolve(Buffer.concat(chunks)));
      req.once('error', reject);
    });

  /** Rotation: the presented certificate must chain to the CA with clientAuth and name the node. */
  const verifyClientCert = (der: Buffer, node: string): string | undefined => {
    const cert = new X509Certificate(der);
    const now = Date.now();
    const from = new Date(cert.validFrom);
    const to = new Date(cert.validTo);
    if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) {
      return 'failed to verify edge certificate: x509: certificate signed by unknown authority';
    }
    if (now < from.getTime() || now > to.getTime()) {
      return `failed to verify edge certificate: x509: certificate has expired or is not yet valid: current time ${new Date(now).toISOString()} is outside ${from.toISOString()} - ${to.toISOString()}`;
    }
    if (
      cert.keyUsage !== undefined &&
      !cert.keyUsage.includes(CLIENT_AUTH) &&
      !cert.keyUsage.includes(EXT_KEY_USAGE_OIDS[0]!)
    ) {
      return 'failed to verify edge certificate: x509: certificate specifies an incompatible key usage';
    }
    const subject = subjectFields(cert.subject);
    const org = subject.O[0];
    if (org === undefined) return 'certificate has no Organization in subject';
    if (!isolation && org === 'KubeEdge' && subject.CN[0] === 'kubeedge.io') return undefined;
    if (org === NODE_ORGANIZATION && subject.CN[0] === nodeCommonName(node)) return undefined;
    return 'request node name does not match the certificate subject';
  };

  const edgeCert = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const node = headerValue(req, NODE_NAME_HEADER);
    const peer = (req.socket as TLSSocket).getPeerCertificate?.(false);
    if (peer !== undefined && peer.raw !== undefined) {
      const err = verifyClientCert(peer.raw, node);
      if (err !== undefined) {
        throw new HttpAnswer(
          401,
          `failed to verify the certificate for edgenode: ${node}, err: ${err}`,
          'certificate',
        );
      }
    } else {
      const err = verifyAuthorization(headerValue(req, 'authorization'), pki.ca.key);
      if (err !== undefined) throw new HttpAnswer(401, err, 'token');
    }
    const signFailure = (err: string): HttpAnswer =>
      new HttpAnswer(500, `failed to sign certs for edgenode ${node}, err: ${err}`, 'sign');
    const body = await readBody(req, node);
    const usagesHeader = headerValue(req, EXT_KEY_USAGES_HEADER);
    let usages = [CLIENT_AUTH];
    if (usagesHeader !== '') {
      const parsed = parseUsages(usagesHeader);
      if (typeof parsed === 'string')
        throw signFailure(`unmarshal http header ExtKeyUsages fail, err: ${parsed}`);
      usages = parsed;
    }
    let csr;
    try {
      csr = await parseCsr(body);
    } catch (e) {
      throw signFailure(`fail to signCerts, err: ${errorText(e)}`);
    }
    if (isolation) {
      const cn = nodeCommonName(node);
      if (node === '' || csr.commonName !== cn || csr.organization.join() !== NODE_ORGANIZATION) {
        throw new HttpAnswer(
          403,
          `node isolation: refusing a certificate for CN=${csr.commonName}, O=${csr.organization.join('+')} requested as node "${node}": ` +
            `the NodeName header must name the node and the CSR subject must be CN=${cn}, O=${NODE_ORGANIZATION}`,
          'node-isolation',
        );
      }
    }
    let der: Buffer;
    try {
      der = await signCertificate(pki.ca, {
        publicKey: csr.publicKey,
        commonName: csr.commonName,
        organization: csr.organization,
        dnsNames: csr.dnsNames,
        ipAddresses: csr.ipAddresses,
        usages,
        validityDays: days,
      });
    } catch (e) {
      throw signFailure(`fail to signCerts, err: ${errorText(e)}`);
    }
    log.info(
      { node, subject: csr.commonName, rotation: peer?.raw !== undefined },
      'issued an edge certificate',
    );
    sendDer(res, der);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const target = route(req);
    if (target === 'ca') return sendDer(res, pki.ca.cert);
    if (target === 'cert') return edgeCert(req, res);
    let exists: boolean;
    try {
      exists = await opts.nodeExists(target.node);
    } catch (err) {
      log.error({ node: target.node }, `failed to query the node, err: ${errorText(err)}`);
      return sendText(res, 500, 'Failed to query node information');
    }
    sendText(res, exists ? 200 : 404, exists ? 'Node founded' : 'Node not found');
  };

  return createServer(
    { ...tlsPair(pki.server), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        const node = headerValue(req, NODE_NAME_HEADER);
        if (!(err instanceof HttpAnswer)) {
          log.error({ node }, `cert server: ${errorText(err)}`);
          err = new HttpAnswer(500, isKernelError(err) ? err.message : 'internal error', 'sign');
        }
        const answer = err as HttpAnswer;
        if (answer.reason !== 'routing') log.warn({ node, status: answer.status }, answer.text);
        opts.onRefused?.(answer.reason, node);
        if (answer.status === 500 && req.readableEnded === false) res.setHeader('Connection', 'close');
        sendText(res, answer.status, answer.text);
      });
    },
  );
}

function headerValue(req: IncomingMessage, name: string): string {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v) ?? '';
}

/** The `ExtKeyUsages` header: a JSON array of Go `x509.ExtKeyUsage` numbers. */
function parseUsages(text: string): string[] | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return errorText(err);
  }
  if (!Array.isArray(value)) return `expected a JSON array of numbers, got ${text}`;
  const oids: string[] = [];
  for (const n of value) {
    const oid = typeof n === 'number' ? EXT_KEY_USAGE_OIDS[n] : undefined;
    if (oid === undefined) return `unknown ExtKeyUsage ${JSON.stringify(n)}`;
    oids.push(oid);
  }
  return oids;
}

/** `O=a\nCN=b` (node's X509Certificate.subject) as lists per attribute. */
function subjectFields(subject: string): { CN: string[]; O: string[] } {
  const out = { CN: [] as string[], O: [] as string[] };
  for (const line of subject.split('\n')) {
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    if (key === 'CN' || key === 'O') out[key].push(line.slice(eq + 1));
  }
  return out;
}
