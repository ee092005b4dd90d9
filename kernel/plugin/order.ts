import { KernelError } from '../errors.js';
import type { ServiceToken } from '../services.js';
import type { PluginDefinition } from './types.js';

type Node = Pick<PluginDefinition, 'name' | 'requires' | 'provides'>;

/**
 * Start order: a plugin that provides a service starts before the plugins that require it; ties
 * keep the given order. Services the kernel itself provides (`available`) need no provider (it
 * provides them in every process). A plugin-provided service is an object in its provider's
 * process: a plugin that requires it from another process (`placement` differs) is refused.
 */
export function startOrder<T>(
  items: readonly T[],
  nodeOf: (item: T) => Node,
  available: (token: ServiceToken<unknown>) => boolean,
  placement: (item: T) => string = () => '',
): T[] {
  const providers = new Map<string, T>();
  for (const item of items) for (const t of nodeOf(item).provides ?? []) providers.set(t.name, item);
  const missing: string[] = [];
  for (const item of items) {
    const d = nodeOf(item);
    for (const t of d.requires ?? []) {
      if (available(t)) continue;
      const p = providers.get(t.name);
      if (p === undefined) missing.push(`plugin "${d.name}" requires ${t}, which nothing provides`);
      else if (placement(p) !== placement(item))
        missing.push(
          `plugin "${d.name}" (in ${placement(item)}) requires ${t}, provided by plugin "${nodeOf(p).name}" in ${placement(p)}: services do not cross processes; run both in the same process (runAs)`,
        );
    }
  }
  if (missing.length) throw new KernelError('EPLUGIN_INVALID', missing.join('; '));
  const out: T[] = [];
  const state = new Map<T, 'visiting' | 'done'>();
  const visit = (item: T, path: string[]): void => {
    const s = state.get(item);
    const d = nodeOf(item);
    if (s === 'done') return;
    if (s === 'visiting') {
      throw new KernelError('EPLUGIN_CYCLE', `plugin dependency cycle: ${[...path, d.name].join(' -> ')}`);
    }
    state.set(item, 'visiting');
    for (const t of d.requires ?? []) {
      const p = providers.get(t.name);
      if (p !== undefined && p !== item) visit(p, [...path, d.name]);
    }
    state.set(item, 'done');
    out.push(item);
  };
  for (const item of items) visit(item, []);
  return out;
}
