/**
 * edgeHub against a small mutual-TLS websocket server standing in for cloudHub (a unit test: the
 * real cloudHub is in test/integration/cloud-edge-link.test.ts), with certificates bootstrapped
 * from the real cert server with a real token, and a real SQLite file for the outbox.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { WebSocketServer, type WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../kernel/config/index.js';
import { serveHealth } from '../../kernel/health.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger, type LogLevel } from '../../kernel/log.js';
import { decodeMessage, newMessage, pluginSpecifier, type Message } from '../../kernel/index.js';
import { ErrConnectionLost } from '../../protocol/index.js';
import { waitUntil } from '../helpers/kernel.js';
import { cleanup, tempDir, waitFor } from '../peers/util.js';
import { createCertServer } from '../../plugins/cloudhub/certserver.js';
import { FilePkiStore, preparePki, tlsPair, toPem, type CloudPki } from '../../plugins/cloudhub/pki.js';
import { createToken } from '../../plugins/cloudhub/token.js';
import { edgeLayout } from '../../plugins/registry.js';
import {
  HEALTHY_CONNECTION_MS,
  ReconnectBackoff,
  TokenBucket,
  hubUrl,
  reconnectDelayMs,
  upgradeHeaders,
} from '../../plugins/edgehub/client.js';
import { OUTBOX_TABLE } from '../../plugins/edgehub/queue.js';

const log = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel);
const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await cleanup();
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** The stand-in cloudHub: records upgrades and frames, can refuse upgrades and drop connections. */
class FakeCloud {
  readonly upgrades: { req: IncomingMessage; peerCN: string }[] = [];
  readonly frames: string[] = [];
  readonly msgs: Message[] = [];
  refuse = false;
  socket: WebSocket | undefined;
  port = 0;
  private wss: WebSocketServer | undefined;

  constructor(
    private readonly pki: CloudPki,
    private readonly autoPong = true,
  ) {}

  async start(): Promise<void> {
    const server = createHttpsServer({
      ...tlsPair(this.pki.server),
      ca: toPem('CERTIFICATE', this.pki.ca.cert),
      requestCert: true,
      rejectUnauthorized: true,
    });
    this.wss = new WebSocketServer({
      server,
      autoPong: this.autoPong,
      verifyClient: (_info, cb) => (this.refuse ? cb(false, 503, 'refused by the test') : cb(true)),
    });
    this.wss.on('connection', (ws, req) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      this.upgrades.push({ req, peerCN: String(peer.subject?.CN ?? '') });
      this.socket = ws;
      ws.on('message', (data) => {
        const text = (data as Buffer).toString('utf8');
        this.frames.push(text);
        this.msgs.push(decodeMessage(text));
      });
    });
    this.port = await listen(server);
  }

  send(msg: Message): void {
    this.socket?.send(JSON.stringify(msg));
  }

  /** Upstream messages other than keepalives. */
  traffic(): Message[] {
    return this.msgs.filter((m) => m.route.operation !== 'keepalive');
  }

  waitFor(pred: (m: Message) => boolean, what: string): Promise<Message> {
    return waitUntil(() => this.msgs.some(pred), 10_000, what).then(() => this.msgs.find(pred) as Message);
  }
}

const registry = [
  { configKey: 'edgeHub', specifier: pluginSpecifier(import.meta.url, '../../plugins/edgehub/index') },
];

interface Edge {
  kernel: Kernel;
  got: Record<string, Message[]>;
}

/** The edge kernel's `/metrics` as edgecore serves it (kernel/health.ts), as `name{labels}` → value. */
async function scrape(kernel: Kernel): Promise<Map<string, number>> {
  const health = await serveHealth(
    kernel,
    { enable: true, address: '127.0.0.1', port: 0, allowNonLoopback: false },
    log,
  );
  try {
    const text = await (await fetch(`http://127.0.0.1:${health!.port}/metrics`)).text();
    return new Map(
      text
        .split('\n')
        .filter((l) => l.startsWith('kubeedge_edgehub_'))
        .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]),
    );
  } finally {
    await health!.close();
  }
}

/** An edge kernel with edgeHub and probe modules in the groups/modules edgeHub delivers to. */
async function startEdge(yaml: string): Promise<Edge> {
  const kernel = new Kernel({
    config: parseConfig(edgeLayout, yaml, configFile()),
    registry,
    logger: log,
  });
  const got: Record<string, Message[]> = {};
  for (const [name, group] of [
    ['metaprobe', 'meta'],
    ['twinprobe', 'twin'],
    ['eventbus', 'bus'],
    ['servicebus', 'bus'],
    ['taskmanager', 'taskmanager'],
    ['tester', 'test'],
  ] as const) {
    const inbox: Message[] = (got[name] = []);
    kernel.bus.addModule(name, group).attach(
      (m) => void inbox.push(m),
      () => undefined,
    );
  }
  await kernel.start();
  return { kernel, got };
}

let pki: CloudPki;
let cloud: FakeCloud;
let dir: string;
let yaml: string;
const configFile = (): string => join(dir, 'edgecore.yaml');

beforeAll(async () => {
  dir = await tempDir('edgehub');
  pki = await preparePki({
    store: new FilePkiStore(join(dir, 'pki')),
    advertiseAddress: ['127.0.0.1'],
    dnsNames: [],
    log,
  });
  const certPort = await listen(createCertServer({ pki, log, nodeExists: async () => false }));
  cloud = new FakeCloud(pki);
  await cloud.start();
  yaml = `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${join(dir, 'edgecore.db')}
modules:
  edged: {enable: false, hostnameOverride: edge-1}
  eventBus: {enable: false}
  metaManager: {enable: false}
  deviceTwin: {enable: false}
  edgeHub:
    enable: true
    heartbeat: 1
    httpServer: https://127.0.0.1:${certPort}
    token: ${createToken(pki.ca, 12)}
    tlsCaFile: ${join(dir, 'edge/ca/rootCA.crt')}
    tlsCertFile: ${join(dir, 'edge/certs/server.crt')}
    tlsPrivateKeyFile: ${join(dir, 'edge/certs/server.key')}
    websocket: {enable: true, server: "127.0.0.1:${cloud.port}"}
`;
  writeFileSync(configFile(), yaml, { mode: 0o644 });
});

describe('edgeHub', () => {
  let edge: Edge;

  it('bootstraps its certificate with the token, then dials with the node certificate and KubeEdge headers', async () => {
    edge = await startEdge(yaml);
    await waitUntil(() => cloud.upgrades.length === 1, 20_000, 'the upgrade');
    const { req, peerCN } = cloud.upgrades[0]!;
    expect(peerCN).toBe('system:node:edge-1');
    expect(req.url).toBe('/e632aba927ea4ac2b575ec1603d56f10/edge-1/events');
    expect(hubUrl('127.0.0.1:10000', 'p', 'edge-1')).toBe('wss://127.0.0.1:10000/p/edge-1/events');
    // header names as Go puts them on the wire (the recorded v1.23 session's upgrade line)
    const raw = req.rawHeaders.filter((_, i) => i % 2 === 0);
    expect(raw).toEqual(expect.arrayContaining(['Node_id', 'Project_id', 'Connectionuse']));
    expect(raw).not.toContain('Origin');
    expect(req.headers.node_id).toBe('edge-1');
    expect(req.headers.project_id).toBe('e632aba927ea4ac2b575ec1603d56f10');
    expect(req.headers.connectionuse).toBe('msg');
    expect(upgradeHeaders('edge-1', 'p')).toEqual({
      Node_id: 'edge-1',
      Project_id: 'p',
      Connectionuse: 'msg',
    });
    const cert = new X509Certificate(readFileSync(join(dir, 'edge/certs/server.crt')));
    expect(cert.subject).toContain('CN=system:node:edge-1');
    // the token was a credential: emptied in the file it came from
    expect(readFileSync(configFile(), 'utf8')).toContain('    token: ""\n');
    expect(statSync(configFile()).mode & 0o777).toBe(0o640);
  });

  it('sends the keepalive of §3.6 right away and every heartbeat, as Go frames it', async () => {
    await waitUntil(
      () => cloud.msgs.filter((m) => m.route.operation === 'keepalive').length >= 2,
      10_000,
      'two keepalives',
    );
    const first = cloud.frames[0]!;
    expect(first.endsWith('}\n')).toBe(true);
    const ka = decodeMessage(first);
    expect(ka.route).toEqual({
      source: 'websocket',
      group: 'resource',
      operation: 'keepalive',
      resource: 'node',
    });
    expect(ka.content).toBe('ping');
    expect(ka.header.msg_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('sets the cloud-connection flag and tells twin, meta, bus and taskmanager', async () => {
    expect(edge.kernel.cloud.connected).toBe(true);
    for (const probe of ['metaprobe', 'twinprobe', 'eventbus', 'servicebus', 'taskmanager']) {
      await waitUntil(() => edge.got[probe]!.length > 0, 5000, `${probe} notice`);
      expect(edge.got[probe]![0]!.route).toMatchObject({
        source: 'edgehub',
        operation: 'connect',
        resource: 'node/connection',
      });
      expect(edge.got[probe]![0]!.content).toBe('cloud_connected');
    }
  });

  it('routes cloud messages as §5.0.2 and answers viaduct control messages', async () => {
    const count = (p: string): number => edge.got[p]!.length;
    const before = {
      meta: count('metaprobe'),
      twin: count('twinprobe'),
      bus: count('eventbus'),
      sb: count('servicebus'),
    };
    const pod = newMessage(
      { source: 'edgecontroller', group: 'resource', operation: 'insert', resource: 'default/pod/web' },
      { metadata: { name: 'web', uid: 'u1' } },
      { resourceVersion: '7' },
    );
    cloud.send(pod);
    cloud.send(
      newMessage(
        { source: 'devicecontroller', group: 'twin', operation: 'update', resource: 'membership' },
        {},
      ),
    );
    cloud.send(
      newMessage(
        { source: 'router_eventbus', group: 'user', operation: 'publish', resource: 'default/topic' },
        'x',
      ),
    );
    cloud.send(
      newMessage({ source: 'router_rest', group: 'user', operation: 'publish', resource: 'dropped' }, 'x'),
    );
    cloud.send(
      newMessage({ source: 'x', group: 'nosuchgroup', operation: 'update', resource: 'dropped' }, 'x'),
    );
    cloud.send(
      newMessage({ source: 'router_servicebus', group: 'user', operation: 'request', resource: 'r' }, {}),
    );
    const ctl = newMessage({ source: 'cloudhub', group: 'resource', operation: 'ping', resource: 'x' }, null);
    cloud.send(ctl);
    await waitUntil(() => count('servicebus') > before.sb, 5000, 'servicebus delivery');
    await cloud.waitFor((m) => m.header.parent_msg_id === ctl.header.msg_id, 'control ack');
    expect(cloud.msgs.find((m) => m.header.parent_msg_id === ctl.header.msg_id)).toMatchObject({
      route: { operation: 'response' },
      content: 'ack',
    });
    expect(edge.got.metaprobe!.slice(before.meta)).toEqual([pod]);
    expect(edge.got.twinprobe!.slice(before.twin).map((m) => m.route.resource)).toEqual(['membership']);
    expect(edge.got.eventbus!.slice(before.bus).map((m) => m.route.source)).toEqual(['router_eventbus']);
    expect(edge.got.servicebus!.slice(before.sb).map((m) => m.route.source)).toEqual(['router_servicebus']);
    for (const inbox of Object.values(edge.got))
      expect(inbox.filter((m) => m.route.resource === 'dropped')).toEqual([]);
  });

  it('reconnects by itself after the cloud drops the link', async () => {
    const upgrades = cloud.upgrades.length;
    cloud.socket?.terminate();
    await waitUntil(
      () => edge.got.twinprobe!.some((m) => m.content === 'cloud_disconnected'),
      5000,
      'notice',
    );
    await waitUntil(() => cloud.upgrades.length === upgrades + 1, 10_000, 'the reconnect');
    await waitUntil(() => edge.kernel.cloud.connected, 5000, 'connected again');
    expect(
      edge.got.twinprobe!.filter((m) => m.route.resource === 'node/connection').map((m) => m.content),
    ).toEqual(['cloud_connected', 'cloud_disconnected', 'cloud_connected']);
  });

  it('sends what edge modules give it as is, and answers sync requests with the cloud reply', async () => {
    const status = newMessage(
      { source: 'edged', group: 'meta', operation: 'patch', resource: 'default/podpatch/web' },
      '{"status":{"phase":"Running"}}',
    );
    await edge.kernel.bus.send('websocket', status);
    expect(await cloud.waitFor((m) => m.header.msg_id === status.header.msg_id, 'status upstream')).toEqual(
      status,
    );

    const query = newMessage(
      { source: 'edged', group: 'meta', operation: 'query', resource: 'default/configmap/c' },
      null,
    );
    const pending = edge.kernel.bus.request('websocket', query, 5000);
    const seen = await cloud.waitFor((m) => m.header.msg_id === query.header.msg_id, 'query upstream');
    expect(seen.header.sync).toBeUndefined(); // cleared on the wire
    const reply = newMessage(
      { source: 'edgecontroller', group: 'resource', operation: 'response', resource: 'default/configmap/c' },
      { kind: 'ConfigMap', metadata: { name: 'c' } },
      { parentId: query.header.msg_id, resourceVersion: '9' },
    );
    cloud.send(reply);
    expect(await pending).toEqual(reply);
  });

  it('shows its connection state, reconnects, messages in/out and outbox depth on /metrics', async () => {
    const m = await scrape(edge.kernel);
    expect(m.get('kubeedge_edgehub_connected')).toBe(1);
    expect(m.get('kubeedge_edgehub_reconnects_total')).toBe(1); // the cloud dropped the link once
    expect(m.get('kubeedge_edgehub_outbox_depth')).toBe(0);
    // in: the pod, membership, publish, servicebus request and the query's reply (the dropped ones too)
    expect(m.get('kubeedge_edgehub_messages_total{direction="in"}')).toBeGreaterThanOrEqual(5);
    // out: the status and the query (keepalives and control acks not counted)
    expect(m.get('kubeedge_edgehub_messages_total{direction="out"}')).toBe(2);
  });

  it('on a lost link: flag and notices, sync requests fail fast, messages queue in SQLite and survive a restart', async () => {
    const inflight = newMessage(
      { source: 'edged', group: 'meta', operation: 'query', resource: 'default/configmap/late' },
      null,
    );
    const unanswered = edge.kernel.bus.request('websocket', inflight, 30_000);
    await cloud.waitFor((m) => m.header.msg_id === inflight.header.msg_id, 'in-flight query upstream');
    cloud.refuse = true;
    cloud.socket?.terminate();
    // the request in flight is failed by the disconnect, not left to its 30 s timeout
    expect(await unanswered).toMatchObject({ route: { operation: 'error' }, content: ErrConnectionLost });
    await waitUntil(() => !edge.kernel.cloud.connected, 10_000, 'disconnect');
    await waitUntil(
      () => edge.got.metaprobe!.some((m) => m.content === 'cloud_disconnected'),
      5000,
      'notice',
    );

    const q = newMessage(
      { source: 'edged', group: 'meta', operation: 'query', resource: 'default/secret/s' },
      null,
    );
    const reply = await edge.kernel.bus.request('websocket', q, 30_000);
    expect(reply.route.operation).toBe('error');
    expect(reply.content).toBe(ErrConnectionLost);
    expect(reply.header.parent_msg_id).toBe(q.header.msg_id);

    const patch = (phase: string): Message =>
      newMessage(
        { source: 'edged', group: 'meta', operation: 'patch', resource: 'default/podpatch/web' },
        JSON.stringify({ status: { phase } }),
      );
    const event = newMessage(
      { source: 'edged', group: 'meta', operation: 'insert', resource: 'default/event/e1' },
      { n: 1 },
    );
    await edge.kernel.bus.send('websocket', patch('Pending'));
    await edge.kernel.bus.send('websocket', event);
    const last = patch('Succeeded');
    await edge.kernel.bus.send('websocket', last);
    // offline: /metrics shows the link down, the two queued messages and the refused dials
    let m = new Map<string, number>();
    await waitFor(
      async () => {
        m = await scrape(edge.kernel);
        return m.get('kubeedge_edgehub_dial_failures_total')! > 0;
      },
      { what: 'a refused dial on /metrics', details: () => JSON.stringify([...m]) },
    );
    expect(m.get('kubeedge_edgehub_connected')).toBe(0);
    expect(m.get('kubeedge_edgehub_outbox_depth')).toBe(2);
    await edge.kernel.stop();

    const db = new Database(join(dir, 'edgecore.db'), { readonly: true });
    expect((db.prepare(`SELECT COUNT(*) AS n FROM ${OUTBOX_TABLE}`).get() as { n: number }).n).toBe(2);
    db.close();

    const sentBefore = cloud.traffic().length;
    const upgradesBefore = cloud.upgrades.length;
    cloud.refuse = false;
    edge = await startEdge(yaml);
    await waitUntil(
      () => cloud.traffic().length >= sentBefore + 2,
      20_000,
      'queued messages after the restart',
    );
    expect(cloud.upgrades.length).toBe(upgradesBefore + 1);
    expect(cloud.traffic().slice(sentBefore)).toEqual([event, last]);
    await edge.kernel.stop();
  });
});

describe('edgeHub bootstrap failures', () => {
  it('counts them on /metrics by error code', async () => {
    const badYaml = yaml
      .replace(join(dir, 'edgecore.db'), join(dir, 'badtoken.db'))
      .replaceAll(join(dir, 'edge/'), join(dir, 'badtoken/'))
      .replace(/ {4}token: .*\n/, '    token: not-a-token\n');
    expect(badYaml).toContain('token: not-a-token');
    const e = await startEdge(badYaml);
    try {
      let m = new Map<string, number>();
      await waitFor(
        async () => {
          m = await scrape(e.kernel);
          return m.get('kubeedge_edgehub_bootstrap_failures_total{reason="EBOOTSTRAP_TOKEN_FORMAT"}')! >= 1;
        },
        { what: 'a bootstrap failure on /metrics', details: () => JSON.stringify([...m]) },
      );
      expect(m.get('kubeedge_edgehub_connected')).toBe(0);
    } finally {
      await e.kernel.stop();
    }
  });
});

describe('edgeHub liveness (readDeadline)', () => {
  it('drops a link whose cloud answers neither ping nor anything else, and dials again', async () => {
    const mute = new FakeCloud(pki, false);
    await mute.start();
    const muteYaml = yaml
      .replace(`127.0.0.1:${cloud.port}`, `127.0.0.1:${mute.port}`)
      .replace(join(dir, 'edgecore.db'), join(dir, 'mute.db'))
      .replace('websocket: {enable: true,', 'websocket: {enable: true, readDeadline: 1,');
    expect(muteYaml).toContain('readDeadline: 1');
    const e = await startEdge(muteYaml);
    try {
      await waitUntil(() => mute.upgrades.length >= 2, 15_000, 'a second dial after the silent link');
      expect(e.got.metaprobe!.map((m) => m.content)).toEqual(
        expect.arrayContaining(['cloud_connected', 'cloud_disconnected']),
      );
    } finally {
      await e.kernel.stop();
    }
  });
});

describe('edgeHub over its rate limit', () => {
  it('holds what exceeds messageQPS/messageBurst in the outbox and sends it in order', async () => {
    const limitedYaml = yaml
      .replace(join(dir, 'edgecore.db'), join(dir, 'limited.db'))
      .replace('    heartbeat: 1\n', '    heartbeat: 1\n    messageQPS: 4\n    messageBurst: 1\n');
    expect(limitedYaml).toContain('messageQPS: 4');
    const e = await startEdge(limitedYaml);
    try {
      await waitUntil(() => e.kernel.cloud.connected, 10_000, 'connected');
      const before = cloud.traffic().length;
      const sent = Array.from({ length: 6 }, (_, i) =>
        newMessage(
          { source: 'edged', group: 'meta', operation: 'insert', resource: `default/event/r${i}` },
          i,
        ),
      );
      for (const m of sent) await e.kernel.bus.send('websocket', m);
      await waitUntil(() => cloud.traffic().length >= before + sent.length, 10_000, 'all six at the cloud');
      expect(cloud.traffic().slice(before)).toEqual(sent);
    } finally {
      await e.kernel.stop();
    }
  });
});

describe('reconnect back-off', () => {
  it('starts near 1 s, doubles with jitter in [half, full], caps at 30 s', () => {
    expect(reconnectDelayMs(0, 0)).toBe(500);
    expect(reconnectDelayMs(0, 0.999)).toBeCloseTo(999.5);
    expect(reconnectDelayMs(1, 0)).toBe(1000);
    expect(reconnectDelayMs(4, 1)).toBe(16_000);
    expect(reconnectDelayMs(5, 0)).toBe(15_000);
    expect(reconnectDelayMs(5, 1)).toBe(30_000);
    expect(reconnectDelayMs(1000, 1)).toBe(30_000);
  });

  it('grows with each failed dial and starts over after a healthy connection', () => {
    const full = new ReconnectBackoff(() => 1); // the upper end of each jitter range
    const schedule = [0, 0, 0, 0, 0, 0, 0].map(() => full.next(0));
    expect(schedule).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    expect(full.next(HEALTHY_CONNECTION_MS - 1)).toBe(30_000); // a short-lived link is no reset
    expect(full.next(HEALTHY_CONNECTION_MS)).toBe(1000);
    expect(full.next(0)).toBe(2000);
  });

  it('is capped at the heartbeat edgeHub gives it (back within one keepalive of the link)', () => {
    const capped = new ReconnectBackoff(() => 1, 2000); // heartbeat 2 s
    expect([0, 0, 0, 0].map(() => capped.next(0))).toEqual([1000, 2000, 2000, 2000]);
    expect(reconnectDelayMs(10, 0, 15_000)).toBe(7500);
  });
});

describe('outbound limit (messageQPS / messageBurst)', () => {
  it('lets a burst through, then one message per 1/qps', () => {
    let now = 0;
    const bucket = new TokenBucket(30, 60, () => now);
    const taken = Array.from({ length: 61 }, () => bucket.take());
    expect(taken.slice(0, 60)).toEqual(Array(60).fill(0));
    expect(taken[60]).toBe(34); // ceil(1000 / 30)
    now += 34;
    expect(bucket.take()).toBe(0);
    now += 10_000; // refills up to the burst, no more
    expect(Array.from({ length: 61 }, () => bucket.take()).filter((w) => w === 0)).toHaveLength(60);
  });

  it('is off with messageQPS 0', () => {
    const bucket = new TokenBucket(0, 0, () => 0);
    expect(Array.from({ length: 1000 }, () => bucket.take()).every((w) => w === 0)).toBe(true);
  });
});
