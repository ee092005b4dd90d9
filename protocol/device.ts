/**
 * The one mapping of devices.kubeedge.io `Device` and `DeviceModel` between v1alpha2 and v1beta1
 * (spec devices-dmi-router §1.8), both ways: admission's conversion webhook and dmiServer (an edge
 * given a v1alpha2 object) both use it. Plain functions on the objects' JSON; no I/O, and the
 * objects given are not changed. What one version cannot carry is dropped here: admission keeps it
 * in annotations, dmiServer logs the `warnings`.
 *
 * Where KubeEdge's Go code decides (the v1alpha2 era's reader of a device for its mapper,
 * mappers-go `pkg/util/parse`; cloud/pkg/devicecontroller/controller/downstream.go up to v1.14),
 * the mapping follows it:
 * - the device's protocol is the first of `modbus`, `opcua`, `bluetooth` set, else
 *   `customizedProtocol.protocolName` (`getProtocolName`); only that protocol's config is read
 *   (`BuildProtocol`);
 * - a visitor is read for the device's protocol only (`buildPropertyVisitors` marshals
 *   `pptv.<device protocol>`): a visitor of another protocol carries nothing for the device;
 * - a model property's type is its type key; without one it has none (`ParseDeviceModel`).
 */

export const DevicesGroup = 'devices.kubeedge.io';
export const DevicesV1alpha2 = `${DevicesGroup}/v1alpha2`;
export const DevicesV1beta1 = `${DevicesGroup}/v1beta1`;

/** A Device or DeviceModel as JSON; `metadata` and members other than `spec` and `status` pass through. */
export interface DeviceObject {
  apiVersion?: string;
  kind?: string;
  metadata?: object;
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

type Obj = Record<string, unknown>;

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

/** Merges the members of each source into one flat object; the first source to give a key wins. */
function flatten(...sources: unknown[]): Obj {
  const out: Obj = {};
  for (const s of sources) for (const [k, v] of Object.entries(obj(s))) if (!(k in out)) out[k] = v;
  return out;
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

// ---------------------------------------------------------------------------------------------
// Device: protocol

/** v1alpha2 keys of each built-in protocol, as flat `configData` keys of v1beta1. */
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
/** In the order KubeEdge's Go code tries them (mappers-go `getProtocolName`). */
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

const isBuiltin = (name: string | undefined): name is string => name !== undefined && name in PROTOCOL_KEYS;

/** The protocol name of a v1alpha2 protocol or visitor: the key set, or the customized name. */
function protocolNameOf(p: Obj): string | undefined {
  for (const name of BUILTIN) if (isObj(p[name])) return name;
  return str(obj(p.customizedProtocol).protocolName);
}

/** The config a v1alpha2 protocol or visitor gives for protocol `name`: its key, or the customized configData. */
const ownConfig = (p: Obj, name: string | undefined): unknown =>
  isBuiltin(name) ? p[name] : obj(p.customizedProtocol).configData;

function protocolToBeta(p: Obj): Obj {
  const common = obj(p.common);
  const name = protocolNameOf(p);
  // the protocol's own fields first, then the connection's, the free-form values last
  const configData = flatten(
    ownConfig(p, name),
    common.tcp,
    common.com,
    compact(Object.fromEntries(COMMON_KEYS.map((k) => [k, common[k]]))),
    common.customizedValues,
  );
  return { ...(name !== undefined && { protocolName: name }), ...(!empty(configData) && { configData }) };
}

function protocolToAlpha(p: Obj): Obj {
  const rest = { ...obj(p.configData) };
  const name = str(p.protocolName);
  const out: Obj = {};
  if (isBuiltin(name)) out[name] = take(rest, PROTOCOL_KEYS[name]!);
  const tcp = take(rest, TCP_KEYS);
  const com = take(rest, COM_KEYS);
  const common: Obj = take(rest, COMMON_KEYS);
  if (!empty(tcp)) common.tcp = tcp;
  if (!empty(com)) common.com = com;
  if (name !== undefined && name !== '' && !isBuiltin(name)) {
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

/** A visitor of the device's protocol `name` as a v1beta1 property's members. */
function visitorToBeta(v: Obj, name: string): Obj {
  const configData = flatten(ownConfig(v, name), v.customizedValues);
  const cycle = (ns: unknown): number | undefined => {
    const n = num(ns);
    return n === undefined ? undefined : Math.round(n / NS_PER_MS);
  };
  return {
    collectCycle: cycle(v.collectCycle),
    reportCycle: cycle(v.reportCycle),
    visitors: { protocolName: name, ...(!empty(configData) && { configData }) },
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
  const customized = name !== undefined && name !== '' && !(name in VISITOR_KEYS);
  if (name !== undefined && name in VISITOR_KEYS) out[name] = take(rest, VISITOR_KEYS[name]!);
  else if (customized)
    out.customizedProtocol = { protocolName: name, ...(!empty(rest) && { configData: rest }) };
  if (!empty(rest) && !customized) out.customizedValues = rest;
  return Object.keys(out).length > 1 ? out : undefined;
}

// ---------------------------------------------------------------------------------------------
// Device

/**
 * v1alpha2 Device to v1beta1. Each property is carried by the first visitor of the device's
 * protocol that names it; the other visitors are not carried, each with a line in `warnings`.
 * Values are carried as they are, nested ones included (DMI refuses those, spec §3.3).
 */
export function deviceToV1beta1<T extends DeviceObject>(a: T, warnings: string[] = []): T {
  const spec = obj(a.spec);
  const protocol = isObj(spec.protocol) ? protocolToBeta(spec.protocol) : undefined;
  const deviceProtocol = str(protocol?.protocolName);
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
  for (const v of arr(spec.propertyVisitors).map(obj)) {
    const name = str(v.propertyName) ?? '';
    if (deviceProtocol === undefined || protocolNameOf(v) !== deviceProtocol) {
      warnings.push(`propertyVisitors[${name}]: not a ${deviceProtocol ?? '(no protocol)'} visitor, dropped`);
    } else if (byName.has(name)) {
      warnings.push(`propertyVisitors[${name}]: duplicate visitor of the property, dropped`);
    } else {
      // a visitor's values are reported: v1alpha2 shows them in `status.twins[].reported`
      Object.assign(property(name), visitorToBeta(v, deviceProtocol), { reportToCloud: true });
    }
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
    apiVersion: DevicesV1beta1,
    spec: compact({
      deviceModelRef: spec.deviceModelRef,
      nodeName,
      protocol,
      properties: properties.length > 0 ? properties.map((p) => compact(p) ?? {}) : undefined,
    }),
    status: statusTwins.length > 0 ? { twins: statusTwins } : undefined,
  };
}

/** v1beta1 Device to v1alpha2 (`methods`, `stateReport`, `pushMethod` have no v1alpha2 place). */
export function deviceToV1alpha2<T extends DeviceObject>(b: T): T {
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
    apiVersion: DevicesV1alpha2,
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

// ---------------------------------------------------------------------------------------------
// DeviceModel

const TYPES = ['int', 'string', 'double', 'float', 'boolean', 'bytes'] as const;
const NUMERIC = new Set(['int', 'double', 'float']);

/** v1alpha2 DeviceModel to v1beta1 (`defaultValue` has no v1beta1 place). */
export function deviceModelToV1beta1<T extends DeviceObject>(a: T): T {
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
    apiVersion: DevicesV1beta1,
    spec: compact({ protocol: spec.protocol, properties: properties.length > 0 ? properties : undefined }),
  };
}

/** v1beta1 DeviceModel to v1alpha2 (`STREAM` read as `bytes`; `visitors`, `protocolConfigData` have no place). */
export function deviceModelToV1alpha2<T extends DeviceObject>(b: T): T {
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
    apiVersion: DevicesV1alpha2,
    spec: compact({ protocol: spec.protocol, properties: properties.length > 0 ? properties : undefined }),
  };
}
