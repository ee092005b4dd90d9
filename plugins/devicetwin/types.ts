/**
 * deviceTwin's JSON types (spec edge-modules §5.2) with Go's decoding rules: keys match
 * case-insensitively (exact match first), strict value types, unknown keys ignored. Encoding follows
 * Go's encoding/json: struct fields in declaration order, map keys sorted, omitempty where Go has it.
 */

export interface TwinValue {
  value?: string | null;
  metadata?: { timestamp?: number } | null;
}
export interface TwinVersion {
  cloud: number;
  edge: number;
}
export interface MsgTwin {
  expected?: TwinValue | null;
  actual?: TwinValue | null;
  optional?: boolean | null;
  metadata?: { type?: string } | null;
  expected_version?: TwinVersion | null;
  actual_version?: TwinVersion | null;
}
export interface MsgAttr {
  value: string;
  optional?: boolean | null;
  metadata?: { type?: string } | null;
}
export interface DeviceJson {
  id?: string;
  name?: string;
  description?: string;
  state?: string;
  last_online?: string;
  attributes?: Record<string, MsgAttr | null> | null;
  twin?: Record<string, MsgTwin | null> | null;
}

export class PayloadError extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
  ) {
    super(`${path}: expected ${expected}`);
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Go's key lookup: exact key first, then the last case-insensitive match. */
export function field(obj: Obj, key: string): unknown {
  if (Object.prototype.hasOwnProperty.call(obj, key)) return obj[key];
  const lower = key.toLowerCase();
  let found: unknown;
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) found = obj[k];
  return found;
}

function str(v: unknown, path: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new PayloadError(path, 'a string');
  return v;
}
function int(v: unknown, path: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new PayloadError(path, 'an integer');
  return v;
}
function bool(v: unknown, path: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new PayloadError(path, 'a boolean');
  return v;
}
function obj(v: unknown, path: string): Obj | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw new PayloadError(path, 'an object');
  return v;
}

export interface BaseMessage {
  event_id: string;
  timestamp: number;
}

export function parseBase(o: Obj): BaseMessage {
  return {
    event_id: str(field(o, 'event_id'), 'event_id') ?? '',
    timestamp: int(field(o, 'timestamp'), 'timestamp') ?? 0,
  };
}

function parseTwinValue(v: unknown, path: string): TwinValue | null | undefined {
  const o = obj(v, path);
  if (!o) return v === null ? null : undefined;
  const out: TwinValue = {};
  const value = str(field(o, 'value'), `${path}.value`);
  if (value !== undefined) out.value = value;
  const meta = obj(field(o, 'metadata'), `${path}.metadata`);
  if (meta) {
    const ts = int(field(meta, 'timestamp'), `${path}.metadata.timestamp`);
    out.metadata = ts !== undefined ? { timestamp: ts } : {};
  }
  return out;
}

function parseVersion(v: unknown, path: string): TwinVersion | undefined {
  const o = obj(v, path);
  if (!o) return undefined;
  return {
    cloud: int(field(o, 'cloud'), `${path}.cloud`) ?? 0,
    edge: int(field(o, 'edge'), `${path}.edge`) ?? 0,
  };
}

function parseTypeMeta(v: unknown, path: string): { type?: string } | undefined {
  const o = obj(v, path);
  if (!o) return undefined;
  const t = str(field(o, 'type'), `${path}.type`);
  return t !== undefined ? { type: t } : {};
}

export function parseMsgTwin(v: unknown, path: string): MsgTwin | null {
  if (v === null) return null;
  const o = obj(v, path)!;
  const out: MsgTwin = {};
  const expected = parseTwinValue(field(o, 'expected'), `${path}.expected`);
  if (expected) out.expected = expected;
  const actual = parseTwinValue(field(o, 'actual'), `${path}.actual`);
  if (actual) out.actual = actual;
  const optional = bool(field(o, 'optional'), `${path}.optional`);
  if (optional !== undefined) out.optional = optional;
  const metadata = parseTypeMeta(field(o, 'metadata'), `${path}.metadata`);
  if (metadata) out.metadata = metadata;
  const ev = parseVersion(field(o, 'expected_version'), `${path}.expected_version`);
  if (ev) out.expected_version = ev;
  const av = parseVersion(field(o, 'actual_version'), `${path}.actual_version`);
  if (av) out.actual_version = av;
  return out;
}

export function parseTwinMap(v: unknown, path: string): Map<string, MsgTwin | null> | undefined {
  const o = obj(v, path);
  if (!o) return undefined;
  const out = new Map<string, MsgTwin | null>();
  for (const [k, val] of Object.entries(o)) out.set(k, parseMsgTwin(val, `${path}.${k}`));
  return out;
}

export function parseAttrMap(v: unknown, path: string): Map<string, MsgAttr | null> | undefined {
  const o = obj(v, path);
  if (!o) return undefined;
  const out = new Map<string, MsgAttr | null>();
  for (const [k, val] of Object.entries(o)) {
    if (val === null) {
      out.set(k, null);
      continue;
    }
    const a = obj(val, `${path}.${k}`)!;
    const attr: MsgAttr = { value: str(field(a, 'value'), `${path}.${k}.value`) ?? '' };
    const optional = bool(field(a, 'optional'), `${path}.${k}.optional`);
    if (optional !== undefined) attr.optional = optional;
    const metadata = parseTypeMeta(field(a, 'metadata'), `${path}.${k}.metadata`);
    if (metadata) attr.metadata = metadata;
    out.set(k, attr);
  }
  return out;
}

export interface ParsedDevice {
  id: string;
  name: string;
  description: string;
  state: string;
  lastOnline: string;
  attributes?: Map<string, MsgAttr | null>;
  twin?: Map<string, MsgTwin | null>;
  /** The entry as received, re-published on membership/updated. */
  raw: Obj;
}

export function parseDevice(v: unknown, path: string): ParsedDevice {
  const o = obj(v, path);
  if (!o) throw new PayloadError(path, 'a device object');
  const dev: ParsedDevice = {
    id: str(field(o, 'id'), `${path}.id`) ?? '',
    name: str(field(o, 'name'), `${path}.name`) ?? '',
    description: str(field(o, 'description'), `${path}.description`) ?? '',
    state: str(field(o, 'state'), `${path}.state`) ?? '',
    lastOnline: str(field(o, 'last_online'), `${path}.last_online`) ?? '',
    raw: o,
  };
  const attributes = parseAttrMap(field(o, 'attributes'), `${path}.attributes`);
  if (attributes) dev.attributes = attributes;
  const twin = parseTwinMap(field(o, 'twin'), `${path}.twin`);
  if (twin) dev.twin = twin;
  return dev;
}

export function parseDeviceList(v: unknown, path: string): ParsedDevice[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) throw new PayloadError(path, 'an array of devices');
  return v.map((d, i) => parseDevice(d, `${path}[${i}]`));
}

// -------------------------------------------------------------------------------------------------
// Encoding (Go's encoding/json output for these structs)

function encValue(v: TwinValue): Obj {
  const out: Obj = {};
  if (v.value !== undefined && v.value !== null) out.value = v.value;
  if (v.metadata) {
    const m: Obj = {};
    if (v.metadata.timestamp) m.timestamp = v.metadata.timestamp;
    out.metadata = m;
  }
  return out;
}

/** A MsgTwin as Go marshals it (field order, omitempty); `withVersions` false drops the versions. */
export function encodeMsgTwin(t: MsgTwin, withVersions = true): Obj {
  const out: Obj = {};
  if (t.expected) out.expected = encValue(t.expected);
  if (t.actual) out.actual = encValue(t.actual);
  if (t.optional !== undefined && t.optional !== null) out.optional = t.optional;
  if (t.metadata) out.metadata = t.metadata.type ? { type: t.metadata.type } : {};
  if (withVersions && t.expected_version)
    out.expected_version = { cloud: t.expected_version.cloud, edge: t.expected_version.edge };
  if (withVersions && t.actual_version)
    out.actual_version = { cloud: t.actual_version.cloud, edge: t.actual_version.edge };
  return out;
}

// The same encodings straight to JSON text (the hot path of twin updates: no intermediate objects).
const q = JSON.stringify;
/** JSON text of a number: `String` is several times faster than JSON.stringify (same text when finite). */
export const jsonNumber = (n: number): string => (Number.isFinite(n) ? String(n) : 'null');

function valueJson(v: TwinValue): string {
  let out = '{';
  if (v.value !== undefined && v.value !== null) out += '"value":' + q(v.value);
  if (v.metadata) {
    if (out.length > 1) out += ',';
    out += v.metadata.timestamp
      ? '"metadata":{"timestamp":' + jsonNumber(v.metadata.timestamp) + '}}'
      : '"metadata":{}}';
    return out;
  }
  return out + '}';
}

/** JSON text of encodeMsgTwin(t, withVersions). */
export function msgTwinJson(t: MsgTwin, withVersions = true): string {
  let out = '{';
  let sep = '';
  if (t.expected) {
    out += '"expected":' + valueJson(t.expected);
    sep = ',';
  }
  if (t.actual) {
    out += sep + '"actual":' + valueJson(t.actual);
    sep = ',';
  }
  if (t.optional !== undefined && t.optional !== null) {
    out += sep + (t.optional ? '"optional":true' : '"optional":false');
    sep = ',';
  }
  if (t.metadata) {
    out += sep + (t.metadata.type ? '"metadata":{"type":' + q(t.metadata.type) + '}' : '"metadata":{}');
    sep = ',';
  }
  if (withVersions && t.expected_version) {
    out += `${sep}"expected_version":{"cloud":${jsonNumber(t.expected_version.cloud)},"edge":${jsonNumber(t.expected_version.edge)}}`;
    sep = ',';
  }
  if (withVersions && t.actual_version)
    out += `${sep}"actual_version":{"cloud":${jsonNumber(t.actual_version.cloud)},"edge":${jsonNumber(t.actual_version.edge)}}`;
  return out + '}';
}

/** JSON text of a Go map (keys sorted as Go sorts strings), values already encoded by `enc`. */
export function sortedMapJson<V>(m: Map<string, V>, enc: (v: V) => string): string {
  if (m.size === 1) for (const [k, v] of m) return '{' + q(k) + ':' + enc(v) + '}';
  const keys = [...m.keys()].sort();
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    out += (i > 0 ? ',' : '') + q(k) + ':' + enc(m.get(k) as V);
  }
  return out + '}';
}

/** A Go map: keys sorted. */
export function sortedMap<V, R>(m: Map<string, V>, enc: (v: V) => R): Record<string, R> {
  // no prototype: a twin named `__proto__` is an own key, not the object's prototype
  const out = Object.create(null) as Record<string, R>;
  for (const k of [...m.keys()].sort()) out[k] = enc(m.get(k) as V);
  return out;
}

export function encodeAttr(a: MsgAttr): Obj {
  const out: Obj = { value: a.value };
  if (a.optional !== undefined && a.optional !== null) out.optional = a.optional;
  if (a.metadata) out.metadata = a.metadata.type ? { type: a.metadata.type } : {};
  return out;
}

// -------------------------------------------------------------------------------------------------
// Validation (edge/pkg/devicetwin/dtcommon/util.go, dttype/types.go)

export const ERR_UNMARSHAL = 'Unmarshal update request body failed, please check the request';
export const ERR_NO_TWIN = 'Update twin error, key:twin does not exist';

const INT_RE = /^[+-]?\d+$/;
const FLOAT_RE = /^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf(inity)?|nan)$/i;

/** dtcommon.ValidateValue: null when the value fits the type, else Go's error text. */
export function validateValue(type: string, value: string): string | null {
  switch (type) {
    case '':
    case 'string':
    case 'deleted':
      return null;
    case 'int':
    case 'integer': {
      if (!INT_RE.test(value)) return 'the value is not int or integer';
      if (value.length <= 18) return null; // at most 18 digits: within int64
      const n = BigInt(value);
      return n > 9223372036854775807n || n < -9223372036854775808n ? 'the value is not int or integer' : null;
    }
    case 'float':
      return FLOAT_RE.test(value) && !/^[+-]?$/.test(value) ? null : 'the value is not float';
    case 'boolean':
      return value === 'true' || value === 'false' ? null : 'the bool value must be true or false';
    default:
      return 'the value type is not allowed';
  }
}
