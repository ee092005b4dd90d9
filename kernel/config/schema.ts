/**
 * A small description of a Go config struct: the type of every field (what the decoder accepts)
 * and its JSON tag behaviour (what `--minconfig` / `--defaultconfig` print).
 *
 * Printing rules follow Go's `encoding/json` (`omitempty`) then `sigs.k8s.io/yaml`:
 *  - `omit: 'empty'`  Go value with `omitempty`: omitted when false, 0, "", empty list/map or unset.
 *  - `omit: 'nil'`    Go pointer with `omitempty`: omitted only when unset (a pointer to false/0 prints).
 *  - `omit: 'never'`  no `omitempty` (or a struct value, which `omitempty` never omits): always
 *                     printed; when unset the Go zero value prints (false, 0, "", "0s", null, {}...).
 *  - `hidden: true`   our own field (kernel extension or kept legacy value): never printed.
 */

export type Omit = 'empty' | 'nil' | 'never';

interface Base {
  omit?: Omit; // default 'empty'
  hidden?: boolean;
}

export interface BoolSchema extends Base {
  kind: 'bool';
}
/** An integer; a 32-bit Go int unless `int64` (then any safe JS integer) or an explicit range. */
export interface IntSchema extends Base {
  kind: 'int';
  min?: number;
  max?: number;
  int64?: boolean;
}
export interface NumberSchema extends Base {
  kind: 'number';
}
export interface StringSchema extends Base {
  kind: 'string';
  oneOf?: readonly string[];
}
/** Go duration text, stored in its canonical Go form ("1m0s"). */
export interface DurationSchema extends Base {
  kind: 'duration';
  /** Also accept an integer number of nanoseconds (Go `time.Duration` in JSON, klog's TimeOrMetaDuration). */
  acceptNanos?: boolean;
}
/** Kubernetes resource quantity ("100Mi", "0"): kept as a string, a number is accepted and stringified. */
export interface QuantitySchema extends Base {
  kind: 'quantity';
}
export interface ListSchema extends Base {
  kind: 'list';
  of: Schema;
}
/** A Go map: decoded entries are merged into the existing (default) map. */
export interface MapSchema extends Base {
  kind: 'map';
  of: Schema;
}
/** A Go struct. `ptr`: a pointer, so its Go zero value is null rather than an empty struct. */
export interface ObjectSchema extends Base {
  kind: 'object';
  fields: Record<string, Schema>;
  ptr?: boolean;
  /** Older key names accepted in this object (matched case-insensitively). */
  legacy?: Record<string, LegacyRule>;
}
/** Anything; copied as decoded (JSON-like). */
export interface AnySchema extends Base {
  kind: 'any';
}

export type Schema =
  | BoolSchema
  | IntSchema
  | NumberSchema
  | StringSchema
  | DurationSchema
  | QuantitySchema
  | ListSchema
  | MapSchema
  | ObjectSchema
  | AnySchema;

/** Typed object schema: the field set must be exactly the keys of `T`. */
export interface ObjectSchemaOf<T> extends ObjectSchema {
  fields: { [K in keyof T]-?: Schema };
}

/**
 * A legacy key. `to` is the new location, relative to the object holding the legacy key; when
 * absent the key has no equivalent and only a warning is given. `convert` turns the decoded legacy
 * value (decoded with `schema`) into the new one; returning `undefined` drops it silently.
 */
export interface LegacyRule {
  schema: Schema;
  to?: readonly string[];
  convert?: (value: unknown) => unknown;
  /** Extra explanation for the warning of a key without equivalent. */
  note?: string;
}

// Builders, to keep the big schema tables readable.
type Opts = { omit?: Omit; hidden?: boolean };
export const bool = (o: Opts = {}): BoolSchema => ({ kind: 'bool', ...o });
export const int = (o: Opts & { min?: number; max?: number; int64?: boolean } = {}): IntSchema => ({
  kind: 'int',
  ...o,
});
export const num = (o: Opts = {}): NumberSchema => ({ kind: 'number', ...o });
export const str = (o: Opts & { oneOf?: readonly string[] } = {}): StringSchema => ({ kind: 'string', ...o });
/** A `metav1.Duration` value field: a struct, so `omitempty` never omits it; zero prints "0s". */
export const dur = (o: Opts & { acceptNanos?: boolean } = {}): DurationSchema => ({
  kind: 'duration',
  omit: 'never',
  ...o,
});
export const quantity = (o: Opts = {}): QuantitySchema => ({ kind: 'quantity', omit: 'never', ...o });
export const list = (of: Schema, o: Opts = {}): ListSchema => ({ kind: 'list', of, ...o });
export const map = (of: Schema, o: Opts = {}): MapSchema => ({ kind: 'map', of, ...o });
export const any = (o: Opts = {}): AnySchema => ({ kind: 'any', ...o });
export function obj<T>(
  fields: { [K in keyof T]-?: Schema },
  o: Opts & { ptr?: boolean; legacy?: Record<string, LegacyRule> } = {},
): ObjectSchemaOf<T> {
  return { kind: 'object', fields, ...o };
}
/** A pointer to a struct with `omitempty` (the usual shape of KubeEdge module sections). */
export function ptrObj<T>(
  fields: { [K in keyof T]-?: Schema },
  o: Opts & { legacy?: Record<string, LegacyRule> } = {},
): ObjectSchemaOf<T> {
  return { kind: 'object', fields, ptr: true, omit: 'nil', ...o };
}

/** Human name of the type a schema expects, used in "expected X, got Y" messages. */
export function expectedName(s: Schema): string {
  switch (s.kind) {
    case 'bool':
      return 'boolean';
    case 'int':
      if (s.min !== undefined && s.max !== undefined) return `integer between ${s.min} and ${s.max}`;
      if (s.min !== undefined) return `integer >= ${s.min}`;
      return 'integer';
    case 'number':
      return 'number';
    case 'string':
      return s.oneOf ? `one of ${s.oneOf.map((v) => JSON.stringify(v)).join(', ')}` : 'string';
    case 'duration':
      return s.acceptNanos ? 'duration (e.g. "1m0s") or integer nanoseconds' : 'duration (e.g. "1m0s")';
    case 'quantity':
      return 'quantity (e.g. "100Mi")';
    case 'list':
      return 'list';
    case 'map':
      return 'map';
    case 'object':
      return 'mapping';
    case 'any':
      return 'value';
  }
}
