/** The mapper SDK's model of a device, and the contract a protocol driver implements. */
import type { Scalar } from '../../proto/dmi/v1beta1/values.js';

export type { Scalar };

/** Property data types (the DeviceModel's `type`, lower-cased). */
export type PropertyType = 'int' | 'float' | 'double' | 'boolean' | 'string' | 'bytes' | 'stream';

export interface PropertySpec {
  name: string;
  /** From the model property (`INT` -> `int`); `string` when the model does not describe it. */
  type: PropertyType;
  accessMode: 'ReadWrite' | 'ReadOnly';
  /** Desired value from the Device (`spec.properties[].desired`), if any. */
  desired?: { value: string; metadata: Record<string, string> };
  /** `visitors.configData`: the protocol-specific access parameters. */
  visitor: Record<string, Scalar>;
  /** Read period in ms (v1beta1 unit; 0 in the Device means 1000). */
  collectCycleMs: number;
  /** Minimum period between two twin reports of this property in ms (0 = report every reading). */
  reportCycleMs: number;
  /** Report the twin to edgecore (the Device's `reportToCloud`). */
  reportToCloud: boolean;
}

export interface DeviceSpec {
  /** `<namespace>/<name>` */
  id: string;
  name: string;
  namespace: string;
  model: string;
  protocolName: string;
  /** `spec.protocol.configData`: connection parameters. */
  protocol: Record<string, Scalar>;
  properties: PropertySpec[];
  /** State reports: always on change; periodically when `reportToCloud`. */
  stateReport: { reportToCloud: boolean; cycleMs: number };
}

/** Device states edgecore accepts (spec §2.5). */
export type DeviceState = 'online' | 'offline' | 'ok' | 'unknown' | 'unhealthy';

/** A device configuration the driver cannot use: names the device, property and field. */
export class MapperConfigError extends Error {
  readonly code = 'EMAPPER_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'MapperConfigError';
  }
}

/**
 * The device cannot be reached (connection refused, closed, timed out): the SDK marks it offline
 * and calls `connect` again with back-off (the driver drops its broken transport itself).
 */
export class DeviceOfflineError extends Error {
  readonly code = 'EMAPPER_OFFLINE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DeviceOfflineError';
  }
}

/** One device as a driver handles it. Everything else (cycles, reports, health) is the SDK's. */
export interface DeviceHandle {
  /** Open (or re-open) the connection; throw to stay offline (retried with back-off). */
  connect(): Promise<void>;
  /** Read one property; return the value as text in the property's type. */
  readProperty(property: PropertySpec): Promise<string>;
  /** Write a desired value (text) to one property. */
  writeProperty(property: PropertySpec, value: string): Promise<void>;
  /** Release the device's resources (it was removed, or the mapper stops). */
  close?(): Promise<void>;
}

/** A protocol: validates a device's configuration and creates its handle. */
export interface ProtocolDriver {
  /** Protocol name, matched against `spec.protocol.protocolName` of devices. */
  readonly protocol: string;
  /**
   * Validate the configuration (throw MapperConfigError) and create the handle. Must not do I/O.
   * On an UpdateDevice that keeps the connection, a handle for the new definition is created
   * before the old one is closed: both exist for a moment.
   */
  createDevice(device: DeviceSpec): DeviceHandle;
}

/** Structured logger (pino-compatible subset). */
export interface MapperLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
