/** `modules.cloudHub.nodeIsolation`: ours, defaulted, validated, never printed. */
import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig, renderConfig } from '../../kernel/config/index.js';
import { cloudLayout } from '../registry.js';

const head = 'apiVersion: cloudcore.config.kubeedge.io/v1alpha1\nkind: CloudCore\nmodules:\n  cloudHub:\n';

describe('modules.cloudHub.nodeIsolation', () => {
  it('is on by default and can be turned off', () => {
    expect(
      parseConfig(cloudLayout, `${head}    nodeLimit: 3\n`, 'cloudcore.yaml').config.modules.cloudHub
        .nodeIsolation,
    ).toBe(true);
    expect(
      parseConfig(cloudLayout, `${head}    nodeIsolation: false\n`, 'cloudcore.yaml').config.modules.cloudHub
        .nodeIsolation,
    ).toBe(false);
  });

  it('refuses a value that is not a boolean, with file and line', () => {
    expect(() => parseConfig(cloudLayout, `${head}    nodeIsolation: sometimes\n`, 'cloudcore.yaml')).toThrow(
      /modules\.cloudHub\.nodeIsolation: expected boolean.*\(cloudcore\.yaml:5\)/,
    );
  });

  it('is not printed by --defaultconfig (KubeEdge has no such key)', () => {
    const c = defaultConfig(cloudLayout);
    c.modules.cloudHub.nodeIsolation = false;
    expect(renderConfig(cloudLayout, c, 'default')).not.toMatch(/nodeIsolation/i);
  });
});
