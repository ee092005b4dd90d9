/**
 * The specifier of a module next to `base` (an import.meta.url): registries list built-in plugins
 * this way so that the same registry works from the TypeScript sources (tests) and from dist/.
 */
export function pluginSpecifier(base: string, relative: string): string {
  const ext = base.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`${relative}${ext}`, base).href;
}
