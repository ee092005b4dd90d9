/**
 * The join token (wire-cloud-edge §4.2): `<caHash>.<jwtHeader>.<jwtPayload>.<jwtSignature>`, where
 * caHash is the hex SHA-256 of the CA certificate DER and the JWT is HS256 keyed with the CA private
 * key DER, carrying only `exp` = creation + 2 × tokenRefreshDuration hours.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { errorText, type Logger } from '../../kernel/index.js';
import { TOKEN_SECRET, type KeyPairDer, type PkiStore } from './pki.js';

/** Default `cloudHub.tokenRefreshDuration` (hours). */
export const DEFAULT_TOKEN_REFRESH_HOURS = 12;
/** setInterval's limit (2^31-1 ms) in whole hours. */
const MAX_REFRESH_HOURS = 596;

const JWT_HEADER = Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url');
const HMAC_HASH: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

/** Lowercase hex SHA-256 of the CA certificate DER, exactly the bytes served at `/ca.crt`. */
export function hashCa(caDer: Uint8Array): string {
  return createHash('sha256').update(caDer).digest('hex');
}

/** The token's expiry (unix seconds) for a token created at `nowMs`. */
export function tokenExpiry(nowMs: number, refreshHours: number): number {
  return Math.floor((nowMs + 2 * refreshHours * 3_600_000) / 1000);
}

/** KubeEdge's `token.Create`. */
export function createToken(ca: KeyPairDer, refreshHours: number, nowMs = Date.now()): string {
  const payload = Buffer.from(JSON.stringify({ exp: tokenExpiry(nowMs, refreshHours) })).toString(
    'base64url',
  );
  const signingInput = `${JWT_HEADER}.${payload}`;
  const signature = createHmac('sha256', ca.key).update(signingInput).digest('base64url');
  return `${hashCa(ca.cert)}.${signingInput}.${signature}`;
}

function decodeSegment(segment: string, what: string): Record<string, unknown> | string {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return `token is malformed: could not JSON decode ${what}`;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return `token is malformed: could not JSON decode ${what}`;
  }
  return value as Record<string, unknown>;
}

/**
 * Check a compact JWT the way cloudcore's `token.Verify` (golang-jwt v5) does: HMAC family only,
 * signature keyed with the CA key DER, then `exp` and `nbf`. Returns undefined when valid, else
 * golang-jwt's error text.
 */
export function verifyJwt(jwt: string, caKeyDer: Uint8Array, nowMs = Date.now()): string | undefined {
  const parts = jwt.split('.');
  if (parts.length !== 3) return 'token is malformed: token contains an invalid number of segments';
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = decodeSegment(headerPart, 'header');
  if (typeof header === 'string') return header;
  const claims = decodeSegment(payloadPart, 'claims');
  if (typeof claims === 'string') return claims;
  const alg = typeof header.alg === 'string' ? header.alg : '';
  const hash = HMAC_HASH[alg];
  if (hash === undefined) {
    return `token is unverifiable: error while executing keyfunc: invalid token method type, want *jwt.SigningMethodHMAC, but is ${alg || 'none'}`;
  }
  const expected = createHmac(hash, caKeyDer).update(`${headerPart}.${payloadPart}`).digest();
  const given = Buffer.from(signaturePart, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return 'token signature is invalid: signature is invalid';
  }
  const nowSec = nowMs / 1000;
  for (const claim of ['exp', 'nbf'] as const) {
    const v = claims[claim];
    if (v !== undefined && typeof v !== 'number') return `token has invalid claims: ${claim} is invalid`;
  }
  if (typeof claims.exp === 'number' && !(nowSec < claims.exp))
    return 'token has invalid claims: token is expired';
  if (typeof claims.nbf === 'number' && nowSec < claims.nbf)
    return 'token has invalid claims: token is not valid yet';
  return undefined;
}

/**
 * cloudcore's `verifyAuthorization` for `GET /edge.crt`: the `Authorization` header split on one
 * space into exactly two parts (the scheme word is not checked). Returns undefined when the token is
 * good, else the text of the 401 body.
 */
export function verifyAuthorization(
  header: string | undefined,
  caKeyDer: Uint8Array,
  nowMs = Date.now(),
): string | undefined {
  if (header === undefined || header === '') return 'token validation failure, token is empty';
  const parts = header.split(' ');
  if (parts.length !== 2) return 'token validation failure, token cannot be split';
  const err = verifyJwt(parts[1]!, caKeyDer, nowMs);
  return err === undefined ? undefined : `token validation failure, err: ${err}`;
}

export interface TokenRefresher {
  /** The newest token (also in the store's `tokensecret`). */
  readonly token: string;
  stop(): void;
}

/**
 * KubeEdge's `GenerateAndRefreshToken`: create a token now, save it to `tokensecret`, and again
 * every `refreshHours`. Unlike KubeEdge (which stops refreshing after one failed save), a failed
 * refresh is logged and retried at the next tick.
 */
export async function startTokenRefresh(opts: {
  ca: KeyPairDer;
  store: PkiStore;
  refreshHours?: number;
  log: Logger;
}): Promise<TokenRefresher> {
  const refreshHours = opts.refreshHours ?? DEFAULT_TOKEN_REFRESH_HOURS;
  if (!Number.isInteger(refreshHours) || refreshHours < 1 || refreshHours > MAX_REFRESH_HOURS) {
    throw new RangeError(
      `cloudHub.tokenRefreshDuration: expected whole hours from 1 to ${MAX_REFRESH_HOURS}, got ${refreshHours}`,
    );
  }
  let token = '';
  const refresh = async (): Promise<void> => {
    const next = createToken(opts.ca, refreshHours);
    await opts.store.put(TOKEN_SECRET.name, { [TOKEN_SECRET.key]: Buffer.from(next) });
    token = next;
  };
  await refresh();
  opts.log.info({ refreshHours }, 'join token created');
  const timer = setInterval(() => {
    refresh().then(
      () => opts.log.info('join token refreshed'),
      (err: unknown) =>
        opts.log.warn(`failed to refresh the join token, retrying in ${refreshHours} h: ${errorText(err)}`),
    );
  }, refreshHours * 3_600_000);
  timer.unref();
  return {
    get token() {
      return token;
    },
    stop: () => clearInterval(timer),
  };
}
