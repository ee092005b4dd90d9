/**
 * The router's full stack on loopback, for its integration test and its benchmark: a real control
 * plane with KubeEdge's router CRDs (`crds/`, as `keadm init` installs them), a mosquitto broker, a cloud kernel (cloudHub + router on the
 * cloudcore identity's kubeconfig) and an edge kernel (edgeHub, eventBus on the broker, serviceBus)
 * joined over real mutual TLS.
 */
import { join } from 'node:path';
import { parseConfig } from '../../kernel/config/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger, type LogLevel } from '../../kernel/log.js';
import { cloudLayout, cloudRegistry, edgeLayout, edgeRegistry } from '../../plugins/registry.js';
import { startControlPlane, type ControlPlane } from '../peers/kube.js';
import { startMosquitto, type MosquittoPeer } from '../peers/mosquitto.js';
import { freePort, tempDir, waitFor } from '../peers/util.js';
import { prepareLink } from './link.js';

/** The router CRDs `keadm init` installs (KubeEdge v1.23.1's). */
const CRDS = ['router_v1_rule.yaml', 'router_v1_ruleEndpoint.yaml'].map((f) => join('crds', f));

export interface RouterStack {
  cp: ControlPlane;
  broker: MosquittoPeer;
  cloud: Kernel;
  edge: Kernel;
  routerPort: number;
  /** the edge serviceBus's local server (modules.serviceBus.port) */
  serviceBusPort: number;
  /** `kubectl apply -f -` of objects (a List) */
  apply(objects: object[]): Promise<void>;
  stop(): Promise<void>;
}

export interface RouterStackOptions {
  node: string;
  /** modules.router.restTimeout (s) */
  restTimeout: number;
  /** modules.serviceBus.timeout (s) */
  serviceBusTimeout: number;
  /** edgeHub.messageQPS (KubeEdge's 30 by default; the burst is twice it) */
  messageQPS?: number;
}

export async function startRouterStack(o: RouterStackOptions): Promise<RouterStack> {
  const logger = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel);
  const [cp, broker] = await Promise.all([startControlPlane(), startMosquitto()]);
  await cp.kubectl(['apply', ...CRDS.flatMap((f) => ['-f', f])]);
  await cp.waitForCrds(['rules.rules.kubeedge.io', 'ruleendpoints.rules.kubeedge.io']);

  const dir = await tempDir('router');
  const link = await prepareLink(dir);
  const [routerPort, serviceBusPort] = [await freePort(), await freePort()];
  const cloudYaml = `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${cp.cloudcoreKubeconfigPath}
modules:
  edgeController: {enable: false}
  router: {enable: true, address: 127.0.0.1, port: ${routerPort}, restTimeout: ${o.restTimeout}}
${link.cloudHub}`;
  const edgeYaml = `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${join(dir, 'edge/edgecore.db')}
modules:
  edged: {enable: false, hostnameOverride: ${o.node}}
  metaManager: {enable: false}
  deviceTwin: {enable: false}
  eventBus: {enable: true, mqttMode: 2, mqttServerExternal: "${broker.url}"}
  serviceBus: {enable: true, timeout: ${o.serviceBusTimeout}, port: ${serviceBusPort}}
${link.edgeHub(`    messageQPS: ${o.messageQPS ?? 30}\n    messageBurst: ${(o.messageQPS ?? 30) * 2}\n`)}`;
  const cloud = new Kernel({
    config: parseConfig(cloudLayout, cloudYaml, 'cloudcore.yaml'),
    registry: cloudRegistry,
    logger,
  });
  await cloud.start();
  const edge = new Kernel({
    config: parseConfig(edgeLayout, edgeYaml, join(dir, 'edge/edgecore.yaml')),
    registry: edgeRegistry,
    logger,
  });
  await edge.start();
  await waitFor(() => edge.cloud.connected, { what: 'the edge connected', timeoutMs: 30_000 });
  return {
    cp,
    broker,
    cloud,
    edge,
    routerPort,
    serviceBusPort,
    apply: async (items) => {
      await cp.kubectl(['apply', '-f', '-'], {
        input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }),
      });
    },
    stop: async () => {
      await edge.stop();
      await cloud.stop();
      await broker.stop();
      await cp.stop();
    },
  };
}

/** A RuleEndpoint of namespace default. */
export const ruleEndpoint = (
  name: string,
  type: string,
  properties: Record<string, string> = {},
): object => ({
  apiVersion: 'rules.kubeedge.io/v1',
  kind: 'RuleEndpoint',
  metadata: { name, namespace: 'default' },
  spec: { ruleEndpointType: type, properties },
});

/** A Rule of namespace default. */
export const rule = (
  name: string,
  source: string,
  sourceResource: Record<string, string>,
  target: string,
  targetResource: Record<string, string>,
): object => ({
  apiVersion: 'rules.kubeedge.io/v1',
  kind: 'Rule',
  metadata: { name, namespace: 'default' },
  spec: { source, sourceResource, target, targetResource },
});
