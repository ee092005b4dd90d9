/**
 * The notes' EdgeMesh example on the full stack (edge-stack.ts: control plane with scheduler and
 * controllers, cloudHub + edgeController, edgeHub + metaManager + edged on containerd, and
 * edgeMesh): the nginx Deployment and the headless `nginx-svc` (18050 → 80).
 *
 *  - from the edge host, `dig @<mesh address> nginx-svc.default.svc.cluster.local` answers and an
 *    HTTP GET on port 18050 returns nginx's page;
 *  - from a second busybox pod on the edge (its resolv.conf points at edgeMesh through edged's
 *    `clusterDNS`), `wget http://nginx-svc:18050/` resolves the short name through the pod's
 *    search path and returns the page;
 *  - scaled to zero: the name answers with no address, the GET is reset;
 *  - with the cloud stopped: both still work.
 *
 * The mesh address is this host's first non-loopback IPv4 address (pods reach it through their
 * bridge's gateway) and the DNS port is 53 (a pod's resolver has no port). The Deployment's
 * hostPort 8050 is dropped: nginx-deployment.test.ts uses it on the same host, and edgeMesh does
 * not need it. The client pod's busybox `wget` goes without `-T` (Debian's static busybox 1.35
 * crashes with a timeout option).
 */
import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { dig } from '../helpers/dig.js';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../peers/containerd.js';
import { cleanup, waitFor } from '../peers/util.js';
import { httpGet, ready, startEdgeStack, type EdgeStack, type Obj } from './edge-stack.js';

const NODE = 'edge-mesh';
const NGINX_IMAGE = 'docker.io/library/nginx:latest';
const NOTES = join(import.meta.dirname, '../fixtures/notes/nginx-deployment.yaml');
const NAME = 'nginx-svc.default.svc.cluster.local';
const PAGE = 'hello-from-nginx';

function meshAddress(): string {
  for (const addrs of Object.values(networkInterfaces()))
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  throw new Error('edgemesh test: this host has no non-loopback IPv4 address for pods to reach edgeMesh');
}
const MESH = meshAddress();

let s: EdgeStack;
let manifest: string;

/** The client pod: every second, `wget` nginx-svc:18050 and publish "<n> <last line of its output>". */
const CLIENT_SCRIPT = `mkdir -p /www && httpd -p 80 -h /www; n=0
while true; do
  n=$((n+1))
  out=$(wget -q -O - http://nginx-svc:18050/ 2>&1 | tail -n1)
  echo "$n $out" > /www/r.tmp && mv /www/r.tmp /www/result
  sleep 1
done`;

beforeAll(async () => {
  s = await startEdgeStack(NODE, {
    edgeModules: { edgeMesh: `{enable: true, listenAddress: ${MESH}, dnsPort: 53}` },
    kubelet: [`clusterDNS: [${MESH}]`],
  });
  await buildBusyboxImage(s.cd.socket, BUSYBOX_IMAGE);
  await buildBusyboxImage(s.cd.socket, NGINX_IMAGE, {
    entrypoint: ['sh', '-c'],
    cmd: [`mkdir -p /www && echo ${PAGE} > /www/index.html && exec httpd -f -p 80 -h /www`],
  });
  await s.startEdge();
  await s.waitNodeReady();
  const docs = parseAllDocuments(await readFile(NOTES, 'utf8')).map(
    (d) => d.toJS() as Record<string, unknown>,
  );
  const deployment = docs.find((d) => d.kind === 'Deployment') as {
    spec: { template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } } };
  };
  const podSpec = deployment.spec.template.spec;
  podSpec.nodeSelector = { 'node-role.kubernetes.io/edge': '' };
  podSpec.terminationGracePeriodSeconds = 2; // busybox httpd as pid 1 ignores SIGTERM
  podSpec.containers[0]!.imagePullPolicy = 'IfNotPresent';
  podSpec.containers[0]!.ports = [{ containerPort: 80 }];
  const client = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'client' },
    spec: {
      nodeName: NODE,
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'client',
          image: BUSYBOX_IMAGE,
          imagePullPolicy: 'IfNotPresent',
          command: ['sh', '-c', CLIENT_SCRIPT],
        },
      ],
    },
  };
  manifest = [...docs, client].map((d) => JSON.stringify(d)).join('\n');
}, 600_000);

afterAll(async () => {
  await s?.stop();
  await cleanup();
}, 120_000);

async function runningPod(selector: string[]): Promise<Obj> {
  let pod: Obj | undefined;
  await waitFor(
    async () => {
      const list = JSON.parse(await s.cp.kubectl(['get', 'pods', ...selector, '-o', 'json'])) as {
        items: Obj[];
      };
      pod = list.items[0];
      return pod?.status?.phase === 'Running' && ready(pod) && pod.metadata.deletionTimestamp === undefined;
    },
    {
      what: `pod ${selector.join(' ')} Running and Ready`,
      timeoutMs: 90_000,
      intervalMs: 250,
      details: () => JSON.stringify(pod?.status),
    },
  );
  return pod!;
}

/** The client pod's latest line: "<n> <last line of wget's output>". */
async function clientResult(clientIP: string): Promise<{ n: number; text: string }> {
  const line = (await httpGet(80, '/result', clientIP)).trim();
  const [n, ...rest] = line.split(' ');
  return { n: Number(n), text: rest.join(' ').trim() };
}

/** Waits for a client line newer than `after` that satisfies `ok`. */
async function clientSees(clientIP: string, ok: (text: string) => boolean, what: string): Promise<string> {
  const after = (await clientResult(clientIP).catch(() => ({ n: 0, text: '' }))).n;
  let last = '';
  await waitFor(
    async () => {
      const r = await clientResult(clientIP);
      last = r.text;
      return r.n > after && ok(r.text);
    },
    { what, timeoutMs: 30_000, intervalMs: 250, details: () => `client's last result: ${last}` },
  );
  return last;
}

describe('the notes’ EdgeMesh example: nginx-svc by name at the edge', () => {
  let clientIP: string;

  it('resolves nginx-svc and serves its page on 18050, from the host and from a pod', async () => {
    const applied = Date.now();
    await s.cp.kubectl(['apply', '-f', '-'], { input: manifest });
    const nginx = await runningPod(['-l', 'app=nginx']);
    clientIP = (await runningPod(['--field-selector', 'metadata.name=client'])).status!.podIP!;

    await waitFor(async () => (await dig(MESH, 53, NAME)).answers.length === 1, {
      what: `${NAME} answered by edgeMesh`,
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    expect(await dig(MESH, 53, NAME)).toEqual({ status: 'NOERROR', answers: [`A ${MESH}`] });
    expect((await dig(MESH, 53, NAME, { tcp: true })).answers).toEqual([`A ${MESH}`]);
    expect(await httpGet(18050, '/', MESH)).toBe(`${PAGE}\n`);
    console.info(`FIGURE kubectl apply -> nginx-svc answers on ${MESH}:18050: ${Date.now() - applied} ms`);
    // the proxy reached the pod itself, as `curl <pod IP>:80` does
    expect(await httpGet(80, '/', nginx.status!.podIP)).toBe(`${PAGE}\n`);

    expect(await clientSees(clientIP, (t) => t === PAGE, 'the client pod wgets nginx-svc:18050')).toBe(PAGE);
  }, 240_000);

  it('scaled to zero: the name answers with no address and the GET fails clearly', async () => {
    await s.cp.kubectl(['scale', 'deployment', 'nginx-deployment', '--replicas=0']);
    await waitFor(async () => (await dig(MESH, 53, NAME)).answers.length === 0, {
      what: `${NAME} without an address`,
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    expect(await dig(MESH, 53, NAME)).toEqual({ status: 'NOERROR', answers: [] });
    await expect(httpGet(18050, '/', MESH)).rejects.toMatchObject({ cause: { code: 'ECONNRESET' } });
    await clientSees(
      clientIP,
      (t) => /bad address 'nginx-svc:18050'/.test(t),
      'the client pod finds no address',
    );

    await s.cp.kubectl(['scale', 'deployment', 'nginx-deployment', '--replicas=1']);
    await runningPod(['-l', 'app=nginx']);
    await waitFor(async () => (await httpGet(18050, '/', MESH).catch(() => '')) === `${PAGE}\n`, {
      what: 'nginx-svc:18050 serving again',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
  }, 240_000);

  it('with the cloud stopped, the name and the port still work from the host and from the pod', async () => {
    await s.stopCloud();
    expect(await dig(MESH, 53, NAME)).toEqual({ status: 'NOERROR', answers: [`A ${MESH}`] });
    expect(await httpGet(18050, '/', MESH)).toBe(`${PAGE}\n`);
    expect(await clientSees(clientIP, (t) => t === PAGE, 'the client pod without the cloud')).toBe(PAGE);

    // the cloud back: the workload is removed through it (edged unmounts the pods' volumes)
    await s.startCloud();
    await s.waitNodeReady(`node ${NODE} Ready again`);
    await s.cp.kubectl(['delete', '-f', '-', '--wait=false'], { input: manifest });
    await waitFor(async () => (await s.cri.listPodSandbox()).length === 0, {
      what: 'every sandbox removed',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    await waitFor(async () => (await dig(MESH, 53, NAME)).status === 'NXDOMAIN', {
      what: `${NAME} gone with its service`,
      timeoutMs: 30_000,
      intervalMs: 250,
    });
  }, 240_000);
});
