/**
 * cloudHub's routing rules, as pure functions (wire-cloud-edge §2.6, §5.0.1, §6.1): where an
 * upstream message goes, which node a downstream message is for, how its resource is trimmed for
 * the edge, and whether it waits for the edge's ACK.
 */
import { Operation, type Message } from '../../kernel/index.js';
import {
  DeviceControllerModuleName,
  DeviceTwinModuleName,
  DynamicControllerModuleName,
  EdgeControllerModuleName,
  MetaServerSource,
  UserGroup,
  nodeResource,
  CloudHubModuleName,
} from '../../protocol/index.js';

/** Cloud module names and groups cloudHub hands messages to (cloud/pkg/common/modules). */
export const CloudHubGroup = 'cloudhub';
export const RouterModuleName = 'router';
export const TaskManagerGroup = 'taskmanager';
/** The Kubernetes CA the edge's metaServer asks for (§5.9). */
export const KubeCaResource = 'k8s/ca.crt';

/** Operations of node tasks (§5.14) that go to the taskmanager group. */
const TASK_OPERATIONS = new Set(['prepull', 'upgrade', 'UpdateNodeActionStatus']);
/** Sources that are cloud modules: an edge message claiming one is dropped (row 8). */
const CLOUD_SOURCES = new Set([
  CloudHubModuleName,
  'cloudStream',
  DeviceControllerModuleName,
  EdgeControllerModuleName,
  'synccontroller',
]);
const VOLUME_RESOURCE = /^\w[-\w.+]*\/volume\/\w[-\w.+]*/;
const VOLUME_OPERATIONS = new Set([
  'createvolume',
  'deletevolume',
  'controllerpublishvolume',
  'controllerunpublishvolume',
]);

/** Viaduct's reserved operations, answered by the transport (§3.5). */
const CONTROL_OPERATIONS = new Set(['config', 'ping', 'pong']);

/** What to do with one upstream message (viaduct's control messages, then the rows of §5.0.1). */
export type Upstream =
  | { kind: 'control' }
  | { kind: 'keepalive' }
  | { kind: 'volume' }
  | { kind: 'ack'; parentId: string }
  | { kind: 'error' }
  | { kind: 'module'; module: string; resource: string }
  | { kind: 'group'; group: string }
  | { kind: 'kubeCa' }
  | { kind: 'drop'; reason: string };

/** `DispatchUpstream`: classify a message received from node `nodeId`. */
export function classifyUpstream(msg: Message, nodeId: string): Upstream {
  const { operation = '', resource = '', source = '', group = '' } = msg.route;
  if (CONTROL_OPERATIONS.has(operation)) return { kind: 'control' };
  if (operation === Operation.keepalive) return { kind: 'keepalive' };
  if (VOLUME_RESOURCE.test(resource)) return { kind: 'volume' };
  if (operation === Operation.response) return { kind: 'ack', parentId: msg.header.parent_msg_id ?? '' };
  if (operation === Operation.error) return { kind: 'error' };
  const prefixed = nodeResource(nodeId, resource);
  if (operation === Operation.upload && group === UserGroup) {
    return { kind: 'module', module: RouterModuleName, resource: prefixed };
  }
  // a Go edgecore's serviceBus answers its own failures without operation (devices-dmi-router
  // §5.7 step 7): still the router's reply, not edgecontroller's
  if (operation === '' && group === UserGroup && (msg.header.parent_msg_id ?? '') !== '') {
    return { kind: 'module', module: RouterModuleName, resource: prefixed };
  }
  if (TASK_OPERATIONS.has(operation)) return { kind: 'group', group: TaskManagerGroup };
  if (resource === KubeCaResource) return { kind: 'kubeCa' };
  if (CLOUD_SOURCES.has(source)) return { kind: 'drop', reason: `source "${source}" is a cloud module` };
  const module =
    source === MetaServerSource
      ? DynamicControllerModuleName
      : source === DeviceTwinModuleName
        ? DeviceControllerModuleName
        : EdgeControllerModuleName;
  return { kind: 'module', module, resource: prefixed };
}

/**
 * `GetNodeID`: the segment after the first `node` segment that is followed by a non-empty one
 * (`node/<id>/...`, and also task resources such as `upgrade/<task>/node/<id>`).
 */
export function nodeOf(resource: string): string | undefined {
  const parts = resource.split('/');
  for (let i = 0; i + 1 < parts.length; i++) {
    if (parts[i] === 'node' && parts[i + 1] !== '') return parts[i + 1];
  }
  return undefined;
}

/**
 * `TrimMessage`: a resource starting with `node` and having at least 3 segments loses its first
 * two (`node/<id>/default/pod/x` → `default/pod/x`); any other is sent unchanged.
 */
export function edgeResource(resource: string): string {
  const parts = resource.split('/');
  return parts[0] === 'node' && parts.length >= 3 ? parts.slice(2).join('/') : resource;
}

/** Segment 3 of a cloud-internal resource `node/<id>/<ns>/<type>/<name>`. */
function resourceType(resource: string): string {
  return resource.split('/')[3] ?? '';
}

const EDGECONTROLLER_NO_ACK_TYPES = new Set([
  'lease',
  'nodepatch',
  'podpatch',
  'podstatus',
  'certificatesigningrequest',
]);

/** An error reply's content: `{"ErrStatus": ...}` (wire §2.4). */
function isErrStatus(content: unknown): boolean {
  return content !== null && typeof content === 'object' && 'ErrStatus' in content;
}

/** `noAckRequired` (§6.1) on the cloud-internal message (resource still `node/<id>/...`). */
export function needsAck(msg: Message): boolean {
  const { resource = '', operation = '', group = '', source = '' } = msg.route;
  if (
    resource.includes('podlist') ||
    resource.includes('membership') ||
    resource.includes('twin/cloud_updated') ||
    resource.includes('serviceaccounttoken') ||
    resource.includes(KubeCaResource)
  )
    return false;
  if (VOLUME_OPERATIONS.has(operation) || operation === 'applicationResponse') return false;
  if (group === UserGroup) return false;
  if (source === 'taskmanager' || source === 'nodeupgradejobcontroller') return false;
  // row 10: "OK", or an error reply (a Go error value in KubeEdge; here its ErrStatus object)
  if (operation === Operation.response && (msg.content === 'OK' || isErrStatus(msg.content))) return false;
  if (source === EdgeControllerModuleName) {
    const type = resourceType(resource);
    if (type === 'node' && operation !== Operation.update) return false;
    if (EDGECONTROLLER_NO_ACK_TYPES.has(type)) return false;
    if (type === 'pod' && operation === Operation.response) return false;
  }
  return true;
}

/** The wire form of a downstream message: resource trimmed, `sync` cleared (§2.1, §2.6). */
export function toEdge(msg: Message): Message {
  const header = { ...msg.header };
  delete header.sync;
  return {
    header,
    route: { ...msg.route, resource: edgeResource(msg.route.resource ?? '') },
    content: msg.content,
  };
}
