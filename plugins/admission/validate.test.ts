import { describe, expect, it } from 'vitest';
import type { KubeObject } from './convert.js';
import { validateDevice, validateModel, type ModelLookup } from './validate.js';
import { DevicesV1alpha2, DevicesV1beta1 } from '../../protocol/index.js';

const model = [
  { name: 'temp', type: 'INT' },
  { name: 'on', type: 'BOOLEAN' },
  { name: 'ratio', type: 'FLOAT' },
  { name: 'label', type: 'STRING' },
];
let lookups = 0;
const lookup: ModelLookup = (namespace, name) => {
  lookups++;
  return Promise.resolve(namespace === 'default' && name === 'm' ? model : undefined);
};
const device = (spec: object, status?: Record<string, unknown>, apiVersion = DevicesV1beta1): KubeObject => ({
  apiVersion,
  kind: 'Device',
  metadata: { name: 'd', namespace: 'default' },
  spec: { deviceModelRef: { name: 'm' }, ...spec },
  ...(status && { status }),
});

describe('Device checks', () => {
  it('admits a device whose properties and values fit its model', async () => {
    const d = device({
      properties: [
        { name: 'temp', desired: { value: '-3' } },
        { name: 'on', desired: { value: 'true' } },
        { name: 'ratio', desired: { value: '0.5' } },
        { name: 'label', desired: { value: 'anything' } },
      ],
    });
    expect(await validateDevice(d, undefined, lookup)).toEqual([]);
  });

  it('names each bad field of a v1beta1 device', async () => {
    const d = device({
      properties: [
        { name: 'temp', desired: { value: '1.5' } },
        { name: 'on', desired: { value: 'yes' } },
        { name: 'temp' },
        { name: 'nope' },
      ],
    });
    expect(await validateDevice(d, undefined, lookup)).toEqual([
      'spec.properties[0].desired.value: "1.5" is not a valid INT value, as property "temp" of model "m" is',
      'spec.properties[1].desired.value: "yes" is not a valid BOOLEAN value, as property "on" of model "m" is',
      'spec.properties[2].name: property "temp" is named twice (names must be unique)',
      'spec.properties[3].name: property "nope" is not in model "m"',
    ]);
  });

  it('names each bad field of a v1alpha2 device', async () => {
    const d = device(
      { propertyVisitors: [{ propertyName: 'x', reportCycle: 2_500_000 }] },
      { twins: [{ propertyName: 'ratio', desired: { value: 'NaN' } }, { propertyName: 'y' }] },
      DevicesV1alpha2,
    );
    expect(await validateDevice(d, undefined, lookup)).toEqual([
      'spec.propertyVisitors[0].propertyName: property "x" is not in model "m"',
      'spec.propertyVisitors[0].reportCycle: 2500000 ns is not a whole number of milliseconds (v1beta1 counts cycles in ms)',
      'status.twins[0].desired.value: "NaN" is not a valid FLOAT value, as property "ratio" of model "m" is',
      'status.twins[1].propertyName: property "y" is not in model "m"',
    ]);
  });

  it('refuses a missing or unknown model', async () => {
    expect(await validateDevice({ ...device({}), spec: {} }, undefined, lookup)).toEqual([
      'spec.deviceModelRef.name: required (the DeviceModel of the device, in its namespace)',
    ]);
    expect(await validateDevice(device({ deviceModelRef: { name: 'x' } }), undefined, lookup)).toEqual([
      'spec.deviceModelRef.name: model "x" not found in namespace "default"',
    ]);
  });

  it('an update of the status only is admitted without a model lookup', async () => {
    const old = device({ deviceModelRef: { name: 'gone' } }); // even if the model went away since
    const now = { ...old, status: { twins: [{ propertyName: 'temp', reported: { value: '1' } }] } };
    const before = lookups;
    expect(await validateDevice(now, old, lookup)).toEqual([]);
    expect(lookups).toBe(before);
  });
});

describe('DeviceModel checks', () => {
  it('names duplicate names, bad v1alpha2 types and unconvertible v1beta1 bounds', () => {
    const alpha: KubeObject = {
      apiVersion: DevicesV1alpha2,
      kind: 'DeviceModel',
      spec: {
        properties: [
          { name: 'a', type: { int: {}, string: {} } },
          { name: 'a', type: { bytes: {} } },
        ],
      },
    };
    expect(validateModel(alpha, undefined)).toEqual([
      'spec.properties[0].type: expected exactly one of int, string, double, float, boolean, bytes, got ["int","string"]',
      'spec.properties[1].name: property "a" is named twice (names must be unique)',
    ]);
    const beta: KubeObject = {
      apiVersion: DevicesV1beta1,
      kind: 'DeviceModel',
      spec: {
        properties: [
          { name: 'a', type: 'INT', minimum: '0', maximum: '1.5' },
          { name: 'b', type: 'DOUBLE', minimum: '-1e3' },
          { name: 'c', type: 'STRING', maximum: 'whatever' },
        ],
      },
    };
    expect(validateModel(beta, undefined)).toEqual([
      'spec.properties[0].maximum: "1.5" is not a valid INT bound',
    ]);
  });
});
