import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  NOTES_DEVICE,
  NOTES_MODEL,
  notesDeviceV1beta1Spec,
  notesFixture,
  notesModelV1beta1Spec,
} from '../../test/helpers/notes-devices.js';
import { convertObject, keptAnnotation, type KubeObject } from './convert.js';
import { DevicesV1alpha2, DevicesV1beta1 } from '../../protocol/index.js';

const notesModel = parse(notesFixture(NOTES_MODEL)) as KubeObject;
const notesDevice = parse(notesFixture(NOTES_DEVICE)) as KubeObject;

/** The v1beta1 sample of KubeEdge's v1beta1 proposal, with the fields v1alpha2 lacks. */
const betaDevice: KubeObject = {
  apiVersion: DevicesV1beta1,
  kind: 'Device',
  metadata: { name: 'beta1-device', namespace: 'default' },
  spec: {
    deviceModelRef: { name: 'beta1-model' },
    nodeName: 'worker-node1',
    protocol: { protocolName: 'modbus', configData: { ip: '172.17.0.3', port: 1502, slaveID: 1 } },
    properties: [
      {
        name: 'temp',
        collectCycle: 2000,
        reportCycle: 2000,
        reportToCloud: true,
        desired: { value: '30' },
        visitors: {
          protocolName: 'modbus',
          configData: {
            register: 'HoldingRegister',
            offset: 2,
            limit: 1,
            scale: 1,
            isSwap: true,
            isRegisterSwap: true,
          },
        },
        pushMethod: { mqtt: { address: 'tcp://127.0.0.1:1883', topic: 'temp', qos: 0, retained: false } },
      },
      {
        name: 'humidity',
        reportToCloud: false,
        visitors: { protocolName: 'modbus', configData: { offset: 3 } },
      },
    ],
    methods: [{ name: 'all', propertyNames: ['temp', 'humidity'] }],
    stateReport: { reportToCloud: true, reportCycle: 5000 },
  },
};

const betaModel: KubeObject = {
  apiVersion: DevicesV1beta1,
  kind: 'DeviceModel',
  metadata: { name: 'beta1-model', namespace: 'default' },
  spec: {
    protocol: 'modbus',
    protocolConfigData: { slaveID: 1 },
    properties: [
      { name: 'temp', type: 'INT', accessMode: 'ReadWrite', minimum: '0', maximum: '100', unit: 'C' },
      { name: 'ratio', type: 'FLOAT', accessMode: 'ReadOnly', minimum: '0.5', maximum: 'high' },
      {
        name: 'saveFrame',
        type: 'STREAM',
        accessMode: 'ReadOnly',
        visitors: { protocolName: 'modbus', configData: {} },
      },
    ],
  },
};

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

const other = (o: KubeObject): string =>
  o.apiVersion === DevicesV1alpha2 ? DevicesV1beta1 : DevicesV1alpha2;

describe('conversion v1alpha2 <-> v1beta1', () => {
  it("maps the notes' v1alpha2 Device as spec §1.8 says", () => {
    const b = convertObject(notesDevice, DevicesV1beta1);
    expect(b.apiVersion).toBe(DevicesV1beta1);
    expect(b.spec).toEqual(notesDeviceV1beta1Spec);
    expect(b.status).toEqual({
      twins: [
        {
          propertyName: 'temperature',
          reported: { value: '10', metadata: { timestamp: '1550049403598', type: 'int' } },
        },
      ],
    });
    // the second visitor of "temperature" and `data` have no v1beta1 place: kept
    const kept = JSON.parse(b.metadata?.annotations?.[keptAnnotation('v1alpha2', 'properties')] ?? '{}') as {
      value: { propertyVisitors: unknown[]; data: unknown };
    };
    expect(kept.value.propertyVisitors).toHaveLength(3);
    expect(kept.value.data).toEqual(notesDevice.spec?.data);
    // the labels and other metadata pass through
    expect(b.metadata?.labels).toEqual(notesDevice.metadata?.labels);
  });

  it('maps cycles from nanoseconds to milliseconds and back', () => {
    const a: KubeObject = {
      apiVersion: DevicesV1alpha2,
      kind: 'Device',
      metadata: { name: 'd' },
      spec: {
        protocol: { modbus: {} },
        propertyVisitors: [
          {
            propertyName: 'p',
            collectCycle: 10_000_000_000,
            reportCycle: 500_000_000,
            modbus: { register: 'CoilRegister' },
          },
        ],
      },
    };
    const b = convertObject(a, DevicesV1beta1);
    expect(b.spec?.properties).toEqual([
      {
        name: 'p',
        collectCycle: 10_000,
        reportCycle: 500,
        reportToCloud: true,
        visitors: { protocolName: 'modbus', configData: { register: 'CoilRegister' } },
      },
    ]);
    expect(b.metadata?.annotations).toBeUndefined(); // nothing lost: no annotation
    expect(convertObject(b, DevicesV1alpha2)).toEqual(a);
  });

  it("maps the notes' v1alpha2 DeviceModel and keeps defaultValue", () => {
    const b = convertObject(notesModel, DevicesV1beta1);
    expect(b.spec).toEqual(notesModelV1beta1Spec);
    expect(b.metadata?.annotations?.[keptAnnotation('v1alpha2', 'properties')]).toContain(
      '"defaultValue":"OFF"',
    );
  });

  it('reads a v1beta1 Device as v1alpha2', () => {
    const a = convertObject(betaDevice, DevicesV1alpha2);
    expect(a.spec).toMatchObject({
      deviceModelRef: { name: 'beta1-model' },
      nodeSelector: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: '', operator: 'In', values: ['worker-node1'] }] }],
      },
      protocol: { modbus: { slaveID: 1 }, common: { tcp: { ip: '172.17.0.3', port: 1502 } } },
      propertyVisitors: [
        {
          propertyName: 'temp',
          collectCycle: 2_000_000_000,
          reportCycle: 2_000_000_000,
          modbus: {
            register: 'HoldingRegister',
            offset: 2,
            limit: 1,
            scale: 1,
            isSwap: true,
            isRegisterSwap: true,
          },
        },
        { propertyName: 'humidity', modbus: { offset: 3 } },
      ],
    });
    expect(a.status).toEqual({ twins: [{ propertyName: 'temp', desired: { value: '30' } }] });
    const annotations = Object.keys(a.metadata?.annotations ?? {});
    expect(annotations.sort()).toEqual([
      keptAnnotation('v1beta1', 'extensions'),
      keptAnnotation('v1beta1', 'properties'),
    ]);
  });

  it('reads a v1beta1 DeviceModel as v1alpha2 (STREAM as bytes, unparsable bounds dropped)', () => {
    const a = convertObject(betaModel, DevicesV1alpha2);
    expect(a.spec).toEqual({
      protocol: 'modbus',
      properties: [
        { name: 'temp', type: { int: { accessMode: 'ReadWrite', minimum: 0, maximum: 100, unit: 'C' } } },
        { name: 'ratio', type: { float: { accessMode: 'ReadOnly', minimum: 0.5 } } },
        { name: 'saveFrame', type: { bytes: { accessMode: 'ReadOnly' } } },
      ],
    });
  });

  it.each([
    ['notes device', notesDevice],
    ['notes model', notesModel],
    ['v1beta1 device', betaDevice],
    ['v1beta1 model', betaModel],
  ])('round trip of the %s loses nothing (and changes no input)', (_name, o) => {
    deepFreeze(o);
    const there = convertObject(o, other(o));
    expect(convertObject(there, o.apiVersion!)).toEqual(o);
    // and the other way: converting back and forth again gives the same converted object
    const back = convertObject(there, o.apiVersion!);
    expect(convertObject(back, other(o))).toEqual(there);
  });

  it("round trips lose nothing for every subset of the fixtures' sections", () => {
    const subsets = (o: KubeObject, keys: string[]): KubeObject[] =>
      Array.from({ length: 1 << keys.length }, (_, mask) => {
        const copy = structuredClone(o);
        keys.forEach((k, i) => {
          if ((mask & (1 << i)) === 0) return;
          const [part, key] = k.split('.') as ['spec' | 'status', string];
          delete copy[part]?.[key];
          if (Object.keys(copy[part] ?? {}).length === 0) delete copy[part]; // {} carries nothing
        });
        return copy;
      });
    const cases = [
      ...subsets(notesDevice, [
        'spec.protocol',
        'spec.nodeSelector',
        'spec.propertyVisitors',
        'spec.data',
        'status.twins',
      ]),
      ...subsets(betaDevice, [
        'spec.protocol',
        'spec.nodeName',
        'spec.properties',
        'spec.methods',
        'spec.stateReport',
      ]),
      ...subsets(notesModel, ['spec.properties']),
      ...subsets(betaModel, ['spec.protocol', 'spec.protocolConfigData', 'spec.properties']),
    ];
    for (const o of cases) {
      const there = convertObject(o, other(o));
      expect(convertObject(there, o.apiVersion!)).toEqual(convertObject(o, o.apiVersion!));
    }
    expect(cases).toHaveLength(32 + 32 + 2 + 8);
  });

  it('an edit made in v1beta1 wins; what the edit did not touch is still restored', () => {
    const b = convertObject(notesDevice, DevicesV1beta1);
    const props = structuredClone(b.spec!.properties) as { name: string; desired?: { value: string } }[];
    props[0]!.desired = { value: '42' };
    const edited: KubeObject = { ...b, spec: { ...b.spec, nodeName: 'node2', properties: props } };
    const a = convertObject(edited, DevicesV1alpha2);
    expect(a.spec?.nodeSelector).toEqual({
      nodeSelectorTerms: [{ matchExpressions: [{ key: '', operator: 'In', values: ['node2'] }] }],
    });
    expect(a.status).toEqual({
      twins: [{ ...(notesDevice.status!.twins as object[])[0], desired: { value: '42' } }],
    });
    // the desired value is not part of the properties section: the three visitors and data are kept
    expect(a.spec?.propertyVisitors).toEqual(notesDevice.spec?.propertyVisitors);
    expect(a.spec?.data).toEqual(notesDevice.spec?.data);
    expect(a.spec?.protocol).toEqual(notesDevice.spec?.protocol);
  });

  it("shows deviceController's Device status write to v1alpha2 readers as status.twins[].reported", () => {
    // the merge patch deviceController makes of the v1beta1 Device (plugins/devicecontroller/upstream.ts)
    const stamp = (value: string, ts: string) => ({ value, metadata: { timestamp: ts, type: 'int' } });
    const written = {
      twins: [
        {
          propertyName: 'temperature',
          reported: stamp('1', '1764300000001'),
          observedDesired: stamp('1', '1'),
        },
        { propertyName: 'temperature-enable', reported: stamp('1', '1764300000002') },
      ],
      state: 'online',
      lastOnlineTime: '2026-11-28T14:00:00Z',
    };
    const stored = convertObject(notesDevice, DevicesV1beta1);
    const a = convertObject({ ...stored, status: written }, DevicesV1alpha2);
    expect(a.status).toEqual({
      twins: [
        {
          propertyName: 'temperature',
          desired: notesDeviceV1beta1Spec.properties[0]!.desired,
          reported: stamp('1', '1764300000001'),
        },
        { propertyName: 'temperature-enable', reported: stamp('1', '1764300000002') },
      ],
    });
    // what v1alpha2 cannot show (state, observedDesired) is kept; the visitors are still the notes'
    expect(a.metadata?.annotations?.[keptAnnotation('v1beta1', 'twins')]).toContain('"state":"online"');
    expect(a.spec?.propertyVisitors).toEqual(notesDevice.spec?.propertyVisitors);
  });

  it('refuses another kind or version', () => {
    expect(() => convertObject({ ...notesDevice, kind: 'DeviceStatus' }, DevicesV1beta1)).toThrow(
      /is not Device or DeviceModel/,
    );
    expect(() => convertObject(notesDevice, 'devices.kubeedge.io/v2')).toThrow(
      /apiVersion "devices.kubeedge.io\/v2"/,
    );
  });
});
