import { EventEmitter, on } from 'node:events';
import { ClientError, createChannel, createClient } from 'nice-grpc';
import {
  OpKind,
  PluginHostDefinition,
  type KernelFrame,
  type PluginFrame,
  type Start,
} from '../../proto/gen/kernel/v1/plugin.js';
import { Mailbox } from '../bus/mailbox.js';
import type { Message } from '../bus/message.js';
import type { LoadedConfig } from '../config/index.js';
import { KernelError, errorText, type KernelErrorCode } from '../errors.js';
import { provideKernelServices } from '../kernel-services.js';
import { createLogger, type Logger, type LogLevel } from '../log.js';
import { Metrics } from '../metrics.js';
import { runAs } from '../plugin/attribution.js';
import { pluginContext, type KernelPort } from '../plugin/port.js';
import type { ModuleConfig, PluginDefinition, PluginInstance } from '../plugin/types.js';
import { ServiceRegistry } from '../services.js';
import { CloudConnection } from '../tokens.js';
import { Batcher, decodeBatch, encodeBatch } from './batch.js';
import { grpcAddress, readKernelToken } from './socket.js';

export interface ConnectOptions {
  /** The kernel's unix socket. */
  socket: string;
  /**
   * The credential: given by the kernel to the processes it spawns; a process attaching on its own
   * leaves it out and the content of the kernel's owner-only `<socket>.token` file is used.
   */
  token?: string;
  logger?: Logger;
}

/** A plugin running in this process, connected to a kernel in another. */
export interface RemotePlugin {
  /** Resolves when the stream ends (the kernel stopped the plugin, refused it, or went away). */
  readonly done: Promise<{ reason: string }>;
  close(): Promise<void>;
}

interface Pending {
  resolve(value: Message[] | undefined): void;
  reject(err: KernelError): void;
}

interface OpItem {
  kind: OpKind;
  target: string;
  msg: Message;
  timeoutMs: number;
}

/**
 * Run a plugin definition against a kernel over its socket: the port to the kernel implemented
 * over the PluginHost stream (proto/kernel/v1/plugin.proto), so the plugin gets the same context
 * as in the kernel's process. Kernel state (modules present, cloud connected) is kept in step with
 * the kernel's pushes; a change of the cloud flag made here goes to the kernel.
 */
export function connectPlugin(def: PluginDefinition, options: ConnectOptions): RemotePlugin {
  const token = options.token || readKernelToken(options.socket);
  const channel = createChannel(grpcAddress(options.socket), undefined, {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
  const client = createClient(PluginHostDefinition, channel);
  const out = new EventEmitter();
  const cancel = new AbortController();
  let log = options.logger ?? createLogger('info', { module: def.name });
  const pending = new Map<number, Pending>();
  let seq = 0;
  let sentSeq = 0;
  let modules = new Set<string>();
  let instance: PluginInstance | undefined;
  let releaseServices: () => void = () => undefined;
  let abort: AbortController | undefined;
  let metricsTimer: NodeJS.Timeout | undefined;
  let metrics: Metrics | undefined;
  const cloud = new CloudConnection();
  const box = new Mailbox(def.name, def.group, Number.MAX_SAFE_INTEGER);
  let finished = false;
  let finish: (r: { reason: string }) => void = () => undefined;
  const done = new Promise<{ reason: string }>((resolve) => (finish = resolve));

  const write = (frame: PluginFrame): void => {
    if (!finished) out.emit('frame', frame);
  };
  const ops = new Batcher<OpItem>((batch) => {
    const firstSeq = sentSeq + 1;
    sentSeq += batch.length;
    write({
      kind: {
        $case: 'ops',
        value: {
          firstSeq,
          kinds: batch.map((o) => o.kind),
          targets: batch.map((o) => o.target),
          timeoutsMs: batch.map((o) => o.timeoutMs),
          messages: encodeBatch(batch.map((o) => o.msg)),
        },
      },
    });
  });
  const acks = new Batcher<number>((seqs) => write({ kind: { $case: 'acks', value: { seqs } } }));

  /** Queue an operation; its promise settles with the kernel's result for its sequence number. */
  const op = <T extends Message[] | void>(
    kind: OpKind,
    target: string,
    msg: Message,
    timeoutMs = 0,
  ): Promise<T> => {
    if (finished)
      return Promise.reject(
        new KernelError('EREMOTE_DISCONNECTED', `plugin "${def.name}" is not connected to the kernel`),
      );
    const id = ++seq;
    const p = new Promise<T>((resolve, reject) =>
      pending.set(id, { resolve: resolve as Pending['resolve'], reject }),
    );
    ops.add({ kind, target, msg, timeoutMs });
    return p;
  };

  const port: KernelPort = {
    send: (module, msg) => op<void>(OpKind.OP_KIND_SEND, module, msg),
    sendToGroup: (group, msg) => op<void>(OpKind.OP_KIND_SEND_TO_GROUP, group, msg),
    request: (module, msg, timeoutMs) => {
      msg.header.sync = true;
      return op<Message[]>(OpKind.OP_KIND_REQUEST, module, msg, timeoutMs).then((r) => r[0] as Message);
    },
    requestGroup: (group, msg, timeoutMs) => {
      msg.header.sync = true;
      return op<Message[]>(OpKind.OP_KIND_REQUEST_GROUP, group, msg, timeoutMs);
    },
    respond: (msg) => {
      if (finished) return;
      // A respond has a sequence number like every op, and no result.
      seq++;
      ops.add({ kind: OpKind.OP_KIND_RESPOND, target: '', msg, timeoutMs: 0 });
    },
    hasModule: (name) => modules.has(name),
  };

  // The plugin sets the flag (edgeHub): the kernel learns it and tells every other process.
  cloud.onChange((connected) => write({ kind: { $case: 'cloud', value: { connected } } }));

  const sendMetrics = async (): Promise<void> => {
    if (!metrics) return;
    const json = JSON.stringify(await metrics.registry.getMetricsAsJSON());
    write({ kind: { $case: 'metrics', value: { json: Buffer.from(json) } } });
  };

  const failed = (error: unknown, where: 'start' | 'handler' | 'callback', deliverySeq = 0): void =>
    write({ kind: { $case: 'failed', value: { error: errorText(error), where, seq: deliverySeq } } });

  const onStart = async (start: Start): Promise<void> => {
    modules = new Set(start.modules);
    cloud.set(start.cloudConnected);
    if (!options.logger) log = createLogger((start.logLevel || 'info') as LogLevel, { module: start.name });
    abort = new AbortController();
    const services = new ServiceRegistry();
    metrics = new Metrics();
    releaseServices = provideKernelServices(services, {
      config: JSON.parse(Buffer.from(start.configJson).toString('utf8')) as LoadedConfig,
      log,
      metrics,
      cloud,
    });
    const section = JSON.parse(Buffer.from(start.sectionJson).toString('utf8')) as ModuleConfig;
    const ctx = pluginContext(start, section, port, { log, metrics, services }, abort.signal);
    const owner = { fail: (err: unknown) => failed(err, 'callback') };
    const signal = abort.signal;
    try {
      const started = (await runAs(owner, () => def.start(ctx))) ?? {};
      if (signal.aborted) {
        // The kernel gave this start up meanwhile: stop what it built, never report Ready.
        await started.stop?.();
        return;
      }
      instance = started;
      for (const t of def.provides ?? []) {
        if (!services.has(t))
          throw new KernelError(
            'EPLUGIN_INVALID',
            `plugin "${def.name}" declares it provides ${t} but did not provide it`,
          );
      }
    } catch (err) {
      log.error({ err: errorText(err) }, 'plugin start failed');
      failed(err, 'start');
      return;
    }
    const onMessage = instance.onMessage?.bind(instance);
    // Each delivery is acknowledged by its sequence number once its handler settled; concurrent
    // handlers may finish in any order.
    const seqOf = new WeakMap<Message, number>();
    box.attach(
      async (msg) => {
        await onMessage?.(msg);
        acks.add(seqOf.get(msg) ?? 0);
      },
      (err, msg) => failed(err, 'handler', seqOf.get(msg)),
      def.concurrency ?? 1,
      (fn) => runAs(owner, fn),
    );
    deliver = (firstSeq, msgs) => {
      for (const [i, msg] of msgs.entries()) {
        if (msg instanceof Error) {
          log.error({ err: msg.message }, 'undecodable message from the kernel');
          acks.add(firstSeq + i);
          continue;
        }
        seqOf.set(msg, firstSeq + i);
        box.push(msg);
      }
    };
    if (start.metricsIntervalMs > 0) {
      metricsTimer = setInterval(() => void sendMetrics(), start.metricsIntervalMs).unref();
    }
    write({ kind: { $case: 'ready', value: {} } });
  };
  let deliver: (firstSeq: number, msgs: (Message | Error)[]) => void = () => undefined;

  const stopInstance = async (): Promise<void> => {
    box.detach();
    clearInterval(metricsTimer);
    abort?.abort();
    const current = instance;
    instance = undefined;
    try {
      await current?.stop?.();
    } catch (err) {
      log.error({ err: errorText(err) }, 'plugin stop failed');
    }
    await sendMetrics().catch(() => undefined);
    releaseServices();
  };

  const end = (reason: string): void => {
    if (finished) return;
    finished = true;
    out.emit('end');
    for (const p of pending.values())
      p.reject(new KernelError('EREMOTE_DISCONNECTED', `kernel connection closed: ${reason}`));
    pending.clear();
    void stopInstance().then(() => {
      channel.close();
      finish({ reason });
    });
  };

  const settle = (id: number, fn: (p: Pending) => void): void => {
    const p = pending.get(id);
    if (!p) return;
    pending.delete(id);
    fn(p);
  };

  const onFrame = (frame: KernelFrame): void => {
    const kind = frame.kind;
    if (!kind) return;
    switch (kind.$case) {
      case 'start':
        void onStart(kind.value);
        return;
      case 'stop':
        void stopInstance().then(() => {
          write({ kind: { $case: 'stopped', value: {} } });
          out.emit('end');
        });
        return;
      case 'deliver':
        deliver(kind.value.firstSeq, decodeBatch(kind.value.messages));
        return;
      case 'results': {
        for (const id of kind.value.ok) settle(id, (p) => p.resolve(undefined));
        for (const f of kind.value.failed)
          settle(f.seq, (p) => p.reject(new KernelError(f.code as KernelErrorCode, f.error)));
        for (const r of kind.value.replies) {
          const replies = decodeBatch(r.messages).filter((m): m is Message => !(m instanceof Error));
          settle(r.seq, (p) => p.resolve(replies));
        }
        return;
      }
      case 'modules':
        modules = new Set(kind.value.names);
        return;
      case 'cloud':
        cloud.set(kind.value.connected);
        return;
    }
  };

  async function* requests(): AsyncGenerator<PluginFrame> {
    for await (const [frame] of on(out, 'frame', { close: ['end'] })) yield frame as PluginFrame;
  }

  // (ts-proto's Exact<> check of a oneof union cannot be satisfied by a typed generator: the
  // frames are PluginFrame values, checked where they are built.)
  void (async () => {
    try {
      for await (const frame of client.connect(requests() as AsyncIterable<never>, { signal: cancel.signal }))
        onFrame(frame);
      end('the kernel closed the stream');
    } catch (err) {
      end(err instanceof ClientError ? err.details : errorText(err));
    }
  })();

  write({
    kind: {
      $case: 'hello',
      value: {
        name: def.name,
        group: def.group,
        configKey: def.configKey,
        token,
      },
    },
  });

  return {
    done,
    async close() {
      end('closed by the plugin process');
      cancel.abort();
      await done;
    },
  };
}
