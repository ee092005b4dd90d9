/**
 * kubectl logs / exec / attach on edge pods through the stream tunnel: a real control plane (its
 * kube-apiserver dials the node's kubelet endpoint with its kubelet client certificate), the TS
 * cloudcore (cloudHub, edgeController, cloudStream) and edgecore (edgeHub, metaManager, edged with
 * its kubelet-API server, edgeStream) over mutual TLS on loopback, busybox pods on a private
 * containerd. Besides: another node's pod refused on this node's kubelet endpoint, and a tunnel
 * refused when the node certificate is not the named node's.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../peers/containerd.js';
import { busyboxPod } from '../helpers/pod.js';
import { cleanup, waitFor } from '../peers/util.js';
import { ready, runningReady, startEdgeStack, type EdgeStack, type Obj } from './edge-stack.js';

const NODE = 'edge-stream';
let s: EdgeStack;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** kubectl with the admin kubeconfig: its exit code and output (never rejects on a non-zero exit). */
function kubectl(args: string[], input?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(join(s.cp.binDir, 'kubectl'), ['--kubeconfig', s.cp.kubeconfigPath, ...args]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    if (input !== undefined) p.stdin.end(input);
    else p.stdin.end();
  });
}

/** A kubectl left running (logs -f, attach): its output so far; stopped by pid. */
function kubectlRunning(args: string[]): {
  out: () => string;
  stop: () => void;
  stdin: NodeJS.WritableStream;
} {
  const p = spawn(join(s.cp.binDir, 'kubectl'), ['--kubeconfig', s.cp.kubeconfigPath, ...args]);
  let out = '';
  p.stdout.on('data', (c: Buffer) => (out += c.toString()));
  p.stderr.on('data', (c: Buffer) => (out += c.toString()));
  return {
    out: () => out,
    stop: () => p.pid !== undefined && process.kill(p.pid, 'SIGTERM'),
    stdin: p.stdin,
  };
}

const pod = (name: string, container: Record<string, unknown>, spec?: Record<string, unknown>) =>
  busyboxPod(NODE, name, container, { spec });

const running = (name: string): Promise<Obj> => s.waitPod(name, 'Running and Ready', runningReady);

beforeAll(async () => {
  s = await startEdgeStack(NODE, { stream: true });
  await buildBusyboxImage(s.cd.socket, BUSYBOX_IMAGE);
  await s.startEdge();
  let node: Obj | undefined;
  await waitFor(
    async () => {
      node = await s.getJson(['node', NODE]);
      const port = (node?.status as { daemonEndpoints?: { kubeletEndpoint?: { Port?: number } } } | undefined)
        ?.daemonEndpoints?.kubeletEndpoint?.Port;
      return ready(node) && port === s.stream!.streamPort;
    },
    {
      what: `node ${NODE} Ready with its kubelet endpoint on cloudStream's stream port`,
      timeoutMs: 60_000,
      intervalMs: 250,
      details: () => JSON.stringify(node?.status),
    },
  );
  // talker: three lines, then one line per /tmp/go file it finds
  await s.apply([
    pod('talker', {
      command: [
        'sh',
        '-c',
        'echo first; echo second; echo third; while true; do if [ -f /tmp/go ]; then echo "after-$(cat /tmp/go)"; rm /tmp/go; fi; sleep 0.1; done',
      ],
    }),
  ]);
  await running('talker');
}, 600_000);

afterAll(async () => {
  await s?.stop();
  await cleanup();
}, 120_000);

describe('kubectl logs/exec/attach through cloudStream and edgeStream', () => {
  it('kubectl logs shows the container output; --tail keeps the last lines', async () => {
    const all = await kubectl(['logs', 'talker']);
    expect(all.stderr).toBe('');
    expect(all.stdout).toBe('first\nsecond\nthird\n');
    const tail = await kubectl(['logs', 'talker', '--tail', '2']);
    expect(tail.stdout).toBe('second\nthird\n');
    const stamped = await kubectl(['logs', 'talker', '--timestamps', '--tail', '1']);
    expect(stamped.stdout).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z third\n$/);
  }, 60_000);

  it('kubectl exec runs a command and returns its exit code', async () => {
    const ok = await kubectl(['exec', 'talker', '--', 'sh', '-c', 'echo out; echo err >&2']);
    expect(ok).toMatchObject({ code: 0, stdout: 'out\n' });
    expect(ok.stderr).toContain('err');
    const failed = await kubectl(['exec', 'talker', '--', 'sh', '-c', 'exit 3']);
    expect(failed.code).toBe(3);
  }, 60_000);

  it('kubectl exec -i passes stdin', async () => {
    const r = await kubectl(['exec', '-i', 'talker', '--', 'tr', 'a-z', 'A-Z'], 'hello edge\n');
    expect(r).toMatchObject({ code: 0, stdout: 'HELLO EDGE\n' });
  }, 60_000);

  it('kubectl exec -it gets a terminal in the container (kubectl on a pty made by script)', async () => {
    const kc = `${join(s.cp.binDir, 'kubectl')} --kubeconfig ${s.cp.kubeconfigPath}`;
    const r = await new Promise<Run>((resolve, reject) => {
      // script(1) gives kubectl a terminal, so -t is honoured: the shell sees a tty and its size
      const p = spawn('script', [
        '-qec',
        `stty cols 91 rows 27; ${kc} exec -it talker -- sh -c 'tty; until [ "$(stty -F $(tty) size)" = "27 91" ]; do sleep 0.1; done; echo size-27x91'`,
        '/dev/null',
      ]);
      let stdout = '';
      p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      p.on('error', reject);
      p.on('close', (code) => resolve({ code, stdout, stderr: '' }));
      p.stdin.end();
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+/);
    expect(r.stdout).toContain('size-27x91'); // the terminal's size reached the container (resize)
  }, 60_000);

  it('kubectl logs -f: a line written after it started arrives', async () => {
    const f = kubectlRunning(['logs', '-f', 'talker']);
    try {
      await waitFor(async () => f.out().includes('third\n'), {
        what: 'logs -f shows the first lines',
        timeoutMs: 20_000,
      });
      const r = await kubectl(['exec', 'talker', '--', 'sh', '-c', 'echo late > /tmp/go']);
      expect(r.code).toBe(0);
      await waitFor(async () => f.out().includes('after-late\n'), {
        what: 'logs -f shows the line written later',
        timeoutMs: 20_000,
        details: () => f.out(),
      });
    } finally {
      f.stop();
    }
  }, 60_000);

  it('kubectl attach -i: the running process gets stdin and its output comes back', async () => {
    await s.apply([
      pod('listener', {
        stdin: true,
        command: ['sh', '-c', 'echo ready; while read l; do echo "got-$l"; done'],
      }),
    ]);
    await running('listener');
    const a = kubectlRunning(['attach', '-i', 'listener']);
    try {
      a.stdin.write('ping\n');
      await waitFor(async () => a.out().includes('got-ping'), {
        what: 'attach echoes the line',
        timeoutMs: 20_000,
        details: () => a.out(),
      });
    } finally {
      a.stop();
    }
  }, 90_000);

  it('kubectl logs --previous shows the container before its restart', async () => {
    await s.apply([
      pod(
        'crasher',
        {
          command: [
            'sh',
            '-c',
            'n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo attempt-$n; sleep 1; exit 1',
          ],
          volumeMounts: [{ name: 'data', mountPath: '/data' }],
        },
        { volumes: [{ name: 'data', emptyDir: {} }] },
      ),
    ]);
    await s.waitPod('crasher', 'restarted', (p) => {
      const cs = p?.status?.containerStatuses?.[0] as { restartCount?: number } | undefined;
      return (cs?.restartCount ?? 0) >= 1;
    });
    const prev = await kubectl(['logs', 'crasher', '--previous']);
    expect(prev.stdout).toMatch(/^attempt-\d+\n$/);
    const cur = await kubectl(['logs', 'crasher']);
    const n = (t: string): number => Number(/attempt-(\d+)/.exec(t)?.[1]);
    expect(n(cur.stdout)).toBeGreaterThan(n(prev.stdout));
  }, 150_000);

  it("refuses another node's pod on this node's kubelet endpoint", async () => {
    await s.cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'stream-other' } }),
    });
    await s.cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'foreign', namespace: 'default' },
        spec: { nodeName: 'stream-other', containers: [{ name: 'c', image: BUSYBOX_IMAGE }] },
      }),
    });
    const pki = join(s.cp.dir, 'pki');
    const [cert, key] = await Promise.all([
      readFile(join(pki, 'apiserver-kubelet-client.crt')),
      readFile(join(pki, 'apiserver-kubelet-client.key')),
    ]);
    const get = (path: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port: s.stream!.streamPort, path, cert, key, rejectUnauthorized: false },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    const refused = await get('/containerLogs/default/foreign/c');
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('is not on node edge-stream');
    // the same request for the node's own pod goes through
    const own = await get('/containerLogs/default/talker/c?tailLines=1');
    expect(own).toEqual({ status: 200, body: expect.stringMatching(/\n$/) as unknown as string });
  }, 60_000);

  it("refuses a tunnel whose node certificate is another node's", async () => {
    const certs = join(s.dir, 'edge');
    const [ca, cert, key] = await Promise.all([
      readFile(join(certs, 'ca/rootCA.crt')),
      readFile(join(certs, 'certs/server.crt')),
      readFile(join(certs, 'certs/server.key')),
    ]);
    const ws = new WebSocket(`wss://127.0.0.1:${s.stream!.tunnelPort}/v1/kubeedge/connect`, {
      ca,
      cert,
      key,
      headers: { SessionHostNameOverride: 'someone-else' },
    });
    const status = await new Promise<number>((resolve, reject) => {
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('the tunnel was accepted')));
      ws.on('error', reject);
    });
    expect(status).toBe(403);
  }, 30_000);
});
