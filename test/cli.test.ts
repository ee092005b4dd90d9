import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../kernel/config/index.js';
import { cloudLayout, edgeLayout } from '../plugins/registry.js';

/** The built executables, as a user runs them (npm test builds first). */
const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string): string => join(root, 'dist', 'bin', `${name}.js`);
const run = (name: string, args: string[]) =>
  spawnSync(process.execPath, [bin(name), ...args], { encoding: 'utf8' });
const tmp = mkdtempSync(join(tmpdir(), 'cli-'));
const file = (name: string, text: string): string => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};

describe('edgecore / cloudcore command line', () => {
  it("npx edgecore / npx cloudcore run the checkout's executables (linked by npm ci)", () => {
    for (const name of ['edgecore', 'cloudcore']) {
      const out = spawnSync('npx', ['--no-install', name, '--version'], { cwd: root, encoding: 'utf8' });
      expect(out.stdout, out.stderr).toMatch(/^KubeEdge v1\.23\.1/);
    }
  });

  it('--version and --help', () => {
    expect(run('edgecore', ['--version']).stdout).toMatch(
      /^KubeEdge v1\.23\.1 \(kubeedge-ts \d+\.\d+\.\d+\)\n$/,
    );
    const help = run('cloudcore', ['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/--defaultconfig/);
  });

  it('--defaultconfig and --minconfig print configs that load back unchanged', () => {
    for (const kind of ['edgecore', 'cloudcore'] as const) {
      for (const flag of ['--defaultconfig', '--minconfig']) {
        const out = run(kind, [flag]);
        expect(out.status, `${kind} ${flag}`).toBe(0);
        expect(out.stdout).toMatch(/^# .*\n# .*\n# .*\n\napiVersion: /);
        const layout = kind === 'edgecore' ? edgeLayout : cloudLayout;
        const loaded = parseConfig(layout, out.stdout, `${kind}.yaml`);
        expect(loaded.warnings, `${kind} ${flag}`).toEqual([]);
        if (flag === '--defaultconfig') expect(loaded.config).toEqual(defaultConfig(layout));
      }
    }
  });

  it('bad configs: one clear message each, non-zero exit, nothing started', () => {
    const cases: [string, RegExp][] = [
      [join(tmp, 'missing.yaml'), /config file .*missing\.yaml does not exist/],
      [file('empty.yaml', '# only a comment\n'), /empty/i],
      [
        file('kind.yaml', 'apiVersion: cloudcore.config.kubeedge.io/v1alpha1\nkind: CloudCore\n'),
        /expects.*edgecore/i,
      ],
      [
        file('type.yaml', 'modules:\n  edgeHub:\n    heartbeat: abc\n'),
        /^edgecore: modules\.edgeHub\.heartbeat: expected integer, got "abc" \(type\.yaml:3\)$/m,
      ],
      [file('syntax.yaml', 'modules:\n  edgeHub: [\n'), /line \d+/],
    ];
    for (const [p, re] of cases) {
      const out = run('edgecore', ['--config', p]);
      expect(out.status, p).toBe(1);
      expect(out.stderr, p).toMatch(re);
      expect(out.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
    const flag = run('edgecore', ['--bogus']);
    expect(flag.status).toBe(2);
    expect(flag.stderr).toMatch(/Unknown option '--bogus'/);
  });

  it("loads the user's v1alpha1 edgecore.yaml from the notes, runs and stops", async () => {
    const notes = fileURLToPath(new URL('./fixtures/notes/edgecore-v1alpha1.yaml', import.meta.url));
    // Only the paths change: the database and the DMI socket go to a temp dir instead of /var and /etc.
    const text =
      readFileSync(notes, 'utf8').replace('/var/lib/kubeedge/edgecore.db', join(tmp, 'notes.db')) +
      `  deviceTwin:\n    dmiSockPath: ${tmp}/\n`;
    const { code, stderr } = await runUntilReady(file('notes.yaml', text));
    expect(stderr).toMatch(/devicePluginEnabled/); // reported once as a warning, not an error
    expect(stderr).toMatch(/EEDGED_DOCKER_UNSUPPORTED/); // runtimeType: docker gets its own message
    expect(code).toBe(0);
  });

  it('runs on the embedded defaults and stops cleanly on SIGTERM', async () => {
    const { code, stderr } = await runUntilReady(join(root, 'configs', 'edgecore.yaml'));
    expect(code).toBe(0);
    expect(stderr).toMatch(/"kernel stopped"/);
    for (const line of stderr.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  });
});

describe('edgecore whose log reader went away', () => {
  it('stops on SIGTERM instead of spinning on EPIPE', async () => {
    const child = spawn(
      process.execPath,
      [bin('edgecore'), '--config', join(root, 'configs', 'edgecore.yaml')],
      {
        cwd: tmp,
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    await new Promise<void>((resolve) => {
      let text = '';
      child.stderr.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('"kernel ready"')) resolve();
      });
    });
    child.stderr.destroy(); // like `edgecore 2>&1 | head -1`
    child.kill('SIGTERM'); // its "shutting down" line now meets a closed pipe
    const code = await Promise.race([
      exited,
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 10_000)),
    ]);
    child.kill('SIGKILL');
    expect(code).toBe(0);
  });
});

/** Start edgecore, wait for "kernel ready", SIGTERM it, and collect its exit code and stderr. */
async function runUntilReady(config: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [bin('edgecore'), '--config', config], {
    cwd: tmp,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready:\n${stderr}`)), 20_000);
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (stderr.includes('"kernel ready"')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill('SIGTERM');
    const code = await Promise.race([
      exited,
      new Promise<'hung'>((r) => setTimeout(() => r('hung'), 15_000)),
    ]);
    if (code === 'hung') throw new Error(`edgecore did not stop on SIGTERM:\n${stderr}`);
    return { code, stderr };
  } finally {
    child.kill('SIGKILL');
  }
}
