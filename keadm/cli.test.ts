/**
 * keadm's command line without a cluster: help texts, refused flags, and the input checks that come
 * before any file or request (token shape, --cloudcore-ipport, --set, --service).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, tempDir } from '../test/peers/util.js';
import { runKeadm } from './cli.js';
import { checkToken, splitHostPort } from './join.js';

afterAll(cleanup);

async function keadm(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runKeadm(
    args,
    { crdsDir: 'crds', cloudcoreBin: 'none', edgecoreBin: 'none', kubeConfig: 'none' },
    { out: (t) => (out += t), err: (t) => (err += t) },
  );
  return { code, out, err };
}

describe('keadm command line', () => {
  it('prints the commands, and each command its flags', async () => {
    const top = await keadm('--help');
    expect(top.code).toBe(0);
    for (const c of ['init', 'gettoken', 'join', 'reset'])
      expect(top.out).toMatch(new RegExp(`^  ${c} `, 'm'));
    const help = await keadm('join', '--help');
    expect(help.code).toBe(0);
    for (const f of [
      '--cloudcore-ipport',
      '--token',
      '--edgenode-name',
      '--remote-runtime-endpoint',
      '--cgroupdriver',
      '--config-dir',
      '--data-dir',
      '--run-dir',
      '--set',
    ])
      expect(help.out).toContain(f);
    expect((await keadm('init', '--help')).out).toContain('--advertise-address');
    expect((await keadm('gettoken', '--help')).out).toContain('--kube-config');
  });

  it('refuses an unknown command, an unknown flag and a flag of another command with the help', async () => {
    const cmd = await keadm('install');
    expect([cmd.code, cmd.err]).toEqual([2, expect.stringContaining('unknown command "install"')]);
    const flag = await keadm('join', '--bogus');
    expect(flag.code).toBe(2);
    expect(flag.err).toContain("Unknown option '--bogus'");
    expect(flag.err).toContain('Usage: keadm join');
    const other = await keadm('gettoken', '--token', 'x');
    expect(other.code).toBe(2);
    expect(other.err).toContain('unknown flag --token for "keadm gettoken"');
  });

  it('says which required flag is missing, and checks --service and --set before writing', async () => {
    const dir = await tempDir('keadm-cli');
    const missing = await keadm('join', '--token', 'x', '--config-dir', dir);
    expect([missing.code, missing.err]).toEqual([
      1,
      'keadm join: --cloudcore-ipport is required (see keadm join --help)\n',
    ]);
    const service = await keadm('reset', '--service', 'upstart', '--config-dir', dir);
    expect(service.err).toContain('--service: expected auto, systemd or process, got "upstart"');
    const set = await keadm(
      'join',
      '--cloudcore-ipport',
      '127.0.0.1:10000',
      '--token',
      'x',
      '--config-dir',
      dir,
      '--set',
      'modules.edgeHub.heartbeat=abc',
    );
    expect(set.code).toBe(1);
    expect(set.err).toContain('modules.edgeHub.heartbeat');
    expect(existsSync(join(dir, 'config'))).toBe(false);
    const badSet = await keadm(
      'join',
      '--cloudcore-ipport',
      '127.0.0.1:10000',
      '--token',
      'x',
      '--set',
      'novalue',
    );
    expect(badSet.err).toContain('--set novalue: expected path.to.key=value');
  });

  it('checks the token shape and expiry, and --cloudcore-ipport', () => {
    const hash = 'a'.repeat(64);
    const payload = (exp: number) => Buffer.from(JSON.stringify({ exp })).toString('base64url');
    expect(() => checkToken('h.p.s')).toThrow(/wrong format: expected 4 parts .* got 3 part\(s\)/);
    expect(() => checkToken(`${'z'.repeat(64)}.h.${payload(9e9)}.s`)).toThrow(/wrong format/);
    expect(() => checkToken(`${hash}.h.${payload(1000)}.s`)).toThrow(
      /the token expired at 1970-01-01T00:16:40.000Z \(now /,
    );
    expect(checkToken(`${hash}.h.${payload(9e9)}.s\n`)).toEqual({ caHash: hash, exp: 9e9 });
    const b64 = Buffer.from(`${hash}.eyJh.${payload(9e9)}.c2ln`).toString('base64');
    expect(() => checkToken(b64)).toThrow(
      /this is the base64 of the token, as the secret kubeedge\/tokensecret stores it/,
    );
    expect(splitHostPort('[::1]:10000')).toEqual({ host: '::1', port: 10000 });
    expect(() => splitHostPort('10.0.0.1')).toThrow('--cloudcore-ipport: expected IP:PORT');
  });
});
