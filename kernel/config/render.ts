/**
 * `--minconfig` / `--defaultconfig` printing: Go `encoding/json` marshalling (omitempty rules from
 * the schema), then YAML the way `sigs.k8s.io/yaml` (go-yaml v2) writes it: keys sorted with
 * go-yaml's key order, 2-space indentation, list items at the parent key's column, strings quoted
 * only when YAML would read them as something else.
 */
import type { ListSchema, MapSchema, ObjectSchema, Schema } from './schema.js';

const OMIT = Symbol('omit');

// ---------------------------------------------------------------------------------------------
// Go marshalling
// ---------------------------------------------------------------------------------------------

function goZero(s: Schema): unknown {
  switch (s.kind) {
    case 'bool':
      return false;
    case 'int':
    case 'number':
      return 0;
    case 'string':
      return '';
    case 'duration':
      return '0s';
    case 'quantity':
      return '0';
    case 'object':
      return s.ptr ? null : {};
    default:
      return null;
  }
}

function isEmptyValue(v: unknown, s: Schema): boolean {
  switch (s.kind) {
    case 'bool':
      return v === false;
    case 'int':
    case 'number':
      return v === 0;
    case 'string':
      return v === '';
    case 'list':
      return Array.isArray(v) && v.length === 0;
    case 'map':
      return typeof v === 'object' && v !== null && Object.keys(v).length === 0;
    default:
      return false; // structs (objects, durations, quantities) are never empty for omitempty
  }
}

function marshalField(v: unknown, s: Schema): unknown {
  if (s.hidden) return OMIT;
  const omit = s.omit ?? 'empty';
  if (v === undefined) {
    if (omit !== 'never') return OMIT;
    v = goZero(s);
  }
  if (v === null) return omit === 'never' ? null : OMIT;
  if (omit === 'empty' && isEmptyValue(v, s)) return OMIT;
  return marshalValue(v, s);
}

function marshalValue(v: unknown, s: Schema): unknown {
  if (v === null || v === undefined) return null;
  switch (s.kind) {
    case 'object':
      return marshalObject(v, s);
    case 'list':
      return Array.isArray(v)
        ? v.map((item) => marshalValue(item ?? goZero((s as ListSchema).of), s.of))
        : null;
    case 'map': {
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
        out[k] = marshalValue(item, (s as MapSchema).of);
      }
      return out;
    }
    default:
      return v;
  }
}

function marshalObject(v: unknown, s: ObjectSchema): Record<string, unknown> {
  const src = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, fs] of Object.entries(s.fields)) {
    const m = marshalField(src[key], fs);
    if (m !== OMIT) out[key] = m;
  }
  return out;
}

/** The JSON-like tree Go would marshal for `obj` (hidden fields and unknown keys dropped). */
export function goMarshal(obj: object, schema: ObjectSchema): Record<string, unknown> {
  return marshalObject(obj, schema);
}

// ---------------------------------------------------------------------------------------------
// YAML emitting (go-yaml v2 style)
// ---------------------------------------------------------------------------------------------

const isLetter = (c: string) => /\p{L}/u.test(c);
const isDigit = (c: string) => c >= '0' && c <= '9';

/** go-yaml v2's key order (sorter.go): letters by code point, digit runs numerically, non-letters first. */
export function goYamlKeyLess(a: string, b: string): boolean {
  const ar = [...a];
  const br = [...b];
  for (let i = 0; i < ar.length && i < br.length; i++) {
    const ca = ar[i] as string;
    const cb = br[i] as string;
    if (ca === cb) continue;
    const al = isLetter(ca);
    const bl = isLetter(cb);
    if (al && bl) return (ca.codePointAt(0) ?? 0) < (cb.codePointAt(0) ?? 0);
    if (al || bl) return bl;
    let an = 0;
    let bn = 0;
    if (ca === '0' || cb === '0') {
      for (let j = i - 1; j >= 0 && isDigit(ar[j] as string); j--) {
        if (ar[j] !== '0') {
          an = 1;
          bn = 1;
          break;
        }
      }
    }
    let ai = i;
    for (; ai < ar.length && isDigit(ar[ai] as string); ai++) an = an * 10 + Number(ar[ai]);
    let bi = i;
    for (; bi < br.length && isDigit(br[bi] as string); bi++) bn = bn * 10 + Number(br[bi]);
    if (an !== bn) return an < bn;
    if (ai !== bi) return ai < bi;
    return (ca.codePointAt(0) ?? 0) < (cb.codePointAt(0) ?? 0);
  }
  return ar.length < br.length;
}

const keyCompare = (a: string, b: string) => (goYamlKeyLess(a, b) ? -1 : goYamlKeyLess(b, a) ? 1 : 0);

const YAML11_SPECIAL = new Set([
  '~',
  'null',
  'Null',
  'NULL',
  'y',
  'Y',
  'yes',
  'Yes',
  'YES',
  'n',
  'N',
  'no',
  'No',
  'NO',
  'true',
  'True',
  'TRUE',
  'false',
  'False',
  'FALSE',
  'on',
  'On',
  'ON',
  'off',
  'Off',
  'OFF',
  '.nan',
  '.NaN',
  '.NAN',
  '.inf',
  '.Inf',
  '.INF',
  '+.inf',
  '+.Inf',
  '+.INF',
  '-.inf',
  '-.Inf',
  '-.INF',
  '<<',
]);

/** Would go-yaml v2 read this plain scalar as something other than a string? */
function resolvesToNonString(s: string): boolean {
  if (YAML11_SPECIAL.has(s)) return true;
  const plain = s.replace(/_/g, '');
  if (/^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|[0-9]+)$/.test(plain)) return true;
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(plain)) return true;
  if (/^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$/.test(s)) return true; // base 60
  if (/^\d{4}-\d{1,2}-\d{1,2}(?:[Tt ].*)?$/.test(s)) return true; // timestamp
  return false;
}

const isPrintable = (c: string) => {
  const cp = c.codePointAt(0) ?? 0;
  return (
    cp === 0x0a ||
    (cp >= 0x20 && cp <= 0x7e) ||
    cp === 0x85 ||
    (cp >= 0xa0 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd && cp !== 0xfeff) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
};

/** libyaml's analysis: may this string be written plain in block context? */
function plainAllowed(s: string): boolean {
  const chars = [...s];
  if (/^(---|\.\.\.)([ \t\n]|$)/.test(s)) return false;
  if (s.startsWith(' ') || s.endsWith(' ')) return false;
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string;
    const next = chars[i + 1];
    const followedByBlank = next === undefined || next === ' ' || next === '\t' || next === '\n';
    if (i === 0) {
      if ('#,[]{}&*!|>\'"%@`'.includes(c)) return false;
      if ((c === '?' || c === ':' || c === '-') && followedByBlank) return false;
    } else {
      if (c === ':' && followedByBlank) return false;
      if (c === '#' && (chars[i - 1] === ' ' || chars[i - 1] === '\t')) return false;
    }
  }
  return true;
}

function doubleQuoted(s: string): string {
  let out = '"';
  for (const c of s) {
    const cp = c.codePointAt(0) ?? 0;
    if (c === '"' || c === '\\') out += `\\${c}`;
    else if (c === '\n') out += '\\n';
    else if (c === '\t') out += '\\t';
    else if (c === '\r') out += '\\r';
    else if (!isPrintable(c)) {
      out +=
        cp <= 0xff
          ? `\\x${cp.toString(16).toUpperCase().padStart(2, '0')}`
          : `\\u${cp.toString(16).toUpperCase().padStart(4, '0')}`;
    } else out += c;
  }
  return `${out}"`;
}

export function formatString(s: string): string {
  if (s === '') return '""';
  if (resolvesToNonString(s)) return doubleQuoted(s);
  if ([...s].some((c) => c === '\n' || c === '\t' || !isPrintable(c))) return doubleQuoted(s);
  if (!plainAllowed(s)) return `'${s.replace(/'/g, "''")}'`;
  return s;
}

/** Go's strconv.FormatFloat(f, 'g', -1, 64) for a non-integer; integers print as integers. */
export function formatNumber(n: number): string {
  if (Number.isNaN(n)) return '.nan';
  if (!Number.isFinite(n)) return n > 0 ? '.inf' : '-.inf';
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return n.toFixed(0);
  const [mant = '0', expText = '0'] = n.toExponential().split('e');
  const exp = Number(expText);
  if (exp < -4 || exp >= 6) {
    const sign = exp < 0 ? '-' : '+';
    return `${mant}e${sign}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return String(n);
}

function scalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'string') return formatString(v);
  return formatString(String(v));
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function inline(v: unknown): string | undefined {
  if (Array.isArray(v)) return v.length === 0 ? '[]' : undefined;
  if (isObject(v)) return Object.keys(v).length === 0 ? '{}' : undefined;
  return scalar(v);
}

function emitMap(m: Record<string, unknown>, indent: number, out: string[]): void {
  const pad = ' '.repeat(indent);
  for (const key of Object.keys(m).sort(keyCompare)) {
    const v = m[key];
    const k = formatString(key);
    const text = inline(v);
    if (text !== undefined) {
      out.push(`${pad}${k}: ${text}`);
    } else if (Array.isArray(v)) {
      out.push(`${pad}${k}:`);
      emitSeq(v, indent, out);
    } else {
      out.push(`${pad}${k}:`);
      emitMap(v as Record<string, unknown>, indent + 2, out);
    }
  }
}

function emitSeq(items: unknown[], indent: number, out: string[]): void {
  const pad = ' '.repeat(indent);
  for (const item of items) {
    const text = inline(item);
    if (text !== undefined) {
      out.push(`${pad}- ${text}`);
      continue;
    }
    const sub: string[] = [];
    if (Array.isArray(item)) emitSeq(item, indent + 2, sub);
    else emitMap(item as Record<string, unknown>, indent + 2, sub);
    sub[0] = `${pad}- ${(sub[0] ?? '').slice(indent + 2)}`;
    out.push(...sub);
  }
}

/** YAML text of a JSON-like tree, go-yaml v2 style (ends with a newline). */
export function toGoYaml(tree: Record<string, unknown>): string {
  if (Object.keys(tree).length === 0) return '{}\n';
  const out: string[] = [];
  emitMap(tree, 0, out);
  return `${out.join('\n')}\n`;
}

export const MIN_HEADER = [
  '# With --minconfig , you can easily used this configurations as reference.',
  "# It's useful to users who are new to KubeEdge, and you can modify/create your own configs accordingly. ",
  '# This configuration is suitable for beginners.',
];

export const DEFAULT_HEADER = [
  '# With --defaultconfig flag, users can easily get a default full config file as reference, with all fields (and field descriptions) included and default values set. ',
  '# Users can modify/create their own configs accordingly as reference. ',
  '# Because it is a full configuration, it is more suitable for advanced users.',
];

/** What `--minconfig` / `--defaultconfig` print: three comment lines, a blank line, the YAML, a blank line. */
export function renderWithHeader(tree: Record<string, unknown>, flavour: 'min' | 'default'): string {
  const header = flavour === 'min' ? MIN_HEADER : DEFAULT_HEADER;
  return `${header.join('\n')}\n\n${toGoYaml(tree)}\n\n`;
}
