import type { Bus } from '../bus/bus.js';
import type { Mailbox } from '../bus/mailbox.js';
import type { Message } from '../bus/message.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Services } from '../services.js';
import type { ModuleConfig, PluginContext } from './types.js';

/**
 * The one interface between a plugin and the kernel: everything that crosses goes through it.
 * It is implemented twice, over the local bus (`busPort`) and over the gRPC stream of a plugin
 * process (`remote/client.ts`). Kernel-owned state a plugin observes (cloud connected, modules
 * present) and the kernel's services reach the plugin through `Services`, which the remote side
 * keeps in step with the kernel.
 */
export interface KernelPort {
  /** Queue for one module; resolves once queued, rejects with a KernelError otherwise. */
  send(module: string, msg: Message): Promise<void>;
  /** Queue for every member of a group. */
  sendToGroup(group: string, msg: Message): Promise<void>;
  /** Sync request: resolves with the reply whose parent_msg_id is msg's id; EBUS_TIMEOUT otherwise. */
  request(module: string, msg: Message, timeoutMs?: number): Promise<Message>;
  /** Sync request to a group: one reply per member. */
  requestGroup(group: string, msg: Message, timeoutMs?: number): Promise<Message[]>;
  /** Answer a sync request (msg.header.parent_msg_id = the request's id). */
  respond(msg: Message): void;
  /** Is a module of this name running (has a mailbox)? */
  hasModule(name: string): boolean;
}

/** The port of a plugin in the kernel's process: straight onto the bus, counted on its mailbox. */
export function busPort(bus: Bus, box: Mailbox, log: Logger): KernelPort {
  const stats = box.stats;
  return {
    send(module, msg) {
      stats.sent++;
      return bus.send(module, msg);
    },
    sendToGroup(group, msg) {
      stats.sent++;
      return bus.sendToGroup(group, msg);
    },
    request(module, msg, timeoutMs) {
      stats.sent++;
      return bus.request(module, msg, timeoutMs);
    },
    requestGroup(group, msg, timeoutMs) {
      stats.sent++;
      return bus.requestGroup(group, msg, timeoutMs);
    },
    respond(msg) {
      stats.sent++;
      if (!bus.respond(msg)) {
        log.warn({ parent_msg_id: msg.header.parent_msg_id }, 'response discarded: nobody waits for it');
      }
    },
    hasModule: (name) => bus.hasModule(name),
  };
}

/** The context a plugin's start() gets, the same on both sides of the process boundary. */
export function pluginContext(
  who: { name: string; group: string },
  config: ModuleConfig,
  port: KernelPort,
  kernel: { log: Logger; metrics: Metrics; services: Services },
  signal: AbortSignal,
): PluginContext {
  return {
    name: who.name,
    group: who.group,
    config,
    log: kernel.log,
    metrics: kernel.metrics,
    services: kernel.services,
    signal,
    send: (module, msg) => port.send(module, msg),
    sendToGroup: (group, msg) => port.sendToGroup(group, msg),
    request: (module, msg, timeoutMs) => port.request(module, msg, timeoutMs),
    requestGroup: (group, msg, timeoutMs) => port.requestGroup(group, msg, timeoutMs),
    respond: (msg) => port.respond(msg),
    hasModule: (name) => port.hasModule(name),
  };
}
