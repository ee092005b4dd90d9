/**
 * Decode a parsed YAML document on top of a defaulted config, with Go `encoding/json` rules as
 * applied by `sigs.k8s.io/yaml`: struct keys match case-insensitively (exact match first), maps
 * merge into the default map, lists replace, absent keys keep their default, `null` on a scalar has
 * no effect. Type errors and unknown keys are collected with their YAML path and line.
 */
import type { Alias, Document, LineCounter, Node, Pair } from 'yaml';
import { requireCjs } from '../cjs.js';
import { KernelError } from '../errors.js';

const { isAlias, isMap, isScalar, isSeq, visit } = requireCjs('yaml') as typeof import('yaml');
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

/**
 * How many nodes aliases (and `<<` merges) may add to a document: far beyond any real config, far
 * below what a "billion laughs" document expands to.
 */
export const MAX_ALIAS_EXPANSION = 100_000;

/** What one linear pass over a parsed document finds: alias targets and the first duplicate key. */
export interface Scan {
  /** The node each alias refers to (the last anchor of that name before it). */
  aliases: Map<Alias, Node>;
  /** The first key that repeats a key of its own mapping. */
  duplicate?: Node;
}

/**
 * One pass over the document, in document order, instead of the `yaml` package's per-key and
 * per-alias searches (quadratic: 40k keys took 83 s).
 */
export function scanDocument(doc: Document): Scan {
  const anchors = new Map<string, Node>();
  const out: Scan = { aliases: new Map() };
  visit(doc, {
    Node(_k, node) {
      const anchor = isScalar(node) || isMap(node) || isSeq(node) ? node.anchor : undefined;
      if (anchor) anchors.set(anchor, node as Node);
      if (isAlias(node)) {
        const target = anchors.get(node.source);
        if (target) out.aliases.set(node, target);
      }
      if (isMap(node) && !out.duplicate) out.duplicate = duplicateKey(node.items as Pair<Node, Node>[]);
    },
  });
  return out;
}

function duplicateKey(items: Pair<Node, Node>[]): Node | undefined {
  const seen = new Set<unknown>();
  for (const { key } of items) {
    if (!isScalar(key) || key.value === '<<') continue;
    const id = typeof key.value === 'string' ? key.value : `${typeof key.value}:${String(key.value)}`;
    if (seen.has(id)) return key;
    seen.add(id);
  }
  return undefined;
}

/**
 * Text from a config file, safe to print: characters a terminal would act on or that do not
 * print (controls, format characters, unassigned, replacement characters) become `\uXXXX`,
 * and long text is cut.
 */
export function printable(text: string, max = 200): string {
  const safe = text.replace(
    /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}\uFFFD]/gu,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
  );
  return safe.length > max ? `${safe.slice(0, max - 3)}...` : safe;
}

/** Thrown inside a decode when aliases expand too far or into themselves; reported with its path. */
class AliasError extends Error {
  constructor(
    readonly path: string,
    readonly line: number | undefined,
    message: string,
  ) {
    super(message);
  }
}

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
  private readonly unknownModuleSet = new Set<string>();
  private readonly lowerIndex = new WeakMap<object, Map<string, string>>();
  /** Nodes added by aliases and merges so far (see MAX_ALIAS_EXPANSION). */
  private expanded = 0;
  /** How many aliases deep the decoder is: every node read there is a copy, and counts. */
  private aliasDepth = 0;
  /** Alias targets being decoded: an alias inside its own anchor would recurse forever. */
  private expanding = new Set<Node>();

  constructor(
    private readonly lineCounter: LineCounter,
    private readonly fileName: string,
    private readonly options: DecodeOptions,
    private readonly aliases: ReadonlyMap<Alias, Node>,
  ) {}

  /**
   * Decode the top-level mapping on top of `target`. A document whose aliases expand without
   * bound ("billion laughs") or into themselves throws ECONFIG_INVALID at once.
   */
  decodeRoot(node: Node, schema: ObjectSchema, target: object): void {
    try {
      this.decode(node, schema, target, '');
    } catch (err) {
      if (!(err instanceof AliasError)) throw err;
      throw new KernelError('ECONFIG_INVALID', this.format(err));
    }
  }

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

  /** Count `n` nodes added by an alias or merge at `path`. */
  private expand(n: number, path: string, node: Node | null | undefined): void {
    this.expanded += n;
    if (this.expanded > MAX_ALIAS_EXPANSION) {
      throw new AliasError(
        path,
        this.lineOf(node) ?? this.lineFor(path),
        `YAML aliases expand to more than ${MAX_ALIAS_EXPANSION} nodes (a "billion laughs" document?); refused`,
      );
    }
  }

  error(path: string, message: string, line = this.lineFor(path)): void {
    this.errors.push({ path, line, message });
  }

  warn(path: string, message: string, line?: number): void {
    const where = line === undefined ? this.fileName : `${this.fileName}:${line}`;
    this.warnings.push({ path, line, message: `${printable(path)}: ${message} (${where})` });
  }

  /** "path: message (file:line)" */
  format(issue: Issue): string {
    const where = issue.line === undefined ? this.fileName : `${this.fileName}:${issue.line}`;
    return `${printable(issue.path) || '(top level)'}: ${issue.message} (${where})`;
  }

  /** The node an alias refers to (an unknown alias is null, as YAML has no value for it). */
  private resolve(node: Node | null | undefined, path = ''): Node | null {
    if (node && isAlias(node)) {
      this.expand(1, path, node);
      return this.aliases.get(node) ?? null;
    }
    return node ?? null;
  }

  /**
   * The plain value of a node (what `toJS` gives), with aliases resolved through the scan and
   * counted against the expansion limit.
   */
  private plain(node: Node | null | undefined, path: string): unknown {
    if (isAlias(node)) return this.atAlias(node, path, () => this.plainNode(node, path));
    return this.plainNode(node, path);
  }

  /**
   * Run `f`, which expands the alias (or merge key) `node` at `path`: an AliasError from deeper
   * down is reported here, the outermost place the file's author wrote.
   */
  private atAlias<T>(node: Node, path: string, f: () => T): T {
    this.aliasDepth++;
    try {
      return f();
    } catch (err) {
      if (!(err instanceof AliasError)) throw err;
      throw new AliasError(path, this.lineOf(node) ?? err.line, err.message);
    } finally {
      this.aliasDepth--;
    }
  }

  /** The items of a collection, counted when they are copies made by an alias. */
  private items<T>(items: T[], path: string): T[] {
    if (this.aliasDepth > 0) this.expand(items.length, path, undefined);
    return items;
  }

  private plainNode(node: Node | null | undefined, path: string): unknown {
    const n = this.resolve(node, path);
    if (n === null) return null;
    if (isScalar(n)) return n.value;
    const owned = !this.expanding.has(n);
    if (!owned && isAlias(node)) {
      throw new AliasError(
        path,
        this.lineOf(node),
        'a YAML alias refers to a node that contains it; refused',
      );
    }
    this.expanding.add(n);
    try {
      if (isSeq(n))
        return this.items(n.items, path).map((item, i) => this.plain(item as Node, `${path}[${i}]`));
      if (!isMap(n)) return null;
      const out: Record<string, unknown> = {};
      for (const pair of this.pairs(n.items as Pair<Node, Node>[], path)) {
        const key = this.keyText(pair.key);
        setOwn(out, key, this.plain(pair.value, `${path}.${key}`));
      }
      return out;
    } finally {
      if (owned) this.expanding.delete(n);
    }
  }

  /** The value of a node as JSON text, for "got ..." in messages (unprintable text escaped, long values cut). */
  json(node: Node | null): string {
    const [expanded, expanding] = [this.expanded, this.expanding];
    let v: unknown;
    try {
      // A value shown in a message may expand by at most 1000 nodes, and does not use up the budget.
      this.expanded = Math.max(expanded, MAX_ALIAS_EXPANSION - 1000);
      this.expanding = new Set();
      v = this.plain(node, '');
    } catch (err) {
      if (!(err instanceof AliasError)) throw err;
      v = '(YAML aliases expanding too far)';
    } finally {
      [this.expanded, this.expanding] = [expanded, expanding];
    }
    return printable(JSON.stringify(v) ?? 'null', 80);
  }

  private typeError(path: string, schema: Schema, node: Node | null): void {
    this.error(path, `expected ${expectedName(schema)}, got ${this.json(node)}`, this.lineFor(path));
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
    if (node && isAlias(node)) {
      return this.atAlias(node, path, () => this.decodeResolved(node, schema, current, path, keyLine));
    }
    return this.decodeResolved(node, schema, current, path, keyLine);
  }

  private decodeResolved(
    node: Node | null | undefined,
    schema: Schema,
    current: unknown,
    path: string,
    keyLine: number | undefined,
  ): unknown {
    const n = this.resolve(node, path);
    if (n !== null && !isScalar(n)) {
      if (isAlias(node) && this.expanding.has(n)) {
        throw new AliasError(
          path,
          this.lineOf(node),
          'a YAML alias refers to a node that contains it; refused',
        );
      }
      this.expanding.add(n);
      try {
        return this.decodeNode(n, node, schema, current, path, keyLine);
      } finally {
        this.expanding.delete(n);
      }
    }
    return this.decodeNode(n, node, schema, current, path, keyLine);
  }

  /** Decode the resolved node `n`; `at` is the node written at `path` (an alias, or `n`). */
  private decodeNode(
    n: Node | null,
    at: Node | null | undefined,
    schema: Schema,
    current: unknown,
    path: string,
    keyLine: number | undefined,
  ): unknown {
    // A block mapping or list starts on the line after its key: point at the key instead.
    // An alias: its own line, not its anchor's.
    const line =
      (n !== null && !isScalar(n)) || isAlias(at)
        ? (keyLine ?? this.lineOf(at))
        : (this.lineOf(n) ?? keyLine);
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
        for (const pair of this.pairs(n.items as Pair<Node, Node>[], path)) {
          const key = this.keyText(pair.key);
          const keyLine = this.lineOf(this.resolve(pair.key));
          setOwn(
            target,
            key,
            this.decode(pair.value, schema.of, zeroOf(schema.of), `${path}.${key}`, keyLine),
          );
        }
        return target;
      }
      case 'list': {
        if (!isSeq(n)) {
          this.typeError(path, schema, n);
          return current;
        }
        return this.items(n.items, path).map((item, i) =>
          this.decode(item as Node, schema.of, zeroOf(schema.of), `${path}[${i}]`),
        );
      }
      case 'any':
        return this.plain(n, path);
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
  private pairs(all: Pair<Node, Node>[], path: string): Pair<Node, Node>[] {
    const items = this.items(all, path);
    const merged: Pair<Node, Node>[] = [];
    const own: Pair<Node, Node>[] = [];
    for (const pair of items) {
      const key = this.resolve(pair.key, path);
      const k = isScalar(key) ? key.value : undefined;
      const isMerge = k === '<<' || (typeof k === 'symbol' && k.description === '<<');
      if (isMerge && isScalar(key) && (key.type === undefined || key.type === 'PLAIN')) {
        const src = this.resolve(pair.value, path);
        const sources = isSeq(src) ? src.items.map((i) => this.resolve(i as Node, path)) : [src];
        // Earlier sources take precedence: add later ones first.
        for (const s of sources.reverse()) {
          if (!isMap(s)) continue;
          if (this.expanding.has(s)) {
            throw new AliasError(
              path,
              this.lineOf(key),
              'a YAML merge refers to a node that contains it; refused',
            );
          }
          this.expanding.add(s);
          try {
            const pairs = this.atAlias(key, path, () => this.pairs(s.items as Pair<Node, Node>[], path));
            this.expand(pairs.length, path, key);
            merged.push(...pairs);
          } finally {
            this.expanding.delete(s);
          }
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
    return String(k);
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

    for (const pair of this.pairs(items, path)) {
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
    const raw = this.plain(n, path) as Record<string, unknown>;
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
    if (!this.unknownModuleSet.has(key)) {
      this.unknownModuleSet.add(key);
      this.unknownModules.push(key);
    }
    setOwn(target, key, raw);
  }
}

/** `obj[key] = value` as an own property, whatever the key (`__proto__` included). */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
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
