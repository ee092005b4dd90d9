import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isKernelError, type KernelErrorCode } from '../errors.js';
import { defaultConfig, loadConfigFile, moduleSection, parseConfig } from './index.js';
import { edgeLayout, cloudLayout } from '../../plugins/registry.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kernel-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const edge = (text: string) => parseConfig(edgeLayout, text, '/etc/kubeedge/config/edgecore.yaml');

function failure(kind: 'edgecore' | 'cloudcore', text: string, file = '/etc/kubeedge/config/edgecore.yaml') {
  try {
    parseConfig(kind === 'edgecore' ? edgeLayout : cloudLayout, text, file);
  } catch (err) {
    if (isKernelError(err)) return { code: err.code as KernelErrorCode, message: err.message };
    throw err;
  }
  throw new Error('expected the config to be rejected');
}

describe('defaults and Go JSON decoding', () => {
  it('an almost empty file yields the complete default config', () => {
    const r = edge('apiVersion: edgecore.config.kubeedge.io/v1alpha2\nkind: EdgeCore\n');
    expect(r.config).toEqual(defaultConfig(edgeLayout));
    expect(r.apiVersion).toBe('edgecore.config.kubeedge.io/v1alpha2');
    expect(r.kind).toBe('edgecore');
    expect(r.file).toBe('/etc/kubeedge/config/edgecore.yaml');
  });

  it('missing apiVersion/kind is accepted as the current version', () => {
    const r = edge('modules:\n  edgeHub:\n    heartbeat: 20\n');
    expect(r.apiVersion).toBe('edgecore.config.kubeedge.io/v1alpha2');
    expect(r.config.apiVersion).toBe('edgecore.config.kubeedge.io/v1alpha2');
    expect(r.config.kind).toBe('EdgeCore');
    expect(r.config.modules.edgeHub.heartbeat).toBe(20);
  });

  it('matches keys case-insensitively and stores them in canonical case', () => {
    const r = edge(
      [
        'Modules:',
        '  edgehub:',
        '    HEARTBEAT: 25',
        '    WebSocket:',
        '      server: 10.0.0.1:10000',
        '  EDGED:',
        '    hostnameoverride: node-a',
        '    TailoredKubeletConfig:',
        '      cgroupdriver: systemd',
      ].join('\n'),
    );
    expect(r.warnings).toEqual([]);
    expect(r.config.modules.edgeHub.heartbeat).toBe(25);
    expect(r.config.modules.edgeHub.websocket.server).toBe('10.0.0.1:10000');
    expect(r.config.modules.edgeHub.websocket.enable).toBe(true); // absent keys keep defaults
    expect(r.config.modules.edged.hostnameOverride).toBe('node-a');
    expect(r.config.modules.edged.tailoredKubeletConfig.cgroupDriver).toBe('systemd');
    expect(Object.keys(r.config.modules)).not.toContain('edgehub');
  });

  it('merges maps into the default map (evictionHard) and replaces lists', () => {
    const r = edge(
      [
        'modules:',
        '  edged:',
        '    tailoredKubeletConfig:',
        '      evictionHard:',
        '        memory.available: 200Mi',
        '        pid.available: 10%',
        '      enforceNodeAllocatable: [pods, system-reserved]',
        '      clusterDNS:',
        '      - 10.96.0.10',
        '    nodeLabels:',
        '      zone: a',
      ].join('\n'),
    );
    const tkc = r.config.modules.edged.tailoredKubeletConfig;
    expect(tkc.evictionHard).toEqual({
      'memory.available': '200Mi',
      'nodefs.available': '10%',
      'nodefs.inodesFree': '5%',
      'imagefs.available': '15%',
      'imagefs.inodesFree': '5%',
      'pid.available': '10%',
    });
    expect(tkc.enforceNodeAllocatable).toEqual(['pods', 'system-reserved']);
    expect(tkc.clusterDNS).toEqual(['10.96.0.10']);
    expect(r.config.modules.edged.nodeLabels).toEqual({ zone: 'a' });
  });

  it('does not share state between loads (defaults are fresh each time)', () => {
    edge('modules:\n  edged:\n    tailoredKubeletConfig:\n      evictionHard:\n        x: 1%\n');
    expect(defaultConfig(edgeLayout).modules.edged.tailoredKubeletConfig.evictionHard).not.toHaveProperty(
      'x',
    );
    expect(edge('{}\n').config.modules.edged.tailoredKubeletConfig.evictionHard).not.toHaveProperty('x');
  });

  it('normalises durations to the Go form, accepts YAML 1.1 booleans and numbers for strings', () => {
    const r = edge(
      [
        'modules:',
        '  edged:',
        '    tailoredKubeletConfig:',
        '      nodeStatusUpdateFrequency: 60s',
        '      runtimeRequestTimeout: 5m',
        '  serviceBus:',
        '    enable: yes',
        '  eventBus:',
        '    mqttPassword: 1234',
        '    mqttRetain: off',
      ].join('\n'),
    );
    const tkc = r.config.modules.edged.tailoredKubeletConfig;
    expect(tkc.nodeStatusUpdateFrequency).toBe('1m0s');
    expect(tkc.runtimeRequestTimeout).toBe('5m0s');
    expect(r.config.modules.serviceBus.enable).toBe(true);
    expect(r.config.modules.eventBus.mqttPassword).toBe('1234');
    expect(r.config.modules.eventBus.mqttRetain).toBe(false);
  });

  it('null on a scalar keeps the default (Go JSON rule)', () => {
    const r = edge('modules:\n  edgeHub:\n    token:\n    heartbeat: ~\n');
    expect(r.config.modules.edgeHub.token).toBe('');
    expect(r.config.modules.edgeHub.heartbeat).toBe(15);
  });

  it('supports anchors, aliases and merge keys', () => {
    const r = edge(
      [
        'common: &tls',
        '  tlsCaFile: /ca.crt',
        '  tlsCertFile: /c.crt',
        'modules:',
        '  edgeHub:',
        '    <<: *tls',
        '    tlsCertFile: /override.crt',
      ].join('\n'),
    );
    expect(r.config.modules.edgeHub.tlsCaFile).toBe('/ca.crt');
    expect(r.config.modules.edgeHub.tlsCertFile).toBe('/override.crt');
    expect(r.warnings.map((w) => w.path)).toEqual(['common']);
  });
});

describe('warnings and unknown modules', () => {
  it('warns once per unknown field inside a known module and per unknown top-level key, with its line', () => {
    const r = edge(
      [
        'apiVersion: edgecore.config.kubeedge.io/v1alpha2', // 1
        'kind: EdgeCore', // 2
        'extra: 1', // 3
        'modules:', // 4
        '  edgeHub:', // 5
        '    heartbeet: 10', // 6
        '    websocket:', // 7
        '      servr: x', // 8
        '  dbTest:', // 9
        '    enable: true', // 10
      ].join('\n'),
    );
    expect(r.warnings).toEqual([
      { path: 'extra', line: 3, message: 'extra: unknown top-level field; ignored (edgecore.yaml:3)' },
      {
        path: 'modules.edgeHub.heartbeet',
        line: 6,
        message: 'modules.edgeHub.heartbeet: unknown field; ignored (edgecore.yaml:6)',
      },
      {
        path: 'modules.edgeHub.websocket.servr',
        line: 8,
        message: 'modules.edgeHub.websocket.servr: unknown field; ignored (edgecore.yaml:8)',
      },
    ]);
    expect(r.unknownModules).toEqual([]);
    expect(r.config.modules.dbTest.enable).toBe(true);
  });

  it('keeps unknown module sections raw, lists them, and does not warn', () => {
    const r = edge(
      [
        'modules:',
        '  fooBar:',
        '    url: http://x',
        '    nested: {a: 1}',
        '  bazQux:',
        '    enable: false',
        '    runAs: process',
      ].join('\n'),
    );
    expect(r.warnings).toEqual([]);
    expect(r.unknownModules).toEqual(['fooBar', 'bazQux']);
    expect(r.config.modules['fooBar']).toEqual({ url: 'http://x', nested: { a: 1 } });
    expect(moduleSection(r.config, 'fooBar')).toEqual({
      url: 'http://x',
      nested: { a: 1 },
      enable: true,
      runAs: 'inprocess',
    });
    expect(moduleSection(r.config, 'bazQux')).toMatchObject({ enable: false, runAs: 'process' });
    expect(moduleSection(r.config, 'nope')).toBeUndefined();
  });

  it('moduleSection returns known sections (case-insensitive key)', () => {
    const r = edge('modules:\n  edgeHub:\n    runAs: process\n');
    expect(moduleSection(r.config, 'edgeHub')).toMatchObject({
      enable: true,
      runAs: 'process',
      heartbeat: 15,
    });
    expect(moduleSection(r.config, 'edgehub')).toMatchObject({ heartbeat: 15 });
    expect(moduleSection(r.config, 'dbTest')).toEqual({ enable: false, runAs: 'inprocess' });
  });
});

describe('kernel-extension keys', () => {
  it('has defaults per kind', () => {
    expect(defaultConfig(edgeLayout).kernel).toEqual({
      logLevel: 'info',
      mailboxSize: 1024,
      socket: '',
      plugins: [],
      restart: { maxRestarts: 5, window: '10m', initialBackoff: '1s', maxBackoff: '30s' },
      startTimeout: '30s',
      stopTimeout: '10s',
      health: { enable: true, address: '127.0.0.1', port: 10240, allowNonLoopback: false },
    });
    expect(defaultConfig(cloudLayout).kernel.socket).toBe('');
    expect(defaultConfig(cloudLayout).kernel.health.port).toBe(10241);
  });

  it('accepts and normalises the kernel section', () => {
    const r = edge(
      [
        'kernel:',
        '  logLevel: debug',
        '  mailboxSize: 64',
        '  socket: /run/k.sock',
        '  plugins:',
        '  - package: "@acme/kubeedge-plugin"',
        '  - package: ./local/plugin.js',
        '  restart:',
        '    maxRestarts: 0',
        '    initialBackoff: 500ms',
        '    maxBackoff: 60s',
        '  startTimeout: 1m',
        'modules:',
        '  edged:',
        '    runAs: process',
      ].join('\n'),
    );
    expect(r.warnings).toEqual([]);
    expect(r.config.kernel).toEqual({
      logLevel: 'debug',
      mailboxSize: 64,
      socket: '/run/k.sock',
      plugins: [{ package: '@acme/kubeedge-plugin' }, { package: './local/plugin.js' }],
      restart: { maxRestarts: 0, window: '10m', initialBackoff: '500ms', maxBackoff: '1m0s' },
      startTimeout: '1m0s',
      stopTimeout: '10s',
      health: { enable: true, address: '127.0.0.1', port: 10240, allowNonLoopback: false },
    });
    expect(r.config.modules.edged.runAs).toBe('process');
  });

  it('validates the kernel section and runAs, all errors at once', () => {
    const f = failure(
      'edgecore',
      [
        'kernel:', // 1
        '  logLevel: verbose', // 2
        '  mailboxSize: 0', // 3
        '  stopTimeout: soon', // 4
        '  restart:', // 5
        '    initialBackoff: 1m', // 6
        '    maxBackoff: 10s', // 7
        '  plugins:', // 8
        '  - package: ""', // 9
        '  bogus: 1', // 10
        'modules:', // 11
        '  metaManager:', // 12
        '    runAs: thread', // 13
        '  fooBar:', // 14
        '    runAs: fork', // 15
      ].join('\n'),
    );
    expect(f.code).toBe('ECONFIG_INVALID');
    expect(f.message.split('\n')).toEqual([
      'kernel.logLevel: expected one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "verbose" (edgecore.yaml:2)',
      'kernel.mailboxSize: expected integer >= 1, got 0 (edgecore.yaml:3)',
      'kernel.stopTimeout: expected duration (e.g. "1m0s"), got "soon" (edgecore.yaml:4)',
      'kernel.restart.maxBackoff: must not be less than kernel.restart.initialBackoff (1m0s), got "10s" (edgecore.yaml:7)',
      'kernel.plugins[0].package: must not be empty (edgecore.yaml:9)',
      'modules.metaManager.runAs: expected one of "inprocess", "process", got "thread" (edgecore.yaml:13)',
      'modules.fooBar.runAs: expected one of "inprocess", "process", got "fork" (edgecore.yaml:15)',
    ]);
  });
});

describe('errors', () => {
  it('type error: path, expected, found as JSON, file basename and line', () => {
    const lines = Array.from({ length: 10 }, (_, i) => `# comment ${i + 1}`);
    const text = [...lines, 'modules:', '  edgeHub:', '    heartbeat: abc'].join('\n');
    // heartbeat is on line 13; put it on line 12 as in the documented example
    const f = failure('edgecore', text.replace('# comment 10\n', ''));
    expect(f).toEqual({
      code: 'ECONFIG_INVALID',
      message: 'modules.edgeHub.heartbeat: expected integer, got "abc" (edgecore.yaml:12)',
    });
  });

  it('collects every error of the file, one per line', () => {
    const f = failure(
      'edgecore',
      [
        'modules:', // 1
        '  edgeHub:', // 2
        '    heartbeat: 1.5', // 3
        '    enable: maybe', // 4
        '    messageQPS: -1', // 5
        '  edged:', // 6
        '    nodeLabels: [a]', // 7
        '    tailoredKubeletConfig:', // 8
        '      cgroupDriver: upstart', // 9
        '      syncFrequency: 10', // 10
        '      evictionHard: 5', // 11
        '  eventBus:', // 12
        '    mqttMode: 3', // 13
        '    mqttQOS: 300', // 14
        'featureGates:', // 15
        '  requireAuthorization: true', // 16
        '  warpDrive: true', // 17
      ].join('\n'),
    );
    expect(f.code).toBe('ECONFIG_INVALID');
    expect(f.message.split('\n')).toEqual([
      'modules.edgeHub.heartbeat: expected integer, got 1.5 (edgecore.yaml:3)',
      'modules.edgeHub.enable: expected boolean, got "maybe" (edgecore.yaml:4)',
      'modules.edgeHub.messageQPS: must be >= 0, got -1 (edgecore.yaml:5)',
      'modules.edged.nodeLabels: expected map, got ["a"] (edgecore.yaml:7)',
      'modules.edged.tailoredKubeletConfig.cgroupDriver: must be "cgroupfs" or "systemd", got "upstart" (edgecore.yaml:9)',
      'modules.edged.tailoredKubeletConfig.syncFrequency: expected duration (e.g. "1m0s"), got 10 (edgecore.yaml:10)',
      'modules.edged.tailoredKubeletConfig.evictionHard: expected map, got 5 (edgecore.yaml:11)',
      'modules.eventBus.mqttMode: must be 0 (internal broker), 1 (both) or 2 (external broker), got 3 (edgecore.yaml:13)',
      'modules.eventBus.mqttQOS: expected integer between 0 and 255, got 300 (edgecore.yaml:14)',
      'featureGates.warpDrive: unknown feature gate (known: requireAuthorization, moduleRestart, disableNodeTaskV1alpha2, disableCSI, AllAlpha, AllBeta) (edgecore.yaml:17)',
    ]);
  });

  it('validates hostnameOverride and the websocket/quic choice', () => {
    expect(failure('edgecore', 'modules:\n  edged:\n    hostnameOverride: Node_35\n').message).toBe(
      'modules.edged.hostnameOverride: must be a valid node name (lower-case RFC 1123 subdomain), got "Node_35" (edgecore.yaml:3)',
    );
    expect(failure('edgecore', 'modules:\n  edgeHub:\n    quic:\n      enable: true\n').message).toBe(
      'modules.edgeHub.quic.enable: exactly one of modules.edgeHub.websocket.enable and modules.edgeHub.quic.enable must be true, got websocket.enable=true, quic.enable=true (edgecore.yaml:4)',
    );
    expect(failure('edgecore', 'modules:\n  edgeHub:\n    websocket:\n      enable: false\n').message).toBe(
      'modules.edgeHub.websocket.enable: exactly one of modules.edgeHub.websocket.enable and modules.edgeHub.quic.enable must be true, got websocket.enable=false, quic.enable=false (edgecore.yaml:4)',
    );
    // both on quic: fine
    const r = edge('modules:\n  edgeHub:\n    quic: {enable: true}\n    websocket: {enable: false}\n');
    expect(r.config.modules.edgeHub.quic.enable).toBe(true);
  });

  it('validates a module only when it is enabled', () => {
    const r = edge(
      [
        'modules:',
        '  edged:',
        '    enable: false',
        '    tailoredKubeletConfig: {cgroupDriver: nope}',
        '  eventBus: {enable: false, mqttMode: 9}',
        '  edgeHub: {enable: false, messageBurst: -5, websocket: {enable: false}}',
      ].join('\n'),
    );
    expect(r.config.modules.edged.enable).toBe(false);
  });

  it('validates hostnameOverride even with edged off: every edge module takes the node name from it', () => {
    expect(
      failure('edgecore', 'modules:\n  edged:\n    enable: false\n    hostnameOverride: Not_Valid\n'),
    ).toEqual({
      code: 'ECONFIG_INVALID',
      message:
        'modules.edged.hostnameOverride: must be a valid node name (lower-case RFC 1123 subdomain), got "Not_Valid" (edgecore.yaml:4)',
    });
  });

  it('rejects a module set to null', () => {
    expect(failure('edgecore', 'modules:\n  edgeHub: null\n')).toEqual({
      code: 'ECONFIG_INVALID',
      message:
        'modules.edgeHub: a module section cannot be null (remove the key, or set enable: false) (edgecore.yaml:2)',
    });
    expect(failure('edgecore', 'modules:\n  eventBus:\n  edged: {}\n').message).toBe(
      'modules.eventBus: a module section cannot be null (remove the key, or set enable: false) (edgecore.yaml:2)',
    );
  });

  it('missing file: ECONFIG_MISSING', () => {
    const file = path.join(tmp, 'nope', 'edgecore.yaml');
    expect(() => loadConfigFile(edgeLayout, file)).toThrow(
      expect.objectContaining({ code: 'ECONFIG_MISSING', message: `config file ${file} does not exist` }),
    );
  });

  it('empty and comment-only files: ECONFIG_EMPTY', () => {
    for (const text of ['', '   \n\n', '# nothing here\n# at all\n', '---\n']) {
      expect(failure('edgecore', text)).toEqual({
        code: 'ECONFIG_EMPTY',
        message: 'config file /etc/kubeedge/config/edgecore.yaml is empty (no YAML content)',
      });
    }
  });

  it('YAML syntax error: ECONFIG_SYNTAX with line and column', () => {
    const f = failure('edgecore', 'modules:\n  edgeHub:\n    heartbeat: 15\n   bad: [1, 2\n');
    expect(f.code).toBe('ECONFIG_SYNTAX');
    expect(f.message).toMatch(
      /^YAML syntax error in \/etc\/kubeedge\/config\/edgecore\.yaml at line \d+, column \d+: /,
    );
    const dup = failure('edgecore', 'modules: {}\nmodules: {}\n');
    expect(dup.code).toBe('ECONFIG_SYNTAX');
    expect(dup.message).toMatch(/at line 2, column 1: .*[Uu]nique/);
  });

  it('top level not a mapping: ECONFIG_INVALID', () => {
    expect(failure('edgecore', '- a\n- b\n')).toEqual({
      code: 'ECONFIG_INVALID',
      message: '(top level): expected mapping, got ["a","b"] (edgecore.yaml:1)',
    });
    expect(failure('edgecore', 'just a string\n').code).toBe('ECONFIG_INVALID');
  });

  it('a file of the other kind: ECONFIG_KIND naming the file, what was found and what is expected', () => {
    const f = failure(
      'edgecore',
      'apiVersion: cloudcore.config.kubeedge.io/v1alpha1\nkind: CloudCore\n',
      '/etc/kubeedge/config/cloudcore.yaml',
    );
    expect(f).toEqual({
      code: 'ECONFIG_KIND',
      message:
        'config file /etc/kubeedge/config/cloudcore.yaml has apiVersion "cloudcore.config.kubeedge.io/v1alpha1" and kind "CloudCore" (line 1), ' +
        'but edgecore expects apiVersion "edgecore.config.kubeedge.io/v1alpha2" or "edgecore.config.kubeedge.io/v1alpha1" with kind "EdgeCore" ' +
        '(this looks like a cloudcore configuration)',
    });
    const g = failure('cloudcore', 'apiVersion: edgecore.config.kubeedge.io/v1alpha2\nkind: EdgeCore\n');
    expect(g.code).toBe('ECONFIG_KIND');
    expect(g.message).toContain('(this looks like an edgecore configuration)');
    const h = failure('edgecore', 'apiVersion: edgecore.config.kubeedge.io/v1beta9\n');
    expect(h.message).toBe(
      'config file /etc/kubeedge/config/edgecore.yaml has apiVersion "edgecore.config.kubeedge.io/v1beta9" and no kind (line 1), ' +
        'but edgecore expects apiVersion "edgecore.config.kubeedge.io/v1alpha2" or "edgecore.config.kubeedge.io/v1alpha1" with kind "EdgeCore"',
    );
    expect(failure('edgecore', 'kind: Deployment\n').code).toBe('ECONFIG_KIND');
  });

  it('loadConfigFile reads from disk', () => {
    const file = path.join(tmp, 'edgecore.yaml');
    writeFileSync(file, 'modules:\n  edgeHub:\n    heartbeat: 30\n');
    const r = loadConfigFile(edgeLayout, file);
    expect(r.file).toBe(file);
    expect(r.config.modules.edgeHub.heartbeat).toBe(30);
  });
});
