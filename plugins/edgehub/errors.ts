/**
 * The certificate bootstrap errors of wire-cloud-edge §4.7, each with its own code and a message that
 * starts with KubeEdge's text (so searches for it still find the cause) and ends with the fix.
 */
import { isIP } from 'node:net';
import { KernelError } from '../../kernel/index.js';

export type BootstrapErrorCode =
  /** the token is not `caHash.header.payload.signature` */
  | 'EBOOTSTRAP_TOKEN_FORMAT'
  /** the token's caHash is not the hash of the CA the server sends */
  | 'EBOOTSTRAP_CA_HASH'
  /** `/ca.crt` answered something that is not a DER certificate, or not 200 */
  | 'EBOOTSTRAP_CA_FETCH'
  /** 401 token validation failure: expired, or signed by another CA key */
  | 'EBOOTSTRAP_TOKEN_REJECTED'
  /** 401 on rotation: the current certificate is not accepted */
  | 'EBOOTSTRAP_CERT_REJECTED'
  /** 403: node isolation refused a certificate for this node name */
  | 'EBOOTSTRAP_NODE_REFUSED'
  /** 406 from go-restful: an Accept header without a wildcard */
  | 'EBOOTSTRAP_NOT_ACCEPTABLE'
  /** any other non-200 answer */
  | 'EBOOTSTRAP_HTTP'
  /** the server certificate does not name the address dialed */
  | 'EBOOTSTRAP_SERVER_SAN'
  /** the server certificate does not chain to the CA fetched for the token */
  | 'EBOOTSTRAP_SERVER_UNTRUSTED'
  /** connection refused, reset, no route, DNS, timeout */
  | 'EBOOTSTRAP_UNREACHABLE'
  /** the issued certificate does not fit the request */
  | 'EBOOTSTRAP_BAD_CERT'
  /** the certificate files cannot be read or written */
  | 'EBOOTSTRAP_FILES';

export class BootstrapError extends KernelError {
  declare readonly code: BootstrapErrorCode;
  constructor(code: BootstrapErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'BootstrapError';
  }
}

const GETTOKEN = 'get a fresh token with `keadm gettoken` on the cloud';

/** A token shown in errors: enough to recognise it, not enough to use it. */
function abbreviate(token: string): string {
  return token.length <= 16 ? JSON.stringify(token) : `"${token.slice(0, 12)}…" (${token.length} characters)`;
}

/** What is wrong with a token that does not have 4 parts, in the user's words. */
function formatHint(token: string): string {
  if (token === '') {
    return 'the token is empty; a token is cleared from edgecore.yaml after the first bootstrap, so a new certificate needs a new one';
  }
  if (/\s/.test(token)) return 'it contains spaces or line breaks: paste it on one line';
  const parts = token.split('.');
  if (parts.length === 3 && token.startsWith('eyJ')) {
    return 'it is the JWT alone: the caHash prefix (64 hex characters and a dot) is missing';
  }
  if (/^[A-Za-z0-9+/]+=*$/.test(token)) {
    const decoded = Buffer.from(token, 'base64').toString('utf8').trim();
    if (decoded.split('.').length === 4) {
      return "it is base64-encoded (copied from the secret's data): decode it (`base64 -d`) or use `keadm gettoken`, which prints it decoded";
    }
  }
  return `it has ${parts.length} part${parts.length === 1 ? '' : 's'}`;
}

export function tokenFormatError(token: string, source: string): BootstrapError {
  return new BootstrapError(
    'EBOOTSTRAP_TOKEN_FORMAT',
    `token ${abbreviate(token)} credentials are in the wrong format (read from ${source}): ${formatHint(token)}; ` +
      `it must be the 4-part value printed by \`keadm gettoken\` (caHash.header.payload.signature), ` +
      'in modules.edgeHub.token or the bootstrap file',
  );
}

export function caHashError(tokenHash: string, caHash: string, caUrl: string): BootstrapError {
  return new BootstrapError(
    'EBOOTSTRAP_CA_HASH',
    `failed to validate CA certificate. tokenCAhash: ${tokenHash}, CAhash: ${caHash}: ` +
      `the token was issued by another cloudcore than the one at ${caUrl} (or that server does not send its CA as DER); ${GETTOKEN} you connect to`,
  );
}

export function caFetchError(url: string, detail: string): BootstrapError {
  return new BootstrapError(
    'EBOOTSTRAP_CA_FETCH',
    `failed to get CA certificate from ${url}: ${detail}; check modules.edgeHub.httpServer points at cloudcore's cloudHub.https port (10002)`,
  );
}

/** A non-200 answer of `GET /edge.crt`, mapped to its cause. */
export function certHttpError(status: number, body: string, rotation: boolean): BootstrapError {
  const base = `failed to call http, code: ${status}, message: ${body}`;
  if (status === 401 && body.startsWith('token validation failure')) {
    return new BootstrapError(
      'EBOOTSTRAP_TOKEN_REJECTED',
      `${base}: the token has expired (a token is valid 2 × tokenRefreshDuration, 24 h by default) or was signed by another CA; ${GETTOKEN}`,
    );
  }
  if (status === 401 && rotation) {
    return new BootstrapError(
      'EBOOTSTRAP_CERT_REJECTED',
      `${base}: cloudcore does not accept the current certificate for rotation (another CA, expired, or another node); ` +
        `bootstrap again: ${GETTOKEN} and put it in modules.edgeHub.token or the bootstrap file`,
    );
  }
  if (status === 403) {
    return new BootstrapError(
      'EBOOTSTRAP_NODE_REFUSED',
      `${base}: cloudcore only issues a certificate for the node named in the request; check modules.edged.hostnameOverride`,
    );
  }
  if (status === 406) {
    return new BootstrapError(
      'EBOOTSTRAP_NOT_ACCEPTABLE',
      `${base}: the request carried an Accept header without */*; omit it or include */*`,
    );
  }
  return new BootstrapError('EBOOTSTRAP_HTTP', base);
}

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
]);

/** A failed HTTPS exchange with the cert server, mapped to its cause. */
export function transportError(err: unknown, url: string): BootstrapError {
  const e = err as NodeJS.ErrnoException & { host?: string; cert?: { subjectaltname?: string } };
  const code = e?.code ?? '';
  const text = e instanceof Error ? e.message : String(err);
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const host = e.host ?? new URL(url).hostname;
    const sans = (e.cert?.subjectaltname ?? '').split(', ');
    const ip = isIP(host) !== 0;
    const names = sans
      .filter((n) => n.startsWith(ip ? 'IP Address:' : 'DNS:'))
      .map((n) => n.slice(n.indexOf(':') + 1));
    // Go's wording (crypto/x509 HostnameError), which is what users search for
    const goText =
      names.length > 0
        ? `x509: certificate is valid for ${names.join(', ')}, not ${host}`
        : ip
          ? `x509: cannot validate certificate for ${host} because it doesn't contain any IP SANs`
          : `x509: certificate is not valid for any names, but wanted to match ${host}`;
    return new BootstrapError(
      'EBOOTSTRAP_SERVER_SAN',
      `${goText}: the cloudcore server certificate does not name ${host}; add ${host} to cloudHub.${ip ? 'advertiseAddress' : 'dnsNames'} ` +
        'in cloudcore.yaml and restart cloudcore so it issues a server certificate naming it ' +
        '(a Go cloudcore keeps its old one: delete the secret kubeedge/cloudcoresecret first)',
      { cause: err },
    );
  }
  if (UNTRUSTED.has(code)) {
    return new BootstrapError(
      'EBOOTSTRAP_SERVER_UNTRUSTED',
      `the server at ${url} is not trusted by the CA (${code}: ${text}): the address serves another cloudcore or a proxy; check modules.edgeHub.httpServer`,
      { cause: err },
    );
  }
  const timeout = code === 'ABORT_ERR' || (e instanceof Error && e.name === 'TimeoutError');
  return new BootstrapError(
    'EBOOTSTRAP_UNREACHABLE',
    `cannot reach the cert server at ${url}: ${timeout ? 'no answer in time' : `${code} ${text}`.trim()}; ` +
      'check modules.edgeHub.httpServer and that cloudcore runs with cloudHub.https enabled',
    { cause: err },
  );
}
