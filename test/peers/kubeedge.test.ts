/**
 * The Go KubeEdge peer's build script (test/peers/kubeedge/build.sh) and binaries. The peer itself
 * (a Go edgecore joined to our cloudcore) is proved by test/integration/go-edgecore.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { KUBEEDGE_VERSION, kubeedgeBinaries } from './kubeedge.js';
import { peerAsset } from './util.js';

describe('kubeedge build script', () => {
  it('fails with a clear message when no Go toolchain is found', () => {
    const cache = join(tmpdir(), `kubeedge-kubeedge-nogo-${process.pid}`);
    const res = spawnSync('bash', [peerAsset('kubeedge/build.sh')], {
      encoding: 'utf8',
      env: { ...process.env, GO: '/nonexistent/go', KUBEEDGE_TS_KUBEEDGE_CACHE: cache },
    });
    rmSync(cache, { recursive: true, force: true });
    expect(res.status).not.toBe(0);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain('no Go toolchain found');
  });

  it(`builds edgecore and cloudcore at ${KUBEEDGE_VERSION}, which print KubeEdge's default configurations`, async () => {
    const bin = await kubeedgeBinaries();
    for (const [name, kind] of [
      ['edgecore', 'EdgeCore'],
      ['cloudcore', 'CloudCore'],
    ] as const) {
      const res = spawnSync(join(bin, name), ['--defaultconfig'], { encoding: 'utf8' });
      expect(res.status, res.stderr).toBe(0);
      expect(parse(res.stdout)).toMatchObject({ kind });
    }
  }, 3_600_000);
});
