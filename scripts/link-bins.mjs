// Run by `npm run prepare` after the build: link this package's own executables into
// node_modules/.bin so that `npx edgecore` / `npx cloudcore` work inside a checkout with npm 10
// (Node 20's own npm), which, unlike npm 11, does not run a package's own bins.
import { chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { URL, fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { bin } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const dir = join(root, 'node_modules', '.bin');
mkdirSync(dir, { recursive: true });
for (const [name, target] of Object.entries(bin)) {
  const file = join(root, target);
  chmodSync(file, 0o755);
  const link = join(dir, name);
  rmSync(link, { force: true });
  symlinkSync(relative(dir, file), link);
}
