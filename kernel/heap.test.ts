import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const heapJs = join(fileURLToPath(new URL('..', import.meta.url)), 'dist', 'kernel', 'heap.js');

it('holds the young generation at its initial size until released, then V8 grows it again', () => {
  // A fresh process (the test runner's own heap has grown already): objects that survive
  // scavenges, as start-up's do, while held and again after the release.
  const script = `import { getHeapSpaceStatistics } from 'node:v8';
    import { holdYoungGeneration } from ${JSON.stringify(heapJs)};
    const newSpaceMb = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 2 ** 20;
    const survivors = () => { const kept = []; for (let i = 0; i < 400_000; i++) kept.push({ i, s: 'v' + i }); return kept.length; };
    const release = holdYoungGeneration();
    survivors();
    const held = newSpaceMb();
    release();
    survivors();
    console.log(JSON.stringify({ held, released: newSpaceMb() }));`;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  expect(out.status, out.stderr).toBe(0);
  const { held, released } = JSON.parse(out.stdout) as { held: number; released: number };
  expect(held).toBeLessThanOrEqual(2); // two 1 MB semi-spaces: V8's initial size
  expect(released).toBeGreaterThan(held);
});
