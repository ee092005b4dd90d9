import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { KernelError, errorText } from '../errors.js';
import type { PluginDefinition } from './types.js';

/** A plugin chosen to run, with where it came from (for errors and the out-of-process runner). */
export interface LoadedPlugin {
  def: PluginDefinition;
  specifier: string;
}

/** Import a plugin module and check that its default export is a plugin definition. */
export async function importPlugin(specifier: string, what: string): Promise<PluginDefinition> {
  let mod: { default?: unknown };
  try {
    mod = (await import(specifier)) as { default?: unknown };
  } catch (err) {
    // The first line only: Node appends a require stack that says nothing to the user.
    const why = errorText(err).split('\n')[0];
    throw new KernelError('EPLUGIN_LOAD', `${what}: cannot load ${specifier}: ${why}`, { cause: err });
  }
  const def = mod.default as Partial<PluginDefinition> | undefined;
  const problems: string[] = [];
  if (!def || typeof def !== 'object') problems.push('its default export is not a plugin definition');
  else {
    if (typeof def.name !== 'string' || !def.name) problems.push('"name" must be a non-empty string');
    if (typeof def.group !== 'string') problems.push('"group" must be a string');
    if (typeof def.configKey !== 'string' || !def.configKey)
      problems.push('"configKey" must be a non-empty string');
    if (typeof def.start !== 'function') problems.push('"start" must be a function');
    const section = def.config as { schema?: { kind?: unknown }; defaults?: unknown } | undefined;
    if (
      section !== undefined &&
      (section.schema?.kind !== 'object' || typeof section.defaults !== 'function')
    )
      problems.push('"config" must be a config section (defineConfigSection)');
  }
  if (problems.length) throw new KernelError('EPLUGIN_INVALID', `${what}: ${problems.join('; ')}`);
  return def as PluginDefinition;
}

/** Resolve an npm package name or a path (relative to the config file) to an importable URL. */
export function resolvePluginPackage(pkg: string, baseDir: string): string {
  const req = createRequire(join(baseDir, 'noop.js'));
  try {
    return pathToFileURL(req.resolve(pkg)).href;
  } catch (err) {
    throw new KernelError(
      'EPLUGIN_LOAD',
      `kernel.plugins: cannot find plugin package "${pkg}" from ${baseDir} ` +
        '(install it with npm, or give a path relative to the config file)',
      { cause: err },
    );
  }
}
