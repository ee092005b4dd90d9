/**
 * `modules.deviceTwin` of edgecore.yaml (edgecore/v1alpha2). deviceTwin and the DMI server both run
 * when it is enabled; `dmiSockPath` is checked here, at load, rather than when the DMI server starts.
 */
import { statSync } from 'node:fs';
import {
  configSchema,
  defineConfigSection,
  parentProblem,
  sectionSchema,
  type ModuleBase,
} from '../../kernel/index.js';
import { DefaultDmiSockDir, dmiSocketPath } from '../../protocol/dmi.js';

export interface DeviceTwinConfig extends ModuleBase {
  /** A directory (`<dir>/dmi.sock` is served), or an older `.sock` file path. */
  dmiSockPath: string;
}

/** Why the DMI socket cannot be served at `<dmiSockPath>/dmi.sock`, or undefined. */
function dmiSockProblem(dmiSockPath: string): string | undefined {
  if (dmiSockPath === '') return `must not be empty (default ${JSON.stringify(DefaultDmiSockDir)})`;
  const socket = dmiSocketPath(dmiSockPath);
  let kind: string | undefined;
  try {
    const st = statSync(socket);
    if (st.isFile() || st.isDirectory()) kind = st.isFile() ? 'a regular file' : 'a directory';
  } catch {
    // absent: created at start
  }
  if (kind) return `the DMI socket path ${socket} is ${kind}; refusing to replace it`;
  const problem = parentProblem(socket);
  return problem && `the DMI socket ${socket} ${problem}`;
}

export const deviceTwinSection = defineConfigSection<DeviceTwinConfig>({
  schema: sectionSchema<DeviceTwinConfig>({ dmiSockPath: configSchema.str() }),
  defaults: () => ({ enable: true, runAs: 'inprocess', dmiSockPath: DefaultDmiSockDir }),
  // NewMinEdgeCoreConfig leaves `enable` at false (printed so), faithfully.
  min: () => ({ dmiSockPath: DefaultDmiSockDir }),
  validate(twin, r) {
    if (!twin.enable) return;
    const problem = dmiSockProblem(twin.dmiSockPath);
    if (problem) r.error('dmiSockPath', `${problem}, got ${JSON.stringify(twin.dmiSockPath)}`);
  },
});
