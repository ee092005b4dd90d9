import type { PluginEntry } from '../kernel/index.js';

/**
 * The built-in plugins: one line each, the config section that enables it and the module that
 * defines it. Only enabled plugins are imported. The kernel itself names none of them.
 */
export const edgeRegistry: readonly PluginEntry[] = [];

export const cloudRegistry: readonly PluginEntry[] = [];
