/**
 * Go `time.Duration` text: parsing ("1m0s", "20s", "100ms", "1.5h", "0") and the canonical form
 * Go prints with `Duration.String()` ("4h0m0s", "1m30s", "100ms", "0s").
 *
 * Internally nanoseconds are held in a bigint so that every valid Go duration round-trips exactly.
 */

import { KernelError } from '../errors.js';

const NS = 1n;
const US = 1000n * NS;
const MS = 1000n * US;
const SEC = 1000n * MS;
const MIN = 60n * SEC;
const HOUR = 60n * MIN;
const MAX_NS = (1n << 63n) - 1n;

const UNITS: Record<string, bigint> = {
  ns: NS,
  us: US,
  µs: US, // U+00B5 micro sign
  μs: US, // U+03BC greek mu
  ms: MS,
  s: SEC,
  m: MIN,
  h: HOUR,
};

/** Nanoseconds of a Go duration string, or `undefined` when the text is not a valid Go duration. */
export function durationNanos(text: string): bigint | undefined {
  let s = text;
  let negative = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') return undefined;
  let total = 0n;
  while (s !== '') {
    const m = /^([0-9]*)(?:\.([0-9]*))?([^0-9.]+)/.exec(s);
    if (!m) return undefined;
    const whole = m[1] ?? '';
    const frac = m[2] ?? '';
    const unitText = m[3] ?? '';
    if (whole === '' && frac === '') return undefined; // "." or a bare unit
    // The unit ends at the next digit or dot; Go takes the longest run of non-digit, non-dot characters.
    const unit = UNITS[unitText];
    if (unit === undefined) return undefined;
    let v = BigInt(whole === '' ? '0' : whole) * unit;
    if (frac !== '') {
      // Exact: fraction * unit / 10^len, truncated like Go.
      v += (BigInt(frac) * unit) / 10n ** BigInt(frac.length);
    }
    total += v;
    if (total > MAX_NS + (negative ? 1n : 0n)) return undefined;
    s = s.slice(m[0].length);
  }
  return negative ? -total : total;
}

/**
 * Milliseconds of a Go duration string ("1m0s" -> 60000, "100ms" -> 100, "1.5us" -> 0.0015).
 * Throws a KernelError (ECONFIG_INVALID) naming the text when it is not a valid Go duration.
 */
export function parseDuration(text: string): number {
  const ns = typeof text === 'string' ? durationNanos(text) : undefined;
  if (ns === undefined) {
    throw new KernelError(
      'ECONFIG_INVALID',
      `invalid duration ${JSON.stringify(text)} (Go duration syntax, e.g. "1m0s", "20s", "100ms")`,
    );
  }
  return Number(ns) / 1e6;
}

/** True if `text` is a valid Go duration string. */
export function isDuration(text: string): boolean {
  return durationNanos(text) !== undefined;
}

/** Go's `time.Duration.String()` for a nanosecond count. */
export function formatNanos(nanos: bigint): string {
  if (nanos === 0n) return '0s';
  const neg = nanos < 0n;
  let u = neg ? -nanos : nanos;
  let out: string;
  if (u < SEC) {
    let unit: string;
    let div: bigint;
    if (u < US) {
      return (neg ? '-' : '') + `${u}ns`;
    } else if (u < MS) {
      unit = 'µs';
      div = US;
    } else {
      unit = 'ms';
      div = MS;
    }
    out = fixed(u, div) + unit;
  } else {
    const h = u / HOUR;
    u -= h * HOUR;
    const m = u / MIN;
    u -= m * MIN;
    const secs = fixed(u, SEC) + 's';
    if (h > 0n) out = `${h}h${m}m${secs}`;
    else if (m > 0n) out = `${m}m${secs}`;
    else out = secs;
  }
  return (neg ? '-' : '') + out;
}

/** `value / div` printed with the fractional digits Go prints (trailing zeros trimmed). */
function fixed(value: bigint, div: bigint): string {
  const whole = value / div;
  const rest = value % div;
  if (rest === 0n) return `${whole}`;
  const digits = div.toString().length - 1;
  const frac = rest.toString().padStart(digits, '0').replace(/0+$/, '');
  return `${whole}.${frac}`;
}

/** Canonical Go form of a duration string ("60s" -> "1m0s"); `undefined` if invalid. */
export function normalizeDuration(text: string): string | undefined {
  const ns = durationNanos(text);
  return ns === undefined ? undefined : formatNanos(ns);
}

/** Go-style duration text for a number of milliseconds (60000 -> "1m0s"). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) throw new Error(`invalid duration ${ms}`);
  return formatNanos(BigInt(Math.round(ms * 1e6)));
}
