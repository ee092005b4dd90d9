/**
 * What deviceController's two halves share: the v1beta1 device objects it reads, KubeEdge's
 * resource strings (messagelayer/util.go) and the messages it hands to cloudHub (spec
 * devices-dmi-router §2.3, §2.4).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { KubeApiError, newMessage, withTypeMeta, type Message } from '../../kernel/index.js';
import { DeviceControllerModuleName, ResourceGroup, TwinGroup, nodeResource } from '../../protocol/index.js';

export const DeviceControllerGroup = 'devicecontroller';
export const DevicesGroup = 'devices.kubeedge.io';
export const DevicesVersion = 'v1beta1';
export const DevicesApiVersion = `${DevicesGroup}/${DevicesVersion}`;

/** A twin value as the DeviceStatus (and the Device's legacy status) holds it. */
export interface TwinProperty {
  value: string;
  metadata?: Record<string, string>;
}

export interface StatusTwin {
  propertyName: string;
  reported?: TwinProperty;
  observedDesired?: TwinProperty;
}

/** The v1beta1 Device fields read here (the rest travels untouched). */
export interface Device extends KubernetesObject {
  spec?: {
    deviceModelRef?: { name?: string };
    nodeName?: string;
    properties?: { name?: string }[];
    [key: string]: unknown;
  };
  status?: ReportedStatus & { [key: string]: unknown };
}

export type DeviceModel = KubernetesObject;

/** The reported side of a device: the DeviceStatus' status, mirrored into the Device's status. */
export interface ReportedStatus {
  twins?: StatusTwin[];
  state?: string;
  lastOnlineTime?: string;
}

/** v1beta1 DeviceStatus (KubeEdge 1.23): the record of a Device's reported side. */
export interface DeviceStatus extends KubernetesObject {
  status?: ReportedStatus;
}

/** The edge's metadata timestamp of a twin side (ms), -1 when there is none. */
export const stamp = (p: TwinProperty | undefined): number => Number(p?.metadata?.timestamp ?? -1);

/** `{namespace}/{name}` (util.GetResourceID): the cache key and the edge's device id. */
export const deviceId = (o: KubernetesObject): string =>
  `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** The HTTP status of a Kubernetes API answer that failed, else undefined. */
export const apiStatus = (err: unknown): number | undefined =>
  err instanceof KubeApiError ? err.statusCode : undefined;

/** The API path of one object of the group (`devices`, `devicemodels`, `devicestatuses`). */
export function devicesPath(resource: string, namespace: string, name?: string): string {
  const base = `/apis/${DevicesGroup}/${DevicesVersion}/namespaces/${encodeURIComponent(namespace)}/${resource}`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

/** A message from devicecontroller to one node; the resource is `node/{node}/...` (BuildResource). */
export function toNode(
  node: string,
  group: typeof TwinGroup | typeof ResourceGroup,
  operation: string,
  edgeResource: string,
  content: unknown,
  opts: { parentId?: string; resourceVersion?: string } = {},
): Message {
  return newMessage(
    { source: DeviceControllerModuleName, group, operation, resource: nodeResource(node, edgeResource) },
    content,
    opts,
  );
}

/** A device object as the cloud sends it: with `kind` and `apiVersion`. */
export const withMeta = <T extends KubernetesObject>(obj: T, kind: string): T =>
  withTypeMeta(obj, kind, DevicesApiVersion);

/** A membership entry (types/device.go `Device`): no twin map since 1.15. */
export interface MembershipDevice {
  id: string;
  name: string;
  description?: string;
}

export function membershipEntry(d: Device): MembershipDevice {
  const description = d.metadata?.labels?.description;
  return {
    id: deviceId(d),
    name: d.metadata?.name ?? '',
    ...(description ? { description } : {}),
  };
}
