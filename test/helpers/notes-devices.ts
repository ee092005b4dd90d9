/**
 * The notes' v1alpha2 DeviceModel and Device (`test/fixtures/notes/`), and the v1beta1 they map
 * to (spec §1.8) by protocol/device.ts, the mapping admission's conversion webhook and dmiServer
 * share.
 */
import { readFileSync } from 'node:fs';

export const NOTES_MODEL = 'device-model-v1alpha2.yaml';
export const NOTES_DEVICE = 'device-instance-v1alpha2.yaml';

/** The text of one file of `test/fixtures/notes/`. */
export const notesFixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/notes/${name}`, import.meta.url), 'utf8');

/** The notes' DeviceModel in v1beta1: its `spec` (defaultValue has no v1beta1 place). */
export const notesModelV1beta1Spec = {
  properties: [
    {
      name: 'temperature',
      description: 'temperature in degree celsius',
      type: 'INT',
      accessMode: 'ReadWrite',
      maximum: '100',
      unit: 'degree celsius',
    },
    {
      name: 'temperature-enable',
      description: 'enable data collection of temperature sensor',
      type: 'STRING',
      accessMode: 'ReadWrite',
    },
  ],
};

/** The notes' Device in v1beta1: its `spec` (every visitor of the device's protocol reports). */
export const notesDeviceV1beta1Spec = {
  deviceModelRef: { name: 'sensor-tag-model' },
  nodeName: 'node1',
  protocol: {
    protocolName: 'modbus',
    configData: {
      slaveID: 1,
      serialPort: '1',
      baudRate: 115200,
      dataBits: 8,
      parity: 'even',
      stopBits: 1,
      def1: 'def1-val',
      def2: 'def2-val',
    },
  },
  properties: [
    {
      name: 'temperature',
      visitors: {
        protocolName: 'modbus',
        configData: {
          register: 'CoilRegister',
          offset: 2,
          limit: 1,
          scale: 1,
          isSwap: true,
          isRegisterSwap: true,
        },
      },
      desired: { value: '15', metadata: { timestamp: '1550049403598', type: 'int' } },
      reportToCloud: true,
    },
    {
      name: 'temperature-enable',
      visitors: {
        protocolName: 'modbus',
        configData: {
          register: 'DiscreteInputRegister',
          offset: 3,
          limit: 1,
          scale: 1,
          isSwap: true,
          isRegisterSwap: true,
        },
      },
      reportToCloud: true,
    },
  ],
};
