/**
 * Loading edgecore.yaml / cloudcore.yaml: defaults first, the file decoded on top with Go JSON
 * rules, legacy keys mapped, then validation. Every problem of a file is reported at once.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import type { LineCounter as YamlLineCounter, Node, Pair } from 'yaml';
import { requireCjs } from '../cjs.js';

const { isMap, isScalar, LineCounter, parseAllDocuments } = requireCjs('yaml') as typeof import('yaml');
import { KernelError } from '../errors.js';
import { parentProblem } from './checks.js';
import { cloudCoreFile } from './cloudcore.js';
import { Decoder, printable, scanDocument } from './decode.js';
import { durationNanos } from './duration.js';
import { edgeCoreFile } from './edgecore.js';
import type { KernelConfig } from './kernel-section.js';
import { goMarshal, renderWithHeader } from './render.js';
import type { ObjectSchema } from './schema.js';
import { defaultModules, minModules, modulesSchema, type FileConfig } from './section.js';
import type { ConfigKind, ConfigLayout, ConfigOf, FileRules, LoadedConfig, Reporter } from './types.js';

type AnyConfig = { modules: Record<string, unknown> } & Record<string, unknown>;

const FILES: Record<ConfigKind, FileRules<AnyConfig>> = {
  edgecore: edgeCoreFile as unknown as FileRules<AnyConfig>,
  cloudcore: cloudCoreFile as unknown as FileRules<AnyConfig>,
};

const schemas = new WeakMap<ConfigLayout, ObjectSchema>();

/** The schema of the whole file: the kernel's file-level fields around the layout's sections. */
function schemaOf(layout: ConfigLayout): ObjectSchema {
  let schema = schemas.get(layout);
  if (!schema) {
    schema = FILES[layout.kind].schema(modulesSchema(layout.sections));
    schemas.set(layout, schema);
  }
  return schema;
}

/** Each section's adjust hook (cloudcore's AdjustCloudCoreConfig), in layout order. */
function adjust(layout: ConfigLayout, config: AnyConfig): void {
  for (const [key, section] of Object.entries(layout.sections)) {
    section.adjust?.(config.modules[key] as object, config as FileConfig);
  }
}

/** The fully defaulted configuration, as `--defaultconfig` prints it (plus kernel-extension defaults). */
export function defaultConfig<L extends ConfigLayout>(layout: L): ConfigOf<L> {
  const config = FILES[layout.kind].defaults(defaultModules(layout.sections));
  adjust(layout, config);
  return config as unknown as ConfigOf<L>;
}

/**
 * The object `--minconfig` prints. Reproduced faithfully: for edgecore, `enable` of edgeHub,
 * eventBus and deviceTwin is false (see README).
 */
export function minConfig(layout: ConfigLayout): object {
  return FILES[layout.kind].min(minModules(layout.sections));
}

/** `--minconfig` / `--defaultconfig` output for `obj` (kernel-extension keys are not printed). */
export function renderConfig(layout: ConfigLayout, obj: object, flavour: 'min' | 'default'): string {
  return renderWithHeader(goMarshal(obj, schemaOf(layout)), flavour);
}

/** Largest config file read (a real edgecore.yaml is a few KiB). */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** Read and parse a config file. Throws KernelError (ECONFIG_*). */
export function loadConfigFile<L extends ConfigLayout>(layout: L, file: string): LoadedConfig<ConfigOf<L>> {
  return parseConfig(layout, readConfigText(file), file);
}

/**
 * The text of a config file: a regular file (not a device, FIFO or socket, which could block or
 * never end), at most MAX_CONFIG_BYTES, in UTF-8. Throws KernelError (ECONFIG_MISSING, ECONFIG_SYNTAX).
 */
export function readConfigText(file: string): string {
  const cannot = (why: string, cause?: unknown) =>
    new KernelError('ECONFIG_MISSING', `cannot read config file ${file}: ${why}`, { cause });
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new KernelError('ECONFIG_MISSING', `config file ${file} does not exist`);
    throw cannot(
      code === 'EISDIR' ? 'it is a directory' : err instanceof Error ? err.message : String(err),
      err,
    );
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw cannot('it is a directory');
    if (!st.isFile()) throw cannot(`it is not a regular file (${fileType(st)})`);
    const limit = `the limit is ${MAX_CONFIG_BYTES / 1024 / 1024} MiB`;
    if (st.size > MAX_CONFIG_BYTES) throw cannot(`it is too large (${st.size} bytes; ${limit})`);
    // Read one byte more than the limit: a file that grows meanwhile is refused too.
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let length = 0;
    for (let n; length < buf.length && (n = readSync(fd, buf, length, buf.length - length, null)) > 0;)
      length += n;
    if (length > MAX_CONFIG_BYTES)
      throw cannot(`it is too large (more than ${MAX_CONFIG_BYTES} bytes; ${limit})`);
    return decodeUtf8(buf.subarray(0, length), file);
  } finally {
    closeSync(fd);
  }
}

function fileType(st: import('node:fs').Stats): string {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/** UTF-8 text, or ECONFIG_SYNTAX naming the line of the first byte that is not UTF-8. */
function decodeUtf8(bytes: Buffer, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const text = bytes.toString('utf8');
    const bad = text.indexOf('\uFFFD');
    const line = text.slice(0, Math.max(bad, 0)).split('\n').length;
    throw new KernelError(
      'ECONFIG_SYNTAX',
      `config file ${file} is not UTF-8 text (invalid bytes at line ${line}); is it a binary file?`,
    );
  }
}

/** Parse config text; `file` names it in messages. Throws KernelError (ECONFIG_*). */
export function parseConfig<L extends ConfigLayout>(
  layout: L,
  text: string,
  file: string,
): LoadedConfig<ConfigOf<L>> {
  const { kind } = layout;
  const base = path.basename(file) || file;
  const lineCounter = new LineCounter();
  // Keys are checked for uniqueness by scanDocument, in linear time (the parser's check is quadratic).
  const docs = parseAllDocuments(text, { lineCounter, merge: true, uniqueKeys: false, prettyErrors: false });

  const syntaxError = (offset: number, msg: string, cause?: unknown) => {
    const pos = lineCounter.linePos(offset);
    return new KernelError(
      'ECONFIG_SYNTAX',
      `YAML syntax error in ${file} at line ${pos.line}, column ${pos.col}: ${printable(msg)}`,
      { cause },
    );
  };
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err) throw syntaxError(err.pos[0], err.message.split('\n')[0] ?? err.message, err);
  }
  const doc = docs[0];
  const scan = doc ? scanDocument(doc) : undefined;
  if (scan?.duplicate) throw syntaxError(scan.duplicate.range?.[0] ?? 0, 'Map keys must be unique');
  const contents = doc?.contents ?? null;
  if (!doc || contents === null || (isScalar(contents) && contents.value === null)) {
    throw new KernelError('ECONFIG_EMPTY', `config file ${file} is empty (no YAML content)`);
  }

  const decoder = new Decoder(lineCounter, base, { modulesPath: 'modules' }, scan?.aliases ?? new Map());
  if (!isMap(contents)) {
    decoder.error('', `expected mapping, got ${decoder.json(contents)}`, decoder.lineOf(contents));
    throw new KernelError('ECONFIG_INVALID', decoder.errors.map((e) => decoder.format(e)).join('\n'));
  }

  const rules = FILES[kind];
  const fileApiVersion = checkKind(kind, file, contents.items as Pair<Node, Node>[], lineCounter);

  const config = rules.defaults(defaultModules(layout.sections));
  decoder.decodeRoot(contents, schemaOf(layout), config);
  if (docs.length > 1)
    decoder.warn('(document)', 'only the first YAML document of the file is used', undefined);
  config.apiVersion = rules.apiVersion;
  config.kind = rules.kind;

  const reporter: Reporter = { error: (p, m) => decoder.error(p, m), isSet: (p) => decoder.explicit.has(p) };
  adjust(layout, config);
  rules.validate(config, reporter);
  for (const [key, section] of Object.entries(layout.sections)) {
    const at = (p: string) => `modules.${key}${p ? `.${p}` : ''}`;
    section.validate?.(
      config.modules[key] as object,
      { error: (p, m) => reporter.error(at(p), m), isSet: (p) => reporter.isSet(at(p)) },
      config as FileConfig,
    );
  }
  validateKernel(config.kernel as KernelConfig, reporter);

  if (decoder.errors.length > 0) {
    const sorted = decoder.errors
      .map((e, i) => ({ e, i }))
      .sort((a, b) => (a.e.line ?? Infinity) - (b.e.line ?? Infinity) || a.i - b.i)
      .map(({ e }) => decoder.format(e));
    throw new KernelError('ECONFIG_INVALID', sorted.join('\n'));
  }
  return {
    kind,
    file,
    apiVersion: fileApiVersion ?? rules.apiVersion,
    config: config as unknown as ConfigOf<L>,
    warnings: decoder.warnings,
    unknownModules: decoder.unknownModules,
  };
}

/** Reject a file of another kind; returns the file's apiVersion (if any). */
function checkKind(
  kind: ConfigKind,
  file: string,
  items: Pair<Node, Node>[],
  lc: YamlLineCounter,
): string | undefined {
  const info = FILES[kind];
  let apiVersion: { value: unknown; line?: number } | undefined;
  let kindValue: { value: unknown; line?: number } | undefined;
  for (const pair of items) {
    const key = isScalar(pair.key) ? String(pair.key.value).toLowerCase() : '';
    if (key !== 'apiversion' && key !== 'kind') continue;
    const v = pair.value;
    const value = v === null ? null : isScalar(v) ? v.value : String(v);
    const line = v?.range ? lc.linePos(v.range[0]).line : undefined;
    if (key === 'apiversion') apiVersion = { value, line };
    else kindValue = { value, line };
  }
  const apiOk =
    apiVersion === undefined ||
    apiVersion.value === null ||
    info.apiVersions.includes(apiVersion.value as string);
  const kindOk = kindValue === undefined || kindValue.value === null || kindValue.value === info.kind;
  if (apiOk && kindOk) return typeof apiVersion?.value === 'string' ? apiVersion.value : undefined;

  const found = [
    apiVersion && apiVersion.value !== null
      ? `apiVersion ${printable(JSON.stringify(apiVersion.value), 80)}`
      : 'no apiVersion',
    kindValue && kindValue.value !== null
      ? `kind ${printable(JSON.stringify(kindValue.value), 80)}`
      : 'no kind',
  ].join(' and ');
  const line = (!apiOk ? apiVersion?.line : kindValue?.line) ?? kindValue?.line;
  const expected = `apiVersion ${info.apiVersions.map((v) => JSON.stringify(v)).join(' or ')} with kind ${JSON.stringify(info.kind)}`;
  const other: ConfigKind = kind === 'edgecore' ? 'cloudcore' : 'edgecore';
  const looksOther =
    FILES[other].apiVersions.includes(apiVersion?.value as string) || kindValue?.value === FILES[other].kind
      ? ` (this looks like ${other === 'edgecore' ? 'an edgecore' : 'a cloudcore'} configuration)`
      : '';
  throw new KernelError(
    'ECONFIG_KIND',
    `config file ${file} has ${found}${line !== undefined ? ` (line ${line})` : ''}, ` +
      `but ${kind} expects ${expected}${looksOther}`,
  );
}

function validateKernel(k: KernelConfig, r: Reporter): void {
  const socket = k.socket === '' ? undefined : parentProblem(k.socket);
  if (socket) r.error('kernel.socket', `${socket}, got ${JSON.stringify(k.socket)}`);
  k.plugins.forEach((p, i) => {
    if (p.package.trim() === '') r.error(`kernel.plugins[${i}].package`, 'must not be empty');
  });
  const initial = durationNanos(k.restart.initialBackoff) ?? 0n;
  const max = durationNanos(k.restart.maxBackoff) ?? 0n;
  if (initial <= 0n)
    r.error(
      'kernel.restart.initialBackoff',
      `must be positive, got ${JSON.stringify(k.restart.initialBackoff)}`,
    );
  if (max < initial) {
    r.error(
      'kernel.restart.maxBackoff',
      `must not be less than kernel.restart.initialBackoff (${k.restart.initialBackoff}), got ${JSON.stringify(k.restart.maxBackoff)}`,
    );
  }
  for (const key of ['startTimeout', 'stopTimeout'] as const) {
    if ((durationNanos(k[key]) ?? 0n) <= 0n)
      r.error(`kernel.${key}`, `must be positive, got ${JSON.stringify(k[key])}`);
  }
}

/**
 * A module's section: `enable` and `runAs` always present (an unknown module without `enable` is
 * taken as enabled; see README). `undefined` when the config has no such section.
 */
export function moduleSection(
  config: { modules: Record<string, unknown> },
  key: string,
): ({ enable: boolean } & Record<string, unknown>) | undefined {
  const modules = config.modules as Record<string, unknown>;
  let value = modules[key];
  if (value === undefined) {
    const lower = key.toLowerCase();
    const found = Object.keys(modules).find((k) => k.toLowerCase() === lower);
    value = found === undefined ? undefined : modules[found];
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const raw = value as Record<string, unknown>;
  return {
    ...raw,
    enable: typeof raw.enable === 'boolean' ? raw.enable : true,
    runAs: raw.runAs === 'process' ? 'process' : 'inprocess',
  };
}
