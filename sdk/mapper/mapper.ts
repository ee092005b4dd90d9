/**
 * The mapper runtime: serves DeviceMapperService on its own unix socket, registers with edgecore's
 * DeviceManagerService (dmi.sock), keeps the device table and sends twin and state reports.
 */
import { EventEmitter, once } from 'node:events';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Channel, Client, Server, ServiceImplementation } from 'nice-grpc';
import type * as ApiModule from '../../proto/gen/dmi/v1beta1/api.js';
import type { DeadlineOptions } from '../../proto/rpc.js';
import {
  DeviceRunner,
  type DeviceSink,
  type PropertyValue,
  type ReconnectPolicy,
  type TwinReport,
} from './device.js';
import { deviceId, sameConnection, toDeviceSpec } from './spec.js';
import {
  MapperConfigError,
  type DeviceSpec,
  type DeviceState,
  type MapperLogger,
  type ProtocolDriver,
} from './types.js';

type Grpc = typeof import('nice-grpc');
type Rpc = typeof import('../../proto/rpc.js');
type Api = typeof ApiModule;
type EdgecoreClient = Client<typeof ApiModule.DeviceManagerServiceDefinition, DeadlineOptions>;

export interface MapperOptions {
  /** Mapper name (edgecore's key for it). */
  name: string;
  version?: string;
  apiVersion?: string;
  driver: ProtocolDriver;
  /** Unix socket this mapper's DeviceMapperService listens on. */
  socketPath: string;
  /** edgecore's DMI socket (`<dmiSockPath>/dmi.sock`). */
  edgecoreSocket: string;
  log?: MapperLogger;
  /** Reconnect back-off of devices (default 1 s doubling to 30 s). */
  reconnect?: Partial<ReconnectPolicy>;
  /** Retry period of MapperRegister while edgecore is not reachable (default 1 s). */
  registerRetryMs?: number;
  /** Deadline of calls to edgecore (default 5 s). */
  callTimeoutMs?: number;
}

/** What the mapper knows of one device. */
export interface DeviceEntry {
  proto: ApiModule.Device;
  spec?: DeviceSpec;
  runner?: DeviceRunner;
  /** Configuration error: the device is not started. */
  error?: string;
}

/** How long RegisterDevice / UpdateDevice wait for the device's model. */
const MODEL_WAIT_MS = 3000;

const silent: MapperLogger = { debug() {}, info() {}, warn() {}, error() {} };
const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class Mapper implements DeviceSink {
  readonly devices = new Map<string, DeviceEntry>();
  readonly models = new Map<string, ApiModule.DeviceModel>();
  private readonly log: MapperLogger;
  private readonly reconnect: ReconnectPolicy;
  private server: Server | undefined;
  private channel: Channel | undefined;
  private client: EdgecoreClient | undefined;
  private stopped = false;
  private registered = false;
  private registerTimer: NodeJS.Timeout | undefined;
  private edgecoreDown = false;
  /** 'model': a model arrived (or the mapper stops): wakes waitModel. */
  private readonly events = new EventEmitter();
  /** Reports sent / failed, for tests and benchmarks. */
  readonly counters = { twinReports: 0, stateReports: 0, failedReports: 0, registrations: 0 };
  private registeredResolve: (() => void) | undefined;
  /** Resolves after the first successful MapperRegister. */
  readonly whenRegistered: Promise<void>;

  private constructor(
    private readonly opts: MapperOptions,
    private readonly grpc: Grpc,
    private readonly rpc: Rpc,
    private readonly api: Api,
  ) {
    this.log = opts.log ?? silent;
    this.reconnect = { initialMs: opts.reconnect?.initialMs ?? 1000, maxMs: opts.reconnect?.maxMs ?? 30_000 };
    this.whenRegistered = new Promise((resolve) => (this.registeredResolve = resolve));
  }

  /** Starts serving, then registers with edgecore (retried in the background until it answers). */
  static async start(opts: MapperOptions): Promise<Mapper> {
    const grpc = await import('nice-grpc');
    const rpc = await import('../../proto/rpc.js');
    const api = await import('../../proto/gen/dmi/v1beta1/api.js');
    const m = new Mapper(opts, grpc, rpc, api);
    await m.listen();
    m.channel = grpc.createChannel(`unix://${opts.edgecoreSocket}`);
    m.client = grpc
      .createClientFactory()
      .use(rpc.deadlineMiddleware)
      .create(api.DeviceManagerServiceDefinition, m.channel, {
        '*': { deadlineMs: opts.callTimeoutMs ?? 5000 },
      });
    void m.register();
    return m;
  }

  get protocol(): string {
    return this.opts.driver.protocol;
  }

  // ------------------------------------------------------------------ DeviceMapperService

  private async listen(): Promise<void> {
    const path = this.opts.socketPath;
    mkdirSync(dirname(path), { recursive: true });
    rmSync(path, { force: true });
    const server = this.grpc
      .createServer()
      .use(this.rpc.refusals((rpc, error) => this.log.warn({ rpc, error }, `${rpc}: ${error}`)));
    server.add(this.api.DeviceMapperServiceDefinition, this.service());
    try {
      await server.listen(`unix://${path}`);
    } catch (err) {
      throw new Error(`mapper ${this.opts.name}: cannot listen on ${path}: ${errText(err)}`);
    }
    this.server = server;
    this.log.info({ socket: path, protocol: this.protocol }, `mapper ${this.opts.name} listening`);
  }

  private service(): ServiceImplementation<typeof ApiModule.DeviceMapperServiceDefinition> {
    return {
      registerDevice: (r) => this.registerDevice(r),
      removeDevice: (r) => this.removeDevice(r),
      updateDevice: (r) => this.updateDevice(r),
      createDeviceModel: async (r) => {
        const m = this.needModel(r.model, 'CreateDeviceModelRequest');
        this.models.set(deviceId(m.namespace, m.name), m);
        this.modelArrived();
        return { deviceModelName: m.name, deviceModelNamespace: m.namespace };
      },
      updateDeviceModel: async (r) => {
        const m = this.needModel(r.model, 'UpdateDeviceModelRequest');
        const id = deviceId(m.namespace, m.name);
        if (!this.models.has(id)) throw this.refuse('NOT_FOUND', `device model ${id} not found`);
        this.models.set(id, m);
        return {};
      },
      removeDeviceModel: async (r) => {
        this.models.delete(deviceId(r.modelNamespace, r.modelName));
        return {};
      },
      getDevice: async (r) => this.getDevice(r),
    };
  }

  /** A gRPC refusal with this status. */
  private refuse(code: keyof typeof this.rpc.Status, message: string): Error {
    return new this.rpc.ServerError(this.rpc.Status[code], message);
  }

  private needModel(m: ApiModule.DeviceModel | undefined, what: string): ApiModule.DeviceModel {
    if (!m?.name) throw this.refuse('INVALID_ARGUMENT', `${what}.model.name: required`);
    return m;
  }

  /** The device's model, waiting up to MODEL_WAIT_MS for it (edgecore sends it just before). */
  private async waitModel(device: ApiModule.Device): Promise<ApiModule.DeviceModel | undefined> {
    const id = deviceId(device.namespace, device.spec?.deviceModelReference ?? '');
    const deadline = Date.now() + MODEL_WAIT_MS;
    for (;;) {
      const m = this.models.get(id);
      const left = deadline - Date.now();
      if (m || left <= 0 || this.stopped) return m;
      await once(this.events, 'model', { signal: AbortSignal.timeout(left) }).catch(() => undefined);
    }
  }

  private modelArrived(): void {
    this.events.emit('model');
  }

  private async registerDevice(
    r: ApiModule.RegisterDeviceRequest,
  ): Promise<ApiModule.RegisterDeviceResponse> {
    const d = r.device;
    if (!d?.name) throw this.refuse('INVALID_ARGUMENT', 'RegisterDeviceRequest.device.name: required');
    const id = deviceId(d.namespace, d.name);
    if (!this.devices.has(id)) await this.addDevice(d, await this.waitModel(d));
    return { deviceName: d.name, deviceNamespace: d.namespace };
  }

  private async updateDevice(r: ApiModule.UpdateDeviceRequest): Promise<ApiModule.UpdateDeviceResponse> {
    const d = r.device;
    if (!d?.name) throw this.refuse('INVALID_ARGUMENT', 'UpdateDeviceRequest.device.name: required');
    await this.applyDevice(d, await this.waitModel(d));
    return {};
  }

  /**
   * A new definition of a device. With the same connection (compared by value: Go sends
   * `configData` map entries in any order) the running device is kept: the driver makes a handle
   * for the new definition, the runner switches to it and closes the old one, and only changed
   * desired values are written. Otherwise (or when the new definition is refused) the device is
   * restarted.
   */
  private async applyDevice(d: ApiModule.Device, model: ApiModule.DeviceModel | undefined): Promise<void> {
    const id = deviceId(d.namespace, d.name);
    const cur = this.devices.get(id);
    if (cur?.runner && cur.spec && model) {
      const spec = toDeviceSpec(d, model);
      if (sameConnection(cur.spec, spec)) {
        let handle;
        try {
          handle = this.opts.driver.createDevice(spec);
        } catch {
          handle = undefined; // refused: restarted below, where the error is reported
        }
        if (handle) {
          cur.proto = d;
          cur.spec = spec;
          await cur.runner.update(spec, handle);
          return;
        }
      }
    }
    await this.dropDevice(id);
    await this.addDevice(d, model);
  }

  private async removeDevice(r: ApiModule.RemoveDeviceRequest): Promise<ApiModule.RemoveDeviceResponse> {
    const id = deviceId(r.deviceNamespace, r.deviceName);
    if (!this.devices.has(id)) throw this.refuse('NOT_FOUND', `device ${id} not found`);
    await this.dropDevice(id);
    return {};
  }

  private getDevice(r: ApiModule.GetDeviceRequest): ApiModule.GetDeviceResponse {
    const id = deviceId(r.deviceNamespace, r.deviceName);
    const e = this.devices.get(id);
    if (!e) throw this.refuse('NOT_FOUND', `device ${id} not found`);
    const twins: ApiModule.Twin[] = [];
    for (const p of e.spec?.properties ?? []) {
      const v: PropertyValue | undefined = e.runner?.values.get(p.name);
      twins.push({
        propertyName: p.name,
        reported: {
          value: v?.value ?? '',
          metadata: { type: p.type, ...(v?.timestamp ? { timestamp: String(v.timestamp) } : {}) },
        },
        ...(p.desired ? { observedDesired: { value: p.desired.value, metadata: {} } } : {}),
      });
    }
    return { device: { ...e.proto, status: { twins, reportToCloud: false, reportCycle: 0 } } };
  }

  /** Adds and starts a device; a configuration error keeps it (unstarted, state unhealthy) and is thrown. */
  private async addDevice(d: ApiModule.Device, model: ApiModule.DeviceModel | undefined): Promise<void> {
    const id = deviceId(d.namespace, d.name);
    if (!model) {
      throw this.refuse(
        'FAILED_PRECONDITION',
        `device ${id}: device model ${d.spec?.deviceModelReference || '(none)'} not found`,
      );
    }
    const spec = toDeviceSpec(d, model);
    let handle;
    try {
      if (spec.protocolName && spec.protocolName !== this.protocol)
        throw new MapperConfigError(
          `protocol.protocolName: "${spec.protocolName}" is not "${this.protocol}"`,
        );
      handle = this.opts.driver.createDevice(spec);
    } catch (err) {
      const text = `device ${id}: ${errText(err)}`;
      this.devices.set(id, { proto: d, spec, error: text });
      this.log.error({ device: id, error: errText(err) }, text);
      this.state(spec, 'unhealthy');
      throw this.refuse('INVALID_ARGUMENT', text);
    }
    const runner = new DeviceRunner(spec, handle, this, this.log, this.reconnect);
    this.devices.set(id, { proto: d, spec, runner });
    runner.start();
  }

  private async dropDevice(id: string): Promise<void> {
    const e = this.devices.get(id);
    this.devices.delete(id);
    await e?.runner?.stop();
  }

  // ------------------------------------------------------------------ mapper -> edgecore

  /** A call to edgecore's DeviceManagerService; a stopped mapper calls nothing. */
  private async callEdgecore<T>(fn: (client: EdgecoreClient) => Promise<T>): Promise<T> {
    if (!this.client || this.stopped) throw new Error('mapper stopped');
    return fn(this.client);
  }

  /** MapperRegister(withData) until edgecore answers; the devices it returns are (re)started. */
  async register(): Promise<void> {
    if (this.stopped) return;
    this.registerTimer = undefined;
    const req: ApiModule.MapperRegisterRequest = {
      withData: true,
      mapper: {
        name: this.opts.name,
        version: this.opts.version ?? '',
        apiVersion: this.opts.apiVersion ?? 'v1beta1',
        protocol: this.protocol,
        address: Buffer.from(this.opts.socketPath, 'utf8'),
        state: 'ok',
      },
    };
    let res: ApiModule.MapperRegisterResponse;
    try {
      res = await this.callEdgecore((c) => c.mapperRegister(req));
    } catch (err) {
      if (this.stopped) return;
      this.log.warn({ error: errText(err) }, `mapper ${this.opts.name}: MapperRegister failed, retrying`);
      this.registerTimer = setTimeout(() => void this.register(), this.opts.registerRetryMs ?? 1000);
      return;
    }
    this.counters.registrations++;
    this.registered = true;
    this.edgecoreDown = false;
    for (const m of res.modelList) this.models.set(deviceId(m.namespace, m.name), m);
    if (res.modelList.length) this.modelArrived();
    for (const d of res.deviceList) {
      const cur = this.devices.get(deviceId(d.namespace, d.name));
      // by value: Go sends configData map entries in any order
      if (cur && isDeepStrictEqual(cur.proto, d)) continue;
      const model = this.models.get(deviceId(d.namespace, d.spec?.deviceModelReference ?? ''));
      await this.applyDevice(d, model).catch(() => undefined); // logged by addDevice
    }
    this.log.info(
      { devices: res.deviceList.length, models: res.modelList.length },
      `mapper ${this.opts.name} registered with edgecore (protocol ${this.protocol})`,
    );
    this.registeredResolve?.();
  }

  private reportFailed(err: unknown, what: string): void {
    this.counters.failedReports++;
    if (!this.edgecoreDown)
      this.log.warn({ error: errText(err) }, `mapper ${this.opts.name}: ${what} failed: ${errText(err)}`);
    const code = (err as { code?: number }).code;
    if (code === this.rpc.Status.UNAVAILABLE || code === this.rpc.Status.DEADLINE_EXCEEDED)
      this.edgecoreDown = true;
  }

  private reportOk(): void {
    if (!this.edgecoreDown) return;
    // edgecore came back (it may have restarted): register again to get in sync.
    this.edgecoreDown = false;
    if (!this.registerTimer) void this.register();
  }

  /** DeviceSink: one ReportDeviceStatus per device and collect tick. */
  twins(device: DeviceSpec, twins: TwinReport[]): void {
    const req: ApiModule.ReportDeviceStatusRequest = {
      deviceName: device.name,
      deviceNamespace: device.namespace,
      reportedDevice: {
        twins: twins.map((t) => ({
          propertyName: t.propertyName,
          reported: { value: t.value, metadata: { type: t.type, timestamp: String(t.timestamp) } },
          ...(t.desired !== undefined
            ? {
                observedDesired: {
                  value: t.desired,
                  metadata: { type: t.type, timestamp: String(t.timestamp) },
                },
              }
            : {}),
        })),
        reportToCloud: false,
        reportCycle: 0,
      },
    };
    this.callEdgecore((c) => c.reportDeviceStatus(req)).then(
      () => {
        this.counters.twinReports += twins.length;
        this.reportOk();
      },
      (err: unknown) => this.reportFailed(err, `ReportDeviceStatus of ${device.id}`),
    );
  }

  /** DeviceSink: ReportDeviceStates. */
  state(device: DeviceSpec, state: DeviceState): void {
    this.callEdgecore((c) =>
      c.reportDeviceStates({ deviceName: device.name, deviceNamespace: device.namespace, state }),
    ).then(
      () => {
        this.counters.stateReports++;
        this.reportOk();
      },
      (err: unknown) => this.reportFailed(err, `ReportDeviceStates of ${device.id}`),
    );
  }

  get isRegistered(): boolean {
    return this.registered;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.modelArrived(); // wake waiters
    if (this.registerTimer) clearTimeout(this.registerTimer);
    await Promise.all([...this.devices.keys()].map((id) => this.dropDevice(id)));
    this.channel?.close();
    if (this.server) await this.rpc.shutdown(this.server, 1000);
    rmSync(this.opts.socketPath, { force: true });
  }
}
