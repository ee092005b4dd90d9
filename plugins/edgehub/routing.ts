/**
 * Where a message from the cloud goes (wire-cloud-edge §5.0.2, edgeHub's message handlers, first
 * match wins), and the connection notices edgeHub sends to the modules that expect them.
 */
import { newMessage, type Message } from '../../kernel/index.js';
import {
  BusGroup,
  CloudConnected,
  CloudDisconnected,
  EventBusModuleName,
  FuncGroup,
  MetaGroup,
  OperationNodeConnection,
  ResourceGroup,
  ResourceTypeNodeConnection,
  RouterEventBusSource,
  RouterServiceBusSource,
  ServiceBusModuleName,
  SourceNodeConnection,
  TaskManagerGroup,
  TaskManagerModuleName,
  TwinGroup,
  UserGroup,
} from '../../protocol/index.js';

export type Delivery =
  /** a reply: wake the sync request waiting for `parent_msg_id` */
  | { to: 'respond' }
  | { to: 'group'; name: string }
  | { to: 'module'; name: string }
  | { to: 'drop'; why: string };

export function downstream(msg: Message): Delivery {
  const { group = '', source = '' } = msg.route;
  const reply = (msg.header.parent_msg_id ?? '') !== '';
  switch (group) {
    case ResourceGroup:
    case FuncGroup:
      return reply ? { to: 'respond' } : { to: 'group', name: MetaGroup };
    case TwinGroup:
      return { to: 'group', name: TwinGroup };
    case UserGroup:
      if (reply) return { to: 'respond' };
      if (source === RouterEventBusSource) return { to: 'module', name: EventBusModuleName };
      if (source === RouterServiceBusSource) return { to: 'module', name: ServiceBusModuleName };
      return {
        to: 'drop',
        why: `group user from source "${source}" (only router_eventbus, router_servicebus)`,
      };
    case TaskManagerGroup:
      return { to: 'module', name: TaskManagerModuleName };
    default:
      return { to: 'drop', why: `no handler for group "${group}"` };
  }
}

/** The groups told about the cloud connection (edge/pkg/edgehub/process.go, v1.23). */
export const CONNECTION_NOTICE_GROUPS = [TwinGroup, MetaGroup, BusGroup, TaskManagerGroup] as const;

/** The in-process notice of §3.8 step 3 (never sent on the wire). */
export function connectionNotice(group: string, connected: boolean): Message<string> {
  return newMessage(
    {
      source: SourceNodeConnection,
      group,
      operation: OperationNodeConnection,
      resource: ResourceTypeNodeConnection,
    },
    connected ? CloudConnected : CloudDisconnected,
  );
}
