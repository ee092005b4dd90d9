/**
 * kubectl through the stream tunnel (issue 15): the round trip of `kubectl exec <pod> -- true`
 * (kubectl's own start included, goal p99 <= 300 ms on loopback) and the throughput of `kubectl
 * logs` of a container that wrote 32 MiB, both through the real control plane, the TS cloudcore's
 * cloudStream and the edgecore's edgeStream and kubelet-API server.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { BUSYBOX_IMAGE, buildBusyboxImage } from '../peers/containerd.js';
import { busyboxPod } from '../helpers/pod.js';
import { cleanup, waitFor } from '../peers/util.js';
import { startEdgeStack, type EdgeStack } from '../integration/edge-stack.js';
import { latencyFigures, round, type Figure } from './report.js';

const NODE = 'bench-stream';
const EXECS = 40;
const LOG_BYTES = 32 << 20;

function kubectl(
  s: EdgeStack,
  args: string[],
): Promise<{ code: number | null; bytes: number; tail: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(join(s.cp.binDir, 'kubectl'), ['--kubeconfig', s.cp.kubeconfigPath, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let bytes = 0;
    let tail = '';
    p.stdout.on('data', (c: Buffer) => {
      bytes += c.length;
      tail = (tail + c.toString()).slice(-200);
    });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, bytes, tail }));
  });
}

/** Bytes of one GET and its duration (s), over http or https with the API server's kubelet client certificate. */
async function fetchBytes(s: EdgeStack, url: string): Promise<{ bytes: number; seconds: number }> {
  const pki = join(s.cp.dir, 'pki');
  const [cert, key] = await Promise.all([
    readFile(join(pki, 'apiserver-kubelet-client.crt')),
    readFile(join(pki, 'apiserver-kubelet-client.key')),
  ]);
  const t0 = process.hrtime.bigint();
  const bytes = await new Promise<number>((resolve, reject) => {
    const u = new URL(url);
    const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(
      { host: u.hostname, port: u.port, path: u.pathname, cert, key, rejectUnauthorized: false },
      (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => (n += c.length));
        res.on('end', () => resolve(n));
      },
    );
    req.on('error', reject);
    req.end();
  });
  return { bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

const mbps = (r: { bytes: number; seconds: number }): number => round(r.bytes / 2 ** 20 / r.seconds);

const pod = (name: string, script: string): string =>
  JSON.stringify(busyboxPod(NODE, name, { command: ['sh', '-c', script] }));

export async function streamBench(): Promise<Figure[]> {
  const s = await startEdgeStack(NODE, { stream: true });
  try {
    await buildBusyboxImage(s.cd.socket, BUSYBOX_IMAGE);
    await s.startEdge();
    await waitFor(
      async () =>
        (await s.getJson(['node', NODE]).catch(() => undefined))?.status !== undefined &&
        JSON.stringify((await s.getJson(['node', NODE]))?.status).includes(`"Port":${s.stream!.streamPort}`),
      { what: 'node advertising the stream port', timeoutMs: 60_000, intervalMs: 250 },
    );
    const line = 'x'.repeat(99);
    await s.cp.kubectl(['apply', '-f', '-'], { input: pod('sleeper', 'exec sleep 3600') });
    await s.cp.kubectl(['apply', '-f', '-'], {
      input: pod('writer', `yes ${line} | head -c ${LOG_BYTES}; echo; echo written; exec sleep 3600`),
    });
    for (const name of ['sleeper', 'writer']) {
      await waitFor(async () => (await s.getJson(['pod', name]))?.status?.phase === 'Running', {
        what: `pod ${name} Running`,
        timeoutMs: 60_000,
        intervalMs: 250,
      });
    }

    // kubectl's own cost: the same pod read through the API server, no tunnel
    const samples: number[] = [];
    const baseline: number[] = [];
    for (let i = 0; i < EXECS; i++) {
      let t0 = process.hrtime.bigint();
      const r = await kubectl(s, ['exec', 'sleeper', '--', 'true']);
      if (r.code !== 0) throw new Error(`kubectl exec exited ${r.code}`);
      if (i > 0) samples.push(Number(process.hrtime.bigint() - t0)); // the first warms the caches
      t0 = process.hrtime.bigint();
      await kubectl(s, ['get', 'pod', 'sleeper', '-o', 'name']);
      if (i > 0) baseline.push(Number(process.hrtime.bigint() - t0));
    }

    await waitFor(async () => (await kubectl(s, ['logs', 'writer', '--tail', '1'])).tail === 'written\n', {
      what: 'the writer finished',
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    const t0 = process.hrtime.bigint();
    const logs = await kubectl(s, ['logs', 'writer']);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (logs.bytes < LOG_BYTES)
      throw new Error(`kubectl logs gave ${logs.bytes} bytes, expected ${LOG_BYTES}`);
    const path = '/containerLogs/default/writer/c';
    const edged = await fetchBytes(s, `http://127.0.0.1:${s.stream!.kubeletPort}${path}`);
    const tunnel = await fetchBytes(s, `https://127.0.0.1:${s.stream!.streamPort}${path}`);
    return [
      ...latencyFigures('stream_kubectl_exec_true', samples, 'ms', '<= 300'),
      ...latencyFigures('stream_kubectl_get_pod_baseline', baseline, 'ms'),
      { name: 'stream_logs_edged_server', value: mbps(edged), unit: 'MB/s' },
      { name: 'stream_logs_through_tunnel', value: mbps(tunnel), unit: 'MB/s' },
      { name: 'stream_kubectl_logs', value: mbps({ bytes: logs.bytes, seconds }), unit: 'MB/s' },
    ];
  } finally {
    await s.stop();
    await cleanup();
  }
}
