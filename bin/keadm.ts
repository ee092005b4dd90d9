#!/usr/bin/env node
import { homedir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runKeadm } from '../keadm/cli.js';

// dist/bin/keadm.js: the cores beside it, the CRDs at the package root
const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
process.exitCode = await runKeadm(
  process.argv.slice(2),
  {
    crdsDir: here('../../crds/'),
    cloudcoreBin: here('./cloudcore.js'),
    edgecoreBin: here('./edgecore.js'),
    kubeConfig: `${homedir()}/.kube/config`,
  },
  { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) },
);
