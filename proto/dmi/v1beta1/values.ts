/**
 * `CustomizedValue` helpers shared by the DMI server (edgecore) and the mapper SDK: the values of
 * `configData` travel as `google.protobuf.Any` holding a well-known wrapper (spec
 * devices-dmi-router.md §3.3). edgecore produces StringValue, FloatValue (float32) and BoolValue;
 * mappers also accept Int32Value, Int64Value, DoubleValue and UInt32/UInt64Value.
 */
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import type { Any } from '../../gen/google/protobuf/any.js';

const PREFIX = 'type.googleapis.com/google.protobuf.';

export type Scalar = string | number | boolean;

/** Error raised when a configData value is not a scalar (edgecore's `dataToAny` refuses it too). */
export class NonScalarValueError extends Error {
  constructor(readonly key: string) {
    super(`configData.${key}: expected a string, number or boolean (DMI carries scalars only)`);
  }
}

/** A JSON scalar as an Any, the way edgecore encodes it (numbers as float32 FloatValue). */
export function scalarToAny(value: unknown, key = '?'): Any {
  const w = new BinaryWriter();
  if (typeof value === 'string') {
    if (value !== '') w.uint32(10).string(value);
    return { typeUrl: PREFIX + 'StringValue', value: Buffer.from(w.finish()) };
  }
  if (typeof value === 'number') {
    if (value !== 0) w.uint32(13).float(value);
    return { typeUrl: PREFIX + 'FloatValue', value: Buffer.from(w.finish()) };
  }
  if (typeof value === 'boolean') {
    if (value) w.uint32(8).bool(true);
    return { typeUrl: PREFIX + 'BoolValue', value: Buffer.from(w.finish()) };
  }
  throw new NonScalarValueError(key);
}

/** An object of scalars as a `CustomizedValue.data` map; throws NonScalarValueError. */
export function scalarsToAnyMap(obj: unknown, path: string): Record<string, Any> {
  const out: Record<string, Any> = {};
  if (obj === undefined || obj === null) return out;
  if (typeof obj !== 'object' || Array.isArray(obj)) throw new NonScalarValueError(path);
  for (const [k, v] of Object.entries(obj as Record<string, unknown>))
    out[k] = scalarToAny(v, `${path}.${k}`);
  return out;
}

function readField1(bytes: Uint8Array, kind: 'string' | 'float' | 'double' | 'bool' | 'int'): Scalar {
  const r = new BinaryReader(bytes);
  let out: Scalar = kind === 'string' ? '' : kind === 'bool' ? false : 0;
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 !== 1) {
      r.skip(tag & 7);
      continue;
    }
    if (kind === 'string') out = r.string();
    else if (kind === 'float') out = r.float();
    else if (kind === 'double') out = r.double();
    else if (kind === 'bool') out = r.bool();
    else out = Number(r.int64());
  }
  return out;
}

/** Decodes one Any wrapper; undefined for a type this side does not know (the Go framework skips those). */
export function anyToScalar(any: Any | undefined): Scalar | undefined {
  if (!any) return undefined;
  const name = any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1);
  switch (name) {
    case 'google.protobuf.StringValue':
      return readField1(any.value, 'string');
    case 'google.protobuf.FloatValue': {
      // float32 on the wire: 1502 stays 1502, 0.1 becomes 0.10000000149; round to 7 significant digits.
      const f = readField1(any.value, 'float') as number;
      return Number.isInteger(f) ? f : Number(f.toPrecision(7));
    }
    case 'google.protobuf.DoubleValue':
      return readField1(any.value, 'double');
    case 'google.protobuf.BoolValue':
      return readField1(any.value, 'bool');
    case 'google.protobuf.Int32Value':
    case 'google.protobuf.Int64Value':
    case 'google.protobuf.UInt32Value':
    case 'google.protobuf.UInt64Value':
      return readField1(any.value, 'int');
    default:
      return undefined;
  }
}

/** A `CustomizedValue.data` map as a plain object of scalars (unknown wrapper types skipped). */
export function anyMapToScalars(data: Record<string, Any> | undefined): Record<string, Scalar> {
  const out: Record<string, Scalar> = {};
  for (const [k, v] of Object.entries(data ?? {})) {
    const s = anyToScalar(v);
    if (s !== undefined) out[k] = s;
  }
  return out;
}
