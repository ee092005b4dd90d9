/**
 * After a bootstrap, KubeEdge rewrites edgecore.yaml with `modules.edgeHub.token: ""` and mode 0640
 * (the token is a credential). Here only that one value is changed: the rest of the file (comments,
 * order, other values) stays as the user wrote it, and nothing is written unless the file holds
 * exactly the token that was used.
 */
import { randomBytes } from 'node:crypto';
import { chmod, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

/** yaml through require, as the kernel loads it (CommonJS: an ESM `import` costs memory). */
const { isScalar, parseDocument } = createRequire(import.meta.url)('yaml') as typeof Yaml;

/** What happened to the file: `cleared`, or why it was left alone. */
export type TokenClearing = 'cleared' | 'not-in-file' | 'unreadable';

export async function clearTokenInFile(file: string, token: string): Promise<TokenClearing> {
  let text: string;
  let mode: number;
  try {
    text = await readFile(file, 'utf8');
    mode = (await stat(file)).mode & 0o777;
  } catch {
    return 'unreadable';
  }
  const doc = parseDocument(text);
  const path = ['modules', 'edgeHub', 'token'];
  const node = doc.getIn(path, true);
  if (!isScalar(node) || node.value !== token) return 'not-in-file';
  node.value = '';
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  // never looser than before, and not readable by others (KubeEdge writes 0640)
  await writeFile(tmp, doc.toString(), { mode: mode & 0o640 });
  await chmod(tmp, mode & 0o640);
  await rename(tmp, file);
  return 'cleared';
}
