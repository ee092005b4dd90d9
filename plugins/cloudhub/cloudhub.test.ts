/**
 * cloudHub in a kernel, over real mutual-TLS websockets on loopback: per-node client certificates
 * signed by the CA, a probe module playing edgecontroller, the recorded v1.23.1 session's messages
 * as payloads.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parseConfig } from '../../kernel/config/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger } from '../../kernel/log.js';
import { encodeMessage, newMessage, type Message } from '../../kernel/index.js';
import { cloudLayout, cloudRegistry } from '../registry.js';
import { cleanup, freePort, tempDir } from '../../test/peers/util.js';
import { waitUntil } from '../../test/helpers/kernel.js';
import { CLIENT_AUTH, SERVER_AUTH, createCa, signCertificate, toPem, type KeyPairDer } from './pki.js';
import { findRecorded } from '../../test/helpers/recorded.js';

afterAll(cleanup);

const PROJECT = 'e632aba927ea4ac2b575ec1603d56f10';
const KEEPALIVE_S = 2;
const NODE_LIMIT = 3;

const KEEPALIVE = findRecorded('edge->cloud', (m) => m.route.operation === 'keepalive');
const POD_PATCH = findRecorded('edge->cloud', (m) => m.route.resource?.includes('/podpatch/') ?? false);
const TWIN_UPDATE = findRecorded(
  'edge->cloud',
  (m) => m.route.source === 'twin' && m.route.operation === 'update',
);
const POD_UPDATE = findRecorded(
  'cloud->edge',
  (m) => m.route.resource?.includes('/pod/') === true && m.route.operation === 'update',
);
const CM_UPDATE = findRecorded(
  'cloud->edge',
  (m) => m.route.resource?.includes('/configmap/') === true && !m.header.parent_msg_id,
);

let dir: string;
let wsPort: number;
let httpsPort: number;
let ca: KeyPairDer;
let caPem: string;
let kernel: Kernel;
/** What the probe playing edgecontroller received. */
const controller: Message[] = [];

interface Identity {
  cert: string;
  key: string;
}

async function identity(
  cn: string,
  signer: KeyPairDer = ca,
  usages: string[] = [CLIENT_AUTH],
): Promise<Identity> {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = await signCertificate(signer, {
    publicKey: publicKey.export({ type: 'spki', format: 'der' }),
    commonName: cn,
    organization: ['system:nodes'],
    usages,
    validityDays: 1,
  });
  return {
    cert: toPem('CERTIFICATE', der),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** An edge: a websocket as edgeHub dials it, collecting what the cloud sends. */
interface Edge {
  ws: WebSocket;
  inbox: Message[];
  raw: string[];
  send(msg: Message): void;
  wait(pred: (msgs: Message[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  closed: Promise<number>;
  stop(): void;
}

function dial(node: string, id: Identity | undefined, opts: { keepalive?: boolean } = {}): Promise<Edge> {
  const ws = new WebSocket(`wss://127.0.0.1:${wsPort}/${PROJECT}/${node}/events`, {
    ca: caPem,
    ...(id ?? {}),
    headers: { node_id: node, project_id: PROJECT, ConnectionUse: 'msg' },
  });
  const inbox: Message[] = [];
  const raw: string[] = [];
  ws.on('message', (data) => {
    raw.push(data.toString());
    inbox.push(JSON.parse(data.toString()) as Message);
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  let timer: NodeJS.Timeout | undefined;
  const edge: Edge = {
    ws,
    inbox,
    raw,
    send: (msg) => ws.send(encodeMessage(msg) + '\n'),
    wait: (pred, what, timeoutMs = 5000) => waitUntil(() => pred(inbox), timeoutMs, what),
    closed,
    stop: () => {
      clearInterval(timer);
      ws.close();
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      if (opts.keepalive !== false) {
        const beat = (): void =>
          edge.send({ ...KEEPALIVE, header: { msg_id: crypto.randomUUID(), timestamp: Date.now() } });
        beat();
        timer = setInterval(beat, 500);
        ws.once('close', () => clearInterval(timer));
      }
      resolve(edge);
    });
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => reject(new Error(`HTTP ${res.statusCode}: ${body}`)));
    });
    ws.once('error', reject);
  });
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await kernel.metrics.text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${name}{${labels}}`) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** A downstream message from the probe to cloudhub, addressed to `node`. */
function toNode(node: string, msg: Message, changes: Partial<Message['header']> = {}): Message {
  return {
    header: { ...msg.header, msg_id: crypto.randomUUID(), ...changes },
    route: { ...msg.route, resource: `node/${node}/${msg.route.resource}` },
    content: structuredClone(msg.content),
  };
}

beforeAll(async () => {
  dir = await tempDir('cloudhub');
  ca = await createCa();
  caPem = toPem('CERTIFICATE', ca.cert);
  await mkdir(join(dir, 'ca'), { recursive: true });
  await writeFile(join(dir, 'ca', 'rootCA.crt'), caPem);
  await writeFile(join(dir, 'ca', 'rootCA.key'), toPem('EC PRIVATE KEY', ca.key), { mode: 0o600 });
  wsPort = await freePort();
  httpsPort = await freePort();
  const yaml = `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
modules:
  edgeController: {enable: false}
  deviceController: {enable: false}
  cloudHub:
    keepaliveInterval: ${KEEPALIVE_S}
    nodeLimit: ${NODE_LIMIT}
    advertiseAddress: [127.0.0.1]
    tlsCAFile: ${join(dir, 'ca', 'rootCA.crt')}
    tlsCAKeyFile: ${join(dir, 'ca', 'rootCA.key')}
    tlsCertFile: ${join(dir, 'certs', 'server.crt')}
    tlsPrivateKeyFile: ${join(dir, 'certs', 'server.key')}
    websocket: {enable: true, address: 127.0.0.1, port: ${wsPort}}
    https: {enable: true, address: 127.0.0.1, port: ${httpsPort}}
`;
  const config = parseConfig(cloudLayout, yaml, 'test-cloudcore.yaml');
  kernel = new Kernel({
    config,
    registry: cloudRegistry,
    logger: createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent'),
  });
  const probe = kernel.bus.addModule('edgecontroller', 'edgecontroller');
  probe.attach(
    (m) => void controller.push(m),
    () => undefined,
  );
  await kernel.start();
}, 60_000);

afterAll(async () => {
  await kernel?.stop();
});

describe('cloudHub', () => {
  it('accepts an edge with its node certificate: upstream goes to edgecontroller with node/<id>/, a downstream message reaches the edge', async () => {
    const edge = await dial('edge-1', await identity('system:node:edge-1'));
    edge.send(POD_PATCH);
    await waitUntil(
      () => controller.some((m) => m.header.msg_id === POD_PATCH.header.msg_id),
      5000,
      'pod status at edgecontroller',
    );
    const got = controller.find((m) => m.header.msg_id === POD_PATCH.header.msg_id)!;
    expect(got.route).toEqual({ ...POD_PATCH.route, resource: `node/edge-1/${POD_PATCH.route.resource}` });
    expect(got.content).toEqual(POD_PATCH.content);
    expect(await metric('kubeedge_cloudhub_connected_nodes', '')).toBe(1);
    expect(
      await metric('kubeedge_cloudhub_messages_total', 'node="edge-1",direction="in"'),
    ).toBeGreaterThanOrEqual(2);

    // a reply to the edge's request (no-ACK): resource trimmed, parent kept
    const reply = newMessage(
      {
        source: 'edgecontroller',
        group: 'resource',
        operation: 'response',
        resource: `node/edge-1/${POD_PATCH.route.resource}`,
      },
      'OK',
      { parentId: POD_PATCH.header.msg_id },
    );
    await kernel.bus.send('cloudhub', reply);
    await edge.wait((msgs) => msgs.some((m) => m.header.msg_id === reply.header.msg_id), 'reply at the edge');
    const seen = edge.inbox.find((m) => m.header.msg_id === reply.header.msg_id)!;
    expect(seen.route.resource).toBe(POD_PATCH.route.resource);
    expect(seen.header.parent_msg_id).toBe(POD_PATCH.header.msg_id);
    expect(edge.raw.find((r) => r.includes(reply.header.msg_id))).toMatch(/\n$/);
    edge.stop();
    await edge.closed;
  });

  it("answers a sync no-ACK message (the router's): OK once written to the node, an error when the node is not connected", async () => {
    const route = { source: 'router_eventbus', group: 'user', operation: 'publish' };
    const offline = await kernel.bus.request(
      'cloudhub',
      newMessage({ ...route, resource: 'node/edge-away/test' }, 'x'),
      5000,
    );
    expect(offline.route.operation).toBe('error');
    expect(offline.content).toBe('node edge-away is not connected to this cloudcore');

    const edge = await dial('edge-sync', await identity('system:node:edge-sync'));
    const msg = newMessage({ ...route, resource: 'node/edge-sync/test' }, 'hello');
    const written = await kernel.bus.request('cloudhub', msg, 5000);
    expect(written.content).toBe('OK');
    await edge.wait(
      (msgs) => msgs.some((m) => m.header.msg_id === msg.header.msg_id),
      'published at the edge',
    );
    const seen = edge.inbox.find((m) => m.header.msg_id === msg.header.msg_id)!;
    expect(seen.route.resource).toBe('test');
    expect(seen.header.sync).toBeUndefined();
    edge.stop();
    await edge.closed;
  });

  it('ACK mode: an object push waits for the edge response; an un-acked one is sent again with the same msg_id', async () => {
    const edge = await dial('edge-1', await identity('system:node:edge-1'));
    const pod = toNode('edge-1', POD_UPDATE);
    const cm = toNode('edge-1', CM_UPDATE);
    await kernel.bus.send('cloudhub', pod);
    await kernel.bus.send('cloudhub', cm);
    await edge.wait((msgs) => msgs.some((m) => m.header.msg_id === pod.header.msg_id), 'pod push');
    const first = edge.inbox.find((m) => m.header.msg_id === pod.header.msg_id)!;
    expect(first.route.resource).toBe(POD_UPDATE.route.resource);
    expect(first.header.resourceversion).toBe(POD_UPDATE.header.resourceversion);
    expect(first.content).toEqual(POD_UPDATE.content);
    // one in flight: the configmap waits for the pod's ACK
    expect(edge.inbox.some((m) => m.header.msg_id === cm.header.msg_id)).toBe(false);
    edge.send(
      newMessage({ ...POD_UPDATE.route, operation: 'response' }, 'OK', { parentId: pod.header.msg_id }),
    );
    await edge.wait(
      (msgs) => msgs.some((m) => m.header.msg_id === cm.header.msg_id),
      'configmap after the pod ACK',
    );
    // not acked: retransmitted after 5 s, same msg_id
    await edge.wait(
      (msgs) => msgs.filter((m) => m.header.msg_id === cm.header.msg_id).length === 2,
      'retransmission',
      8000,
    );
    expect(await metric('kubeedge_cloudhub_ack_retries_total', 'node="edge-1"')).toBeGreaterThanOrEqual(1);
    edge.send(
      newMessage({ ...CM_UPDATE.route, operation: 'response' }, 'OK', { parentId: cm.header.msg_id }),
    );
    await eventually(
      async () => (await metric('kubeedge_cloudhub_queue_depth', 'node="edge-1"')) === 0,
      'queue empty',
    );
    edge.stop();
    await edge.closed;
  }, 15_000);

  it('keeps ACK-mode messages for an offline node (newest version per object) and sends them when it connects', async () => {
    const rv = Number(POD_UPDATE.header.resourceversion);
    const older = toNode('edge-2', POD_UPDATE);
    const newer = toNode('edge-2', POD_UPDATE, { resourceversion: String(rv + 5) });
    await kernel.bus.send('cloudhub', older);
    await kernel.bus.send('cloudhub', newer);
    const edge = await dial('edge-2', await identity('system:node:edge-2'));
    await edge.wait((msgs) => msgs.some((m) => m.header.msg_id === newer.header.msg_id), 'newest version');
    expect(edge.inbox.some((m) => m.header.msg_id === older.header.msg_id)).toBe(false);
    edge.send(
      newMessage({ ...POD_UPDATE.route, operation: 'response' }, 'OK', { parentId: newer.header.msg_id }),
    );
    // after the ACK an older version is not queued: the next object comes straight after
    const stale = toNode('edge-2', POD_UPDATE);
    const cm = toNode('edge-2', CM_UPDATE);
    await kernel.bus.send('cloudhub', stale);
    await kernel.bus.send('cloudhub', cm);
    await edge.wait((msgs) => msgs.some((m) => m.header.msg_id === cm.header.msg_id), 'configmap');
    expect(edge.inbox.some((m) => m.header.msg_id === stale.header.msg_id)).toBe(false);
    edge.stop();
    await edge.closed;
  });

  it('refuses a certificate of another node (node isolation) with 403, and the connected node is not disturbed', async () => {
    const edge = await dial('edge-1', await identity('system:node:edge-1'));
    const before = await metric('kubeedge_cloudhub_refusals_total', 'reason="node-isolation"');
    await expect(dial('edge-1', await identity('system:node:edge-9'))).rejects.toThrow(
      /HTTP 403: node edge-1: the client certificate is for CN=system:node:edge-9, expected CN=system:node:edge-1/,
    );
    expect(await metric('kubeedge_cloudhub_refusals_total', 'reason="node-isolation"')).toBe(before + 1);
    const msg = { ...POD_PATCH, header: { ...POD_PATCH.header, msg_id: crypto.randomUUID() } };
    edge.send(msg);
    await waitUntil(
      () => controller.some((m) => m.header.msg_id === msg.header.msg_id),
      5000,
      'edge-1 still served',
    );
    edge.stop();
    await edge.closed;
  });

  it('refuses a connection without client certificate, with a certificate of another CA or not for clients; the connected node is not disturbed', async () => {
    const edge = await dial('edge-1', await identity('system:node:edge-1'));
    const count = (reason: string) => metric('kubeedge_cloudhub_refusals_total', `reason="${reason}"`);
    const noCert = await count('no-client-cert');
    await expect(dial('edge-1', undefined)).rejects.toThrow();
    await eventually(async () => (await count('no-client-cert')) === noCert + 1, 'no-client-cert refusal');
    const untrusted = await count('untrusted-cert');
    await expect(dial('edge-1', await identity('system:node:edge-1', await createCa()))).rejects.toThrow();
    await eventually(async () => (await count('untrusted-cert')) === untrusted + 1, 'untrusted-cert refusal');
    // a server certificate (no clientAuth) signed by the right CA
    const usage = await count('ext-key-usage');
    await expect(dial('edge-1', await identity('system:node:edge-1', ca, [SERVER_AUTH]))).rejects.toThrow();
    await eventually(async () => (await count('ext-key-usage')) === usage + 1, 'ext-key-usage refusal');
    const msg = { ...POD_PATCH, header: { ...POD_PATCH.header, msg_id: crypto.randomUUID() } };
    edge.send(msg);
    await waitUntil(
      () => controller.some((m) => m.header.msg_id === msg.header.msg_id),
      5000,
      'edge-1 still served',
    );
    edge.stop();
    await edge.closed;
  });

  it('serves the cert server on https.port with the CA, and keeps the join token owner-only', async () => {
    const der = await new Promise<Buffer>((resolve, reject) => {
      const req = httpsGet({ host: '127.0.0.1', port: httpsPort, path: '/ca.crt', ca: caPem }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      });
      req.on('error', reject);
    });
    expect(der.equals(ca.cert)).toBe(true);
    const token = join(dir, 'secrets', 'tokensecret', 'tokendata');
    expect((await stat(token)).mode & 0o777).toBe(0o600);
    expect((await readFile(token, 'utf8')).split('.')).toHaveLength(4);
  });

  it('nodeLimit: one node too many is refused with 503 and its reason; the others stay connected', async () => {
    const edges = await Promise.all(
      ['edge-a', 'edge-b', 'edge-c'].map(async (n) => dial(n, await identity(`system:node:${n}`))),
    );
    await expect(dial('edge-d', await identity('system:node:edge-d'))).rejects.toThrow(
      /HTTP 503: node edge-d refused: cloudHub.nodeLimit \(3\) nodes are connected/,
    );
    expect(await metric('kubeedge_cloudhub_refusals_total', 'reason="node-limit"')).toBe(1);
    for (const e of edges) expect(e.ws.readyState).toBe(WebSocket.OPEN);
    // a node already connected may still replace its own connection at the limit
    const again = await dial('edge-a', await identity('system:node:edge-a'));
    await edges[0]!.closed;
    for (const e of [again, ...edges.slice(1)]) {
      e.stop();
      await e.closed;
    }
  });

  it('a second connection of a node replaces the first, which is closed', async () => {
    const id = await identity('system:node:edge-1');
    const first = await dial('edge-1', id);
    const second = await dial('edge-1', id);
    await first.closed;
    const msg = toNode('edge-1', POD_PATCH);
    msg.route.source = 'edgecontroller';
    msg.route.operation = 'response';
    msg.content = 'OK';
    await kernel.bus.send('cloudhub', msg);
    await second.wait(
      (msgs) => msgs.some((m) => m.header.msg_id === msg.header.msg_id),
      'message on the new connection',
    );
    expect(first.inbox.some((m) => m.header.msg_id === msg.header.msg_id)).toBe(false);
    second.stop();
    await second.closed;
  });

  it('closes a node that sends no keepalive within keepaliveInterval', async () => {
    const edge = await dial('edge-1', await identity('system:node:edge-1'), { keepalive: false });
    expect(await edge.closed).toBe(1000);
    await eventually(async () => (await metric('kubeedge_cloudhub_connected_nodes', '')) === 0, 'node gone');
  });

  it('drops a frame that is not a message and keeps the connection', async () => {
    const edge = await dial('edge-1', await identity('system:node:edge-1'));
    const before = await metric('kubeedge_cloudhub_refusals_total', 'reason="bad-frame"');
    edge.ws.send('{"header":{"msg_id":1}}');
    edge.ws.send('not json');
    const msg = { ...POD_PATCH, header: { ...POD_PATCH.header, msg_id: crypto.randomUUID() } };
    edge.send(msg);
    await waitUntil(
      () => controller.some((m) => m.header.msg_id === msg.header.msg_id),
      5000,
      'message after bad frames',
    );
    expect(await metric('kubeedge_cloudhub_refusals_total', 'reason="bad-frame"')).toBe(before + 2);
    expect(edge.ws.readyState).toBe(WebSocket.OPEN);
    edge.stop();
    await edge.closed;
  });

  // cloudcore-edgecore.test.ts checks the k8s/ca.crt answer with a real cluster's kubeconfig
  it('counts upstream messages whose cloud module is not running, answers k8s/ca.crt itself (an error without a cluster)', async () => {
    const edge = await dial('edge-1', await identity('system:node:edge-1'));
    edge.send(TWIN_UPDATE);
    await eventually(
      async () =>
        (await metric(
          'kubeedge_cloudhub_undeliverable_total',
          'target="devicecontroller",reason="EBUS_NO_MODULE"',
        )) === 1,
      'devicecontroller not running',
    );
    const query = newMessage(
      { source: 'metamanager', group: 'meta', operation: 'query', resource: 'k8s/ca.crt' },
      null,
    );
    edge.send(query);
    await edge.wait(
      (msgs) => msgs.some((m) => m.header.parent_msg_id === query.header.msg_id),
      'k8s/ca.crt reply',
    );
    const reply = edge.inbox.find((m) => m.header.parent_msg_id === query.header.msg_id)!;
    expect(reply.route).toEqual({
      source: 'cloudhub',
      group: 'resource',
      operation: 'error',
      resource: 'k8s/ca.crt',
    });
    expect(reply.content).toMatch(/^cannot read the Kubernetes CA: .*serviceaccount\/ca\.crt/);
    edge.stop();
    await edge.closed;
  });
});

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
