import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../kernel/config/index.js';
import { cloudLayout } from '../registry.js';

const load = (section: string) =>
  parseConfig(
    cloudLayout,
    `apiVersion: cloudcore.config.kubeedge.io/v1alpha1\nkind: CloudCore\nmodules:\n  admission: ${section}\n`,
    'cloudcore.yaml',
  ).config.modules.admission;

describe('modules.admission', () => {
  it('defaults: off, loopback 10443, advertised as the listen address', () => {
    expect(load('{}')).toEqual({
      enable: false,
      runAs: 'inprocess',
      address: '127.0.0.1',
      port: 10443,
      advertiseAddress: '',
    });
  });

  it('refuses a wildcard address without advertiseAddress, and a listen address that is no IP', () => {
    expect(() => load('{enable: true, address: 0.0.0.0}')).toThrow(
      'modules.admission.advertiseAddress: required when address is 0.0.0.0',
    );
    expect(() => load('{enable: true, address: cloud.example}')).toThrow(
      'modules.admission.address: expected an IP address, got "cloud.example"',
    );
    expect(load('{enable: true, address: 0.0.0.0, advertiseAddress: cloud.example}').advertiseAddress).toBe(
      'cloud.example',
    );
  });
});
