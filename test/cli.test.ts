import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
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
      const out = spawnSync('npx', ['--no-install', name, '--version'], {
        cwd: root,
        encoding: 'utf8',
        timeout: 50_000,
      });
      expect(out.stdout, out.stderr || String(out.error ?? '')).toMatch(/^KubeEdge v1\.23\.1/);
    }
  }, 120_000); // npx starts npm itself: seconds each on a loaded machine

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

describe('the registry', () => {
  it("loads every module's config section without loading any plugin or its libraries", () => {
    /** The npm packages a module of dist/ loads (CommonJS ones land in the shared require cache). */
    const packages = (module: string): string[] => {
      const script = `import { createRequire } from 'node:module';
        await import(${JSON.stringify(join(root, 'dist', module))});
        const names = Object.keys(createRequire(import.meta.url).cache)
          .filter((k) => k.includes('node_modules'))
          .map((k) => (k.split('node_modules/').pop() ?? '').split('/')[0]);
        console.log(JSON.stringify([...new Set(names)].sort()));`;
      const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      expect(out.status, out.stderr).toBe(0);
      return JSON.parse(out.stdout) as string[];
    };
    // no aedes, better-sqlite3, grpc, modbus-serial...: only what the kernel's command line loads
    expect(packages('plugins/registry.js')).toEqual(packages('kernel/cli.js'));
  });
});

describe('hostile and clumsy configs: refused at once, one clear message, non-zero exit', () => {
  /** edgecore with a 15 s limit (a config that hangs or reads without end fails the test, not the run). */
  const refuse = (config: string) => {
    const out = spawnSync(process.execPath, [bin('edgecore'), '--config', config], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    expect(out.status, out.stderr).toBe(1);
    expect(out.stderr).not.toMatch(/"kernel ready"|\n\s+at /);
    return out.stderr;
  };

  it('a device or a FIFO as the config file is not read', () => {
    expect(refuse('/dev/zero')).toBe(
      'edgecore: cannot read config file /dev/zero: it is not a regular file (a character device)\n',
    );
    const fifo = join(tmp, 'edgecore.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    expect(refuse(fifo)).toBe(
      `edgecore: cannot read config file ${fifo}: it is not a regular file (a FIFO)\n`,
    );
  });

  it('a "billion laughs" file names where it expands; binary garbage is not echoed', () => {
    const laughs = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (const [i, k] of [...'bcdefg'].entries()) {
      const prev = 'abcdefg'[i] as string;
      laughs.push(`${k}: &${k} [${Array(10).fill(`*${prev}`).join(', ')}]`);
    }
    laughs.push('modules:', '  fooBar:', '    x: *g');
    expect(refuse(file('laughs.yaml', laughs.join('\n')))).toMatch(
      /^edgecore: modules\.fooBar\.x: YAML aliases expand to more than \d+ nodes .*\(laughs\.yaml:10\)\n$/,
    );
    const garbage = refuse(
      file('garbage.yaml', 'modules:\n  edgeHub:\n    heartbeat: "\u001b[2J\u0007\u202e\u0085x"\n'),
    );
    expect(garbage).toBe(
      'edgecore: modules.edgeHub.heartbeat: expected integer, got "\\u001b[2J\\u0007\\u202e\\u0085x" (garbage.yaml:3)\n',
    );
  });

  it('a value a plugin could only refuse at start is refused at load with file and line', () => {
    expect(refuse(file('qos.yaml', 'modules:\n  eventBus:\n    mqttQOS: 3\n'))).toBe(
      'edgecore: modules.eventBus.mqttQOS: must be 0, 1 or 2 (an MQTT QoS), got 3 (qos.yaml:3)\n',
    );
    expect(refuse(file('db.yaml', 'database:\n  dataSource: ""\n'))).toBe(
      'edgecore: database.dataSource: must not be empty (the path of the SQLite database file), got "" (db.yaml:2)\n',
    );
  });

  it('a missing plugin package is one line naming it', () => {
    expect(refuse(file('plugin.yaml', 'kernel:\n  plugins:\n  - package: no-such-plugin\n'))).toBe(
      `edgecore: kernel.plugins: cannot find plugin package "no-such-plugin" from ${tmp} ` +
        '(install it with npm, or give a path relative to the config file)\n',
    );
  });

  it('a plugin may not declare a built-in section, nor a section that is not one', () => {
    const plugin = (name: string, config: string) =>
      file(
        name,
        `export default { name: 'x', group: 'x', configKey: 'edged', config: ${config}, start() {} };\n`,
      );
    plugin('takes-edged.mjs', "{ schema: { kind: 'object', fields: {} }, defaults: () => ({}) }");
    expect(refuse(file('takes.yaml', 'kernel:\n  plugins:\n  - package: ./takes-edged.mjs\n'))).toBe(
      'edgecore: plugin package "./takes-edged.mjs" (kernel.plugins): declares the section modules.edged, which is built in\n',
    );
    plugin('not-a-section.mjs', '{ greeting: "str" }');
    expect(refuse(file('not.yaml', 'kernel:\n  plugins:\n  - package: ./not-a-section.mjs\n'))).toBe(
      'edgecore: plugin package "./not-a-section.mjs" (kernel.plugins): "config" must be a config section (defineConfigSection)\n',
    );
  });

  it("a third-party plugin's own section is defaulted and validated with file and line", () => {
    // A user's machine: the example plugin installed as a package next to kubeedge-ts.
    const dir = mkdtempSync(join(tmpdir(), 'cli-plugin-'));
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(root, join(dir, 'node_modules', 'kubeedge-ts'), 'dir');
    cpSync(join(root, 'examples', 'hello-plugin'), join(dir, 'node_modules', 'kubeedge-hello-plugin'), {
      recursive: true,
    });
    const config = join(dir, 'hello.yaml');
    writeFileSync(
      config,
      'kernel:\n  plugins:\n  - package: kubeedge-hello-plugin\nmodules:\n  hello:\n    greeting: [1]\n    gretting: x\n',
    );
    expect(refuse(config)).toBe(
      'edgecore: modules.hello.greeting: expected string, got [1] (hello.yaml:6)\n',
    );
    writeFileSync(
      config,
      'kernel:\n  plugins:\n  - package: kubeedge-hello-plugin\nmodules:\n  hello:\n    greeting: " "\n',
    );
    expect(refuse(config)).toBe('edgecore: modules.hello.greeting: must not be empty (hello.yaml:6)\n');
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
