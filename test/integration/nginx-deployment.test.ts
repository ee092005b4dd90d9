/**
 * The user's notes' workload on the full stack (edge-stack.ts: control plane with scheduler and
 * controllers, cloudHub + edgeController, edgeHub + metaManager + edged on containerd):
 *
 *  - `kubectl apply -f` the notes' nginx Deployment + headless Service: kube-scheduler and the
 *    Deployment controller put its pod on the edge node, `kubectl get pods -o wide` shows it
 *    Running there with its IP, the edge host answers on hostPort 8050; `kubectl delete -f`
 *    removes its containers and sandbox;
 *  - a pod with configMap and secret volumes and env from both (and the service account volume the
 *    API server adds): `kubectl patch` of the configmap and of the secret changes the files in the
 *    running container (env keeps its value).
 *
 * No registry is reachable: `nginx` is a locally imported busybox image whose command serves HTTP
 * on port 80 (as nginx does), and the Deployment gets `imagePullPolicy: IfNotPresent` (the default
 * for an untagged image is Always, which would pull).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../peers/containerd.js';
import { cleanup, freePort, waitFor } from '../peers/util.js';
import { httpGet, ready, startEdgeStack, type EdgeStack, type Obj } from './edge-stack.js';

const NODE = 'edge-nginx';
const NGINX_IMAGE = 'docker.io/library/nginx:latest';
const NOTES = join(import.meta.dirname, '../fixtures/notes/nginx-deployment.yaml');

let s: EdgeStack;

beforeAll(async () => {
  s = await startEdgeStack(NODE);
  await buildBusyboxImage(s.cd.socket, BUSYBOX_IMAGE);
  await buildBusyboxImage(s.cd.socket, NGINX_IMAGE, {
    entrypoint: ['sh', '-c'],
    cmd: ['mkdir -p /www && echo hello-from-nginx > /www/index.html && exec httpd -f -p 80 -h /www'],
  });
  await s.startEdge();
  await s.waitNodeReady();
}, 600_000);

afterAll(async () => {
  await s?.stop();
  await cleanup();
}, 120_000);

interface PodList {
  items: Obj[];
}

async function podsOf(selector: string): Promise<Obj[]> {
  return (JSON.parse(await s.cp.kubectl(['get', 'pods', '-l', selector, '-o', 'json'])) as PodList).items;
}

describe('kubectl drives the edge: the notes’ workloads', () => {
  it('runs the notes’ nginx Deployment on the edge node (hostPort 8050) and removes it on kubectl delete', async () => {
    const docs = parseAllDocuments(await readFile(NOTES, 'utf8')).map(
      (d) => d.toJS() as Record<string, unknown>,
    );
    const deployment = docs.find((d) => d.kind === 'Deployment') as {
      spec: { template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } } };
    };
    const podSpec = deployment.spec.template.spec;
    expect(podSpec.containers[0]?.ports).toEqual([{ containerPort: 80, hostPort: 8050 }]);
    // KubeEdge's usual way to pin a workload to edge nodes; the one local image is not pulled
    podSpec.nodeSelector = { 'node-role.kubernetes.io/edge': '' };
    podSpec.terminationGracePeriodSeconds = 2; // busybox httpd as pid 1 ignores SIGTERM
    podSpec.containers[0]!.imagePullPolicy = 'IfNotPresent';
    const manifest = docs.map((d) => JSON.stringify(d)).join('\n');

    const applied = Date.now();
    await s.cp.kubectl(['apply', '-f', '-'], { input: manifest });
    let pod: Obj | undefined;
    await waitFor(
      async () => {
        pod = (await podsOf('app=nginx'))[0];
        return pod?.status?.phase === 'Running' && ready(pod);
      },
      {
        what: 'the nginx pod Running and Ready in the API',
        timeoutMs: 90_000,
        intervalMs: 250,
        details: () => JSON.stringify(pod?.status),
      },
    );
    console.info(`FIGURE kubectl apply (Deployment) -> pod Running in the API: ${Date.now() - applied} ms`);
    expect(pod!.spec.nodeName).toBe(NODE);
    const wide = await s.cp.kubectl(['get', 'pods', '-l', 'app=nginx', '-o', 'wide', '--no-headers']);
    const cols = wide.trim().split(/\s+/);
    expect(cols[0]).toBe(pod!.metadata.name);
    expect(cols[2]).toBe('Running');
    expect(cols[5]).toBe(pod!.status!.podIP);
    expect(cols[5]).toMatch(/^10\.88\.\d+\.\d+$/);
    expect(cols[6]).toBe(NODE);

    await waitFor(async () => (await httpGet(8050)).includes('hello-from-nginx'), {
      what: 'HTTP on the edge host 127.0.0.1:8050 (hostPort)',
      timeoutMs: 20_000,
    });
    const uid = pod!.metadata.uid;
    expect(await s.cri.listPodSandbox({ 'io.kubernetes.pod.uid': uid })).toHaveLength(1);

    await s.cp.kubectl(['delete', '-f', '-', '--wait=false'], { input: manifest });
    await waitFor(async () => (await podsOf('app=nginx')).length === 0, {
      what: 'the nginx pod gone from the API',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    await waitFor(async () => (await s.cri.listPodSandbox({ 'io.kubernetes.pod.uid': uid })).length === 0, {
      what: 'the nginx sandbox removed',
      timeoutMs: 30_000,
    });
    expect(await s.cri.listContainers({ 'io.kubernetes.pod.uid': uid })).toHaveLength(0);
    expect(await s.cri.listPodSandbox()).toHaveLength(0);
    await expect(httpGet(8050)).rejects.toThrow();
  }, 240_000);

  it('an edit of a configmap and of a secret reaches the files in the running container; env keeps its value', async () => {
    const port = await freePort();
    const b64 = (t: string): string => Buffer.from(t).toString('base64');
    const objects = [
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'app-config' }, data: { greeting: 'hello' } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'app-secret' }, data: { token: b64('s3cret') } },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'app', labels: { app: 'app' } },
        spec: {
          nodeName: NODE,
          terminationGracePeriodSeconds: 2,
          volumes: [
            { name: 'config', configMap: { name: 'app-config' } },
            { name: 'secret', secret: { secretName: 'app-secret' } },
          ],
          containers: [
            {
              name: 'app',
              image: BUSYBOX_IMAGE,
              imagePullPolicy: 'IfNotPresent',
              env: [
                { name: 'GREETING', valueFrom: { configMapKeyRef: { name: 'app-config', key: 'greeting' } } },
                { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'app-secret', key: 'token' } } },
              ],
              // serves / : /etc/config/greeting, /etc/secret/token and /env (the env at start)
              command: ['sh', '-c', 'echo "$GREETING $TOKEN" > /env && exec httpd -f -p 80 -h /'],
              volumeMounts: [
                { name: 'config', mountPath: '/etc/config', readOnly: true },
                { name: 'secret', mountPath: '/etc/secret', readOnly: true },
              ],
              ports: [{ containerPort: 80, hostPort: port, protocol: 'TCP' }],
            },
          ],
        },
      },
    ];
    await s.cp.kubectl(['apply', '-f', '-'], {
      input: objects.map((o) => JSON.stringify(o)).join('\n'),
    });
    const get = (path: string): Promise<string> => httpGet(port, path).then((t) => t.trim());
    await waitFor(async () => (await get('/env').catch(() => '')) === 'hello s3cret', {
      what: `the pod's env served on 127.0.0.1:${port}/env`,
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    expect(await get('/etc/config/greeting')).toBe('hello');
    expect(await get('/etc/secret/token')).toBe('s3cret');
    // the API server's kube-api-access-* projected volume: a bound token (a JWT), the cluster CA, the namespace
    const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
    expect(await get(`${sa}/namespace`)).toBe('default');
    expect((await get(`${sa}/token`)).split('.')).toHaveLength(3);
    expect(await get(`${sa}/ca.crt`)).toContain('BEGIN CERTIFICATE');
    const before = (await s.getJson(['pod', 'app']))!.status!.containerStatuses![0]!.containerID;

    const edited = Date.now();
    await s.cp.kubectl(['patch', 'configmap', 'app-config', '-p', '{"data":{"greeting":"bonjour"}}']);
    await waitFor(async () => (await get('/etc/config/greeting')) === 'bonjour', {
      what: 'the edited configmap in the container',
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    console.info(
      `FIGURE kubectl patch configmap -> file changed in the container: ${Date.now() - edited} ms`,
    );
    await s.cp.kubectl(['patch', 'secret', 'app-secret', '-p', `{"data":{"token":"${b64('n3w')}"}}`]);
    await waitFor(async () => (await get('/etc/secret/token')) === 'n3w', {
      what: 'the edited secret in the container',
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    // env is read when the container starts (kubelet does the same): same container, old values
    expect(await get('/env')).toBe('hello s3cret');
    expect((await s.getJson(['pod', 'app']))!.status!.containerStatuses![0]!.containerID).toBe(before);

    await s.cp.kubectl(['delete', 'pod', 'app', '--wait=false']);
    await waitFor(async () => (await s.getJson(['pod', 'app'])) === undefined, {
      what: 'pod app gone from the API',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
  }, 240_000);
});
