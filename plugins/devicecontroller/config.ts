/** `modules.deviceController` of cloudcore.yaml (cloudcore/v1alpha1). */
import { configSchema, defineConfigSection, sectionSchema, type ModuleBase } from '../../kernel/index.js';

const { int, ptrObj } = configSchema;

export interface DeviceControllerConfig extends ModuleBase {
  buffer: {
    updateDeviceTwins: number;
    updateDeviceStatus: number;
    deviceEvent: number;
    deviceModelEvent: number;
    deviceStatusEvent: number;
  };
  load: { updateDeviceStatusWorkers: number };
}

export const deviceControllerSection = defineConfigSection<DeviceControllerConfig>({
  schema: sectionSchema<DeviceControllerConfig>({
    buffer: ptrObj<DeviceControllerConfig['buffer']>({
      updateDeviceTwins: int(),
      updateDeviceStatus: int(),
      deviceEvent: int(),
      deviceModelEvent: int(),
      deviceStatusEvent: int(),
    }),
    load: ptrObj<DeviceControllerConfig['load']>({ updateDeviceStatusWorkers: int() }),
  }),
  defaults: () => ({
    enable: true,
    runAs: 'inprocess',
    buffer: {
      updateDeviceTwins: 1024,
      updateDeviceStatus: 1024,
      deviceEvent: 1,
      deviceModelEvent: 1,
      deviceStatusEvent: 0,
    },
    load: { updateDeviceStatusWorkers: 1 },
  }),
});
