/**
 * Test harness for metaManager (tests and benchmarks only): a kernel with metaManager on a real
 * SQLite file, plus stand-in modules for the cloud link (`websocket` in group `hub`), edged and
 * twin that record what metaManager sends them.
 */
import { parseConfig } from '../../../kernel/config/index.js';
import { newMessage, pluginSpecifier, type Message } from '../../../kernel/index.js';
import { Kernel } from '../../../kernel/kernel.js';
import { createLogger, type LogLevel } from '../../../kernel/log.js';
import { edgeLayout } from '../../registry.js';

export const metaRegistry = [
  { configKey: 'metaManager', specifier: pluginSpecifier(import.meta.url, '../index') },
];

export interface MetaHarness {
  kernel: Kernel;
  /** What metaManager sent to the cloud (module websocket / group hub). */
  cloud: Message[];
  edged: Message[];
  twin: Message[];
  /** How the stand-in cloud answers sync requests (undefined: no answer). */
  answer: ((req: Message) => Message | undefined) | undefined;
  /** A sync request to metamanager from a module ("edged" by default). */
  request(msg: Message, timeoutMs?: number): Promise<Message>;
  /** A plain send to metamanager (as edgeHub delivers cloud messages). */
  send(msg: Message): Promise<void>;
  waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

export interface HarnessOptions {
  dataSource: string;
  /** host:port of metaServer, or undefined to leave it off. */
  metaServer?: string;
  remoteQueryTimeout?: number;
  /** Add the stand-in websocket module (default true). */
  withCloud?: boolean;
  connected?: boolean;
  logLevel?: LogLevel;
  /** Called for every message metaManager sends to the cloud. */
  onCloud?: (m: Message) => void;
  /** Top-level `featureGates` of the config. */
  featureGates?: Record<string, boolean>;
}

export function metaYaml(o: HarnessOptions): string {
  return `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
${o.featureGates ? `featureGates: ${JSON.stringify(o.featureGates)}\n` : ''}database:
  dataSource: ${JSON.stringify(o.dataSource)}
modules:
  edged: {enable: false, hostnameOverride: edge-1}
  edgeHub: {enable: false}
  eventBus: {enable: false}
  deviceTwin: {enable: false}
  metaManager:
    enable: true
    remoteQueryTimeout: ${o.remoteQueryTimeout ?? 60}
    metaServer:
      enable: ${o.metaServer ? 'true' : 'false'}
      server: ${o.metaServer ?? '127.0.0.1:10550'}
`;
}

export async function startMeta(o: HarnessOptions): Promise<MetaHarness> {
  const config = parseConfig(edgeLayout, metaYaml(o), 'metamanager-test.yaml');
  const logger = createLogger(o.logLevel ?? ((process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel));
  const kernel = new Kernel({ config, registry: metaRegistry, logger });
  const h: MetaHarness = {
    kernel,
    cloud: [],
    edged: [],
    twin: [],
    answer: undefined,
    request: (msg, timeoutMs = 5000) => kernel.bus.request('metamanager', msg, timeoutMs),
    send: (msg) => kernel.bus.send('metamanager', msg),
    async waitFor(what, check, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = check();
        if (v !== undefined && v !== false) return v as never;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    stop: () => kernel.stop(),
  };
  const record = (list: Message[]) => (m: Message) => void list.push(m);
  if (o.withCloud !== false) {
    kernel.bus.addModule('websocket', 'hub').attach(
      (m) => {
        h.cloud.push(m);
        o.onCloud?.(m);
        if (m.header.sync && h.answer) {
          const reply = h.answer(m);
          if (reply) kernel.bus.respond(reply);
        }
      },
      () => undefined,
      64,
    );
  }
  kernel.bus.addModule('edged', 'edged').attach(record(h.edged), () => undefined);
  kernel.bus.addModule('twin', 'twin').attach(record(h.twin), () => undefined);
  await kernel.start();
  if (o.connected !== false) kernel.cloud.set(true);
  return h;
}

/** A cloud → edge message as edgecontroller sends it (wire §5.5). */
export function cloudMsg(
  operation: string,
  resource: string,
  content: unknown,
  rv?: string,
  source = 'edgecontroller',
): Message {
  return newMessage(
    { source, group: 'resource', operation, resource },
    content,
    rv ? { resourceVersion: rv } : {},
  );
}

export function pod(
  name: string,
  rv: string,
  extra: { ns?: string; uid?: string; labels?: Record<string, string>; node?: string } = {},
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: extra.ns ?? 'default',
      uid: extra.uid ?? `uid-${name}`,
      resourceVersion: rv,
      labels: extra.labels ?? { app: 'web' },
      creationTimestamp: '2026-01-01T00:00:00Z',
    },
    spec: { nodeName: extra.node ?? 'edge-1', containers: [{ name: 'web', image: 'busybox' }] },
    status: { phase: 'Running' },
  };
}

export function configMap(name: string, rv: string, ns = 'default'): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: ns, uid: `uid-cm-${name}`, resourceVersion: rv },
    data: { key: `value-${name}` },
  };
}
