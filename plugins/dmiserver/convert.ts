/**
 * Device / DeviceModel objects (CRD JSON, as the cloud sends them) to DMI v1beta1 proto objects
 * (spec devices-dmi-router.md §3.3, §3.4); v1alpha2 objects are first mapped to v1beta1 by
 * protocol/device.ts (§1.8), the mapping admission's conversion webhook uses.
 */
import type {
  Device as PbDevice,
  DeviceModel as PbDeviceModel,
  DeviceProperty as PbDeviceProperty,
  PushMethod as PbPushMethod,
} from '../../proto/gen/dmi/v1beta1/api.js';
import { scalarsToAnyMap, type Scalar } from '../../proto/dmi/v1beta1/values.js';

type Obj = Record<string, unknown>;

export interface CrdMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  resourceVersion?: string;
}

export interface CrdObject {
  apiVersion?: string;
  kind?: string;
  metadata: CrdMeta;
  spec?: Obj;
  status?: Obj;
}

const obj = (v: unknown): Obj | undefined =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined;
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string =>
  typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : Number(v ?? 0) || 0);

export function namespaceOf(o: CrdObject): string {
  return o.metadata.namespace || 'default';
}

/** Checks the shape every object needs; returns the problem text or undefined. */
export function checkObject(content: unknown, kind: 'device' | 'devicemodel'): string | undefined {
  const o = obj(content);
  if (!o) return `${kind} content: expected a JSON object, got ${content === null ? 'null' : typeof content}`;
  const meta = obj(o.metadata);
  if (!meta || typeof meta.name !== 'string' || !meta.name)
    return `${kind} content: metadata.name is required`;
  if (o.spec !== undefined && !obj(o.spec)) return `${kind} ${meta.name}: spec must be an object`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// v1beta1 -> proto (§3.4)

/** The protocol a model is served by: its spec.protocol (v1beta1). */
export function modelProtocol(m: CrdObject): string {
  return str(obj(m.spec)?.protocol);
}

export function deviceProtocol(d: CrdObject): string {
  return str(obj(obj(d.spec)?.protocol)?.protocolName);
}

export function deviceModelName(d: CrdObject): string {
  return str(obj(obj(d.spec)?.deviceModelRef)?.name);
}

function pushMethodToProto(pm: Obj | undefined, path: string): PbPushMethod | undefined {
  if (!pm) return undefined;
  const out: PbPushMethod = {};
  const http = obj(pm.http);
  if (http)
    out.http = {
      hostname: str(http.hostName ?? http.hostname),
      port: num(http.port),
      requestpath: str(http.requestPath ?? http.requestpath),
      timeout: num(http.timeout),
    };
  const mqtt = obj(pm.mqtt);
  if (mqtt)
    out.mqtt = {
      address: str(mqtt.address),
      topic: str(mqtt.topic),
      qos: num(mqtt.qos),
      retained: mqtt.retained === true,
    };
  const otel = obj(pm.otel);
  if (otel) out.otel = { endpointURL: str(otel.endpointURL) };
  const db = obj(pm.dbMethod);
  if (db) {
    out.dbMethod = {};
    const influx = obj(db.influxdb2);
    if (influx) {
      const c = obj(influx.influxdb2ClientConfig) ?? {};
      const dc = obj(influx.influxdb2DataConfig) ?? {};
      out.dbMethod.influxdb2 = {
        influxdb2ClientConfig: { url: str(c.url), org: str(c.org), bucket: str(c.bucket) },
        influxdb2DataConfig: {
          measurement: str(dc.measurement),
          tag: Object.fromEntries(Object.entries(obj(dc.tag) ?? {}).map(([k, v]) => [k, str(v)])),
          fieldKey: str(dc.fieldKey),
        },
      };
    }
    const redis = obj(obj(db.redis)?.redisClientConfig);
    if (redis)
      out.dbMethod.redis = {
        redisClientConfig: {
          addr: str(redis.addr),
          db: num(redis.db),
          poolsize: num(redis.poolsize),
          minIdleConns: num(redis.minIdleConns),
        },
      };
    const td = obj(
      obj(db.TDEngine ?? db.tdengine)?.TDEngineClientConfig ??
        obj(db.TDEngine ?? db.tdengine)?.tdEngineClientConfig,
    );
    if (td)
      out.dbMethod.tdengine = {
        tdEngineClientConfig: { addr: str(td.addr), dbname: str(td.dbName ?? td.dbname) },
      };
    const my = obj(obj(db.mysql)?.mysqlClientConfig);
    if (my)
      out.dbMethod.mysql = {
        mysqlClientConfig: { addr: str(my.addr), database: str(my.database), userName: str(my.userName) },
      };
  }
  if (obj(pm.anomalyDetection))
    out.anomalyDetection = {
      data: scalarsToAnyMap(pm.anomalyDetection, `${path}.pushMethod.anomalyDetection`),
    };
  return out;
}

/**
 * Applies the model's defaults (1.22+, `overrideDeviceInstanceConfig`): model visitors under the
 * device's, model protocolConfigData under the device's protocol configData.
 */
export function overrideWithModel(d: CrdObject, m: CrdObject | undefined): CrdObject {
  if (!m) return d;
  const mspec = obj(m.spec) ?? {};
  const spec = { ...(obj(d.spec) ?? {}) };
  const modelVisitors = new Map<string, Obj>();
  for (const p of arr(mspec.properties)) {
    const mp = obj(p);
    if (mp && obj(mp.visitors)) modelVisitors.set(str(mp.name), obj(mp.visitors) as Obj);
  }
  spec.properties = arr(spec.properties).map((p) => {
    const prop = obj(p) ?? {};
    const mv = modelVisitors.get(str(prop.name));
    if (!mv) return prop;
    const iv = obj(prop.visitors) ?? {};
    const configData = { ...(obj(mv.configData) ?? {}), ...(obj(iv.configData) ?? {}) };
    return { ...prop, visitors: { ...structuredClone(mv), configData } };
  });
  if (obj(mspec.protocolConfigData)) {
    const protocol = obj(spec.protocol) ?? {};
    spec.protocol = {
      ...protocol,
      configData: { ...(obj(mspec.protocolConfigData) as Obj), ...(obj(protocol.configData) ?? {}) },
    };
  }
  return { ...d, spec };
}

/** v1beta1 Device (already overridden with its model) to the proto Device. Throws on non-scalar configData. */
export function deviceToProto(d: CrdObject): PbDevice {
  const spec = obj(d.spec) ?? {};
  const protocol = obj(spec.protocol) ?? {};
  const id = `${namespaceOf(d)}/${d.metadata.name}`;
  const properties: PbDeviceProperty[] = arr(spec.properties).map((p) => {
    const prop = obj(p) ?? {};
    const name = str(prop.name);
    const desired = obj(prop.desired);
    const visitors = obj(prop.visitors);
    const pushMethod = pushMethodToProto(obj(prop.pushMethod), `device ${id} properties[${name}]`);
    return {
      name,
      ...(desired
        ? {
            desired: {
              value: str(desired.value),
              metadata: Object.fromEntries(
                Object.entries(obj(desired.metadata) ?? {}).map(([k, v]) => [k, str(v)]),
              ),
            },
          }
        : {}),
      ...(visitors
        ? {
            visitors: {
              protocolName: str(visitors.protocolName),
              configData: {
                data: scalarsToAnyMap(
                  visitors.configData,
                  `device ${id} properties[${name}].visitors.configData`,
                ),
              },
            },
          }
        : {}),
      reportCycle: num(prop.reportCycle),
      collectCycle: num(prop.collectCycle),
      reportToCloud: prop.reportToCloud === true,
      ...(pushMethod ? { pushMethod } : {}),
    };
  });
  const stateReport = obj(spec.stateReport);
  const status = obj(d.status) ?? {};
  return {
    name: d.metadata.name,
    namespace: namespaceOf(d),
    spec: {
      deviceModelReference: deviceModelName(d),
      protocol: {
        protocolName: str(protocol.protocolName),
        configData: { data: scalarsToAnyMap(protocol.configData, `device ${id} protocol.configData`) },
      },
      properties,
      methods: arr(spec.methods).map((x) => {
        const m = obj(x) ?? {};
        return {
          name: str(m.name),
          description: str(m.description),
          propertyNames: arr(m.propertyNames).map(str),
        };
      }),
    },
    status: {
      twins: [],
      reportToCloud: (stateReport?.reportToCloud ?? status.reportToCloud) === true,
      reportCycle: num(stateReport?.reportCycle ?? status.reportCycle),
    },
  };
}

export function modelToProto(m: CrdObject): PbDeviceModel {
  const spec = obj(m.spec) ?? {};
  return {
    name: m.metadata.name,
    namespace: namespaceOf(m),
    spec: {
      properties: arr(spec.properties).map((x) => {
        const p = obj(x) ?? {};
        return {
          name: str(p.name),
          description: str(p.description),
          type: str(p.type),
          accessMode: str(p.accessMode),
          minimum: str(p.minimum),
          maximum: str(p.maximum),
          unit: str(p.unit),
        };
      }),
      commands: [],
    },
  };
}

/** Two specs are equal for DMI purposes (KubeEdge compares properties and methods sorted by name). */
export function sameSpec(a: CrdObject, b: CrdObject): boolean {
  const norm = (o: CrdObject): string => {
    const spec = { ...(obj(o.spec) ?? {}) };
    const byName = (x: unknown, y: unknown): number => str(obj(x)?.name).localeCompare(str(obj(y)?.name));
    spec.properties = [...arr(spec.properties)].sort(byName);
    spec.methods = [...arr(spec.methods)].sort(byName);
    return stable(spec);
  };
  return norm(a) === norm(b);
}

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable((v as Obj)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

export type { Scalar };
