import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { defaultConfig, defaultHostname, localIP, minConfig, parseConfig, renderConfig } from './index.js';
import { formatNumber, formatString, goYamlKeyLess } from './render.js';
import { edgeLayout, cloudLayout } from '../../plugins/registry.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Golden text with the spec's placeholders replaced by this host's values. */
function golden(name: string): string {
  return readFileSync(path.join(here, 'testdata', name), 'utf8')
    .replaceAll('<localIP>', localIP())
    .replaceAll('<hostname>', defaultHostname());
}

const DEFAULT_HEADER =
  '# With --defaultconfig flag, users can easily get a default full config file as reference, with all fields (and field descriptions) included and default values set. \n' +
  '# Users can modify/create their own configs accordingly as reference. \n' +
  '# Because it is a full configuration, it is more suitable for advanced users.\n';
const MIN_HEADER =
  '# With --minconfig , you can easily used this configurations as reference.\n' +
  "# It's useful to users who are new to KubeEdge, and you can modify/create your own configs accordingly. \n" +
  '# This configuration is suitable for beginners.\n';

describe('edgecore --defaultconfig / --minconfig', () => {
  it('--defaultconfig reproduces the golden output (spec §1.8) exactly', () => {
    const out = renderConfig(edgeLayout, defaultConfig(edgeLayout), 'default');
    expect(out).toBe(`${DEFAULT_HEADER}\n${golden('edgecore-defaultconfig.golden.yaml')}\n\n`);
  });

  it('--minconfig reproduces the golden output, enable:false trap included', () => {
    const out = renderConfig(edgeLayout, minConfig(edgeLayout), 'min');
    expect(out).toBe(`${MIN_HEADER}\n${golden('edgecore-minconfig.golden.yaml')}\n\n`);
    expect(out).toMatch(/ {2}edgeHub:\n {4}enable: false\n/);
    expect(out).toMatch(/ {2}eventBus:\n {4}enable: false\n/);
    expect(out).toMatch(/ {2}deviceTwin:\n {4}dmiSockPath: \/etc\/kubeedge\/\n {4}enable: false\n/);
  });

  it('kernel-extension keys and kept legacy keys are never printed', () => {
    const c = defaultConfig(edgeLayout);
    c.kernel.plugins = [{ package: 'x' }];
    c.modules.edged.runtimeType = 'docker';
    c.modules.edged.runAs = 'process';
    const out = renderConfig(edgeLayout, c, 'default');
    expect(out).not.toMatch(/^\s*(kernel|runtimeType|runAs|plugins|logLevel|mailboxSize):/m);
  });

  it('the default output loads back to an equal config', () => {
    const def = defaultConfig(edgeLayout);
    const loaded = parseConfig(edgeLayout, renderConfig(edgeLayout, def, 'default'), 'edgecore.yaml');
    expect(loaded.warnings).toEqual([]);
    expect(loaded.unknownModules).toEqual([]);
    expect(loaded.config).toEqual(def);
  });

  it('the min output loads back: defaults, with the three modules disabled as a real edgecore would', () => {
    const loaded = parseConfig(
      edgeLayout,
      renderConfig(edgeLayout, minConfig(edgeLayout), 'min'),
      'edgecore.yaml',
    );
    const expected = defaultConfig(edgeLayout);
    expected.modules.edgeHub.enable = false;
    expected.modules.eventBus.enable = false;
    expected.modules.deviceTwin.enable = false;
    expect(loaded.warnings).toEqual([]);
    expect(loaded.config).toEqual(expected);
  });
});

describe('cloudcore --defaultconfig / --minconfig', () => {
  it('default output matches the fixture and loads back to an equal config', () => {
    const def = defaultConfig(cloudLayout);
    const out = renderConfig(cloudLayout, def, 'default');
    expect(out).toBe(`${DEFAULT_HEADER}\n${golden('cloudcore-defaultconfig.golden.yaml')}\n\n`);
    const loaded = parseConfig(cloudLayout, out, 'cloudcore.yaml');
    expect(loaded.warnings).toEqual([]);
    expect(loaded.config).toEqual(def);
  });

  it('min output matches the fixture and loads (nodeLimit 1000 adjusts the kube client limits)', () => {
    const out = renderConfig(cloudLayout, minConfig(cloudLayout), 'min');
    expect(out).toBe(`${MIN_HEADER}\n${golden('cloudcore-minconfig.golden.yaml')}\n\n`);
    const { config } = parseConfig(cloudLayout, out, 'cloudcore.yaml');
    expect(config.modules.cloudHub.nodeLimit).toBe(1000);
    expect(config.modules.cloudHub.enable).toBe(false); // same trap as edgecore's min config
    expect(config.kubeAPIConfig.qps).toBe(5000);
    expect(config.kubeAPIConfig.burst).toBe(10000);
    expect(config.modules.edgeController.load.queryNodeWorkers).toBe(1000);
  });
});

describe('go-yaml v2 details', () => {
  it('sorts keys like go-yaml (code points, digit runs numerically, non-letters first)', () => {
    const keys = ['mqttSubClientID', 'mqttQOS', 'mqttRetain', 'a10', 'a9', 'a_b', 'aB', 'ab', 'Z'];
    const sorted = [...keys].sort((a, b) => (goYamlKeyLess(a, b) ? -1 : goYamlKeyLess(b, a) ? 1 : 0));
    expect(sorted).toEqual(['Z', 'a_b', 'a9', 'a10', 'aB', 'ab', 'mqttQOS', 'mqttRetain', 'mqttSubClientID']);
  });

  it.each([
    ['', '""'],
    ['0', '"0"'],
    ['true', '"true"'],
    ['yes', '"yes"'],
    ['null', '"null"'],
    ['1.5', '"1.5"'],
    ['1e3', '"1e3"'],
    ['0x1F', '"0x1F"'],
    ['2024-01-02', '"2024-01-02"'],
    ['10%', '10%'],
    ['100Mi', '100Mi'],
    ['unix:///run/containerd/containerd.sock', 'unix:///run/containerd/containerd.sock'],
    ['169.254.30.10:10550', '169.254.30.10:10550'],
    ['a: b', "'a: b'"],
    ['- x', "'- x'"],
    ['*star', "'*star'"],
    ["it's", "it's"],
    [' lead', "' lead'"],
    ['x #y', "'x #y'"],
    ['two\nlines', '"two\\nlines"'],
  ])('string %j -> %s', (value, yaml) => {
    expect(formatString(value)).toBe(yaml);
  });

  it('prints floats like Go', () => {
    expect(formatNumber(0.9)).toBe('0.9');
    expect(formatNumber(1000000)).toBe('1000000');
    expect(formatNumber(1234567.5)).toBe('1.2345675e+06');
    expect(formatNumber(0.00001)).toBe('1e-05');
    expect(formatNumber(-999)).toBe('-999');
  });
});
