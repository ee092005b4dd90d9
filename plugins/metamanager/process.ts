import { randomUUID } from 'node:crypto';
import {
  type CloudConnection,
  type Message,
  type PluginContext,
  errorText,
  isKernelError,
  KernelError,
  newErrorMessage,
  newResponse,
  parseResource,
} from '../../kernel/index.js';
import {
  DeviceControllerModuleName,
  DeviceTwinModuleName,
  DynamicControllerModuleName,
  EdgeControllerModuleName,
  EdgedModuleName,
  EdgeMeshModuleName,
  MeshResourceTypes,
  ErrConnectionLost,
  MessageSuccessfulContent,
  MetaManagerModuleName,
  MetaSource,
  OperationNodeConnection,
  PolicyControllerModuleName,
  SourceNodeConnection,
  TwinGroup,
} from '../../protocol/index.js';
import { feedV2, rowOf } from './imitator.js';
import type { MetaStore } from './store.js';

/** The config fields of modules.metaManager this processor honours. */
export interface ProcessorConfig {
  contextSendGroup: string;
  contextSendModule: string;
  /** Seconds. */
  remoteQueryTimeout: number;
}

/** Resource types whose queries go to the cloud while connected (requireRemoteQuery, v1.23.1). */
const REMOTE_TYPES = new Set([
  'configmap',
  'secret',
  'persistentvolume',
  'persistentvolumeclaim',
  'volumeattachment',
  'serviceaccounttoken',
  'lease',
  'certificatesigningrequest',
  'k8s/ca.crt',
]);

const MESH_TYPES: ReadonlySet<string> = new Set(MeshResourceTypes);

const VOLUME_OPS = new Set([
  'createvolume',
  'deletevolume',
  'controllerpublishvolume',
  'controllerunpublishvolume',
]);

/** Operations the processor knows; anything else is answered with an error. */
const KNOWN_OPS = new Set(['insert', 'update', 'patch', 'delete', 'query', 'response', ...VOLUME_OPS]);

/**
 * metaManager's message processing (spec edge-modules §3.5–§3.6, wire §5): store, forward to
 * edged / twin, acknowledge to the cloud, answer queries locally or remotely.
 */
export class MetaProcessor {
  constructor(
    private readonly ctx: PluginContext,
    private readonly store: MetaStore,
    private readonly cloud: CloudConnection | undefined,
    private readonly cfg: ProcessorConfig,
  ) {}

  /** Cloud reachable: the flag edgeHub sets, and a module to send to. */
  connected(): boolean {
    return (this.cloud?.connected ?? false) && this.ctx.hasModule(this.cfg.contextSendModule);
  }

  /** Handle one message. Every store step runs synchronously before the first await (ordering). */
  async handle(msg: Message): Promise<void> {
    const op = msg.route.operation ?? '';
    if (op === OperationNodeConnection && msg.route.source === SourceNodeConnection) {
      this.ctx.log.debug({ content: msg.content }, 'cloud connection event');
      return;
    }
    if (!KNOWN_OPS.has(op)) {
      this.fail(
        msg,
        new KernelError('EMETA_BAD_OPERATION', `operation "${op}": not supported by metamanager`),
      );
      return;
    }
    let type: string;
    let tokens: number;
    try {
      const res = msg.route.resource ?? '';
      const r = parseResource(res);
      type = r.type;
      tokens = res.split('/').length;
    } catch (err) {
      this.fail(msg, new KernelError('EMETA_BAD_RESOURCE', errorText(err)));
      return;
    }
    try {
      switch (op) {
        case 'insert':
          return await this.insert(msg, type);
        case 'update':
          return await this.update(msg, type);
        case 'patch':
          return await this.patch(msg, type);
        case 'delete':
          return await this.delete(msg, type);
        case 'query':
          return await this.query(msg, type, tokens);
        case 'response':
          return await this.response(msg, type);
        default:
          return await this.volume(msg);
      }
    } catch (err) {
      this.fail(msg, err);
    }
  }

  // ---- operations ---------------------------------------------------------------------------

  private async insert(msg: Message, type: string): Promise<void> {
    const source = msg.route.source ?? '';
    if (type === 'event') return this.toCloud(msg);
    if (source === EdgedModuleName) {
      if (!this.connected())
        return this.fail(msg, new KernelError('EMETA_REMOTE', 'failed to process remote: not connected'));
      return this.remote(msg, type);
    }
    const value = storedValue(msg, true);
    this.store.transaction(() => {
      feedV2(this.store, 'insert', type, source, contentObject(msg), serialised(msg, value));
      this.store.upsert(msg.route.resource as string, type, value);
    });
    if (source === DeviceControllerModuleName) this.toTwin(msg);
    else if (source !== PolicyControllerModuleName) this.pushed(msg, type);
    this.ack(msg);
  }

  private async update(msg: Message, type: string): Promise<void> {
    const source = msg.route.source ?? '';
    if (type === 'event') return this.toCloud(msg);
    if (source === EdgedModuleName && type === 'lease') {
      if (!this.connected())
        return this.fail(msg, new KernelError('EMETA_REMOTE', 'failed to process remote: not connected'));
      return this.remote(msg, type);
    }
    const known = [
      EdgedModuleName,
      EdgeControllerModuleName,
      DynamicControllerModuleName,
      DeviceControllerModuleName,
      PolicyControllerModuleName,
      MetaManagerModuleName,
    ];
    if (!known.includes(source)) {
      this.fail(
        msg,
        new KernelError('EMETA_BAD_SOURCE', `update from source "${source}": not supported by metamanager`),
      );
      return;
    }
    const value = storedValue(msg, true);
    this.store.transaction(() => {
      feedV2(this.store, 'update', type, source, contentObject(msg), serialised(msg, value));
      this.store.upsert(msg.route.resource as string, type, value);
    });
    switch (source) {
      case EdgedModuleName:
        this.toCloud(msg);
        this.reply(msg, newResponse(msg, MessageSuccessfulContent));
        return;
      case EdgeControllerModuleName:
      case DynamicControllerModuleName:
        if (type !== 'node') this.pushed(msg, type);
        this.ack(msg);
        return;
      case DeviceControllerModuleName:
        this.ack(msg);
        this.toTwin(msg);
        return;
      case PolicyControllerModuleName:
        this.ack(msg);
        return;
      default: // metamanager (metaServer's device update)
        this.toTwin(msg);
        this.reply(msg, newResponse(msg, MessageSuccessfulContent));
    }
  }

  private async patch(msg: Message, type: string): Promise<void> {
    if (type === 'event') return this.toCloud(msg);
    const value = storedValue(msg, true);
    this.store.upsert(msg.route.resource as string, type, value);
    if (!this.connected()) return this.fail(msg, new KernelError('EMETA_DISCONNECTED', ErrConnectionLost));
    // The original message, same id: the cloud's reply goes straight to the requester's waiter.
    this.toCloud(msg);
  }

  private async delete(msg: Message, type: string): Promise<void> {
    const source = msg.route.source ?? '';
    const resource = msg.route.resource as string;
    if (type === 'pod' && source === EdgedModuleName) return this.toCloud(msg);
    const obj = contentObject(msg);
    if (type === 'pod') {
      const uid = (obj as { metadata?: { uid?: unknown } } | undefined)?.metadata?.uid;
      if (typeof uid !== 'string' || !uid) {
        throw new KernelError(
          'EMETA_BAD_CONTENT',
          `delete ${resource}: expected a Pod with metadata.uid in content`,
        );
      }
      this.store.transaction(() => {
        feedV2(this.store, 'delete', type, source, obj);
        if (this.store.deletePod(resource, uid) > 0) {
          const [ns, , ...name] = resource.split('/');
          this.store.delete(`${ns}/podpatch/${name.join('/')}`);
        }
      });
    } else {
      this.store.transaction(() => {
        feedV2(this.store, 'delete', type, source, obj);
        this.store.delete(resource);
      });
    }
    if (source === DeviceControllerModuleName) this.toTwin(msg);
    if (source !== PolicyControllerModuleName) this.pushed(msg, type);
    this.ack(msg);
  }

  private async query(msg: Message, type: string, tokens: number): Promise<void> {
    if (REMOTE_TYPES.has(type) && this.connected()) return this.remote(msg, type);
    this.answerLocally(msg, type, tokens);
  }

  private answerLocally(msg: Message, type: string, tokens: number): void {
    const values =
      tokens >= 3 ? this.store.queryKey(msg.route.resource as string) : this.store.queryType(type);
    const resp = newResponse(msg, values);
    resp.route.source = MetaManagerModuleName;
    this.reply(msg, resp);
  }

  private async response(msg: Message, type: string): Promise<void> {
    const value = storedValue(msg, false);
    this.store.upsert(msg.route.resource as string, type, value);
    if (msg.route.source === EdgeControllerModuleName) this.pushed(msg, type);
    else this.toCloud(msg);
  }

  private async volume(msg: Message): Promise<void> {
    const fwd: Message = { ...msg, header: { ...msg.header, msg_id: randomUUID() } };
    const reply = await this.ctx.request(EdgedModuleName, fwd, 60_000);
    this.toCloud(newResponse(msg, reply.content));
  }

  /** processRemote (spec §3.6): fresh id, sync to the cloud, store the answer, re-parent, ack. */
  private async remote(msg: Message, type: string): Promise<void> {
    const original = msg.header.msg_id;
    const fwd: Message = {
      header: { ...msg.header, msg_id: randomUUID() },
      route: { ...msg.route },
      content: msg.content,
    };
    delete fwd.header.sync;
    let reply: Message;
    try {
      reply = await this.ctx.request(this.cfg.contextSendModule, fwd, this.cfg.remoteQueryTimeout * 1000);
      // edgeHub's own answer when the link broke under the request: not the cloud's, so a failure.
      if (reply.route.operation === 'error' && reply.content === ErrConnectionLost) {
        throw new KernelError('EMETA_REMOTE', ErrConnectionLost);
      }
    } catch (err) {
      if (msg.route.operation === 'query') {
        this.ctx.log.warn(
          { resource: msg.route.resource, err: errorText(err) },
          'remote query failed; answering from the local database',
        );
        return this.answerLocally(msg, type, (msg.route.resource ?? '').split('/').length);
      }
      return this.fail(msg, new KernelError('EMETA_REMOTE', `failed to process remote: ${errorText(err)}`));
    }
    const content = reply.content;
    if (
      content !== MessageSuccessfulContent &&
      typeof content === 'object' &&
      content !== null &&
      !Array.isArray(content)
    ) {
      const c = content as Record<string, unknown>;
      const wrapped = 'Object' in c && 'Err' in c;
      const obj = wrapped ? c.Object : c;
      if (!(wrapped && c.Err !== null && c.Err !== undefined) && obj !== null && obj !== undefined) {
        const resource = reply.route.resource ?? msg.route.resource ?? '';
        try {
          const r = parseResource(resource);
          this.store.transaction(() => {
            this.store.upsert(resource, r.type, JSON.stringify(obj));
            if (rowOf(obj)) feedV2(this.store, 'update', r.type, 'cloud', obj);
          });
        } catch (err) {
          this.ctx.log.error({ resource, err: errorText(err) }, 'remote reply not stored');
        }
      }
    }
    const back: Message = {
      header: { ...reply.header, parent_msg_id: original },
      route: { ...reply.route },
      content,
    };
    this.reply(msg, back);
    this.ack(reply);
  }

  // ---- delivery -----------------------------------------------------------------------------

  /** The response helper with "OK" to the cloud group (the ACK of a cloud message, wire §6.3). */
  private ack(msg: Message): void {
    this.toCloud(newResponse(msg, MessageSuccessfulContent));
  }

  private toCloud(msg: Message): void {
    this.ctx.sendToGroup(this.cfg.contextSendGroup, msg).catch((err) => this.dropped('cloud', msg, err));
  }

  private toEdged(msg: Message): void {
    this.ctx.send(EdgedModuleName, msg).catch((err) => this.dropped(EdgedModuleName, msg, err));
  }

  /**
   * A cloud object for its edge consumer: Services and Endpoints to edgeMesh when it runs (KubeEdge
   * ≤ v1.5), everything else, and those too without edgeMesh, to edged (v1.23).
   */
  private pushed(msg: Message, type: string): void {
    if (MESH_TYPES.has(type) && this.ctx.hasModule(EdgeMeshModuleName)) {
      this.ctx.send(EdgeMeshModuleName, msg).catch((err) => this.dropped(EdgeMeshModuleName, msg, err));
    } else this.toEdged(msg);
  }

  private toTwin(msg: Message): void {
    const copy: Message = {
      header: { ...msg.header },
      route: { ...msg.route, source: MetaSource, group: TwinGroup },
      content: msg.content,
    };
    this.ctx.send(DeviceTwinModuleName, copy).catch((err) => this.dropped(DeviceTwinModuleName, copy, err));
  }

  /**
   * Answer the sender of `req`: sendResp if it waits (sync), else its mailbox if it is a local
   * module (edged's plain sends), else the cloud group.
   */
  private reply(req: Message, resp: Message): void {
    if (req.header.sync) {
      this.ctx.respond(resp);
      return;
    }
    const source = req.route.source ?? '';
    if (source && source !== MetaManagerModuleName && this.ctx.hasModule(source)) {
      this.ctx.send(source, resp).catch((err) => this.dropped(source, resp, err));
    } else if (source === EdgedModuleName) {
      this.toEdged(resp);
    } else {
      this.toCloud(resp);
    }
  }

  /** feedbackError: log, then an error message to the sender (nothing was stored). */
  private fail(req: Message, err: unknown): void {
    const text = errorText(err);
    const code = isKernelError(err) ? err.code : 'EMETA_STORE';
    this.ctx.log.error(
      {
        code,
        msg_id: req.header.msg_id,
        source: req.route.source,
        operation: req.route.operation,
        resource: req.route.resource,
      },
      text,
    );
    const resp = newErrorMessage(req, text, { source: MetaManagerModuleName, group: req.route.group ?? '' });
    this.reply(req, resp);
  }

  private dropped(to: string, msg: Message, err: unknown): void {
    const quiet = isKernelError(err, 'EBUS_NO_MODULE') || isKernelError(err, 'EBUS_NO_GROUP');
    this.ctx.log[quiet ? 'debug' : 'warn'](
      { to, operation: msg.route.operation, resource: msg.route.resource, err: errorText(err) },
      'message not delivered',
    );
  }
}

/** The stored value when it is `JSON.stringify(content)` (one line, reusable for meta_v2). */
function serialised(msg: Message, value: string): string | undefined {
  const c = msg.content;
  return typeof c === 'object' && c !== null && !Buffer.isBuffer(c) && !(c instanceof Uint8Array)
    ? value
    : undefined;
}

/** The content as an object (JSON strings parsed), or undefined. */
function contentObject(msg: Message): unknown {
  const c = msg.content;
  if (typeof c === 'string') {
    try {
      return JSON.parse(c);
    } catch {
      return undefined;
    }
  }
  return c;
}

/**
 * The `meta.value` text of a message: a string content verbatim (it must hold JSON), anything else
 * as JSON. Content that is not JSON is refused before anything is stored.
 */
function storedValue(msg: Message, requireContent: boolean): string {
  const c = msg.content;
  const where = `${msg.route.operation} ${msg.route.resource}`;
  if (typeof c === 'string') {
    try {
      JSON.parse(c);
    } catch {
      throw new KernelError(
        'EMETA_BAD_CONTENT',
        `${where}: content is not JSON: ${JSON.stringify(c.slice(0, 60))}`,
      );
    }
    return c;
  }
  if (Buffer.isBuffer(c) || c instanceof Uint8Array) {
    const text = Buffer.from(c).toString('utf8');
    try {
      JSON.parse(text);
    } catch {
      throw new KernelError('EMETA_BAD_CONTENT', `${where}: content is not JSON`);
    }
    return text;
  }
  if (requireContent && (c === null || c === undefined)) {
    throw new KernelError('EMETA_BAD_CONTENT', `${where}: content is empty; expected a JSON object`);
  }
  return JSON.stringify(c ?? null);
}
