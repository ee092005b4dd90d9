/**
 * Decode a parsed YAML document on top of a defaulted config, with Go `encoding/json` rules as
 * applied by `sigs.k8s.io/yaml`: struct keys match case-insensitively (exact match first), maps
 * merge into the default map, lists replace, absent keys keep their default, `null` on a scalar has
 * no effect. Type errors and unknown keys are collected with their YAML path and line.
 */
import type { Document, LineCounter, Node, Pair } from 'yaml';
import { requireCjs } from '../cjs.js';

const { isAlias, isMap, isScalar, isSeq } = requireCjs('yaml') as typeof import('yaml');
import { formatNanos, normalizeDuration } from './duration.js';
import type { ConfigWarning } from './types.js';
import { expectedName, type LegacyRule, type ObjectSchema, type Schema } from './schema.js';

export interface Issue {
  path: string;
  line?: number;
  message: string;
}

/** What the module-map hook needs: unknown module sections are kept, not warned about. */
export interface DecodeOptions {
  /** Path of the object whose unknown keys are modules to keep raw ("modules"). */
  modulesPath: string;
}

const YAML11_BOOLS: Record<string, boolean> = {
  y: true,
  Y: true,
  yes: true,
  Yes: true,
  YES: true,
  on: true,
  On: true,
  ON: true,
  n: false,
  N: false,
  no: false,
  No: false,
  NO: false,
  off: false,
  Off: false,
  OFF: false,
};

const QUANTITY = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;
const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

export class Decoder {
  readonly errors: Issue[] = [];
  readonly warnings: ConfigWarning[] = [];
  /** YAML line of every decoded path. */
  readonly lines = new Map<string, number>();
  /** Paths the file set explicitly. */
  readonly explicit = new Set<string>();
  readonly unknownModules: string[] = [];
  private readonly lowerIndex = new WeakMap<object, Map<string, string>>();

  constructor(
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
    private readonly fileName: string,
    private readonly options: DecodeOptions,
  ) {}

  lineOf(node: Node | null | undefined): number | undefined {
    const offset = node?.range?.[0];
    return offset === undefined ? undefined : this.lineCounter.linePos(offset).line;
  }

  /** Line of `path`, or of its nearest ancestor present in the file. */
  lineFor(path: string): number | undefined {
    let p = path;
    for (;;) {
      const line = this.lines.get(p);
      if (line !== undefined) return line;
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
      if (cut <= 0) return undefined;
      p = p.slice(0, cut);
    }
  }

  error(path: string, message: string, line = this.lineFor(path)): void {
    this.errors.push({ path, line, message });
  }

  warn(path: string, message: string, line?: number): void {
    const where = line === undefined ? this.fileName : `${this.fileName}:${line}`;
    this.warnings.push({ path, line, message: `${path}: ${message} (${where})` });
  }

  /** "path: message (file:line)" */
  format(issue: Issue): string {
    const where = issue.line === undefined ? this.fileName : `${this.fileName}:${issue.line}`;
    return `${issue.path || '(top level)'}: ${issue.message} (${where})`;
  }

  private resolve(node: Node | null | undefined): Node | null {
    if (node && isAlias(node)) {
      const target = node.resolve(this.doc);
      return (target as Node | undefined) ?? null;
    }
    return node ?? null;
  }

  /** The value of a node as JSON text, for "got ..." in messages (long values shortened). */
  json(node: Node | null): string {
    if (node === null) return 'null';
    let v: unknown;
    try {
      v = node.toJS(this.doc);
    } catch {
      v = String(node);
    }
    let text = JSON.stringify(v) ?? 'null';
    if (text.length > 80) text = `${text.slice(0, 77)}...`;
    return text;
  }

  private typeError(path: string, schema: Schema, node: Node | null): void {
    this.error(
      path,
      `expected ${expectedName(schema)}, got ${this.json(node)}`,
      this.lineOf(node) ?? this.lineFor(path),
    );
  }

  /**
   * Decode `node` against `schema`. `current` is the value in place (a default, or the Go zero
   * value); objects and maps are updated in place. Returns the new value.
   */
  decode(
    node: Node | null | undefined,
    schema: Schema,
    current: unknown,
    path: string,
    keyLine?: number,
  ): unknown {
    const n = this.resolve(node);
    // A block mapping or list starts on the line after its key: point at the key instead.
    const line = n !== null && !isScalar(n) && keyLine !== undefined ? keyLine : (this.lineOf(n) ?? keyLine);
    if (line !== undefined) this.lines.set(path, line);
    this.explicit.add(path);

    // YAML null (also `key:` with nothing): no effect on scalars, nil for lists and maps.
    if (n === null || (isScalar(n) && n.value === null)) {
      switch (schema.kind) {
        case 'list':
        case 'map':
          if (current === undefined) return undefined;
          return schema.omit === 'never' ? null : schema.kind === 'list' ? [] : {};
        case 'object':
          if (/^modules\.[^.[]+$/.test(path)) {
            this.error(path, 'a module section cannot be null (remove the key, or set enable: false)', line);
          } else {
            this.typeError(path, schema, n);
          }
          return current;
        case 'any':
          return null;
        default:
          return current;
      }
    }

    switch (schema.kind) {
      case 'object':
        if (!isMap(n)) {
          this.typeError(path, schema, n);
          return current;
        }
        return this.decodeObject(n.items as Pair<Node, Node>[], schema, current, path);
      case 'map': {
        if (!isMap(n)) {
          this.typeError(path, schema, n);
          return current;
        }
        const target: Record<string, unknown> =
          current !== null && typeof current === 'object' ? (current as Record<string, unknown>) : {};
        for (const pair of this.pairs(n.items as Pair<Node, Node>[])) {
          const key = this.keyText(pair.key);
          const keyLine = this.lineOf(this.resolve(pair.key));
          target[key] = this.decode(pair.value, schema.of, zeroOf(schema.of), `${path}.${key}`, keyLine);
        }
        return target;
      }
      case 'list': {
        if (!isSeq(n)) {
          this.typeError(path, schema, n);
          return current;
        }
        return n.items.map((item, i) =>
          this.decode(item as Node, schema.of, zeroOf(schema.of), `${path}[${i}]`),
        );
      }
      case 'any':
        return n.toJS(this.doc);
      default:
        return this.decodeScalar(n, schema, current, path);
    }
  }

  private decodeScalar(n: Node, schema: Schema, current: unknown, path: string): unknown {
    if (!isScalar(n)) {
      this.typeError(path, schema, n);
      return current;
    }
    const v = n.value;
    const plain = n.type === 'PLAIN';
    switch (schema.kind) {
      case 'bool':
        if (typeof v === 'boolean') return v;
        if (plain && typeof v === 'string' && v in YAML11_BOOLS) return YAML11_BOOLS[v];
        break;
      case 'int': {
        if (typeof v !== 'number' || !Number.isSafeInteger(v)) break;
        const min = schema.min ?? (schema.int64 ? Number.MIN_SAFE_INTEGER : INT32_MIN);
        const max = schema.max ?? (schema.int64 ? Number.MAX_SAFE_INTEGER : INT32_MAX);
        if (v < min || v > max) {
          const expected =
            schema.min !== undefined || schema.max !== undefined
              ? expectedName(schema)
              : `integer between ${min} and ${max}`;
          this.error(path, `expected ${expected}, got ${this.json(n)}`, this.lineOf(n));
          return current;
        }
        return v;
      }
      case 'number':
        if (typeof v === 'number') return v;
        break;
      case 'string': {
        let s: string | undefined;
        if (typeof v === 'string') s = v;
        // sigs.k8s.io/yaml turns a YAML number or boolean into a string when the target is a string.
        else if (typeof v === 'number' || typeof v === 'boolean') s = n.source ?? String(v);
        if (s === undefined) break;
        if (schema.oneOf && !schema.oneOf.includes(s)) break;
        return s;
      }
      case 'duration':
        if (typeof v === 'string') {
          const d = normalizeDuration(v);
          if (d !== undefined) return d;
        } else if (schema.acceptNanos && typeof v === 'number' && Number.isSafeInteger(v)) {
          return formatNanos(BigInt(v));
        }
        break;
      case 'quantity':
        if (typeof v === 'number' && Number.isFinite(v)) return n.source ?? String(v);
        if (typeof v === 'string' && QUANTITY.test(v)) return v;
        break;
    }
    this.typeError(path, schema, n);
    return current;
  }

  /** Pairs of a mapping with YAML merge keys (`<<: *anchor`) expanded; explicit keys win. */
  private pairs(items: Pair<Node, Node>[]): Pair<Node, Node>[] {
    const merged: Pair<Node, Node>[] = [];
    const own: Pair<Node, Node>[] = [];
    for (const pair of items) {
      const key = this.resolve(pair.key);
      const k = isScalar(key) ? key.value : undefined;
      const isMerge = k === '<<' || (typeof k === 'symbol' && k.description === '<<');
      if (isMerge && isScalar(key) && (key.type === undefined || key.type === 'PLAIN')) {
        const src = this.resolve(pair.value);
        const sources = isSeq(src) ? src.items.map((i) => this.resolve(i as Node)) : [src];
        // Earlier sources take precedence: add later ones first.
        for (const s of sources.reverse()) {
          if (isMap(s)) merged.push(...this.pairs(s.items as Pair<Node, Node>[]));
        }
      } else {
        own.push(pair);
      }
    }
    return [...merged, ...own];
  }

  private keyText(key: Node | null | undefined): string {
    const k = this.resolve(key);
    if (k === null) return '';
    if (isScalar(k)) return typeof k.value === 'string' ? k.value : (k.source ?? String(k.value));
    return String(k.toJSON());
  }

  private fieldFor(schema: ObjectSchema, key: string): string | undefined {
    if (Object.hasOwn(schema.fields, key)) return key;
    let index = this.lowerIndex.get(schema.fields);
    if (!index) {
      index = new Map(Object.keys(schema.fields).map((f) => [f.toLowerCase(), f]));
      this.lowerIndex.set(schema.fields, index);
    }
    return index.get(key.toLowerCase());
  }

  private legacyFor(schema: ObjectSchema, key: string): [string, LegacyRule] | undefined {
    if (!schema.legacy) return undefined;
    const lower = key.toLowerCase();
    for (const [name, rule] of Object.entries(schema.legacy)) {
      if (name.toLowerCase() === lower) return [name, rule];
    }
    return undefined;
  }

  private decodeObject(
    items: Pair<Node, Node>[],
    schema: ObjectSchema,
    current: unknown,
    path: string,
  ): unknown {
    const target: Record<string, unknown> =
      current !== null && typeof current === 'object'
        ? (current as Record<string, unknown>)
        : zeroObject(schema);
    const pending: Array<{ from: string; to: readonly string[]; value: unknown; line?: number }> = [];
    const child = (name: string) => (path === '' ? name : `${path}.${name}`);

    for (const pair of this.pairs(items)) {
      const key = this.keyText(pair.key);
      const keyLine = this.lineOf(this.resolve(pair.key));
      const field = this.fieldFor(schema, key);
      if (field !== undefined) {
        const fieldSchema = schema.fields[field] as Schema;
        target[field] = this.decode(pair.value, fieldSchema, target[field], child(field), keyLine);
        continue;
      }
      if (path === this.options.modulesPath) {
        this.keepModule(key, pair.value, target, child(key), keyLine);
        continue;
      }
      const legacy = this.legacyFor(schema, key);
      if (legacy) {
        const [name, rule] = legacy;
        const legacyPath = child(name);
        const before = this.errors.length;
        let value = this.decode(pair.value, rule.schema, zeroOf(rule.schema), legacyPath, keyLine);
        if (this.errors.length > before) continue;
        if (!rule.to) {
          const why = rule.note ? ` (${rule.note})` : '';
          this.warn(legacyPath, `legacy field with no equivalent in v1alpha2${why}; ignored`, keyLine);
          continue;
        }
        if (rule.convert) {
          try {
            value = rule.convert(value);
          } catch (err) {
            const what = err instanceof Error ? err.message : String(err);
            this.error(legacyPath, `${what}, got ${this.json(this.resolve(pair.value))}`, keyLine);
            continue;
          }
        }
        if (value !== undefined) pending.push({ from: legacyPath, to: rule.to, value, line: keyLine });
        continue;
      }
      this.warn(
        child(key),
        path === '' ? 'unknown top-level field; ignored' : 'unknown field; ignored',
        keyLine,
      );
    }

    for (const p of pending) {
      const toPath = child(p.to.join('.'));
      if (this.explicit.has(toPath)) {
        this.warn(p.from, `legacy field ignored because ${toPath} is also set`, p.line);
        continue;
      }
      let obj = target;
      for (const k of p.to.slice(0, -1)) {
        const next = obj[k];
        if (next === null || typeof next !== 'object') break;
        obj = next as Record<string, unknown>;
      }
      obj[p.to[p.to.length - 1] as string] = p.value;
      this.explicit.add(toPath);
      if (p.line !== undefined) this.lines.set(toPath, p.line);
    }
    return target;
  }

  /** An unknown module section: kept as decoded; it must be a mapping, `enable`/`runAs` are checked. */
  private keepModule(
    key: string,
    valueNode: Node | null,
    target: Record<string, unknown>,
    path: string,
    keyLine?: number,
  ): void {
    const n = this.resolve(valueNode);
    const line = keyLine ?? this.lineOf(n);
    if (line !== undefined) this.lines.set(path, line);
    this.explicit.add(path);
    if (n === null || (isScalar(n) && n.value === null)) {
      this.error(path, 'a module section cannot be null (remove the key, or set enable: false)', line);
      return;
    }
    if (!isMap(n)) {
      this.error(path, `expected mapping, got ${this.json(n)}`, line);
      return;
    }
    const raw = n.toJS(this.doc) as Record<string, unknown>;
    for (const pair of n.items as Pair<Node, Node>[]) {
      const k = this.keyText(pair.key);
      const v = this.resolve(pair.value);
      let value = isScalar(v) ? v.value : undefined;
      if (
        k === 'enable' &&
        isScalar(v) &&
        v.type === 'PLAIN' &&
        typeof value === 'string' &&
        value in YAML11_BOOLS
      ) {
        value = YAML11_BOOLS[value];
        raw.enable = value;
      }
      if (k === 'enable' && typeof value !== 'boolean') {
        this.error(`${path}.enable`, `expected boolean, got ${this.json(v)}`, this.lineOf(v) ?? line);
      }
      if (k === 'runAs' && value !== 'inprocess' && value !== 'process') {
        this.error(
          `${path}.runAs`,
          `expected one of "inprocess", "process", got ${this.json(v)}`,
          this.lineOf(v) ?? line,
        );
      }
    }
    if (!this.unknownModules.includes(key)) this.unknownModules.push(key);
    target[key] = raw;
  }
}

/** The Go zero value of a field, as our typed config represents it. */
export function zeroOf(s: Schema): unknown {
  switch (s.kind) {
    case 'bool':
      return false;
    case 'int':
    case 'number':
      return 0;
    case 'string':
    case 'quantity':
      return s.kind === 'quantity' ? '0' : '';
    case 'duration':
      return '0s';
    case 'list':
    case 'map':
    case 'any':
      return undefined;
    case 'object':
      return s.ptr ? undefined : zeroObject(s);
  }
}

/** A struct with every value (non-pointer) field at its zero value; pointers, lists and maps unset. */
export function zeroObject(s: ObjectSchema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(s.fields)) {
    if (f.omit === 'nil') continue;
    const z = zeroOf(f);
    if (z !== undefined) out[k] = z;
  }
  return out;
}
