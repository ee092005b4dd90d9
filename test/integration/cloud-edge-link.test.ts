/**
 * The cloud–edge link end to end: the real cloudHub (with a probe module playing edgecontroller)
 * and the real edgeHub + metaManager, in two kernels over real mutual TLS on loopback. The edge
 * bootstraps its certificate with a token from createToken, connects, a pod status reaches the
 * cloud, a pod pushed by the cloud reaches metaManager's database; then the cloud kernel stops, the
 * edge keeps producing status, the cloud comes back and the latest status of each object arrives.
 * Messages are the recorded v1.23.1 session's.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../kernel/config/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger, type LogLevel } from '../../kernel/log.js';
import { newMessage, type Message } from '../../kernel/index.js';
import { cloudLayout, cloudRegistry, edgeLayout, edgeRegistry } from '../../plugins/registry.js';
import { waitUntil } from '../helpers/kernel.js';
import { cleanup, tempDir } from '../peers/util.js';
import { findRecorded } from '../helpers/recorded.js';
import { prepareLink } from '../helpers/link.js';

const logger = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel);

const POD_PATCH = findRecorded('edge->cloud', (m) => m.route.resource?.includes('/podpatch/') ?? false);
const NODE_PATCH = findRecorded('edge->cloud', (m) => m.route.resource?.includes('/nodepatch/') ?? false);
const POD_PUSH = findRecorded(
  'cloud->edge',
  (m) => m.route.resource?.includes('/pod/') === true && m.route.operation === 'update',
);

/** A status like the recorded one, with a fresh id and `phase` in its patch. */
const status = (like: Message, phase: string): Message =>
  newMessage(like.route, JSON.stringify({ status: { phase } }));

let dir: string;
let cloudYaml: string;
let edgeYaml: string;
let cloud: Kernel | undefined;
let edge: Kernel | undefined;
/** What the probe playing edgecontroller received, over both cloud kernels. */
const controller: Message[] = [];

async function startCloud(): Promise<Kernel> {
  const kernel = new Kernel({
    config: parseConfig(cloudLayout, cloudYaml, 'cloudcore.yaml'),
    registry: cloudRegistry,
    logger,
  });
  kernel.bus.addModule('edgecontroller', 'edgecontroller').attach(
    (m) => void controller.push(m),
    () => undefined,
  );
  await kernel.start();
  return kernel;
}

beforeAll(async () => {
  dir = await tempDir('cloud-edge-link');
  const link = await prepareLink(dir);
  cloudYaml = `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
modules:
  edgeController: {enable: false}
${link.cloudHub}`;
  edgeYaml = `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${join(dir, 'edge/edgecore.db')}
modules:
  edged: {enable: false, hostnameOverride: edge-1}
  eventBus: {enable: false}
  deviceTwin: {enable: false}
  metaManager: {enable: true}
${link.edgeHub()}`;
  cloud = await startCloud();
  edge = new Kernel({
    config: parseConfig(edgeLayout, edgeYaml, join(dir, 'edge/edgecore.yaml')),
    registry: edgeRegistry,
    logger,
  });
  await edge.start();
}, 60_000);

afterAll(async () => {
  await edge?.stop();
  await cloud?.stop();
  await cleanup();
});

const atController = (msg: Message): Message | undefined =>
  controller.find((m) => m.header.msg_id === msg.header.msg_id);

describe('cloud–edge link (real cloudHub ⇄ real edgeHub)', () => {
  it('bootstraps with a token, connects, and carries a pod status up and a pod down', async () => {
    await waitUntil(() => edge!.cloud.connected, 30_000, 'the edge connected');

    const up = status(POD_PATCH, 'Running');
    await edge!.bus.send('websocket', up);
    await waitUntil(() => atController(up) !== undefined, 10_000, 'pod status at edgecontroller');
    expect(atController(up)!.route.resource).toBe(`node/edge-1/${POD_PATCH.route.resource}`);
    expect(atController(up)!.content).toBe(up.content);

    const push: Message = {
      ...POD_PUSH,
      header: { ...POD_PUSH.header, msg_id: crypto.randomUUID() },
      route: { ...POD_PUSH.route, resource: `node/edge-1/${POD_PUSH.route.resource}` },
    };
    await cloud!.bus.send('cloudhub', push);
    const db = new Database(join(dir, 'edge/edgecore.db'), { readonly: true });
    const stored = (): string | undefined =>
      (
        db.prepare('SELECT value FROM meta WHERE key = ?').get(POD_PUSH.route.resource) as
          { value?: string } | undefined
      )?.value;
    await waitUntil(() => stored() !== undefined, 10_000, 'the pod in metaManager');
    expect(JSON.parse(stored()!)).toEqual(POD_PUSH.content);
    db.close();
  });

  it('keeps producing status while the cloud is down; the latest of each arrives when it is back', async () => {
    await cloud!.stop();
    cloud = undefined;
    await waitUntil(() => !edge!.cloud.connected, 20_000, 'the edge sees the cloud gone');

    const sent: Message[] = [];
    for (const phase of ['Pending', 'Running', 'Succeeded']) sent.push(status(POD_PATCH, phase));
    for (const phase of ['a', 'b']) sent.push(status(NODE_PATCH, phase));
    for (const m of sent) await edge!.bus.send('websocket', m);
    const latestPod = sent[2]!;
    const latestNode = sent[4]!;

    cloud = await startCloud();
    await waitUntil(() => edge!.cloud.connected, 30_000, 'the edge reconnected');
    await waitUntil(
      () => atController(latestPod) !== undefined && atController(latestNode) !== undefined,
      10_000,
      'the latest statuses at edgecontroller',
    );
    expect(atController(latestPod)!.content).toBe(JSON.stringify({ status: { phase: 'Succeeded' } }));
    expect(atController(latestNode)!.route.resource).toBe(`node/edge-1/${NODE_PATCH.route.resource}`);
    // the superseded ones never went out
    for (const old of [sent[0]!, sent[1]!, sent[3]!]) expect(atController(old)).toBeUndefined();
  }, 90_000);
});
