import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isKernelError } from '../errors.js';
import { MAX_ALIAS_EXPANSION } from './decode.js';
import { loadConfigFile, parseConfig } from './index.js';
import { edgeLayout } from '../../plugins/registry.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'config-limits-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function failure(run: () => unknown): { code: string; message: string } {
  try {
    run();
  } catch (err) {
    if (isKernelError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected the config to be rejected');
}

const edge = (text: string) => parseConfig(edgeLayout, text, '/etc/kubeedge/config/edgecore.yaml');

describe('reading the file', () => {
  it('refuses a character device at once instead of reading it without end', () => {
    expect(failure(() => loadConfigFile(edgeLayout, '/dev/zero'))).toEqual({
      code: 'ECONFIG_MISSING',
      message: 'cannot read config file /dev/zero: it is not a regular file (a character device)',
    });
  });

  it('refuses a FIFO at once instead of waiting for a writer', () => {
    const fifo = path.join(tmp, 'edgecore.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    expect(failure(() => loadConfigFile(edgeLayout, fifo))).toEqual({
      code: 'ECONFIG_MISSING',
      message: `cannot read config file ${fifo}: it is not a regular file (a FIFO)`,
    });
  });

  it('refuses a file over 1 MiB, saying so', () => {
    const big = path.join(tmp, 'big.yaml');
    writeFileSync(big, `# ${'x'.repeat(1024 * 1024)}\nmodules: {}\n`);
    const f = failure(() => loadConfigFile(edgeLayout, big));
    expect(f.code).toBe('ECONFIG_MISSING');
    expect(f.message).toMatch(
      /^cannot read config file .*big\.yaml: it is too large \(\d+ bytes; the limit is 1 MiB\)$/,
    );
  });

  it('refuses a file that is not UTF-8, naming the line', () => {
    const bin = path.join(tmp, 'binary.yaml');
    writeFileSync(
      bin,
      Buffer.concat([Buffer.from('modules:\n  edgeHub:\n    token: '), Buffer.from([0xff, 0xfe, 0x00])]),
    );
    expect(failure(() => loadConfigFile(edgeLayout, bin))).toEqual({
      code: 'ECONFIG_SYNTAX',
      message: `config file ${bin} is not UTF-8 text (invalid bytes at line 3); is it a binary file?`,
    });
  });
});

describe('hostile YAML', () => {
  const laughs = [
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
    'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
    'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
    'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
    'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
  ];

  it('refuses a "billion laughs" document with the path and line where it expands', () => {
    const f = failure(() => edge([...laughs, 'modules:', '  foo:', '    x: [*f,*f,*f]'].join('\n')));
    expect(f.code).toBe('ECONFIG_INVALID');
    expect(f.message).toMatch(
      new RegExp(
        `^modules\\.foo\\.x\\[\\d+\\](\\[\\d+\\])*: YAML aliases expand to more than ${MAX_ALIAS_EXPANSION} nodes .*; refused \\(edgecore\\.yaml:9\\)$`,
      ),
    );
    // the same through merge keys, in a typed section
    const merges = [
      'a: &a {x1: 1, x2: 2, x3: 3, x4: 4, x5: 5, x6: 6, x7: 7, x8: 8}',
      ...'bcdefgh'.split('').map((k, i) => {
        const prev = 'abcdefgh'[i] as string;
        return `${k}: &${k} {<<: [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]}`;
      }),
      'modules:',
      '  edged:',
      '    nodeLabels: {<<: *h}',
    ];
    expect(failure(() => edge(merges.join('\n'))).message).toMatch(
      /^modules\.edged\.nodeLabels: YAML aliases expand .*\(edgecore\.yaml:11\)$/,
    );
  });

  it('counts every node an alias copies, not only the aliases', () => {
    const big = `a: &a [${Array(1000).fill('x').join(', ')}]`;
    const f = failure(() => edge(`${big}\nmodules:\n  foo:\n    x: [${Array(200).fill('*a').join(', ')}]\n`));
    expect(f.message).toMatch(
      /^modules\.foo\.x\[\d+\]: YAML aliases expand to more than 100000 nodes .*\(edgecore\.yaml:4\)$/,
    );
    // the same anchor used a few times is fine
    expect(edge(`${big}\nmodules:\n  foo:\n    x: [*a, *a, *a]\n`).unknownModules).toEqual(['foo']);
  });

  it('refuses an alias inside its own anchor instead of recursing for ever', () => {
    const f = failure(() => edge('modules:\n  foo: &m\n    self: *m\n'));
    expect(f).toEqual({
      code: 'ECONFIG_INVALID',
      message: 'modules.foo.self: a YAML alias refers to a node that contains it; refused (edgecore.yaml:3)',
    });
    expect(failure(() => edge('modules:\n  edged: &m\n    tailoredKubeletConfig: *m\n')).message).toBe(
      'modules.edged.tailoredKubeletConfig: a YAML alias refers to a node that contains it; refused (edgecore.yaml:3)',
    );
  });

  it('does not echo control characters or invalid text: escapes and cuts them', () => {
    const f = failure(() => edge('modules:\n  edgeHub:\n    heartbeat: "\\e[31mred\\u202e\\ufffd\\x85"\n'));
    expect(f.message).toBe(
      'modules.edgeHub.heartbeat: expected integer, got "\\u001b[31mred\\u202e\\ufffd\\u0085" (edgecore.yaml:3)',
    );
    const key = `"bad\\e[2Jkey${'k'.repeat(300)}"`;
    const w = edge(`modules:\n  edgeHub:\n    ${key}: 1\n`).warnings[0]?.message ?? '';
    expect(w).toMatch(
      /^modules\.edgeHub\.bad\\u001b\[2Jkeyk+\.\.\.: unknown field; ignored \(edgecore\.yaml:3\)$/,
    );
    expect(w.length).toBeLessThan(260);
    expect(failure(() => edge('apiVersion: "v1\\u202e\\x85"\n')).message).toMatch(
      /^config file .* has apiVersion "v1\\u202e\\u0085" and no kind/,
    );
  });

  it(
    'parses a mapping of 40,000 keys in linear time (the quadratic unique-key check took 83 s)',
    { timeout: 60_000 },
    () => {
      const keys = (indent: string, value: string) =>
        Array.from({ length: 40_000 }, (_, i) => `${indent}k${i}: ${value}`).join('\n');
      expect(
        Object.keys(
          edge(`modules:\n  edged:\n    nodeLabels:\n${keys('      ', 'v')}\n`).config.modules.edged
            .nodeLabels,
        ),
      ).toHaveLength(40_000);
      expect(edge(`modules:\n${keys('  ', '{enable: false}')}\n`).unknownModules).toHaveLength(40_000);
      expect(edge(`x: &a 1\n${keys('', '*a')}\n`).warnings).toHaveLength(40_001);
    },
  );

  it('still refuses duplicate keys, with their line', () => {
    const f = failure(() =>
      edge('modules:\n  edged:\n    nodeLabels:\n      a: x\n      b: y\n      a: z\n'),
    );
    expect(f).toEqual({
      code: 'ECONFIG_SYNTAX',
      message:
        'YAML syntax error in /etc/kubeedge/config/edgecore.yaml at line 6, column 7: Map keys must be unique',
    });
  });
});
