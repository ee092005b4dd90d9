/** DMI proto objects to the SDK's DeviceSpec. */
import { isDeepStrictEqual } from 'node:util';
import type { Device, DeviceModel } from '../../proto/gen/dmi/v1beta1/api.js';
import { anyMapToScalars } from '../../proto/dmi/v1beta1/values.js';
import type { DeviceSpec, PropertySpec, PropertyType } from './types.js';

const TYPES: Record<string, PropertyType> = {
  int: 'int',
  integer: 'int',
  float: 'float',
  double: 'double',
  boolean: 'boolean',
  bool: 'boolean',
  string: 'string',
  bytes: 'bytes',
  stream: 'stream',
};

export const DEFAULT_CYCLE_MS = 1000;

export function deviceId(namespace: string, name: string): string {
  return `${namespace || 'default'}/${name}`;
}

/** Builds the SDK's view of a device from the DMI objects (cycles in ms, v1beta1). */
export function toDeviceSpec(device: Device, model: DeviceModel | undefined): DeviceSpec {
  const namespace = device.namespace || 'default';
  const modelProps = new Map((model?.spec?.properties ?? []).map((p) => [p.name, p]));
  const properties: PropertySpec[] = (device.spec?.properties ?? []).map((p) => {
    const mp = modelProps.get(p.name);
    const typeText = (mp?.type || p.desired?.metadata?.type || 'string').toLowerCase();
    return {
      name: p.name,
      type: TYPES[typeText] ?? 'string',
      accessMode: mp?.accessMode === 'ReadWrite' ? 'ReadWrite' : 'ReadOnly',
      ...(p.desired ? { desired: { value: p.desired.value, metadata: { ...p.desired.metadata } } } : {}),
      visitor: anyMapToScalars(p.visitors?.configData?.data),
      collectCycleMs: p.collectCycle > 0 ? p.collectCycle : DEFAULT_CYCLE_MS,
      reportCycleMs: p.reportCycle > 0 ? p.reportCycle : 0,
      reportToCloud: p.reportToCloud,
    };
  });
  return {
    id: deviceId(namespace, device.name),
    name: device.name,
    namespace,
    model: device.spec?.deviceModelReference ?? '',
    protocolName: device.spec?.protocol?.protocolName ?? '',
    protocol: anyMapToScalars(device.spec?.protocol?.configData?.data),
    properties,
    stateReport: {
      reportToCloud: device.status?.reportToCloud ?? false,
      cycleMs:
        (device.status?.reportCycle ?? 0) > 0 ? (device.status?.reportCycle as number) : DEFAULT_CYCLE_MS,
    },
  };
}

/**
 * Same connection (protocol name and `configData`, compared by value whatever the key order: Go
 * sends map entries in random order): the device is kept, no reconnect needed.
 */
export function sameConnection(a: DeviceSpec, b: DeviceSpec): boolean {
  return a.protocolName === b.protocolName && isDeepStrictEqual(a.protocol, b.protocol);
}
