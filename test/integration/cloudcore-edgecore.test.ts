/**
 * cloudcore ⇄ edgecore as a user runs them (configs/README.md): both are processes (`dist/bin/*.js`)
 * on the shipped configs (configs/cloudcore.yaml, edgecore-cloud.yaml) with free ports; cloudcore talks
 * to a real kube-apiserver as its `cloudcore` ServiceAccount and keeps its PKI in KubeEdge's
 * Secrets; the edge joins with the token read from `kubeedge/tokensecret` (as `keadm gettoken`).
 * Then the refusals (token in the wrong format, expired, of another CA), each with its message and
 * the connected edge undisturbed, and a cloudcore killed and started again: same PKI, the edge back.
 */
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { parseDocument } from 'yaml';
import { encodeMessage, newMessage, type Message } from '../../kernel/index.js';
import {
  CLIENT_AUTH,
  createCa,
  signCertificate,
  toPem,
  type KeyPairDer,
} from '../../plugins/cloudhub/pki.js';
import { createToken } from '../../plugins/cloudhub/token.js';
import { startControlPlane, type ControlPlane } from '../peers/kube.js';
import { cleanup, freePort, spawnPeer, tempDir, waitFor, type Peer } from '../peers/util.js';

const root = join(import.meta.dirname, '../..');
const NODE = 'edge-cc-1';

let plane: ControlPlane;
let dir: string;
let cloud: Peer;
let edge: Peer;
const ports = { ws: 0, https: 0, health: 0 };

interface Secret {
  type: string;
  data: Record<string, string>;
  metadata: { resourceVersion: string };
}
const secret = async (name: string): Promise<Secret> =>
  JSON.parse(await plane.kubectl(['get', 'secret', name, '-n', 'kubeedge', '-o', 'json'])) as Secret;
const der = (s: Secret, key: string): Buffer => Buffer.from(s.data[key]!, 'base64');

/**
 * A shipped config (`configs/<name>`) with the values configs/README.md tells the user to set, plus
 * free ports, written to `<cwd>/<name>`; its relative paths then resolve under `cwd`.
 */
async function shippedConfig(name: string, cwd: string, set: [string[], unknown][]): Promise<string> {
  const doc = parseDocument(await readFile(join(root, 'configs', name), 'utf8'));
  for (const [path, value] of set) doc.setIn(path, value);
  await mkdir(cwd, { recursive: true });
  const file = join(cwd, name);
  await writeFile(file, doc.toString());
  return file;
}

async function startCloud(): Promise<Peer> {
  const cwd = join(dir, 'cloud');
  const file = await shippedConfig('cloudcore.yaml', cwd, [
    [['kubeAPIConfig', 'kubeConfig'], plane.cloudcoreKubeconfigPath],
    [['modules', 'cloudHub', 'websocket', 'port'], ports.ws],
    [['modules', 'cloudHub', 'https', 'port'], ports.https],
    [['kernel', 'health'], { port: ports.health }],
  ]);
  return spawnPeer(process.execPath, [join(root, 'dist/bin/cloudcore.js'), '--config', file], {
    name: 'cloudcore',
    cwd,
  });
}

/** An edgecore process for `node` with `token` (configs/edgecore-cloud.yaml), its files in `<dir>/<node>/`. */
async function startEdge(node: string, token: string): Promise<Peer> {
  const cwd = join(dir, node);
  const file = await shippedConfig('edgecore-cloud.yaml', cwd, [
    [['modules', 'edgeHub', 'token'], token],
    [['modules', 'edgeHub', 'heartbeat'], 2],
    [['modules', 'edgeHub', 'httpServer'], `https://127.0.0.1:${ports.https}`],
    [['modules', 'edgeHub', 'websocket', 'server'], `127.0.0.1:${ports.ws}`],
    [['modules', 'edged', 'hostnameOverride'], node],
    [['modules', 'metaManager', 'metaServer', 'enable'], false],
    [['kernel', 'health'], { enable: false }],
  ]);
  return spawnPeer(process.execPath, [join(root, 'dist/bin/edgecore.js'), '--config', file], {
    name: node,
    cwd,
  });
}

async function metric(name: string): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${ports.health}/metrics`);
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}
const connectedIs = (n: number, what: string, p = () => cloud) =>
  waitFor(async () => (await metric('kubeedge_cloudhub_connected_nodes')) === n, {
    timeoutMs: 60_000,
    what,
    details: () => `${p().output().slice(-3000)}\n--- edge ---\n${edge.output().slice(-3000)}`,
  });

/** GET on the cert server, trusting the CA of casecret. */
function certServerGet(path: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: ports.https, path, ca: toPem('CERTIFICATE', ca) },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject).end();
  });
}

/** The CA pair of casecret (keadm and the tests' view of the cloud's PKI). */
async function cloudCa(): Promise<KeyPairDer> {
  const s = await secret('casecret');
  return { cert: der(s, 'cadata'), key: der(s, 'cakeydata') };
}

/**
 * A websocket to cloudHub as edgeHub dials it, as `node_id` with a client certificate for `cn`;
 * resolves with the open socket, rejects with the HTTP answer of a refusal.
 */
async function dial(node: string, cn: string): Promise<WebSocket> {
  const ca = await cloudCa();
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const cert = await signCertificate(ca, {
    publicKey: publicKey.export({ type: 'spki', format: 'der' }),
    commonName: cn,
    organization: ['system:nodes'],
    usages: [CLIENT_AUTH],
    validityDays: 1,
  });
  const ws = new WebSocket(`wss://127.0.0.1:${ports.ws}/e632aba927ea4ac2b575ec1603d56f10/${node}/events`, {
    ca: toPem('CERTIFICATE', ca.cert),
    cert: toPem('CERTIFICATE', cert),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    headers: { node_id: node, project_id: 'e632aba927ea4ac2b575ec1603d56f10' },
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => reject(new Error(`HTTP ${res.statusCode}: ${body}`)));
    });
    ws.once('error', reject);
  });
}

const edgeFiles = (node: string) => ({
  ca: join(dir, node, '.kubeedge/edge/ca/rootCA.crt'),
  cert: join(dir, node, '.kubeedge/edge/certs/server.crt'),
  key: join(dir, node, '.kubeedge/edge/certs/server.key'),
});

beforeAll(async () => {
  plane = await startControlPlane();
  dir = await tempDir('cloudcore-edgecore');
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  cloud = await startCloud();
  await waitFor(() => cloud.output().includes('"kernel ready"'), {
    timeoutMs: 60_000,
    what: 'cloudcore ready',
    details: () => cloud.output().slice(-4000),
  });
  // keadm gettoken: the token is the tokensecret's tokendata
  const token = der(await secret('tokensecret'), 'tokendata').toString();
  edge = await startEdge(NODE, token);
}, 3_600_000);

afterAll(cleanup, 60_000);

describe('cloudcore ⇄ edgecore processes against a real kube-apiserver', () => {
  it('joins with the token of tokensecret: node certificate written, gauge 1, PKI in KubeEdge secrets', async () => {
    await connectedIs(1, 'the edge connected');
    const files = edgeFiles(NODE);
    const cert = new X509Certificate(await readFile(files.cert));
    expect(cert.subject).toContain(`CN=system:node:${NODE}`);
    expect(cert.subject).toContain('O=system:nodes');
    expect((await stat(files.key)).mode & 0o777).toBe(0o600);

    const ca = await secret('casecret');
    const server = await secret('cloudcoresecret');
    const tok = await secret('tokensecret');
    for (const s of [ca, server, tok]) expect(s.type).toBe('Opaque');
    expect(Object.keys(ca.data).sort()).toEqual(['cadata', 'cakeydata']);
    expect(Object.keys(server.data).sort()).toEqual(['cloudcoredata', 'cloudcorekeydata']);
    expect(Object.keys(tok.data)).toEqual(['tokendata']);
    expect(cert.checkIssued(new X509Certificate(der(ca, 'cadata')))).toBe(true);
    // kept in Kubernetes, not in files beside the CA directory
    await expect(stat(join(dir, 'cloud/.kubeedge/secrets'))).rejects.toThrow(/ENOENT/);
    // the token, a credential, is cleared from the edge's config file after the bootstrap
    expect(await readFile(join(dir, NODE, 'edgecore-cloud.yaml'), 'utf8')).toMatch(/^ {4}token: ""$/m);
    // the edge keeps the CA it was served: the CA of casecret
    expect(new X509Certificate(await readFile(files.ca)).raw.equals(der(ca, 'cadata'))).toBe(true);
  });

  it('answers /node/{name} from the API', async () => {
    const ca = der(await secret('casecret'), 'cadata');
    expect(await certServerGet(`/node/${NODE}`, ca)).toEqual({ status: 404, body: 'Node not found' });
    await plane.kubectl(['apply', '-f', '-'], {
      input: `apiVersion: v1\nkind: Node\nmetadata:\n  name: ${NODE}\n`,
    });
    expect(await certServerGet(`/node/${NODE}`, ca)).toEqual({ status: 200, body: 'Node founded' });
  });

  it('answers k8s/ca.crt with the cluster CA of the kubeconfig; refuses a certificate for another node', async () => {
    const ws = await dial('edge-probe', 'system:node:edge-probe');
    const query = newMessage(
      { source: 'metamanager', group: 'meta', operation: 'query', resource: 'k8s/ca.crt' },
      null,
    );
    const reply = new Promise<Message>((resolve) =>
      ws.on('message', (data: Buffer) => {
        const m = JSON.parse(data.toString()) as Message;
        if (m.header.parent_msg_id === query.header.msg_id) resolve(m);
      }),
    );
    ws.send(encodeMessage(query) + '\n');
    const answer = await reply;
    expect(answer.route.operation).toBe('response');
    expect(answer.content).toBe(await readFile(plane.caPath, 'utf8'));
    ws.close();
    await connectedIs(1, 'the probe gone, the edge still connected');

    await expect(dial('edge-probe', 'system:node:edge-other')).rejects.toThrow(
      /HTTP 403: node edge-probe: the client certificate is for CN=system:node:edge-other, expected CN=system:node:edge-probe/,
    );
    expect(await metric('kubeedge_cloudhub_refusals_total{reason="node-isolation"}')).toBe(1);
    expect(await metric('kubeedge_cloudhub_connected_nodes')).toBe(1);
  });

  it('refuses a token in the wrong format, an expired one and one of another CA, each with its message', async () => {
    // expired: made with the CA of casecret and a past expiry; another CA: a fresh CA's token
    const ca = await cloudCa();
    const cases = [
      { node: 'edge-bad-format', token: 'not-a-token', code: 'EBOOTSTRAP_TOKEN_FORMAT' },
      {
        node: 'edge-expired',
        token: createToken(ca, 12, Date.now() - 48 * 3_600_000),
        code: 'EBOOTSTRAP_TOKEN_REJECTED',
        text: 'token is expired',
      },
      { node: 'edge-other-ca', token: createToken(await createCa(), 12), code: 'EBOOTSTRAP_CA_HASH' },
    ];
    const edgeCertBefore = await readFile(edgeFiles(NODE).cert);
    const refusedBefore = (await metric('kubeedge_cloudhub_bootstrap_failures_total{reason="token"}')) ?? 0;
    const peers = await Promise.all(cases.map((c) => startEdge(c.node, c.token)));
    try {
      await Promise.all(
        cases.map((c, i) =>
          waitFor(() => peers[i]!.output().includes(`"code":"${c.code}"`), {
            timeoutMs: 30_000,
            what: `${c.node} refused with ${c.code}`,
            details: () => peers[i]!.output().slice(-3000),
          }),
        ),
      );
      for (const [i, c] of cases.entries()) {
        const line = peers[i]!.output()
          .split('\n')
          .find((l) => l.includes(`"code":"${c.code}"`))!;
        expect(line).toContain('cannot connect to the cloud');
        if (c.text) expect(line).toContain(c.text);
        // nothing written for a refused node
        await expect(stat(edgeFiles(c.node).cert)).rejects.toThrow(/ENOENT/);
      }
    } finally {
      await Promise.all(peers.map((p) => p.stop()));
    }
    // the cloud counted the expired token (the other two never reach it: the edge checks first)
    expect(await metric('kubeedge_cloudhub_bootstrap_failures_total{reason="token"}')).toBe(
      refusedBefore + 1,
    );
    // the joined edge is undisturbed
    expect(await metric('kubeedge_cloudhub_connected_nodes')).toBe(1);
    expect((await readFile(edgeFiles(NODE).cert)).equals(edgeCertBefore)).toBe(true);
  }, 90_000);

  it('after cloudcore is killed and started again: the same PKI, the edge back with its certificate', async () => {
    const before = { ca: await secret('casecret'), server: await secret('cloudcoresecret') };
    const edgeCert = await readFile(edgeFiles(NODE).cert);
    process.kill(cloud.pid, 'SIGKILL');
    await cloud.exited;
    cloud = await startCloud();
    await connectedIs(1, 'the edge reconnected');
    const after = { ca: await secret('casecret'), server: await secret('cloudcoresecret') };
    expect(after.ca.metadata.resourceVersion).toBe(before.ca.metadata.resourceVersion);
    expect(after.server.metadata.resourceVersion).toBe(before.server.metadata.resourceVersion);
    expect(after.ca.data).toEqual(before.ca.data);
    // no new bootstrap: the edge's certificate is the one it had, still valid for this CA
    expect((await readFile(edgeFiles(NODE).cert)).equals(edgeCert)).toBe(true);
  }, 120_000);
});
