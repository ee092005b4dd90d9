/**
 * dmiserver: edgecore's side of DMI v1beta1. Serves DeviceManagerService on `<dmiSockPath>/dmi.sock`
 * (mapper registration, twin and state reports, turned into the messages eventBus would produce for
 * the MQTT topics) and calls each mapper's DeviceMapperService when deviceTwin's devices or models
 * change. KubeEdge runs this inside deviceTwin; here it is a plugin enabled with deviceTwin.
 */
import { lstatSync, mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import {
  DatabaseToken,
  KernelError,
  contentJson,
  definePlugin,
  errorText,
  newMessage,
  type Message,
  type PluginContext,
} from '../../kernel/index.js';
import type { Channel, Client, ServiceImplementation } from 'nice-grpc';
import type * as ApiModule from '../../proto/gen/dmi/v1beta1/api.js';
import {
  BusSource,
  DeviceTwinModuleName,
  DevicesV1alpha2,
  DmiGroup,
  DmiServerModuleName,
  UserGroup,
  deviceModelToV1beta1,
  deviceToV1beta1,
  deviceTopic,
  dmiSocketPath,
  encodeTopicResource,
  validTwinKey,
  validTwinValue,
} from '../../protocol/index.js';
import type { DeadlineOptions } from '../../proto/rpc.js';
import {
  checkObject,
  deviceModelName,
  deviceProtocol,
  deviceToProto,
  modelProtocol,
  modelToProto,
  namespaceOf,
  overrideWithModel,
  sameSpec,
  type CrdObject,
} from './convert.js';

export interface DmiServerConfig {
  enable: boolean;
  dmiSockPath?: string;
  [key: string]: unknown;
}

const CALL_TIMEOUT_MS = 10_000;

/**
 * At most this many mappers are registered (and reloaded at start); a registration beyond it is
 * refused with RESOURCE_EXHAUSTED. KubeEdge has no limit; an edge node runs a handful of mappers.
 */
export const MAX_MAPPERS = 256;

/**
 * KubeEdge limits the three server RPCs to 1 request/s with a burst of 100, shared by every mapper,
 * which rejects most reports of a mapper with more than one device. Here there is no limit unless
 * this variable sets one as `<qps>,<burst>` (`1,100` is KubeEdge's). The edgecore.yaml section
 * `deviceTwin` is KubeEdge's and has no field for it.
 */
export const RATE_LIMIT_ENV = 'KUBEEDGE_DMI_RATE_LIMIT';

export function parseRateLimit(text: string | undefined): { qps: number; burst: number } | undefined {
  if (!text) return undefined;
  const [q, b] = text.split(',').map(Number);
  if (!q || !Number.isFinite(q) || q <= 0) return undefined;
  return { qps: q, burst: Math.max(1, b && Number.isFinite(b) ? b : 1) };
}

type Api = typeof ApiModule;
type Rpc = typeof import('../../proto/rpc.js');
type MapperClient = Client<typeof ApiModule.DeviceMapperServiceDefinition, DeadlineOptions>;

interface MapperRecord {
  name: string;
  version: string;
  apiVersion: string;
  protocol: string;
  address: string;
  state: string;
}

class TokenBucket {
  private tokens: number;
  private last = Date.now();
  constructor(
    private readonly qps: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }
  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.qps);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

class DmiServer {
  readonly devices = new Map<string, CrdObject>();
  readonly models = new Map<string, CrdObject>();
  readonly mappers = new Map<string, MapperRecord>();
  private readonly clients = new Map<string, { address: string; channel: Channel; client: MapperClient }>();
  /** Models each protocol's mapper has been given (so a device never reaches a mapper before its model). */
  private readonly sentModels = new Map<string, Set<string>>();
  private readonly limiter: TokenBucket | undefined;
  private db: import('better-sqlite3').Database | undefined;

  constructor(
    private readonly ctx: PluginContext<DmiServerConfig>,
    private readonly rpc: Rpc,
    private readonly grpc: typeof import('nice-grpc'),
    private readonly api: Api,
  ) {
    const rl = parseRateLimit(process.env[RATE_LIMIT_ENV]);
    if (rl) this.limiter = new TokenBucket(rl.qps, rl.burst);
  }

  // ------------------------------------------------------------------ persistence of mappers

  loadMappers(): void {
    try {
      const db = this.ctx.services.get(DatabaseToken);
      db.exec(
        'CREATE TABLE IF NOT EXISTS dmi_mapper (name TEXT PRIMARY KEY, protocol TEXT NOT NULL, address TEXT NOT NULL, info TEXT NOT NULL)',
      );
      this.db = db;
      // the most recently registered first (INSERT OR REPLACE gives a new rowid)
      const rows = db
        .prepare('SELECT name, info FROM dmi_mapper ORDER BY rowid DESC LIMIT ?')
        .all(MAX_MAPPERS + 1) as { name: string; info: string }[];
      if (rows.length > MAX_MAPPERS) {
        const { n } = db.prepare('SELECT count(*) AS n FROM dmi_mapper').get() as { n: number };
        this.ctx.log.warn(
          { stored: n, limit: MAX_MAPPERS },
          `dmiserver: ${n} mapper registrations stored, only the ${MAX_MAPPERS} most recent are reloaded`,
        );
      }
      for (const row of rows.slice(0, MAX_MAPPERS).reverse()) {
        let rec: MapperRecord;
        try {
          rec = JSON.parse(row.info) as MapperRecord;
        } catch {
          this.ctx.log.warn(
            { mapper: row.name },
            'dmiserver: stored mapper registration unreadable, skipped',
          );
          continue;
        }
        this.mappers.set(rec.name, rec);
        this.setClient(rec.protocol, rec.address);
      }
    } catch (err) {
      this.ctx.log.warn({ err: errorText(err) }, 'dmiserver: mapper registrations are kept in memory only');
    }
  }

  private saveMapper(rec: MapperRecord): void {
    try {
      this.db
        ?.prepare('INSERT OR REPLACE INTO dmi_mapper (name, protocol, address, info) VALUES (?, ?, ?, ?)')
        .run(rec.name, rec.protocol, rec.address, JSON.stringify(rec));
    } catch (err) {
      this.ctx.log.error(
        { err: errorText(err), mapper: rec.name },
        'dmiserver: cannot store mapper registration',
      );
    }
  }

  // ------------------------------------------------------------------ clients of mappers

  private setClient(protocol: string, address: string): void {
    const cur = this.clients.get(protocol);
    if (cur?.address === address) return;
    cur?.channel.close();
    const channel = this.grpc.createChannel(`unix://${address}`);
    const client = this.grpc
      .createClientFactory()
      .use(this.rpc.deadlineMiddleware)
      .create(this.api.DeviceMapperServiceDefinition, channel, { '*': { deadlineMs: CALL_TIMEOUT_MS } });
    this.clients.set(protocol, { address, channel, client });
    this.sentModels.set(protocol, new Set());
  }

  /** Closes the client of a protocol no registered mapper serves any more. */
  private dropUnusedClient(protocol: string): void {
    for (const m of this.mappers.values()) if (m.protocol === protocol) return;
    this.clients.get(protocol)?.channel.close();
    this.clients.delete(protocol);
    this.sentModels.delete(protocol);
  }

  private async call<T>(protocol: string, method: string, fn: (c: MapperClient) => Promise<T>): Promise<T> {
    const entry = this.clients.get(protocol);
    if (!entry) throw new KernelError('EDMI_NO_MAPPER', `fail to get dmi client of protocol ${protocol}`);
    try {
      return await fn(entry.client);
    } catch (err) {
      throw new KernelError(
        'EDMI_MAPPER_CALL',
        `${method} on mapper of protocol ${protocol}: ${err instanceof this.rpc.ClientError ? err.details : errorText(err)}`,
      );
    }
  }

  close(): void {
    for (const { channel } of this.clients.values()) channel.close();
    this.clients.clear();
  }

  // ------------------------------------------------------------------ edge -> mapper (from deviceTwin)

  async onTwinMessage(msg: Message): Promise<void> {
    const op = msg.route.operation ?? '';
    const resource = msg.route.resource ?? '';
    const parts = resource.split('/');
    if (
      parts.length !== 3 ||
      (parts[0] !== 'device' && parts[0] !== 'devicemodel') ||
      !parts[1] ||
      !parts[2]
    ) {
      this.ctx.log.error(
        { resource, operation: op },
        `dmiserver: resource "${resource}": expected device/<namespace>/<name> or devicemodel/<namespace>/<name>`,
      );
      return;
    }
    if (op !== 'insert' && op !== 'update' && op !== 'delete') {
      this.ctx.log.error(
        { resource, operation: op },
        `dmiserver: operation "${op}": expected insert, update or delete`,
      );
      return;
    }
    const kind = parts[0] as 'device' | 'devicemodel';
    const key = `${parts[1]}/${parts[2]}`;
    let content: unknown;
    try {
      content = contentJson(msg);
    } catch (err) {
      this.ctx.log.error({ resource }, `dmiserver: ${errorText(err)}`);
      return;
    }
    if (op === 'delete') {
      if (kind === 'device') await this.deleteDevice(key);
      else await this.deleteModel(key);
      return;
    }
    const problem = checkObject(content, kind);
    if (problem) {
      this.ctx.log.error({ resource, operation: op }, `dmiserver: ${problem}`);
      return;
    }
    const o = content as CrdObject;
    if (!o.metadata.namespace) o.metadata = { ...o.metadata, namespace: parts[1] };
    if (kind === 'device') await this.upsertDevice(key, o);
    else await this.upsertModel(key, o, op);
  }

  private modelOf(device: CrdObject): CrdObject | undefined {
    return this.models.get(`${namespaceOf(device)}/${deviceModelName(device)}`);
  }

  private protocolOfModel(key: string, model: CrdObject): string {
    const p = modelProtocol(model);
    if (p) return p;
    const name = model.metadata.name;
    for (const d of this.devices.values())
      if (`${namespaceOf(d)}/${deviceModelName(d)}` === key || deviceModelName(d) === name)
        return deviceProtocol(d);
    return '';
  }

  private async upsertModel(key: string, raw: CrdObject, op: 'insert' | 'update'): Promise<void> {
    const model = raw.apiVersion === DevicesV1alpha2 ? deviceModelToV1beta1(raw) : raw;
    this.models.set(key, model);
    const protocol = this.protocolOfModel(key, model);
    if (!protocol || !this.clients.has(protocol)) {
      this.ctx.log.debug({ model: key, protocol }, 'dmiserver: no mapper for the model yet');
      return;
    }
    const sent = this.sentModels.get(protocol) as Set<string>;
    const update = op === 'update' && sent.has(key);
    try {
      const req = { model: modelToProto(model) };
      if (update) await this.call(protocol, 'UpdateDeviceModel', (c) => c.updateDeviceModel(req));
      else await this.call(protocol, 'CreateDeviceModel', (c) => c.createDeviceModel(req));
      sent.add(key);
    } catch (err) {
      this.ctx.log.error({ model: key, protocol, err: errorText(err) }, `dmiserver: ${errorText(err)}`);
    }
  }

  private async deleteModel(key: string): Promise<void> {
    const model = this.models.get(key);
    this.models.delete(key);
    if (!model) return;
    const protocol = this.protocolOfModel(key, model);
    const sent = this.sentModels.get(protocol);
    if (!sent?.has(key)) return;
    sent.delete(key);
    const [ns, name] = key.split('/');
    try {
      await this.call(protocol, 'RemoveDeviceModel', (c) =>
        c.removeDeviceModel({ modelName: name, modelNamespace: ns }),
      );
    } catch (err) {
      this.ctx.log.error({ model: key, protocol, err: errorText(err) }, `dmiserver: ${errorText(err)}`);
    }
  }

  /** The device as the mapper gets it (model defaults applied), or an error text. */
  private protoOf(device: CrdObject): ApiModule.Device | string {
    try {
      return deviceToProto(overrideWithModel(device, this.modelOf(device)));
    } catch (err) {
      return errorText(err);
    }
  }

  private async ensureModelSent(protocol: string, device: CrdObject): Promise<void> {
    const key = `${namespaceOf(device)}/${deviceModelName(device)}`;
    const model = this.models.get(key);
    const sent = this.sentModels.get(protocol);
    if (!model || !sent || sent.has(key)) return;
    await this.call(protocol, 'CreateDeviceModel', (c) =>
      c.createDeviceModel({ model: modelToProto(model) }),
    );
    sent.add(key);
  }

  private async upsertDevice(key: string, raw: CrdObject): Promise<void> {
    const warnings: string[] = [];
    const device = raw.apiVersion === DevicesV1alpha2 ? deviceToV1beta1(raw, warnings) : raw;
    for (const w of warnings) this.ctx.log.warn({ device: key }, `dmiserver: device ${key}: ${w}`);
    const old = this.devices.get(key);
    this.devices.set(key, device);
    // an insert of a device known already (the cloud's replay after a cloudcore restart) is an
    // update when its spec changed meanwhile
    if (old && sameSpec(old, device)) return;
    const protocol = deviceProtocol(device);
    const oldProtocol = old ? deviceProtocol(old) : protocol;
    if (old && oldProtocol !== protocol && this.clients.has(oldProtocol)) {
      await this.removeFromMapper(oldProtocol, key);
    }
    if (!this.clients.has(protocol)) {
      this.ctx.log.info(
        { device: key, protocol },
        `dmiserver: no mapper registered for protocol "${protocol}"; device ${key} is sent when one registers`,
      );
      return;
    }
    const pb = this.protoOf(device);
    if (typeof pb === 'string') {
      this.ctx.log.error({ device: key }, `dmiserver: device ${key} cannot be sent to its mapper: ${pb}`);
      return;
    }
    try {
      await this.ensureModelSent(protocol, device);
      if (!old) await this.call(protocol, 'RegisterDevice', (c) => c.registerDevice({ device: pb }));
      else await this.call(protocol, 'UpdateDevice', (c) => c.updateDevice({ device: pb }));
    } catch (err) {
      this.ctx.log.error(
        { device: key, protocol, err: errorText(err) },
        `dmiserver: device ${key}: ${errorText(err)}`,
      );
    }
  }

  private async removeFromMapper(protocol: string, key: string): Promise<void> {
    const [ns, name] = key.split('/');
    try {
      await this.call(protocol, 'RemoveDevice', (c) =>
        c.removeDevice({ deviceName: name, deviceNamespace: ns }),
      );
    } catch (err) {
      this.ctx.log.error(
        { device: key, protocol, err: errorText(err) },
        `dmiserver: device ${key}: ${errorText(err)}`,
      );
    }
  }

  private async deleteDevice(key: string): Promise<void> {
    const old = this.devices.get(key);
    this.devices.delete(key);
    if (!old) return;
    const protocol = deviceProtocol(old);
    if (this.clients.has(protocol)) await this.removeFromMapper(protocol, key);
  }

  // ------------------------------------------------------------------ DeviceManagerService

  private limit(what: string, name: string): void {
    if (this.limiter && !this.limiter.take())
      throw new this.rpc.ServerError(
        this.rpc.Status.RESOURCE_EXHAUSTED,
        `fail to ${what} because of too many request: ${name}`,
      );
  }

  mapperRegister(req: ApiModule.MapperRegisterRequest): ApiModule.MapperRegisterResponse {
    const m = req.mapper;
    this.limit('register mapper', m?.name ?? '');
    const INVALID = this.rpc.Status.INVALID_ARGUMENT;
    if (!m) throw new this.rpc.ServerError(INVALID, 'MapperRegisterRequest.mapper: required');
    if (!m.protocol)
      throw new this.rpc.ServerError(
        INVALID,
        `MapperRegisterRequest.mapper.protocol: required (mapper "${m.name}")`,
      );
    const address = Buffer.from(m.address ?? []).toString('utf8');
    if (!address)
      throw new this.rpc.ServerError(
        INVALID,
        `MapperRegisterRequest.mapper.address: the mapper's unix socket path is required (mapper "${m.name}")`,
      );
    const rec: MapperRecord = {
      name: m.name,
      version: m.version,
      apiVersion: m.apiVersion,
      protocol: m.protocol,
      address,
      state: m.state,
    };
    const previous = this.mappers.get(rec.name);
    if (!previous && this.mappers.size >= MAX_MAPPERS)
      throw new this.rpc.ServerError(
        this.rpc.Status.RESOURCE_EXHAUSTED,
        `mapper "${rec.name}" refused: ${MAX_MAPPERS} mappers are registered already (the limit)`,
      );
    this.mappers.set(rec.name, rec);
    this.saveMapper(rec);
    if (previous && previous.protocol !== rec.protocol) this.dropUnusedClient(previous.protocol);
    // Unlike KubeEdge (which creates no client when withData is false) the mapper is always reachable.
    this.setClient(rec.protocol, address);
    this.sentModels.set(rec.protocol, new Set());
    this.ctx.log.info({ mapper: rec.name, protocol: rec.protocol, address }, 'dmiserver: mapper registered');
    const res: ApiModule.MapperRegisterResponse = { modelList: [], deviceList: [] };
    if (!req.withData) return res;
    const sent = this.sentModels.get(rec.protocol) as Set<string>;
    for (const [key, device] of this.devices) {
      if (deviceProtocol(device) !== rec.protocol) continue;
      const model = this.modelOf(device);
      if (!model) {
        this.ctx.log.warn(
          { device: key },
          `dmiserver: device ${key}: model ${deviceModelName(device)} not known yet, not sent`,
        );
        continue;
      }
      const pb = this.protoOf(device);
      if (typeof pb === 'string') {
        this.ctx.log.error({ device: key }, `dmiserver: device ${key} cannot be sent to its mapper: ${pb}`);
        continue;
      }
      res.deviceList.push(pb);
      res.modelList.push(modelToProto(model));
      sent.add(`${namespaceOf(model)}/${model.metadata.name}`);
    }
    return res;
  }

  async reportDeviceStatus(req: ApiModule.ReportDeviceStatusRequest): Promise<void> {
    this.limit('report device status', req.deviceName);
    const INVALID = this.rpc.Status.INVALID_ARGUMENT;
    if (!req.deviceName)
      throw new this.rpc.ServerError(INVALID, 'ReportDeviceStatusRequest.deviceName: required');
    const twins = req.reportedDevice?.twins ?? [];
    if (twins.length === 0)
      throw new this.rpc.ServerError(INVALID, 'ReportDeviceStatusRequest does not have twin data');
    const ns = req.deviceNamespace || 'default';
    const resource = encodeTopicResource(deviceTopic(`${ns}/${req.deviceName}`, 'twin/update'));
    const sends: Promise<void>[] = [];
    for (const [i, t] of twins.entries()) {
      if (!t.propertyName)
        throw new this.rpc.ServerError(
          INVALID,
          `ReportDeviceStatusRequest.reportedDevice.twins[${i}].propertyName: required`,
        );
    }
    // All twins of one request go to deviceTwin as one update (the same message an MQTT publish of a
    // multi-twin update gives); a twin deviceTwin would refuse (name or value syntax) goes alone, so
    // it is refused alone, as with KubeEdge's one message per twin.
    const batch: Record<string, unknown> = {};
    const alone: Record<string, unknown>[] = [];
    for (const t of twins) {
      const twin: Record<string, unknown> = {};
      if (t.observedDesired) twin.expected = { value: t.observedDesired.value };
      if (t.reported) twin.actual = { value: t.reported.value };
      const ok =
        validTwinKey(t.propertyName) &&
        [t.observedDesired?.value, t.reported?.value].every((v) => !v || validTwinValue(v));
      if (ok) batch[t.propertyName] = twin;
      else alone.push({ [t.propertyName]: twin });
    }
    if (Object.keys(batch).length)
      sends.push(this.toTwin(resource, { event_id: '', timestamp: Date.now(), twin: batch }));
    for (const twin of alone)
      sends.push(this.toTwin(resource, { event_id: '', timestamp: Date.now(), twin }));
    await Promise.all(sends);
  }

  async reportDeviceStates(req: ApiModule.ReportDeviceStatesRequest): Promise<void> {
    this.limit('report device states', req.deviceName);
    const INVALID = this.rpc.Status.INVALID_ARGUMENT;
    if (!req.deviceName)
      throw new this.rpc.ServerError(INVALID, 'ReportDeviceStatesRequest.deviceName: required');
    if (!req.state)
      throw new this.rpc.ServerError(
        INVALID,
        `ReportDeviceStatesRequest.state: required (device ${req.deviceName})`,
      );
    const ns = req.deviceNamespace || 'default';
    const topic = deviceTopic(`${ns}/${req.deviceName}`, 'state/update');
    await this.toTwin(encodeTopicResource(topic), { event_id: '', timestamp: Date.now(), State: req.state });
  }

  private async toTwin(resource: string, payload: unknown): Promise<void> {
    const msg = newMessage(
      { source: BusSource, group: UserGroup, operation: 'response', resource },
      JSON.stringify(payload),
    );
    try {
      await this.ctx.send(DeviceTwinModuleName, msg);
    } catch (err) {
      throw new this.rpc.ServerError(
        this.rpc.Status.UNAVAILABLE,
        `deviceTwin cannot take the report: ${errorText(err)}`,
      );
    }
  }

  /** DeviceManagerService. */
  service(): ServiceImplementation<typeof ApiModule.DeviceManagerServiceDefinition> {
    return {
      mapperRegister: async (r) => this.mapperRegister(r),
      reportDeviceStatus: async (r) => {
        await this.reportDeviceStatus(r);
        return {};
      },
      reportDeviceStates: async (r) => {
        await this.reportDeviceStates(r);
        return {};
      },
    };
  }
}

/**
 * Makes the socket path free to listen on: nothing there, or a stale socket (nobody answers) that
 * is removed. A socket someone listens on, a regular file or anything else is refused.
 */
export async function freeSocketPath(socket: string): Promise<void> {
  let st;
  try {
    st = lstatSync(socket);
  } catch {
    return; // nothing there
  }
  const where = `${socket} (modules.deviceTwin.dmiSockPath)`;
  if (!st.isSocket())
    throw new KernelError(
      'EDMI_SOCKET_PATH',
      `dmiserver: ${where} exists and is not a socket but a ${st.isFile() ? 'regular file' : st.isDirectory() ? 'directory' : 'special file'}: ` +
        'it is left alone; move it away or point dmiSockPath at another directory',
    );
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(socket);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live)
    throw new KernelError(
      'EDMI_SOCKET_IN_USE',
      `dmiserver: ${where} is in use: another edgecore (or program) listens on it; stop it or point dmiSockPath elsewhere`,
    );
  rmSync(socket, { force: true });
}

export default definePlugin<DmiServerConfig>({
  name: DmiServerModuleName,
  group: DmiGroup,
  configKey: 'deviceTwin',
  async start(ctx) {
    const rpc = await import('../../proto/rpc.js');
    const { grpc } = rpc;
    const api = await import('../../proto/gen/dmi/v1beta1/api.js');
    const socket = dmiSocketPath(ctx.config.dmiSockPath);
    mkdirSync(dirname(socket), { recursive: true, mode: 0o750 });
    await freeSocketPath(socket);
    const dmi = new DmiServer(ctx, rpc, grpc, api);
    dmi.loadMappers();
    const server = grpc
      .createServer()
      .use(
        rpc.refusals((method, err) => ctx.log.warn({ method, err }, `dmiserver: request refused: ${err}`)),
      );
    server.add(api.DeviceManagerServiceDefinition, dmi.service());
    try {
      await server.listen(`unix://${socket}`);
    } catch (err) {
      dmi.close();
      throw new KernelError(
        'EDMI_LISTEN',
        `dmiserver: cannot listen on unix socket ${socket}: ${errorText(err)}`,
      );
    }
    ctx.log.info({ socket }, 'dmiserver: DeviceManagerService listening');
    return {
      async onMessage(msg) {
        if (msg.route.group === DmiGroup || msg.route.source === DeviceTwinModuleName) {
          await dmi.onTwinMessage(msg);
          return;
        }
        ctx.log.warn(
          { source: msg.route.source, resource: msg.route.resource },
          'dmiserver: message not from deviceTwin ignored',
        );
      },
      async stop() {
        dmi.close();
        await rpc.shutdown(server, 2000);
        rmSync(socket, { force: true });
      },
    };
  },
});
