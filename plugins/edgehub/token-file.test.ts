import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, tempDir } from '../../test/peers/util.js';
import { clearTokenInFile } from './token-file.js';

afterAll(cleanup);

const TOKEN = 'aa.bb.cc.dd';
const text = (token: string): string => `# my edge
apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
modules:
  edgeHub:
    # from keadm gettoken
    token: ${token}
    heartbeat: 15
`;

describe('clearing the token in edgecore.yaml after a bootstrap', () => {
  it('empties only that value, keeps comments, and leaves the file 0640 at most', async () => {
    const file = join(await tempDir('edgehub-token'), 'edgecore.yaml');
    writeFileSync(file, text(TOKEN), { mode: 0o644 });
    expect(await clearTokenInFile(file, TOKEN)).toBe('cleared');
    expect(readFileSync(file, 'utf8')).toBe(text('""'));
    expect(statSync(file).mode & 0o777).toBe(0o640);
  });

  it('leaves a file alone that does not hold that token', async () => {
    const file = join(await tempDir('edgehub-token'), 'edgecore.yaml');
    writeFileSync(file, text('other.token.in.file'), { mode: 0o600 });
    expect(await clearTokenInFile(file, TOKEN)).toBe('not-in-file');
    expect(readFileSync(file, 'utf8')).toBe(text('other.token.in.file'));
    expect(await clearTokenInFile(join(file, 'missing'), TOKEN)).toBe('unreadable');
  });
});
