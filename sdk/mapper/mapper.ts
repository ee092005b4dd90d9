/**
 * The mapper runtime: serves DeviceMapperService on its own unix socket, registers with edgecore's
 * DeviceManagerService (dmi.sock), keeps the device table and sends twin and state reports.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type * as ApiModule from '../../proto/gen/dmi/v1beta1/api.js';
import { RpcError, unaryHandler } from '../../proto/rpc.js';
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

type Grpc = typeof import('@grpc/grpc-js');
type Api = typeof ApiModule;

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

const silent: MapperLogger = { debug() {}, info() {}, warn() {}, error() {} };
const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class Mapper implements DeviceSink {
  readonly devices = new Map<string, DeviceEntry>();
  readonly models = new Map<string, ApiModule.DeviceModel>();
  private readonly log: MapperLogger;
  private readonly reconnect: ReconnectPolicy;
  private server: import('@grpc/grpc-js').Server | undefined;
  private client: ApiModule.DeviceManagerServiceClient | undefined;
  private stopped = false;
  private registered = false;
  private registerTimer: NodeJS.Timeout | undefined;
  private edgecoreDown = false;
  /** Reports sent / failed, for tests and benchmarks. */
  readonly counters = { twinReports: 0, stateReports: 0, failedReports: 0, registrations: 0 };
  private registeredResolve: (() => void) | undefined;
  /** Resolves after the first successful MapperRegister. */
  readonly whenRegistered: Promise<void>;

  private constructor(
    private readonly opts: MapperOptions,
    private readonly grpc: Grpc,
    private readonly api: Api,
  ) {
    this.log = opts.log ?? silent;
    this.reconnect = { initialMs: opts.reconnect?.initialMs ?? 1000, maxMs: opts.reconnect?.maxMs ?? 30_000 };
    this.whenRegistered = new Promise((resolve) => (this.registeredResolve = resolve));
  }

  /** Starts serving, then registers with edgecore (retried in the background until it answers). */
  static async start(opts: MapperOptions): Promise<Mapper> {
    const grpc = await import('@grpc/grpc-js');
    const api = await import('../../proto/gen/dmi/v1beta1/api.js');
    const m = new Mapper(opts, grpc, api);
    await m.listen();
    m.client = new api.DeviceManagerServiceClient(
      `unix:${opts.edgecoreSocket}`,
      grpc.credentials.createInsecure(),
    );
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
    const server = new this.grpc.Server();
    const unary = <Req, Res>(what: string, fn: (req: Req) => Res | Promise<Res>) =>
      unaryHandler(fn, (err) => this.log.warn({ rpc: what, error: err }, `${what}: ${err}`));
    const impl = {
      registerDevice: unary('RegisterDevice', (r: ApiModule.RegisterDeviceRequest) => this.registerDevice(r)),
      removeDevice: unary('RemoveDevice', (r: ApiModule.RemoveDeviceRequest) => this.removeDevice(r)),
      updateDevice: unary('UpdateDevice', (r: ApiModule.UpdateDeviceRequest) => this.updateDevice(r)),
      createDeviceModel: unary('CreateDeviceModel', (r: ApiModule.CreateDeviceModelRequest) => {
        const m = this.needModel(r.model, 'CreateDeviceModelRequest');
        this.models.set(deviceId(m.namespace, m.name), m);
        return { deviceModelName: m.name, deviceModelNamespace: m.namespace };
      }),
      updateDeviceModel: unary('UpdateDeviceModel', (r: ApiModule.UpdateDeviceModelRequest) => {
        const m = this.needModel(r.model, 'UpdateDeviceModelRequest');
        const id = deviceId(m.namespace, m.name);
        if (!this.models.has(id))
          throw new RpcError(this.grpc.status.NOT_FOUND, `device model ${id} not found`);
        this.models.set(id, m);
        return {};
      }),
      removeDeviceModel: unary('RemoveDeviceModel', (r: ApiModule.RemoveDeviceModelRequest) => {
        this.models.delete(deviceId(r.modelNamespace, r.modelName));
        return {};
      }),
      getDevice: unary('GetDevice', (r: ApiModule.GetDeviceRequest) => this.getDevice(r)),
    };
    server.addService(
      this.api.DeviceMapperServiceService,
      impl as unknown as ApiModule.DeviceMapperServiceServer,
    );
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${path}`, this.grpc.ServerCredentials.createInsecure(), (err) =>
        err
          ? reject(new Error(`mapper ${this.opts.name}: cannot listen on ${path}: ${err.message}`))
          : resolve(),
      ),
    );
    this.server = server;
    this.log.info({ socket: path, protocol: this.protocol }, `mapper ${this.opts.name} listening`);
  }

  private needModel(m: ApiModule.DeviceModel | undefined, what: string): ApiModule.DeviceModel {
    if (!m?.name) throw new RpcError(this.grpc.status.INVALID_ARGUMENT, `${what}.model.name: required`);
    return m;
  }

  private async waitModel(device: ApiModule.Device): Promise<ApiModule.DeviceModel | undefined> {
    const id = deviceId(device.namespace, device.spec?.deviceModelReference ?? '');
    for (let i = 0; i < 30 && !this.stopped; i++) {
      const m = this.models.get(id);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 100));
    }
    return this.models.get(id);
  }

  private async registerDevice(
    r: ApiModule.RegisterDeviceRequest,
  ): Promise<ApiModule.RegisterDeviceResponse> {
    const d = r.device;
    if (!d?.name)
      throw new RpcError(this.grpc.status.INVALID_ARGUMENT, 'RegisterDeviceRequest.device.name: required');
    const id = deviceId(d.namespace, d.name);
    if (!this.devices.has(id)) await this.addDevice(d, true);
    return { deviceName: d.name, deviceNamespace: d.namespace };
  }

  private async updateDevice(r: ApiModule.UpdateDeviceRequest): Promise<ApiModule.UpdateDeviceResponse> {
    const d = r.device;
    if (!d?.name)
      throw new RpcError(this.grpc.status.INVALID_ARGUMENT, 'UpdateDeviceRequest.device.name: required');
    const id = deviceId(d.namespace, d.name);
    const cur = this.devices.get(id);
    const model = await this.waitModel(d);
    if (cur?.runner && cur.spec && model) {
      const spec = toDeviceSpec(d, model);
      if (sameConnection(cur.spec, spec)) {
        try {
          this.opts.driver.createDevice(spec); // validate the new visitors
        } catch {
          await this.dropDevice(id);
          return this.addDevice(d, true).then(() => ({}));
        }
        cur.proto = d;
        cur.spec = spec;
        await cur.runner.update(spec);
        return {};
      }
    }
    await this.dropDevice(id);
    await this.addDevice(d, true);
    return {};
  }

  private async removeDevice(r: ApiModule.RemoveDeviceRequest): Promise<ApiModule.RemoveDeviceResponse> {
    const id = deviceId(r.deviceNamespace, r.deviceName);
    if (!this.devices.has(id)) throw new RpcError(this.grpc.status.NOT_FOUND, `device ${id} not found`);
    await this.dropDevice(id);
    return {};
  }

  private getDevice(r: ApiModule.GetDeviceRequest): ApiModule.GetDeviceResponse {
    const id = deviceId(r.deviceNamespace, r.deviceName);
    const e = this.devices.get(id);
    if (!e) throw new RpcError(this.grpc.status.NOT_FOUND, `device ${id} not found`);
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
  private async addDevice(d: ApiModule.Device, waitForModel: boolean): Promise<void> {
    const id = deviceId(d.namespace, d.name);
    const model = waitForModel
      ? await this.waitModel(d)
      : this.models.get(deviceId(d.namespace, d.spec?.deviceModelReference ?? ''));
    if (!model) {
      throw new RpcError(
        this.grpc.status.FAILED_PRECONDITION,
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
      throw new RpcError(this.grpc.status.INVALID_ARGUMENT, text);
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

  private callEdgecore<Req>(method: string, req: Req): Promise<unknown> {
    const client = this.client;
    if (!client || this.stopped) return Promise.reject(new Error('mapper stopped'));
    const fn = (client as unknown as Record<string, (...args: unknown[]) => void>)[method];
    return new Promise((resolve, reject) =>
      fn!.call(
        client,
        req,
        new this.grpc.Metadata(),
        { deadline: Date.now() + (this.opts.callTimeoutMs ?? 5000) },
        (err: (Error & { code?: number }) | null, res: unknown) => (err ? reject(err) : resolve(res)),
      ),
    );
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
      res = (await this.callEdgecore('mapperRegister', req)) as ApiModule.MapperRegisterResponse;
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
    for (const d of res.deviceList) {
      const id = deviceId(d.namespace, d.name);
      const cur = this.devices.get(id);
      if (cur && JSON.stringify(cur.proto) === JSON.stringify(d)) continue;
      if (cur) await this.dropDevice(id);
      await this.addDevice(d, false).catch(() => undefined); // logged by addDevice
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
    if (code === this.grpc.status.UNAVAILABLE || code === this.grpc.status.DEADLINE_EXCEEDED)
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
    this.callEdgecore('reportDeviceStatus', req).then(
      () => {
        this.counters.twinReports += twins.length;
        this.reportOk();
      },
      (err: unknown) => this.reportFailed(err, `ReportDeviceStatus of ${device.id}`),
    );
  }

  /** DeviceSink: ReportDeviceStates. */
  state(device: DeviceSpec, state: DeviceState): void {
    this.callEdgecore('reportDeviceStates', {
      deviceName: device.name,
      deviceNamespace: device.namespace,
      state,
    }).then(
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
    if (this.registerTimer) clearTimeout(this.registerTimer);
    await Promise.all([...this.devices.keys()].map((id) => this.dropDevice(id)));
    this.client?.close();
    const server = this.server;
    if (server)
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    rmSync(this.opts.socketPath, { force: true });
  }
}
