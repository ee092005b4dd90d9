/**
 * The checks of the validating webhook, in the version the request was made in, so each message
 * names the field the user wrote. Devices: the model exists, every property named by a visitor,
 * twin or property is in the model, v1beta1 property names are unique (KubeEdge's own rule),
 * desired values parse as the model's type, and v1alpha2 cycles convert to whole milliseconds.
 * DeviceModels: property names unique (KubeEdge's rule), one type each, numeric bounds that convert.
 */
import { canonical, type KubeObject } from './convert.js';
import { DevicesV1alpha2 } from '../../protocol/index.js';

/** A model property as the check needs it: its v1beta1 type (`INT`, `FLOAT`, ...). */
export interface ModelProperty {
  name: string;
  type: string;
}

/** Reads a DeviceModel's properties (v1beta1); undefined when the model does not exist. */
export type ModelLookup = (namespace: string, name: string) => Promise<ModelProperty[] | undefined>;

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

const PARSES: Record<string, (v: string) => boolean> = {
  INT: (v) => /^[-+]?\d+$/.test(v.trim()),
  FLOAT: (v) => v.trim() !== '' && Number.isFinite(Number(v)),
  DOUBLE: (v) => v.trim() !== '' && Number.isFinite(Number(v)),
  BOOLEAN: (v) => v === 'true' || v === 'false',
};

/** What in a device the checks depend on: an update that leaves it alone needs no check. */
function checked(device: KubeObject): string {
  // v1alpha2 keeps desired values in status.twins; v1beta1's status holds reported values only
  const twins =
    device.apiVersion === DevicesV1alpha2
      ? arr(obj(device.status).twins).map((t) => [obj(t).propertyName, obj(obj(t).desired).value])
      : [];
  return canonical({ spec: device.spec, twins });
}

/**
 * Calls `check` with each of `properties` and its field (`spec.properties[i]`), after adding the
 * problem of a name used twice (KubeEdge's rule, for device and model properties alike).
 */
function eachUniqueProperty(
  properties: unknown,
  problems: string[],
  check: (p: Obj, field: string) => void,
): void {
  const seen = new Set<unknown>();
  arr(properties).forEach((raw, i) => {
    const p = obj(raw);
    const field = `spec.properties[${i}]`;
    if (seen.has(p.name))
      problems.push(
        `${field}.name: property ${JSON.stringify(p.name)} is named twice (names must be unique)`,
      );
    seen.add(p.name);
    check(p, field);
  });
}

/**
 * The problems of `device` (`field: message` each), empty when it is admitted. `old` is the
 * stored object on an update.
 */
export async function validateDevice(
  device: KubeObject,
  old: KubeObject | undefined,
  lookup: ModelLookup,
): Promise<string[]> {
  if (old !== undefined && checked(old) === checked(device)) return []; // e.g. a status write
  const problems: string[] = [];
  const spec = obj(device.spec);
  const modelName = obj(spec.deviceModelRef).name;
  if (typeof modelName !== 'string' || modelName === '') {
    return ['spec.deviceModelRef.name: required (the DeviceModel of the device, in its namespace)'];
  }
  const namespace = typeof device.metadata?.namespace === 'string' ? device.metadata.namespace : 'default';
  const model = await lookup(namespace, modelName);
  if (model === undefined) {
    return [`spec.deviceModelRef.name: model "${modelName}" not found in namespace "${namespace}"`];
  }
  const types = new Map(model.map((p) => [p.name, p.type]));
  const named = (field: string, name: unknown): string | undefined => {
    if (typeof name === 'string' && types.has(name)) return name;
    problems.push(`${field}: property ${JSON.stringify(name ?? '')} is not in model "${modelName}"`);
    return undefined;
  };
  const value = (field: string, property: string | undefined, desired: unknown): void => {
    const v = obj(desired).value;
    const type = property === undefined ? undefined : types.get(property);
    if (typeof v !== 'string' || type === undefined) return;
    if (PARSES[type] !== undefined && !PARSES[type](v))
      problems.push(
        `${field}: ${JSON.stringify(v)} is not a valid ${type} value, as property "${property}" of model "${modelName}" is`,
      );
  };

  if (device.apiVersion === DevicesV1alpha2) {
    arr(spec.propertyVisitors).forEach((raw, i) => {
      const v = obj(raw);
      const field = `spec.propertyVisitors[${i}]`;
      named(`${field}.propertyName`, v.propertyName);
      for (const cycle of ['collectCycle', 'reportCycle']) {
        const ns = v[cycle];
        if (typeof ns === 'number' && ns % 1_000_000 !== 0)
          problems.push(
            `${field}.${cycle}: ${ns} ns is not a whole number of milliseconds (v1beta1 counts cycles in ms)`,
          );
      }
    });
    arr(obj(device.status).twins).forEach((raw, i) => {
      const t = obj(raw);
      const field = `status.twins[${i}]`;
      value(`${field}.desired.value`, named(`${field}.propertyName`, t.propertyName), t.desired);
    });
  } else {
    eachUniqueProperty(spec.properties, problems, (p, field) =>
      value(`${field}.desired.value`, named(`${field}.name`, p.name), p.desired),
    );
  }
  return problems;
}

const V1ALPHA2_TYPES = ['int', 'string', 'double', 'float', 'boolean', 'bytes'];
const NUMERIC_BOUNDS: Record<string, (v: string) => boolean> = {
  INT: PARSES.INT!,
  FLOAT: PARSES.FLOAT!,
  DOUBLE: PARSES.DOUBLE!,
};

/** The problems of a DeviceModel (`field: message` each), empty when it is admitted. */
export function validateModel(model: KubeObject, old: KubeObject | undefined): string[] {
  if (old !== undefined && canonical(old.spec) === canonical(model.spec)) return [];
  const problems: string[] = [];
  eachUniqueProperty(obj(model.spec).properties, problems, (p, field) => {
    if (model.apiVersion === DevicesV1alpha2) {
      const keys = Object.keys(obj(p.type));
      if (keys.length !== 1 || !V1ALPHA2_TYPES.includes(keys[0]!))
        problems.push(
          `${field}.type: expected exactly one of ${V1ALPHA2_TYPES.join(', ')}, got ${JSON.stringify(keys)}`,
        );
      return;
    }
    const parses = NUMERIC_BOUNDS[String(p.type)];
    for (const bound of ['minimum', 'maximum']) {
      const v = p[bound];
      if (typeof v === 'string' && v !== '' && parses !== undefined && !parses(v))
        problems.push(`${field}.${bound}: ${JSON.stringify(v)} is not a valid ${String(p.type)} bound`);
    }
  });
  return problems;
}
