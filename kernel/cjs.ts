import { createRequire } from 'node:module';

/**
 * require() for the CommonJS packages the kernel loads (yaml, tsyringe, prom-client,
 * better-sqlite3, ...). An ESM `import` of a CommonJS package makes Node start its
 * cjs-module-lexer (WebAssembly), which costs ~7 MB of resident memory: edgecore's idle budget.
 * Take types with `import type` and values through this.
 */
export const requireCjs = createRequire(import.meta.url);
