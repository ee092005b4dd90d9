/**
 * Conversion of devices.kubeedge.io `Device` and `DeviceModel` between v1alpha2 and v1beta1 (spec
 * devices-dmi-router §1.8), both ways, lossless on round trips.
 *
 * Each kind is cut in sections (a device's node, protocol, properties, twins, v1beta1-only
 * fields). A default conversion maps what both versions can carry. Whatever the target cannot
 * carry is kept, per section, in an annotation `devices.kubeedge.io/<source version>-<section>`
 * holding the source's section and a hash of the section it produced; converting back, a section
 * whose converted form still has that hash (nobody edited it in the other version) is restored
 * from the annotation, and the annotation is dropped. A section edited in the other version is
 * converted by the default rules (the edit wins). Pure functions: no I/O.
 */
import { createHash } from 'node:crypto';

export const DEVICES_GROUP = 'devices.kubeedge.io';
export const V1ALPHA2 = `${DEVICES_GROUP}/v1alpha2`;
export const V1BETA1 = `${DEVICES_GROUP}/v1beta1`;
export type DeviceApiVersion = typeof V1ALPHA2 | typeof V1BETA1;

/** A Kubernetes object as the API server sends it (JSON). */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { annotations?: Record<string, string>; [k: string]: unknown };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

type Obj = Record<string, unknown>;

/** A conversion that cannot be made (unknown kind or version). */
export class ConversionError extends Error {
  readonly code = 'EADMISSION_CONVERT';
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const empty = (o: Obj): boolean => Object.keys(o).length === 0;

/** Drops undefined members, and the whole object when nothing is left. */
function compact(o: Obj): Obj | undefined {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return empty(out) ? undefined : out;
}

/** JSON with sorted keys, undefined members left out: equal values give equal text. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (x === undefined ? 'null' : canonical(x))).join(',')}]`;
  if (isObj(v)) {
    const keys = Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  }
  return v === undefined ? 'null' : JSON.stringify(v);
}

/** Deep equality of JSON values, an undefined member being the same as a missing one. */
export function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (!isObj(a) || !isObj(b)) return false;
  for (const k of Object.keys(a)) if (a[k] !== undefined && !same(a[k], b[k])) return false;
  for (const k of Object.keys(b)) if (b[k] !== undefined && a[k] === undefined) return false;
  return true;
}

const hash = (v: unknown): string => createHash('sha256').update(canonical(v)).digest('hex').slice(0, 16);

// ---------------------------------------------------------------------------------------------
// Device: protocol

/** v1alpha2 keys of each protocol, as flat `configData` keys of v1beta1. */
const PROTOCOL_KEYS: Record<string, readonly string[]> = {
  modbus: ['slaveID'],
  opcua: [
    'url',
    'userName',
    'password',
    'securityPolicy',
    'securityMode',
    'certificate',
    'privateKey',
    'timeout',
  ],
  bluetooth: ['macAddress'],
};
const VISITOR_KEYS: Record<string, readonly string[]> = {
  modbus: ['register', 'offset', 'limit', 'scale', 'isSwap', 'isRegisterSwap'],
  opcua: ['nodeID', 'browseName'],
  bluetooth: ['characteristicUUID', 'dataWrite', 'dataConverter'],
};
const BUILTIN = ['modbus', 'opcua', 'bluetooth'] as const;
const TCP_KEYS = ['ip', 'port'];
const COM_KEYS = ['serialPort', 'baudRate', 'dataBits', 'parity', 'stopBits'];
const COMMON_KEYS = [
  'commType',
  'reconnTimeout',
  'reconnRetryTimes',
  'collectTimeout',
  'collectRetryTimes',
  'collectType',
];

/** The protocol name of a v1alpha2 protocol or visitor: the key set, or the customized name. */
function protocolNameOf(p: Obj): string | undefined {
  for (const name of BUILTIN) if (isObj(p[name])) return name;
  return str(obj(p.customizedProtocol).protocolName);
}

/** Merges the members of each source into one flat object; the first source to give a key wins. */
function flatten(...sources: unknown[]): Obj {
  const out: Obj = {};
  for (const s of sources) for (const [k, v] of Object.entries(obj(s))) if (!(k in out)) out[k] = v;
  return out;
}

function protocolToBeta(p: Obj): Obj {
  const common = obj(p.common);
  const scalars: Obj = {};
  for (const k of COMMON_KEYS) if (common[k] !== undefined) scalars[k] = common[k];
  const name = protocolNameOf(p);
  const configData = flatten(
    name !== undefined && name in PROTOCOL_KEYS ? p[name] : undefined,
    common.tcp,
    common.com,
    scalars,
    common.customizedValues,
    obj(p.customizedProtocol).configData,
  );
  return { ...(name !== undefined && { protocolName: name }), ...(!empty(configData) && { configData }) };
}

/** Picks `keys` out of `from` into a new object, removing them from `from`. */
function take(from: Obj, keys: readonly string[]): Obj {
  const out: Obj = {};
  for (const k of keys) {
    if (k in from) {
      out[k] = from[k];
      delete from[k];
    }
  }
  return out;
}

function protocolToAlpha(p: Obj): Obj {
  const rest = { ...obj(p.configData) };
  const name = str(p.protocolName);
  const out: Obj = {};
  const builtin = name !== undefined && name in PROTOCOL_KEYS;
  if (builtin) out[name] = take(rest, PROTOCOL_KEYS[name]!);
  const tcp = take(rest, TCP_KEYS);
  const com = take(rest, COM_KEYS);
  const common: Obj = take(rest, COMMON_KEYS);
  if (!empty(tcp)) common.tcp = tcp;
  if (!empty(com)) common.com = com;
  if (name !== undefined && name !== '' && !builtin) {
    out.customizedProtocol = { protocolName: name, ...(!empty(rest) && { configData: rest }) };
  } else if (!empty(rest)) {
    common.customizedValues = rest;
  }
  if (!empty(common)) out.common = common;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Device: properties (visitors) and twins

const NS_PER_MS = 1_000_000;

function visitorToBeta(v: Obj): Obj {
  const name = protocolNameOf(v);
  const configData = flatten(
    name !== undefined && name in VISITOR_KEYS ? v[name] : undefined,
    obj(v.customizedProtocol).configData,
    v.customizedValues,
  );
  const cycle = (ns: unknown): number | undefined => {
    const n = num(ns);
    return n === undefined ? undefined : Math.round(n / NS_PER_MS);
  };
  return {
    collectCycle: cycle(v.collectCycle),
    reportCycle: cycle(v.reportCycle),
    visitors:
      name === undefined && empty(configData)
        ? undefined
        : { ...(name !== undefined && { protocolName: name }), ...(!empty(configData) && { configData }) },
  };
}

function visitorToAlpha(p: Obj): Obj | undefined {
  const visitors = obj(p.visitors);
  const rest = { ...obj(visitors.configData) };
  const name = str(visitors.protocolName);
  const out: Obj = { propertyName: p.name };
  const cycle = (ms: unknown): number | undefined => {
    const n = num(ms);
    return n === undefined ? undefined : n * NS_PER_MS;
  };
  if (p.reportCycle !== undefined) out.reportCycle = cycle(p.reportCycle);
  if (p.collectCycle !== undefined) out.collectCycle = cycle(p.collectCycle);
  if (name !== undefined && name in VISITOR_KEYS) out[name] = take(rest, VISITOR_KEYS[name]!);
  else if (name !== undefined && name !== '')
    out.customizedProtocol = { protocolName: name, ...(!empty(rest) && { configData: rest }) };
  if (!empty(rest) && !(name !== undefined && name !== '' && !(name in VISITOR_KEYS)))
    out.customizedValues = rest;
  return Object.keys(out).length > 1 ? out : undefined;
}

// ---------------------------------------------------------------------------------------------
// Default conversions (what both versions carry)

function deviceToBeta(a: KubeObject): KubeObject {
  const spec = obj(a.spec);
  const visitors = arr(spec.propertyVisitors).map(obj);
  const twins = arr(obj(a.status).twins).map(obj);
  const properties: Obj[] = [];
  const byName = new Map<string, Obj>();
  const property = (name: string): Obj => {
    let p = byName.get(name);
    if (p === undefined) {
      p = { name };
      byName.set(name, p);
      properties.push(p);
    }
    return p;
  };
  for (const v of visitors) {
    const name = str(v.propertyName) ?? '';
    if (byName.has(name)) continue; // a second visitor of a property: v1beta1 names each once
    // a visitor's values are reported: v1alpha2 shows them in `status.twins[].reported`
    Object.assign(property(name), visitorToBeta(v), { reportToCloud: true });
  }
  for (const t of twins) {
    const p = property(str(t.propertyName) ?? '');
    if (t.desired !== undefined) p.desired = t.desired;
    p.reportToCloud = true;
  }
  const statusTwins = twins
    .filter((t) => t.reported !== undefined)
    .map((t) => ({ propertyName: t.propertyName, reported: t.reported }));
  const term = obj(arr(obj(spec.nodeSelector).nodeSelectorTerms)[0]);
  const nodeName = str(arr(obj(arr(term.matchExpressions)[0]).values)[0]);
  return {
    ...a,
    apiVersion: V1BETA1,
    spec: compact({
      deviceModelRef: spec.deviceModelRef,
      nodeName,
      protocol: isObj(spec.protocol) ? protocolToBeta(spec.protocol) : undefined,
      properties: properties.length > 0 ? properties.map((p) => compact(p) ?? {}) : undefined,
    }),
    status: statusTwins.length > 0 ? { twins: statusTwins } : undefined,
  };
}

function deviceToAlpha(b: KubeObject): KubeObject {
  const spec = obj(b.spec);
  const properties = arr(spec.properties).map(obj);
  const propertyVisitors = properties.map(visitorToAlpha).filter((v) => v !== undefined);
  const desired = new Map(properties.map((p) => [str(p.name) ?? '', p.desired]));
  const twins: Obj[] = [];
  const seen = new Set<string>();
  for (const t of arr(obj(b.status).twins).map(obj)) {
    const name = str(t.propertyName) ?? '';
    seen.add(name);
    twins.push(
      compact({ propertyName: t.propertyName, desired: desired.get(name), reported: t.reported }) ?? {},
    );
  }
  // a twin for a desired value, or for a reported property without visitor (its only trace)
  for (const p of properties) {
    const name = str(p.name) ?? '';
    const visitor = visitorToAlpha(p) !== undefined;
    if (!seen.has(name) && (p.desired !== undefined || (p.reportToCloud === true && !visitor)))
      twins.push(compact({ propertyName: name, desired: p.desired }) ?? {});
  }
  const nodeName = str(spec.nodeName);
  return {
    ...b,
    apiVersion: V1ALPHA2,
    spec: compact({
      deviceModelRef: spec.deviceModelRef,
      nodeSelector:
        nodeName === undefined || nodeName === ''
          ? undefined
          : { nodeSelectorTerms: [{ matchExpressions: [{ key: '', operator: 'In', values: [nodeName] }] }] },
      protocol: isObj(spec.protocol) ? protocolToAlpha(spec.protocol) : undefined,
      propertyVisitors: propertyVisitors.length > 0 ? propertyVisitors : undefined,
    }),
    status: twins.length > 0 ? { twins } : undefined,
  };
}

const TYPES = ['int', 'string', 'double', 'float', 'boolean', 'bytes'] as const;
const NUMERIC = new Set(['int', 'double', 'float']);

function modelToBeta(a: KubeObject): KubeObject {
  const spec = obj(a.spec);
  const properties = arr(spec.properties)
    .map(obj)
    .map((p) => {
      const type = obj(p.type);
      const key = TYPES.find((t) => isObj(type[t]));
      const t = obj(key === undefined ? undefined : type[key]);
      const text = (v: unknown): string | undefined => (num(v) === undefined ? undefined : String(v));
      return (
        compact({
          name: p.name,
          description: p.description,
          type: key?.toUpperCase(),
          accessMode: t.accessMode,
          minimum: text(t.minimum),
          maximum: text(t.maximum),
          unit: t.unit,
        }) ?? {}
      );
    });
  return {
    ...a,
    apiVersion: V1BETA1,
    spec: compact({ protocol: spec.protocol, properties: properties.length > 0 ? properties : undefined }),
  };
}

function modelToAlpha(b: KubeObject): KubeObject {
  const spec = obj(b.spec);
  const properties = arr(spec.properties)
    .map(obj)
    .map((p) => {
      const upper = str(p.type)?.toLowerCase();
      const key = upper === 'stream' ? 'bytes' : TYPES.find((t) => t === upper);
      const numeric = key !== undefined && NUMERIC.has(key);
      const parse = (v: unknown): number | undefined => {
        const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
        return numeric && Number.isFinite(n) ? n : undefined;
      };
      const t = compact({
        accessMode: p.accessMode,
        minimum: parse(p.minimum),
        maximum: parse(p.maximum),
        unit: numeric ? p.unit : undefined,
      });
      return (
        compact({
          name: p.name,
          description: p.description,
          type: key === undefined ? undefined : { [key]: t ?? {} },
        }) ?? {}
      );
    });
  return {
    ...b,
    apiVersion: V1ALPHA2,
    spec: compact({ protocol: spec.protocol, properties: properties.length > 0 ? properties : undefined }),
  };
}

// ---------------------------------------------------------------------------------------------
// Sections: what is compared, kept and restored

/** One section of a kind: how to read it in each version and how to put it back. */
interface Section {
  name: string;
  read: Record<'v1alpha2' | 'v1beta1', (o: KubeObject) => unknown>;
  write: Record<'v1alpha2' | 'v1beta1', (o: KubeObject, value: unknown) => void>;
}

const spec = (o: KubeObject): Obj => (o.spec ??= {});

/** A section made of some members of `spec` (and of `status`) in each version. */
function members(
  name: string,
  alpha: { spec?: string[]; status?: string[] },
  beta: { spec?: string[]; status?: string[]; strip?: string },
): Section {
  const reader =
    (m: { spec?: string[]; status?: string[]; strip?: string }) =>
    (o: KubeObject): unknown => {
      const out: Obj = {};
      for (const k of m.spec ?? []) out[k] = obj(o.spec)[k];
      for (const k of m.status ?? []) out[`status.${k}`] = obj(o.status)[k];
      if (m.strip !== undefined && Array.isArray(out.properties))
        out.properties = out.properties.map((p) => ({ ...obj(p), [m.strip!]: undefined }));
      return out;
    };
  const writer =
    (m: { spec?: string[]; status?: string[]; strip?: string }) =>
    (o: KubeObject, value: unknown): void => {
      const v = obj(value);
      for (const k of m.spec ?? []) {
        if (v[k] === undefined) delete spec(o)[k];
        else spec(o)[k] = v[k];
      }
      for (const k of m.status ?? []) {
        const s = (o.status ??= {});
        if (v[`status.${k}`] === undefined) delete s[k];
        else s[k] = v[`status.${k}`];
      }
      if (o.status !== undefined && empty(o.status)) delete o.status;
      if (o.spec !== undefined && empty(o.spec)) delete o.spec;
    };
  return {
    name,
    read: { v1alpha2: reader(alpha), v1beta1: reader(beta) },
    write: { v1alpha2: writer(alpha), v1beta1: writer(beta) },
  };
}

/**
 * A device's v1beta1 properties without their desired values (those are the twins section), and
 * the restore that keeps each property's current desired value.
 */
const deviceProperties: Section = (() => {
  const base = members(
    'properties',
    { spec: ['propertyVisitors', 'data'] },
    { spec: ['properties'], strip: 'desired' },
  );
  return {
    ...base,
    write: {
      v1alpha2: base.write.v1alpha2,
      v1beta1: (o, value) => {
        const desired = new Map(arr(obj(o.spec).properties).map((p) => [obj(p).name, obj(p).desired]));
        const props = arr(obj(value).properties).map((p) => {
          const d = desired.get(obj(p).name);
          return d === undefined ? p : { ...obj(p), desired: d };
        });
        if (props.length > 0) spec(o).properties = props;
        else delete spec(o).properties;
      },
    },
  };
})();

/** A device's twins: v1alpha2 `status.twins`; v1beta1 the desired value of each property and its status. */
const deviceTwins: Section = {
  name: 'twins',
  read: {
    v1alpha2: (o) => obj(o.status).twins,
    v1beta1: (o) => ({
      desired: arr(obj(o.spec).properties)
        .map(obj)
        .filter((p) => p.desired !== undefined)
        .map((p) => [p.name, p.desired]),
      status: o.status,
    }),
  },
  write: {
    v1alpha2: (o, value) => {
      if (value === undefined) {
        if (o.status !== undefined) delete o.status.twins;
        if (o.status !== undefined && empty(o.status)) delete o.status;
      } else (o.status ??= {}).twins = value;
    },
    v1beta1: (o, value) => {
      const v = obj(value);
      const desired = new Map(arr(v.desired).map((e) => [arr(e)[0], arr(e)[1]]));
      for (const p of arr(obj(o.spec).properties).map(obj)) {
        const d = desired.get(p.name);
        if (d === undefined) delete p.desired;
        else p.desired = d;
      }
      if (v.status === undefined) delete o.status;
      else o.status = obj(v.status);
    },
  },
};

const SECTIONS: Record<string, readonly Section[]> = {
  Device: [
    members('nodeSelector', { spec: ['nodeSelector'] }, { spec: ['nodeName'] }),
    members('protocol', { spec: ['protocol'] }, { spec: ['protocol'] }),
    deviceProperties,
    deviceTwins,
    members('extensions', {}, { spec: ['methods', 'stateReport'] }),
  ],
  DeviceModel: [
    members('protocol', { spec: ['protocol'] }, { spec: ['protocol', 'protocolConfigData'] }),
    members('properties', { spec: ['properties'] }, { spec: ['properties'] }),
  ],
};

const DEFAULTS: Record<string, Record<'v1alpha2' | 'v1beta1', (o: KubeObject) => KubeObject>> = {
  Device: { v1beta1: deviceToBeta, v1alpha2: deviceToAlpha },
  DeviceModel: { v1beta1: modelToBeta, v1alpha2: modelToAlpha },
};

/** The annotation keeping what version `version` had in `section` that the other cannot carry. */
export const keptAnnotation = (version: string, section: string): string =>
  `${DEVICES_GROUP}/${version}-${section}`;

interface Kept {
  /** hash of the section as converted (in the other version) */
  hash: string;
  /** the section in the version named by the annotation */
  value: unknown;
}

function versionOf(apiVersion: string | undefined, what: string): 'v1alpha2' | 'v1beta1' {
  if (apiVersion === V1ALPHA2) return 'v1alpha2';
  if (apiVersion === V1BETA1) return 'v1beta1';
  throw new ConversionError(
    `${what}: apiVersion ${JSON.stringify(apiVersion)} is not ${V1ALPHA2} or ${V1BETA1}`,
  );
}

/**
 * Converts one Device or DeviceModel to `desiredAPIVersion`; the object given is not changed.
 * Throws {@link ConversionError} for another kind or version.
 */
export function convertObject(object: KubeObject, desiredAPIVersion: string): KubeObject {
  const what = `${object.kind ?? '?'} ${String(object.metadata?.namespace ?? '')}/${String(object.metadata?.name ?? '')}`;
  const from = versionOf(object.apiVersion, what);
  const to = versionOf(desiredAPIVersion, what);
  if (from === to) return object;
  const sections = SECTIONS[object.kind ?? ''];
  const defaults = DEFAULTS[object.kind ?? ''];
  if (sections === undefined || defaults === undefined)
    throw new ConversionError(`${what}: kind ${JSON.stringify(object.kind)} is not Device or DeviceModel`);

  // the default conversions build new objects and never change their input
  const annotations = { ...(object.metadata?.annotations ?? {}) };
  const out = defaults[to](object);
  // restore what the target version had kept, where nobody changed the section since
  for (const s of sections) {
    const key = keptAnnotation(to, s.name);
    const text = annotations[key];
    if (text === undefined) continue;
    delete annotations[key];
    let kept: Kept | undefined;
    try {
      kept = JSON.parse(text) as Kept;
    } catch {
      continue; // a hand-edited annotation: the default conversion stands
    }
    if (kept.hash === hash(s.read[from](object))) s.write[to](out, kept.value);
  }
  // keep what the target cannot carry
  const back = defaults[from](out);
  for (const s of sections) {
    const mine = s.read[from](object);
    if (!same(s.read[from](back), mine)) {
      annotations[keptAnnotation(from, s.name)] = JSON.stringify({
        hash: hash(s.read[to](out)),
        value: mine,
      });
    }
  }
  out.metadata = { ...out.metadata };
  if (empty(annotations)) delete out.metadata.annotations;
  else out.metadata.annotations = annotations;
  if (out.spec === undefined) delete out.spec;
  if (out.status === undefined) delete out.status;
  return out;
}
