/**
 * The device twin state machine (spec edge-modules §5.4–§5.7): devices, attributes and twins in
 * memory, mirrored in SQLite; each event returns what to publish over MQTT and what to send to the
 * cloud. No I/O besides the store; the plugin (index.ts) does the messaging.
 */
import { randomUUID } from 'node:crypto';
import {
  DeviceETPrefix,
  ErrTwinKey,
  ErrTwinValue,
  NodeETPrefix,
  deviceTopic,
  nodeTopic,
  validTwinKey,
  validTwinValue,
} from '../../protocol/index.js';
import type { AttrRow, ChangeSet, DeviceRow, TwinCols, TwinRow, TwinStore } from './store.js';
import {
  ERR_NO_TWIN,
  ERR_UNMARSHAL,
  PayloadError,
  encodeAttr,
  encodeMsgTwin,
  field,
  jsonNumber,
  msgTwinJson,
  parseBase,
  parseDeviceList,
  parseTwinMap,
  sortedMap,
  sortedMapJson,
  validateValue,
  type MsgAttr,
  type MsgTwin,
  type ParsedDevice,
  type TwinValue,
  type TwinVersion,
} from './types.js';

/** Largest MQTT payload deviceTwin accepts (KubeEdge has no limit; values are <= 512 bytes anyway). */
export const MAX_PAYLOAD_BYTES = 1 << 20;
/** Twins one device may have (rows of `device_twin`, deleted ones included); KubeEdge has no bound. */
export const MAX_TWINS_PER_DEVICE = 1024;

export interface Publication {
  topic: string;
  payload: string;
}
export interface CloudSend {
  operation: string;
  resource: string;
  content: unknown;
}
export interface Outcome {
  publish: Publication[];
  /** What to publish instead when the batched write of this outcome fails (500). */
  onWriteFailure?: () => Publication[];
  cloud: CloudSend[];
  /** Devices whose membership changed (for DMI). */
  added?: string[];
  removed?: string[];
}

interface TwinState {
  description: string;
  expected?: { value: string; ts?: number };
  actual?: { value: string; ts?: number };
  /** Sides that were set to NULL by a delete keep an empty TwinValue, as in Go. */
  expectedCleared?: boolean;
  actualCleared?: boolean;
  optional: boolean;
  type: string;
  metadata: string;
  expectedVersion?: TwinVersion;
  actualVersion?: TwinVersion;
}
interface AttrState {
  description: string;
  value: string;
  optional: boolean;
  type: string;
  metadata: string;
}
export interface DeviceState {
  id: string;
  name: string;
  description: string;
  state: string;
  lastOnline: string;
  attrs: Map<string, AttrState>;
  twins: Map<string, TwinState>;
  /** Its twin update topics, once built (deviceTopics). */
  topics?: { result: string; document: string; delta: string };
}

const json = (v: unknown): string => JSON.stringify(v);
const SIDES = ['expected', 'actual'] as const;
/** The field and column names of each side of a twin. */
const SIDE_KEYS = {
  expected: {
    version: 'expectedVersion',
    cleared: 'expectedCleared',
    meta: 'expected_meta',
    versionCol: 'expected_version',
  },
  actual: {
    version: 'actualVersion',
    cleared: 'actualCleared',
    meta: 'actual_meta',
    versionCol: 'actual_version',
  },
} as const;
/** UTF-8 length > MAX_PAYLOAD_BYTES (a string of n UTF-16 units has at most 3n bytes). */
const tooLarge = (payload: string): boolean =>
  payload.length * 3 > MAX_PAYLOAD_BYTES && Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES;
/** `JSON.stringify({timestamp})` / `JSON.stringify({cloud, edge})` without the generic walk. */
const metaJson = (ts: number | undefined): string =>
  ts === undefined ? '{}' : `{"timestamp":${jsonNumber(ts)}}`;
const versionJson = (v: TwinVersion): string =>
  `{"cloud":${jsonNumber(v.cloud)},"edge":${jsonNumber(v.edge)}}`;
const parseJson = <T>(text: string | null | undefined): T | undefined => {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
};

function toMsgTwin(t: TwinState): MsgTwin {
  const out: MsgTwin = {};
  if (t.expected) out.expected = sideValue(t.expected);
  else if (t.expectedCleared) out.expected = {};
  if (t.actual) out.actual = sideValue(t.actual);
  else if (t.actualCleared) out.actual = {};
  out.optional = t.optional;
  out.metadata = { type: t.type };
  // version objects are replaced, never changed in place: shared, not copied
  if (t.expectedVersion) out.expected_version = t.expectedVersion;
  if (t.actualVersion) out.actual_version = t.actualVersion;
  return out;
}

const sideValue = (v: { value: string; ts?: number }): TwinValue =>
  v.ts ? { value: v.value, metadata: { timestamp: v.ts } } : { value: v.value };

/** A twin/update/document entry: `{"last":…,"current":…}`. */
const documentJson = (last: MsgTwin | null, current: MsgTwin | null): string =>
  `{"last":${last ? msgTwinJson(last, false) : 'null'},"current":${current ? msgTwinJson(current, false) : 'null'}}`;

/** The result, document and delta topics of a device's twin updates, built once per device. */
function deviceTopics(d: DeviceState): { result: string; document: string; delta: string } {
  return (d.topics ??= {
    result: deviceTopic(d.id, 'twin/update/result'),
    document: deviceTopic(d.id, 'twin/update/document'),
    delta: deviceTopic(d.id, 'twin/update/delta'),
  });
}

/**
 * The backup of a twin an update is about to change. Shallow: an update replaces the twin's value
 * and version objects, it never changes them in place.
 */
function cloneTwin(t: TwinState): TwinState {
  return { ...t };
}

function base(eventId: string, now: number): { event_id: string; timestamp: number } {
  return { event_id: eventId, timestamp: now };
}

const errorResult = (eventId: string, code: number, reason: string): string =>
  json({ event_id: eventId, timestamp: Date.now(), code, reason });

/** UTC RFC 3339 with second precision, as Go's time.Now().UTC().Format(time.RFC3339). */
export const rfc3339 = (d = new Date()): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

const VALID_STATES = new Set(['online', 'offline', 'ok', 'unknown', 'unhealthy']);

/** Split `$hw/events/device/<ns>/<name>/<suffix>` or `$hw/events/node/<node>/<suffix>`. */
export function classifyTopic(
  topic: string,
): { kind: 'device'; id: string; suffix: string } | { kind: 'node'; node: string; suffix: string } | null {
  if (topic.startsWith(DeviceETPrefix)) {
    const parts = topic.slice(DeviceETPrefix.length).split('/');
    if (parts.length < 3) return null;
    return { kind: 'device', id: `${parts[0]}/${parts[1]}`, suffix: parts.slice(2).join('/') };
  }
  if (topic.startsWith(NodeETPrefix)) {
    const parts = topic.slice(NodeETPrefix.length).split('/');
    if (parts.length < 2) return null;
    return { kind: 'node', node: parts[0] ?? '', suffix: parts.slice(1).join('/') };
  }
  return null;
}

export class TwinEngine {
  readonly devices = new Map<string, DeviceState>();

  constructor(
    private readonly store: TwinStore,
    private readonly nodeName: string,
    private readonly persist: (c: ChangeSet) => void = (c) => store.apply(c),
    /** Are cloud-bound messages wanted (is there an edgeHub to take them)? Asked per event. */
    private readonly toCloud: () => boolean = () => true,
  ) {
    this.reload();
  }

  /** (Re)load every device from the database (at start, and after a failed write). */
  reload(): void {
    this.devices.clear();
    const { devices, attrs, twins } = this.store.loadAll();
    for (const d of devices) {
      this.devices.set(d.id, {
        id: d.id,
        name: d.name ?? '',
        description: d.description ?? '',
        state: d.state ?? '',
        lastOnline: d.last_online ?? '',
        attrs: new Map(),
        twins: new Map(),
      });
    }
    for (const a of attrs) {
      this.devices.get(a.deviceid)?.attrs.set(a.name, {
        description: a.description ?? '',
        value: a.value ?? '',
        optional: a.optional,
        type: a.attr_type ?? 'string',
        metadata: a.metadata ?? '',
      });
    }
    for (const t of twins) {
      const em = parseJson<{ timestamp?: number }>(t.expected_meta);
      const am = parseJson<{ timestamp?: number }>(t.actual_meta);
      this.devices.get(t.deviceid)?.twins.set(t.name, {
        description: t.description ?? '',
        ...(t.expected ? { expected: { value: t.expected, ts: em?.timestamp } } : {}),
        ...(t.actual ? { actual: { value: t.actual, ts: am?.timestamp } } : {}),
        optional: t.optional,
        type: t.attr_type ?? 'string',
        metadata: t.metadata ?? '',
        expectedVersion: parseJson<TwinVersion>(t.expected_version),
        actualVersion: parseJson<TwinVersion>(t.actual_version),
      });
    }
  }

  private topic(id: string, suffix: string): string {
    return deviceTopic(id, suffix);
  }

  // ---------------------------------------------------------------------------------------------
  // §5.4 twin update from the edge (RestDealType)

  twinUpdate(deviceId: string, payload: string): Outcome {
    const out: Outcome = { publish: [], cloud: [] };
    if (tooLarge(payload)) {
      out.publish.push({
        topic: this.topic(deviceId, 'twin/update/result'),
        payload: errorResult(
          '',
          400,
          `payload too large: ${Buffer.byteLength(payload)} bytes, at most ${MAX_PAYLOAD_BYTES}`,
        ),
      });
      return out;
    }
    let body: Record<string, unknown>;
    let twins: Map<string, MsgTwin | null> | undefined;
    let eventId: string;
    try {
      const parsed: unknown = JSON.parse(payload);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        return this.payloadError(out, ERR_UNMARSHAL);
      body = parsed as Record<string, unknown>;
      eventId = parseBase(body).event_id;
      twins = parseTwinMap(field(body, 'twin'), 'twin');
    } catch {
      return this.payloadError(out, ERR_UNMARSHAL);
    }
    if (!twins) return this.payloadError(out, ERR_NO_TWIN);
    for (const [k, t] of twins) {
      if (!validTwinKey(k)) return this.payloadError(out, ErrTwinKey);
      for (const side of [t?.expected, t?.actual]) {
        if (side?.value && !validTwinValue(side.value)) return this.payloadError(out, ErrTwinValue);
      }
    }
    const device = this.devices.get(deviceId);
    if (!device) {
      out.publish.push({
        topic: this.topic(deviceId, 'twin/update/result'),
        payload: errorResult(eventId, 404, 'update rejected due to the device is not existed'),
      });
      return out;
    }
    let added = 0;
    for (const k of twins.keys()) if (!device.twins.has(k)) added++;
    if (device.twins.size + added > MAX_TWINS_PER_DEVICE) {
      out.publish.push({
        topic: this.topic(deviceId, 'twin/update/result'),
        payload: errorResult(
          eventId,
          400,
          `Update twin error, device ${deviceId} would have ${device.twins.size + added} twins, at most ${MAX_TWINS_PER_DEVICE}`,
        ),
      });
      return out;
    }
    // KubeEdge's worker crashes on a side object without a value; reject it instead (README).
    for (const [k, t] of twins) {
      for (const side of SIDES) {
        const v = t?.[side];
        if (v && (v.value === undefined || v.value === null)) {
          out.publish.push({
            topic: this.topic(deviceId, 'twin/update/result'),
            payload: errorResult(eventId, 400, `Update twin error, twin.${k}.${side} has no value`),
          });
          return out;
        }
      }
    }
    return this.dealTwins(device, eventId, twins, out);
  }

  /** Payload-level failures are published with an empty device ID and event_id, as KubeEdge does. */
  private payloadError(out: Outcome, reason: string): Outcome {
    out.publish.push({ topic: this.topic('', 'twin/update/result'), payload: errorResult('', 400, reason) });
    return out;
  }

  private dealTwins(
    device: DeviceState,
    eventId: string,
    twins: Map<string, MsgTwin | null>,
    out: Outcome,
  ): Outcome {
    const now = Date.now();
    // Copy-on-write backup of the twins this event touches (twin undefined: it did not exist).
    const backup: { key: string; twin: TwinState | undefined }[] = [];
    // the result's twins (deleted ones left out), the document's entries as JSON text
    const result = new Map<string, MsgTwin | null>();
    const sync = this.toCloud() ? new Map<string, MsgTwin>() : undefined;
    const document = new Map<string, string>();
    const change: ChangeSet = { addTwins: [], updateTwins: [] };

    for (const [key, msg] of twins) {
      const twin = device.twins.get(key);
      if (!twin) {
        if (!msg) continue; // KubeEdge: "The request body is wrong"; nothing to add
        const type = msg.metadata ? (msg.metadata.type ?? '') : 'string';
        const added: TwinState = {
          description: '',
          optional: msg.optional ?? true,
          type,
          metadata: msg.metadata ? '{}' : '',
        };
        for (const side of SIDES) {
          const v = msg[side];
          if (!v) continue;
          const err = validateValue(type, v.value as string);
          if (err) return this.rollback(device, backup, eventId, 400, err, out);
          added[side] = { value: v.value as string, ts: now };
          added[side === 'expected' ? 'expectedVersion' : 'actualVersion'] = { cloud: 0, edge: 1 };
        }
        backup.push({ key, twin: undefined });
        device.twins.set(key, added);
        change.addTwins!.push(this.twinRow(device.id, key, added));
        const current = toMsgTwin(added);
        document.set(key, documentJson(null, type === 'deleted' ? null : current));
        sync?.set(key, current);
        if (type !== 'deleted') result.set(key, current);
        continue;
      }
      if (msg === null) {
        // delete (only optional twins; an already deleted one stays as it is)
        if (!twin.optional || twin.type === 'deleted') continue;
        backup.push({ key, twin: cloneTwin(twin) });
        const last = toMsgTwin(twin);
        const cols: TwinCols = {};
        let changed = false;
        for (const side of SIDES) {
          const k = SIDE_KEYS[side];
          const version = twin[k.version];
          if (!version) continue;
          twin[k.version] = { ...version, edge: version.edge + 1 };
          cols[k.versionCol] = versionJson(twin[k.version]!);
          cols.attr_type = 'deleted';
          cols[k.meta] = null;
          cols[side] = null;
          twin[side] = undefined;
          twin[k.cleared] = true;
          twin.type = 'deleted';
          changed = true;
        }
        if (!changed) continue;
        change.updateTwins!.push({ deviceid: device.id, name: key, cols });
        document.set(key, documentJson(last, null));
        sync?.set(key, toMsgTwin(twin));
        result.set(key, null);
        continue;
      }
      // compare
      const before = cloneTwin(twin);
      backup.push({ key, twin: before });
      const valueType = twin.type === 'deleted' ? (msg.metadata?.type ?? 'string') : twin.type;
      const cols: TwinCols = {};
      const s: MsgTwin = {};
      let changed = false;
      for (const side of SIDES) {
        const v = msg[side];
        if (!v) continue;
        const value = v.value as string;
        const err = validateValue(valueType, value);
        if (err) return this.rollback(device, backup, eventId, 400, err, out);
        // value and version objects are replaced, never changed in place (see cloneTwin)
        const meta = metaJson(now);
        const k = SIDE_KEYS[side];
        const old = twin[k.version];
        const version = { cloud: old?.cloud ?? 0, edge: (old?.edge ?? 0) + 1 };
        twin[k.version] = version;
        twin[side] = { value, ts: now };
        twin[k.cleared] = false;
        cols[side] = value;
        cols[k.meta] = meta;
        cols[k.versionCol] = versionJson(version);
        s[side] = { value, metadata: { timestamp: now } };
        s[k.versionCol] = version;
        s.optional = twin.optional;
        s.metadata ??= { type: twin.type };
        changed = true;
      }
      if (
        msg.optional !== undefined &&
        msg.optional !== null &&
        msg.optional !== twin.optional &&
        twin.optional
      ) {
        twin.optional = msg.optional;
        cols.optional = msg.optional;
        s.optional = msg.optional;
        changed = true;
      }
      if (msg.metadata) {
        if (msg.metadata.type !== twin.type) {
          cols.metadata = '{}';
          if (twin.type === 'deleted') {
            twin.type = msg.metadata.type ?? '';
            cols.attr_type = twin.type;
            s.metadata = { type: twin.type };
          }
          twin.metadata = '{}';
          changed = true;
        }
      } else if (twin.type === 'deleted') {
        twin.type = 'string';
        cols.attr_type = 'string';
        s.metadata = { type: 'string' };
        changed = true;
      }
      if (!changed) continue;
      if (s.metadata && twin.type !== 'deleted' && s.metadata.type !== twin.type)
        s.metadata = { type: twin.type };
      change.updateTwins!.push({ deviceid: device.id, name: key, cols });
      document.set(key, documentJson(before.type === 'deleted' ? null : toMsgTwin(before), toMsgTwin(twin)));
      sync?.set(key, s);
      if (s.metadata?.type !== 'deleted') result.set(key, s);
    }

    const topics = deviceTopics(device);
    if (change.addTwins!.length > 0 || change.updateTwins!.length > 0) {
      out.onWriteFailure = () => [
        {
          topic: topics.result,
          payload: errorResult(eventId, 500, 'Update device twin failed due to writing sql error'),
        },
      ];
      try {
        this.persist(change);
      } catch (err) {
        return this.rollback(
          device,
          backup,
          eventId,
          500,
          `Update device twin failed due to writing sql error: ${(err as Error).message}`,
          out,
        );
      }
    }
    const head = `{"event_id":${json(eventId)},"timestamp":${now},"twin":`;
    out.publish.push({
      topic: topics.result,
      payload: head + sortedMapJson(result, (v) => (v ? msgTwinJson(v, false) : 'null')) + '}',
    });
    if (document.size > 0) {
      out.publish.push({
        topic: topics.document,
        payload: head + sortedMapJson(document, (d) => d) + '}',
      });
    }
    const delta = this.delta(device);
    if (delta) out.publish.push({ topic: topics.delta, payload: delta });
    if (sync && sync.size > 0) {
      out.cloud.push({
        operation: 'update',
        resource: `device/${device.id}/twin/edge_updated`,
        content: {
          event_id: randomUUID(),
          timestamp: Date.now(),
          twin: sortedMap(sync, (v) => encodeMsgTwin(v, true)),
        },
      });
    }
    return out;
  }

  /** Undo an update's changes to the twins it touched and publish its error result. */
  private rollback(
    device: DeviceState,
    backup: { key: string; twin: TwinState | undefined }[],
    eventId: string,
    code: number,
    reason: string,
    out: Outcome,
  ): Outcome {
    for (const { key, twin } of backup) {
      if (twin) device.twins.set(key, twin);
      else device.twins.delete(key);
    }
    out.publish.push({ topic: deviceTopics(device).result, payload: errorResult(eventId, code, reason) });
    return out;
  }

  private twinRow(deviceid: string, name: string, t: TwinState): TwinRow {
    return {
      deviceid,
      name,
      description: t.description,
      expected: t.expected?.value ?? null,
      actual: t.actual?.value ?? null,
      expected_meta: t.expected ? metaJson(t.expected.ts) : null,
      actual_meta: t.actual ? metaJson(t.actual.ts) : null,
      expected_version: t.expectedVersion ? versionJson(t.expectedVersion) : null,
      actual_version: t.actualVersion ? versionJson(t.actualVersion) : null,
      optional: t.optional,
      attr_type: t.type,
      metadata: t.metadata,
    };
  }

  /** The delta document over the whole twin set, or null when no expected value differs. */
  private delta(device: DeviceState): string | null {
    // most devices have no expected value differing from the actual one: no allocation then
    let differs = false;
    for (const t of device.twins.values()) {
      const expected = t.expected?.value ?? '';
      if (t.type !== 'deleted' && expected !== '' && expected !== (t.actual?.value ?? '')) {
        differs = true;
        break;
      }
    }
    if (!differs) return null;
    const twin = new Map<string, MsgTwin>();
    const delta = new Map<string, string>();
    for (const [k, t] of device.twins) {
      if (t.type === 'deleted') continue;
      const expected = t.expected?.value ?? '';
      if (expected === '') continue;
      if (expected !== (t.actual?.value ?? '')) delta.set(k, expected);
      twin.set(k, toMsgTwin(t));
    }
    return json({
      event_id: randomUUID(),
      timestamp: Date.now(),
      twin: sortedMap(twin, (v) => encodeMsgTwin(v, false)),
      delta: sortedMap(delta, (v) => v),
    });
  }

  // ---------------------------------------------------------------------------------------------
  // §5.5 twin get

  twinGet(deviceId: string, payload: string): Outcome {
    const out: Outcome = { publish: [], cloud: [] };
    const topic = this.topic(deviceId, 'twin/get/result');
    let eventId: string;
    try {
      if (tooLarge(payload)) throw new PayloadError('payload', `at most ${MAX_PAYLOAD_BYTES} bytes`);
      const parsed: unknown = JSON.parse(payload);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new PayloadError('payload', 'an object');
      eventId = parseBase(parsed as Record<string, unknown>).event_id;
    } catch (err) {
      out.publish.push({
        topic,
        payload: errorResult(
          '',
          400,
          `Unmarshal twin info ${payload.slice(0, 256)} failed , err: ${(err as Error).message}`,
        ),
      });
      return out;
    }
    const device = this.devices.get(deviceId);
    if (!device) {
      out.publish.push({
        topic,
        payload: errorResult(eventId, 404, `Device ${deviceId} not found while getting twin`),
      });
      return out;
    }
    const twins = new Map<string, MsgTwin>();
    for (const [k, t] of device.twins) if (t.type !== 'deleted') twins.set(k, toMsgTwin(t));
    out.publish.push({
      topic,
      payload: json({ ...base(eventId, Date.now()), twin: sortedMap(twins, (v) => encodeMsgTwin(v, false)) }),
    });
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // §5.6 device state update

  stateUpdate(deviceId: string, payload: string): Outcome & { ignored?: string } {
    const out: Outcome & { ignored?: string } = { publish: [], cloud: [] };
    let state: string;
    try {
      if (tooLarge(payload)) throw new PayloadError('payload', `at most ${MAX_PAYLOAD_BYTES} bytes`);
      const parsed: unknown = JSON.parse(payload);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new PayloadError('payload', 'an object');
      parseBase(parsed as Record<string, unknown>);
      const s = field(parsed as Record<string, unknown>, 'state');
      if (s !== undefined && s !== null && typeof s !== 'string') throw new PayloadError('state', 'a string');
      state = (s as string | undefined) ?? '';
    } catch (err) {
      out.ignored = `bad payload: ${(err as Error).message}`;
      return out;
    }
    const device = this.devices.get(deviceId);
    if (!device) {
      out.ignored = `unknown device ${deviceId}`;
      return out;
    }
    const lower = state.toLowerCase();
    if (!VALID_STATES.has(lower)) {
      out.ignored = `state ${JSON.stringify(state)} is not one of online, offline, ok, unknown, unhealthy`;
      return out;
    }
    const lastOnline = lower === 'online' || lower === 'ok' ? rfc3339() : '';
    this.persist({ deviceState: [{ id: deviceId, state, last_online: lastOnline }] });
    device.state = state;
    device.lastOnline = lastOnline;
    const dev: Record<string, string> = {};
    if (device.name) dev.name = device.name;
    if (state) dev.state = state;
    if (lastOnline) dev.lastOnlineTime = lastOnline;
    const text = json({ event_id: randomUUID(), timestamp: Date.now(), device: dev });
    out.publish.push({ topic: this.topic(deviceId, 'state/update/result'), payload: text });
    if (this.toCloud())
      out.cloud.push({ operation: 'update', resource: `device/${deviceId}/state/update`, content: text });
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // §5.7 membership

  private encodeDevice(d: DeviceState | ParsedDevice, withTwin: boolean): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    if (d.id) out.id = d.id;
    if (d.name) out.name = d.name;
    if (d.description) out.description = d.description;
    if (d.state) out.state = d.state;
    if ('lastOnline' in d && d.lastOnline) out.last_online = d.lastOnline;
    if ('attrs' in d) {
      if (d.attrs.size > 0)
        out.attributes = sortedMap(d.attrs, (a) =>
          encodeAttr({ value: a.value, optional: a.optional, metadata: { type: a.type } }),
        );
      if (withTwin && d.twins.size > 0)
        out.twin = sortedMap(d.twins, (t) => encodeMsgTwin(toMsgTwin(t), false));
    } else {
      if (d.attributes && d.attributes.size > 0)
        out.attributes = sortedMap(d.attributes, (a) => (a ? encodeAttr(a) : null));
      if (withTwin && d.twin && d.twin.size > 0)
        out.twin = sortedMap(d.twin, (t) =>
          t && t.metadata?.type !== 'deleted' ? encodeMsgTwin(t, false) : null,
        );
    }
    return out;
  }

  membershipGet(payload: string): Outcome & { ignored?: string } {
    const out: Outcome & { ignored?: string } = { publish: [], cloud: [] };
    let eventId: string;
    try {
      const parsed: unknown = JSON.parse(payload);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new PayloadError('payload', 'an object');
      eventId = parseBase(parsed as Record<string, unknown>).event_id;
    } catch (err) {
      out.ignored = `bad membership/get payload: ${(err as Error).message}`;
      return out;
    }
    const devices = [...this.devices.values()].map((d) => this.encodeDevice(d, false));
    out.publish.push({
      topic: nodeTopic(this.nodeName, 'membership/get/result'),
      payload: json({ ...base(eventId, Date.now()), devices }),
    });
    return out;
  }

  /** Cloud → edge `membership` update: `{added_devices, removed_devices}`. Throws PayloadError. */
  membershipUpdate(content: unknown): Outcome {
    if (typeof content !== 'object' || content === null || Array.isArray(content))
      throw new PayloadError('content', 'an object {event_id, timestamp, added_devices, removed_devices}');
    const body = content as Record<string, unknown>;
    parseBase(body);
    const added = parseDeviceList(field(body, 'added_devices'), 'added_devices') ?? [];
    const removed = parseDeviceList(field(body, 'removed_devices'), 'removed_devices') ?? [];
    return this.applyMembership(added, removed);
  }

  /** Cloud → edge `membership/detail` result: the complete device set of this node. */
  membershipDetail(content: unknown): Outcome {
    if (typeof content !== 'object' || content === null || Array.isArray(content))
      throw new PayloadError('content', 'an object {event_id, timestamp, devices}');
    const devices = parseDeviceList(field(content as Record<string, unknown>, 'devices'), 'devices') ?? [];
    const keep = new Set(devices.map((d) => d.id));
    const removed = [...this.devices.values()]
      .filter((d) => !keep.has(d.id))
      .map((d) => ({ id: d.id }) as ParsedDevice);
    return this.applyMembership(devices, removed);
  }

  private applyMembership(added: ParsedDevice[], removed: ParsedDevice[]): Outcome {
    const out: Outcome = { publish: [], cloud: [], added: [], removed: [] };
    const change: ChangeSet = {
      addDevices: [],
      deleteDevices: [],
      addAttrs: [],
      deleteAttrs: [],
      addTwins: [],
    };
    const newDevices: DeviceState[] = [];
    const addedEntries: Record<string, unknown>[] = [];
    for (const d of added) {
      if (!d.id) throw new PayloadError('added_devices[].id', 'a device ID "<namespace>/<name>"');
      const existing = this.devices.get(d.id);
      if (existing) {
        // merge: name/description and the attributes of the message (missing attributes deleted)
        existing.name = d.name || existing.name;
        existing.description = d.description;
        change.addDevices!.push(this.deviceRow(existing));
        if (d.attributes) this.replaceAttrs(existing, d.attributes, change);
        continue;
      }
      const dev: DeviceState = {
        id: d.id,
        name: d.name,
        description: d.description,
        state: d.state,
        lastOnline: d.lastOnline,
        attrs: new Map(),
        twins: new Map(),
      };
      if (d.attributes) this.replaceAttrs(dev, d.attributes, change);
      const now = Date.now();
      for (const [k, t] of d.twin ?? []) {
        if (!t || !validTwinKey(k)) continue;
        const type = t.metadata?.type ?? 'string';
        const ts: TwinState = {
          description: '',
          optional: t.optional ?? true,
          type,
          metadata: t.metadata ? '{}' : '',
        };
        if (t.expected?.value && !validateValue(type, t.expected.value)) {
          ts.expected = { value: t.expected.value, ts: t.expected.metadata?.timestamp ?? now };
          ts.expectedVersion = t.expected_version ?? { cloud: 1, edge: 0 };
        }
        if (t.actual?.value && !validateValue(type, t.actual.value)) {
          ts.actual = { value: t.actual.value, ts: t.actual.metadata?.timestamp ?? now };
          ts.actualVersion = t.actual_version ?? { cloud: 1, edge: 0 };
        }
        dev.twins.set(k, ts);
        change.addTwins!.push(this.twinRow(dev.id, k, ts));
      }
      change.addDevices!.push(this.deviceRow(dev));
      newDevices.push(dev);
      addedEntries.push(this.encodeDevice(d, true));
      out.added!.push(dev.id);
    }
    const removedEntries: Record<string, unknown>[] = [];
    for (const d of removed) {
      if (!this.devices.has(d.id)) continue;
      change.deleteDevices!.push(d.id);
      removedEntries.push(this.encodeDevice(d, false));
      out.removed!.push(d.id);
    }
    this.persist(change);
    for (const dev of newDevices) this.devices.set(dev.id, dev);
    for (const id of out.removed!) this.devices.delete(id);
    if (addedEntries.length > 0 || removedEntries.length > 0) {
      out.publish.push({
        topic: nodeTopic(this.nodeName, 'membership/updated'),
        payload: json({
          event_id: randomUUID(),
          timestamp: Date.now(),
          added_devices: addedEntries.length > 0 ? addedEntries : null,
          removed_devices: removedEntries.length > 0 ? removedEntries : null,
        }),
      });
    }
    return out;
  }

  private replaceAttrs(dev: DeviceState, attrs: Map<string, MsgAttr | null>, change: ChangeSet): void {
    for (const name of dev.attrs.keys()) change.deleteAttrs!.push({ deviceid: dev.id, name });
    dev.attrs.clear();
    for (const [name, a] of attrs) {
      if (!a) continue;
      const st: AttrState = {
        description: '',
        value: a.value,
        optional: a.optional ?? true,
        type: a.metadata?.type ?? 'string',
        metadata: '{}',
      };
      dev.attrs.set(name, st);
      const row: AttrRow = {
        deviceid: dev.id,
        name,
        description: '',
        value: st.value,
        optional: st.optional,
        attr_type: st.type,
        metadata: st.metadata,
      };
      change.addAttrs!.push(row);
    }
  }

  private deviceRow(d: DeviceState): DeviceRow {
    return { id: d.id, name: d.name, description: d.description, state: d.state, last_online: d.lastOnline };
  }
}
