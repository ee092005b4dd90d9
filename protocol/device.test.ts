import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  NOTES_DEVICE,
  NOTES_MODEL,
  notesDeviceV1beta1Spec,
  notesFixture,
  notesModelV1beta1Spec,
} from '../test/helpers/notes-devices.js';
import {
  DevicesV1alpha2,
  DevicesV1beta1,
  deviceModelToV1alpha2,
  deviceModelToV1beta1,
  deviceToV1alpha2,
  deviceToV1beta1,
  type DeviceObject,
} from './device.js';

const alphaDevice = (spec: Record<string, unknown>, status?: Record<string, unknown>): DeviceObject => ({
  apiVersion: DevicesV1alpha2,
  kind: 'Device',
  metadata: { name: 'd', namespace: 'default' },
  spec,
  ...(status && { status }),
});

const alphaModel = (properties: unknown[]): DeviceObject => ({
  apiVersion: DevicesV1alpha2,
  kind: 'DeviceModel',
  metadata: { name: 'm' },
  spec: { properties },
});

describe('the Device mapping v1alpha2 <-> v1beta1 (spec §1.8)', () => {
  it("maps the notes' Device and DeviceModel, and says what it does not carry", () => {
    const warnings: string[] = [];
    const device = parse(notesFixture(NOTES_DEVICE)) as DeviceObject;
    const b = deviceToV1beta1(device, warnings);
    expect(b.apiVersion).toBe(DevicesV1beta1);
    expect(b.spec).toEqual(notesDeviceV1beta1Spec);
    expect(b.metadata).toBe(device.metadata);
    expect(warnings).toEqual(['propertyVisitors[temperature]: not a modbus visitor, dropped']);
    expect(deviceModelToV1beta1(parse(notesFixture(NOTES_MODEL)) as DeviceObject).spec).toEqual(
      notesModelV1beta1Spec,
    );
  });

  // Where admission's and dmiServer's converters differed, the choice and why (plugins' READMEs).

  it("reads only the device's protocol config, as KubeEdge's BuildProtocol (modbus first)", () => {
    const b = deviceToV1beta1(
      alphaDevice({
        protocol: {
          opcua: { url: 'opc.tcp://x' },
          modbus: { slaveID: 1 },
          customizedProtocol: { protocolName: 'p', configData: { extra: 1 } },
        },
      }),
    );
    // dmiServer merged every protocol key's values; admission took customizedProtocol's too
    expect(b.spec?.protocol).toEqual({ protocolName: 'modbus', configData: { slaveID: 1 } });
  });

  it('lets the typed fields win over free-form values of the same name', () => {
    const b = deviceToV1beta1(
      alphaDevice({
        protocol: {
          modbus: { slaveID: 1 },
          common: { tcp: { ip: '10.0.0.1', port: 502 }, customizedValues: { slaveID: 9, port: 5020 } },
        },
        propertyVisitors: [
          {
            propertyName: 't',
            modbus: { register: 'CoilRegister', offset: 2 },
            customizedValues: { offset: 7 },
          },
        ],
      }),
    );
    // dmiServer let customizedValues overwrite
    expect(b.spec?.protocol).toEqual({
      protocolName: 'modbus',
      configData: { slaveID: 1, ip: '10.0.0.1', port: 502 },
    });
    expect(b.spec?.properties).toEqual([
      {
        name: 't',
        reportToCloud: true,
        visitors: { protocolName: 'modbus', configData: { register: 'CoilRegister', offset: 2 } },
      },
    ]);
  });

  it("carries a property's first visitor of the device's protocol, not its first visitor", () => {
    const warnings: string[] = [];
    const b = deviceToV1beta1(
      alphaDevice({
        protocol: { modbus: { slaveID: 1 } },
        propertyVisitors: [
          { propertyName: 't', opcua: { nodeID: 'ns=1;i=1' } },
          { propertyName: 't', modbus: { register: 'HoldingRegister', offset: 1 } },
          { propertyName: 'only-opcua', opcua: { nodeID: 'ns=1;i=2' } },
          { propertyName: 't', modbus: { register: 'InputRegister' } },
        ],
      }),
      warnings,
    );
    // admission carried the first visitor whatever its protocol (and `only-opcua` as an opcua property)
    expect(b.spec?.properties).toEqual([
      {
        name: 't',
        reportToCloud: true,
        visitors: { protocolName: 'modbus', configData: { register: 'HoldingRegister', offset: 1 } },
      },
    ]);
    expect(warnings).toEqual([
      'propertyVisitors[t]: not a modbus visitor, dropped',
      'propertyVisitors[only-opcua]: not a modbus visitor, dropped',
      'propertyVisitors[t]: duplicate visitor of the property, dropped',
    ]);
  });

  it('carries no visitor of a device without protocol (KubeEdge: "can not parse device protocol")', () => {
    const warnings: string[] = [];
    const b = deviceToV1beta1(
      alphaDevice(
        { propertyVisitors: [{ propertyName: 't', modbus: { offset: 1 } }] },
        { twins: [{ propertyName: 't', desired: { value: '1' } }] },
      ),
      warnings,
    );
    expect(b.spec?.properties).toEqual([{ name: 't', desired: { value: '1' }, reportToCloud: true }]);
    expect(warnings).toEqual(['propertyVisitors[t]: not a (no protocol) visitor, dropped']);
  });

  it('carries nested values as they are (DMI refuses them for every device, spec §3.3)', () => {
    const dataConverter = { startIndex: 0, endIndex: 1 };
    const b = deviceToV1beta1(
      alphaDevice({
        protocol: { bluetooth: { macAddress: 'aa:bb' } },
        propertyVisitors: [{ propertyName: 't', bluetooth: { characteristicUUID: 'u', dataConverter } }],
      }),
    );
    // dmiServer dropped them with a warning, so the same device reached the mapper from a v1alpha2
    // message and was refused when stored as v1beta1
    expect(b.spec?.properties).toEqual([
      {
        name: 't',
        reportToCloud: true,
        visitors: { protocolName: 'bluetooth', configData: { characteristicUUID: 'u', dataConverter } },
      },
    ]);
  });

  it('maps cycles of numbers only, zero included (ns -> ms)', () => {
    const b = deviceToV1beta1(
      alphaDevice({
        protocol: { modbus: {} },
        propertyVisitors: [{ propertyName: 't', collectCycle: 0, reportCycle: '5000000000', modbus: {} }],
      }),
    );
    // dmiServer skipped 0 and parsed strings; v1alpha2's cycles are int64
    expect(b.spec?.properties).toEqual([
      { name: 't', collectCycle: 0, reportToCloud: true, visitors: { protocolName: 'modbus' } },
    ]);
    expect(deviceToV1alpha2(b).spec?.propertyVisitors).toEqual([
      { propertyName: 't', collectCycle: 0, modbus: {} },
    ]);
  });

  it('gives a model property without type key no type, and numbers only as bounds', () => {
    const b = deviceModelToV1beta1(
      alphaModel([{ name: 'untyped' }, { name: 'n', type: { int: { minimum: '5', maximum: 0 } } }]),
    );
    // dmiServer made `untyped` a STRING with accessMode "", and the string bound "5"
    expect(b.spec).toEqual({
      properties: [{ name: 'untyped' }, { name: 'n', type: 'INT', maximum: '0' }],
    });
    expect(deviceModelToV1alpha2(b).spec).toEqual({
      properties: [{ name: 'untyped' }, { name: 'n', type: { int: { maximum: 0 } } }],
    });
  });

  it('changes no object given', () => {
    const a = parse(notesFixture(NOTES_DEVICE)) as DeviceObject;
    const text = JSON.stringify(a);
    const b = deviceToV1beta1(a);
    deviceToV1alpha2(b);
    expect(JSON.stringify(a)).toBe(text);
  });
});
