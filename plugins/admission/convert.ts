/**
 * Conversion of devices.kubeedge.io `Device` and `DeviceModel` between v1alpha2 and v1beta1 (spec
 * devices-dmi-router §1.8), both ways, lossless on round trips.
 *
 * Each kind is cut in sections (a device's node, protocol, properties, twins, v1beta1-only
 * fields). The default conversion (protocol/device.ts, the mapping dmiServer uses too) maps what
 * both versions can carry. Whatever the target cannot
 * carry is kept, per section, in an annotation `devices.kubeedge.io/<source version>-<section>`
 * holding the source's section and a hash of the section it produced; converting back, a section
 * whose converted form still has that hash (nobody edited it in the other version) is restored
 * from the annotation, and the annotation is dropped. A section edited in the other version is
 * converted by the default rules (the edit wins). Pure functions: no I/O.
 */
import { createHash } from 'node:crypto';
import {
  DevicesGroup,
  DevicesV1alpha2,
  DevicesV1beta1,
  deviceModelToV1alpha2,
  deviceModelToV1beta1,
  deviceToV1alpha2,
  deviceToV1beta1,
} from '../../protocol/index.js';

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
const empty = (o: Obj): boolean => Object.keys(o).length === 0;

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
  Device: { v1beta1: deviceToV1beta1, v1alpha2: deviceToV1alpha2 },
  DeviceModel: { v1beta1: deviceModelToV1beta1, v1alpha2: deviceModelToV1alpha2 },
};

/** The annotation keeping what version `version` had in `section` that the other cannot carry. */
export const keptAnnotation = (version: string, section: string): string =>
  `${DevicesGroup}/${version}-${section}`;

interface Kept {
  /** hash of the section as converted (in the other version) */
  hash: string;
  /** the section in the version named by the annotation */
  value: unknown;
}

function versionOf(apiVersion: string | undefined, what: string): 'v1alpha2' | 'v1beta1' {
  if (apiVersion === DevicesV1alpha2) return 'v1alpha2';
  if (apiVersion === DevicesV1beta1) return 'v1beta1';
  throw new ConversionError(
    `${what}: apiVersion ${JSON.stringify(apiVersion)} is not ${DevicesV1alpha2} or ${DevicesV1beta1}`,
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
