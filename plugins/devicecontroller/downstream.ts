/**
 * deviceController's downstream half (KubeEdge's DownstreamController, spec devices-dmi-router
 * §2.3): shared informers on v1beta1 Devices and DeviceModels; a Device bound to a node
 * (`spec.nodeName`) goes to that node as a membership change, its DeviceModel and the Device
 * itself; spec changes (desired values included) as `update`s; a deletion or a move to another
 * node as the removal from the old node.
 */
import { isDeepStrictEqual } from 'node:util';
import {
  Operation,
  errorText,
  type KubeApi,
  type Logger,
  type Message,
  type SharedInformer,
} from '../../kernel/index.js';
import { ResourceGroup, TwinGroup } from '../../protocol/index.js';
import {
  DevicesGroup,
  DevicesVersion,
  deviceId,
  membershipEntry,
  toNode,
  withMeta,
  type Device,
  type DeviceModel,
} from './messages.js';

export interface DownstreamOptions {
  kube: KubeApi;
  log: Logger;
  signal: AbortSignal;
  /** The Device informer (shared with the upstream half). */
  devices: SharedInformer<Device>;
  send(msg: Message): Promise<void>;
  /** A Device seen for the first time (its DeviceStatus is ensured). */
  added(d: Device): void;
  /** A message cloudHub refused (not running, mailbox full). */
  dropped(reason: string): void;
}

const nodeOf = (d: Device): string => d.spec?.nodeName ?? '';
const modelOf = (d: Device): string => d.spec?.deviceModelRef?.name ?? '';

export class Downstream {
  private readonly models: SharedInformer<DeviceModel>;
  /** The last version of each Device handled, by `{ns}/{name}` (KubeEdge's device cache). */
  private readonly known = new Map<string, Device>();
  /** Models sent to a node, by `{node}/{ns}/{model}`: the object sent (its UID for the delete). */
  private readonly sentModels = new Map<string, DeviceModel>();
  /** Nodes waiting for a model not created yet, by `{ns}/{model}`. */
  private readonly waiting = new Map<string, Set<string>>();

  constructor(private readonly o: DownstreamOptions) {
    this.models = o.kube.informer<DeviceModel>({
      group: DevicesGroup,
      version: DevicesVersion,
      resource: 'devicemodels',
      signal: o.signal,
    });
  }

  /** Models first (a device's model must be cached to be sent), then the devices' replay. */
  async start(): Promise<void> {
    await this.models.synced;
    this.models.addHandlers({ add: (m) => this.modelAdded(m) });
    await this.o.devices.synced;
    this.o.devices.addHandlers({
      add: (d) => this.changed(d),
      update: (d) => this.changed(d),
      delete: (d) => this.deleted(d),
    });
  }

  stop(): void {
    this.models.stop();
  }

  private push(node: string, msg: Message): void {
    this.o.send(msg).catch((err: unknown) => {
      this.o.dropped('cloudhub-refused');
      this.o.log.warn(
        { node, resource: msg.route.resource, operation: msg.route.operation, err: errorText(err) },
        'downstream message not handed to cloudHub',
      );
    });
  }

  private membership(node: string, d: Device, added: boolean): void {
    const entry = [membershipEntry(d)];
    this.push(
      node,
      toNode(node, TwinGroup, Operation.update, 'membership', {
        event_id: '',
        timestamp: Date.now(),
        added_devices: added ? entry : null,
        removed_devices: added ? null : entry,
      }),
    );
  }

  private pushModel(node: string, operation: string, model: DeviceModel): void {
    const ns = model.metadata?.namespace ?? '';
    const name = model.metadata?.name ?? '';
    this.push(
      node,
      toNode(node, ResourceGroup, operation, `${ns}/devicemodel/${name}`, withMeta(model, 'DeviceModel'), {
        resourceVersion: model.metadata?.resourceVersion,
      }),
    );
  }

  private pushDevice(node: string, operation: string, d: Device): void {
    this.push(
      node,
      toNode(
        node,
        ResourceGroup,
        operation,
        `${d.metadata?.namespace ?? ''}/device/${d.metadata?.name ?? ''}`,
        withMeta(d, 'Device'),
        { resourceVersion: d.metadata?.resourceVersion },
      ),
    );
  }

  private changed(d: Device): void {
    const key = deviceId(d);
    const old = this.known.get(key);
    this.known.set(key, d);
    if (old === undefined) {
      this.o.added(d);
      return this.add(d);
    }
    // status writes (ours) and metadata changes are not sent
    if (isDeepStrictEqual(old.spec, d.spec)) return;
    if (nodeOf(old) !== nodeOf(d)) {
      this.remove(old);
      return this.add(d);
    }
    const node = nodeOf(d);
    if (node === '') return;
    // the model rides along with every device change (§6 trap 7)
    const model = this.models.get(modelOf(d), d.metadata?.namespace);
    if (model !== undefined) this.pushModel(node, Operation.update, model);
    this.pushDevice(node, Operation.update, d);
  }

  private deleted(d: Device): void {
    const key = deviceId(d);
    const old = this.known.get(key) ?? d;
    this.known.delete(key);
    this.remove(old);
  }

  /** Membership add, the model unless the node has it, the device. */
  private add(d: Device): void {
    const node = nodeOf(d);
    if (node === '') return;
    this.membership(node, d, true);
    const ns = d.metadata?.namespace ?? '';
    const modelName = modelOf(d);
    const sentKey = `${node}/${ns}/${modelName}`;
    if (!this.sentModels.has(sentKey)) {
      const model = this.models.get(modelName, ns);
      if (model !== undefined) {
        this.sentModels.set(sentKey, model);
        this.pushModel(node, Operation.insert, model);
      } else {
        // KubeEdge retries 10 times 1 s apart, then gives up; here it goes when the model is created
        const nodes = this.waiting.get(`${ns}/${modelName}`) ?? new Set<string>();
        nodes.add(node);
        this.waiting.set(`${ns}/${modelName}`, nodes);
        this.o.log.info({ device: deviceId(d), model: modelName }, 'device sent before its model exists');
      }
    }
    this.pushDevice(node, Operation.insert, d);
  }

  /** Membership removal, the model unless another device of the node uses it, the device. */
  private remove(d: Device): void {
    const node = nodeOf(d);
    if (node === '') return;
    this.membership(node, d, false);
    const ns = d.metadata?.namespace ?? '';
    const modelName = modelOf(d);
    const inUse = [...this.known.values()].some(
      (o) => nodeOf(o) === node && o.metadata?.namespace === ns && modelOf(o) === modelName,
    );
    const sentKey = `${node}/${ns}/${modelName}`;
    const model = this.sentModels.get(sentKey);
    if (!inUse) {
      this.waiting.get(`${ns}/${modelName}`)?.delete(node);
      if (model !== undefined) {
        this.sentModels.delete(sentKey);
        this.pushModel(node, Operation.delete, this.models.get(modelName, ns) ?? model);
      }
    }
    this.pushDevice(node, Operation.delete, d);
  }

  /** A model created after devices that use it: sent to their nodes. */
  private modelAdded(m: DeviceModel): void {
    const key = `${m.metadata?.namespace ?? ''}/${m.metadata?.name ?? ''}`;
    const nodes = this.waiting.get(key);
    if (nodes === undefined) return;
    this.waiting.delete(key);
    for (const node of nodes) {
      this.sentModels.set(`${node}/${key}`, m);
      this.pushModel(node, Operation.insert, m);
    }
  }
}
