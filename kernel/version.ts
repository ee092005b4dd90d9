import { readFileSync } from 'node:fs';

/** The KubeEdge release whose behaviour and wire format this build matches. */
export const KUBEEDGE_VERSION = 'v1.23.1';

function readOwnVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'kubeedge-ts' && pkg.version) return pkg.version;
    } catch {
      // try the next location (sources vs dist/)
    }
  }
  return '0.0.0';
}

/** This project's own version (package.json). */
export const VERSION = readOwnVersion();
