import * as grpc from '@grpc/grpc-js';
import {
  OpKind,
  PluginHostClient,
  type KernelFrame,
  type Op,
  type PluginFrame,
  type Start,
} from '../../proto/gen/kernel/v1/plugin.js';
import { Mailbox } from '../bus/mailbox.js';
import { decodeMessage, encodeMessage, type Message } from '../bus/message.js';
import { KernelError, errorText, type KernelErrorCode } from '../errors.js';
import { createLogger, type Logger, type LogLevel } from '../log.js';
import { Metrics } from '../metrics.js';
import type { ModuleConfig, PluginContext, PluginDefinition, PluginInstance } from '../plugin/types.js';
import { ServiceRegistry } from '../services.js';
import { CloudConnection } from '../tokens.js';
import { provideKernelServices } from '../kernel-services.js';
import type { LoadedConfig } from '../config/index.js';
import { Batcher } from './batch.js';
import { grpcAddress } from './socket.js';

export interface ConnectOptions {
  /** The kernel's unix socket. */
  socket: string;
  /** Given by the kernel to the processes it spawns; empty when attaching on one's own. */
  token?: string;
  logger?: Logger;
}

/** A plugin running in this process, connected to a kernel in another. */
export interface RemotePlugin {
  /** Resolves when the stream ends (the kernel stopped the plugin or went away). */
  readonly done: Promise<{ reason: string }>;
  close(): Promise<void>;
}

interface Pending {
  resolve(value: Message[] | undefined): void;
  reject(err: KernelError): void;
}

/**
 * Run a plugin definition against a kernel over its socket: the same PluginContext contract as
 * in-process, implemented with the PluginHost gRPC stream (proto/kernel/v1/plugin.proto).
 */
export function connectPlugin(def: PluginDefinition, options: ConnectOptions): RemotePlugin {
  const client = new PluginHostClient(grpcAddress(options.socket), grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
  const call = client.connect();
  let log = options.logger ?? createLogger('info', { module: def.name });
  const pending = new Map<number, Pending>();
  let seq = 0;
  let modules = new Set<string>();
  let instance: PluginInstance | undefined;
  let releaseServices: () => void = () => undefined;
  let abort: AbortController | undefined;
  const box = new Mailbox(def.name, def.group, Number.MAX_SAFE_INTEGER);
  let handled = 0;
  let handledScheduled = false;
  let finished = false;
  let finish: (r: { reason: string }) => void = () => undefined;
  const done = new Promise<{ reason: string }>((resolve) => (finish = resolve));

  const write = (frame: PluginFrame): void => {
    if (!finished) call.write(frame);
  };
  const ops = new Batcher<Op>((batch) => write({ kind: { $case: 'ops', value: { ops: batch } } }));

  const op = (
    kind: OpKind,
    target: string,
    msg: Message,
    timeoutMs = 0,
    expectReply = false,
  ): Promise<Message[] | undefined> => {
    if (finished)
      return Promise.reject(
        new KernelError('EREMOTE_DISCONNECTED', `plugin "${def.name}" is not connected to the kernel`),
      );
    const id = ++seq;
    if (expectReply) msg.header.sync = true;
    const p = new Promise<Message[] | undefined>((resolve, reject) => pending.set(id, { resolve, reject }));
    ops.add({ seq: id, kind, target, message: Buffer.from(encodeMessage(msg)), timeoutMs });
    return p;
  };

  const noteHandled = (): void => {
    handled++;
    if (handledScheduled) return;
    handledScheduled = true;
    setImmediate(() => {
      handledScheduled = false;
      const count = handled;
      handled = 0;
      write({ kind: { $case: 'handled', value: { count } } });
    });
  };

  const context = (start: Start, signal: AbortSignal): PluginContext => {
    const services = new ServiceRegistry();
    const metrics = new Metrics();
    releaseServices = provideKernelServices(services, {
      config: JSON.parse(start.configJson.toString('utf8')) as LoadedConfig,
      log,
      metrics,
      cloud: new CloudConnection(),
    });
    return {
      name: start.name,
      group: start.group,
      config: JSON.parse(start.sectionJson.toString('utf8')) as ModuleConfig,
      log,
      metrics,
      services,
      signal,
      send: (module, msg) => op(OpKind.OP_KIND_SEND, module, msg).then(() => undefined),
      sendToGroup: (group, msg) => op(OpKind.OP_KIND_SEND_TO_GROUP, group, msg).then(() => undefined),
      request: (module, msg, timeoutMs) =>
        op(OpKind.OP_KIND_REQUEST, module, msg, timeoutMs, true).then((r) => (r as Message[])[0] as Message),
      requestGroup: (group, msg, timeoutMs) =>
        op(OpKind.OP_KIND_REQUEST_GROUP, group, msg, timeoutMs, true).then((r) => r as Message[]),
      respond: (msg) => {
        if (finished) return;
        ops.add({
          seq: 0,
          kind: OpKind.OP_KIND_RESPOND,
          target: '',
          message: Buffer.from(encodeMessage(msg)),
          timeoutMs: 0,
        });
      },
      hasModule: (name) => modules.has(name),
    };
  };

  const onStart = async (start: Start): Promise<void> => {
    modules = new Set(start.modules);
    if (!options.logger) log = createLogger((start.logLevel || 'info') as LogLevel, { module: start.name });
    abort = new AbortController();
    try {
      instance = (await def.start(context(start, abort.signal))) ?? {};
    } catch (err) {
      log.error({ err: errorText(err) }, 'plugin start failed');
      write({ kind: { $case: 'failed', value: { error: errorText(err), where: 'start', msgId: '' } } });
      return;
    }
    const onMessage = instance.onMessage?.bind(instance);
    if (onMessage) {
      box.attach(
        async (msg) => {
          await onMessage(msg);
          noteHandled();
        },
        (err, msg) =>
          write({
            kind: {
              $case: 'failed',
              value: { error: errorText(err), where: 'handler', msgId: msg.header.msg_id },
            },
          }),
        def.concurrency ?? 1,
      );
    } else {
      box.attach(
        () => noteHandled(),
        () => undefined,
      );
    }
    write({ kind: { $case: 'ready', value: {} } });
  };

  const stopInstance = async (): Promise<void> => {
    box.detach();
    abort?.abort();
    const current = instance;
    instance = undefined;
    try {
      await current?.stop?.();
    } catch (err) {
      log.error({ err: errorText(err) }, 'plugin stop failed');
    }
    releaseServices();
  };

  const end = (reason: string): void => {
    if (finished) return;
    finished = true;
    for (const p of pending.values())
      p.reject(new KernelError('EREMOTE_DISCONNECTED', `kernel connection closed: ${reason}`));
    pending.clear();
    void stopInstance().then(() => {
      client.close();
      finish({ reason });
    });
  };

  call.on('data', (frame: KernelFrame) => {
    const kind = frame.kind;
    if (!kind) return;
    switch (kind.$case) {
      case 'start':
        void onStart(kind.value);
        return;
      case 'stop':
        void stopInstance().then(() => {
          write({ kind: { $case: 'stopped', value: {} } });
          call.end();
        });
        return;
      case 'deliver':
        for (const raw of kind.value.messages) {
          try {
            box.push(decodeMessage(raw.toString('utf8')));
          } catch (err) {
            log.error({ err: errorText(err) }, 'undecodable message from the kernel');
            noteHandled();
          }
        }
        return;
      case 'results': {
        for (const id of kind.value.ok) {
          pending.get(id)?.resolve(undefined);
          pending.delete(id);
        }
        for (const f of kind.value.failed) {
          pending.get(f.seq)?.reject(new KernelError(f.code as KernelErrorCode, f.error));
          pending.delete(f.seq);
        }
        for (const r of kind.value.replies) {
          pending.get(r.seq)?.resolve(r.messages.map((m) => decodeMessage(m.toString('utf8'))));
          pending.delete(r.seq);
        }
        return;
      }
      case 'modules':
        modules = new Set(kind.value.names);
        return;
    }
  });
  call.on('error', (err: grpc.ServiceError) => end(err.details || err.message));
  call.on('end', () => end('the kernel closed the stream'));

  write({
    kind: {
      $case: 'hello',
      value: {
        name: def.name,
        group: def.group,
        configKey: def.configKey,
        token: options.token ?? '',
        concurrency: def.concurrency ?? 1,
      },
    },
  });

  return {
    done,
    async close() {
      call.end();
      end('closed by the plugin process');
      await done;
    },
  };
}
