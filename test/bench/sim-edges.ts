/**
 * What the cloud benchmarks share: a cloudcore process (dist/bin/cloudcore.js) with its CA in files,
 * its CPU and memory read from /proc, and simulated edges (real TLS websockets as edgeHub dials
 * them, one client certificate per node, a keepalive every 15 s, redialled 1 s + jitter after a
 * close).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { encodeMessage, type Message } from '../../kernel/index.js';
import {
  CLIENT_AUTH,
  createCa,
  signCertificate,
  toPem,
  type KeyPairDer,
} from '../../plugins/cloudhub/pki.js';
import { waitUntil } from '../helpers/kernel.js';

const cloudcoreBin = fileURLToPath(new URL('../../bin/cloudcore.js', import.meta.url));
const PROJECT = 'e632aba927ea4ac2b575ec1603d56f10';

/** Resident memory of a process now (`VmRSS`) or at its peak so far (`VmHWM`), in KB. */
export function rssKb(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

/** CPU time (user + system) a process used so far, in clock ticks (1/100 s). */
export function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** The machine's 1-minute load average, to print beside figures taken on a shared machine. */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A CA written as cloudHub's `tlsCAFile`/`tlsCAKeyFile` in `dir`, for signing edge certificates. */
export interface BenchCa {
  ca: KeyPairDer;
  caPem: string;
  /** The `cloudHub` keys of cloudcore.yaml naming the CA files and the server certificate (YAML). */
  cloudHubTls: string;
}

export async function benchCa(dir: string): Promise<BenchCa> {
  const ca = await createCa();
  const caPem = toPem('CERTIFICATE', ca.cert);
  writeFileSync(join(dir, 'rootCA.crt'), caPem);
  writeFileSync(join(dir, 'rootCA.key'), toPem('EC PRIVATE KEY', ca.key), { mode: 0o600 });
  const cloudHubTls = `    tlsCAFile: ${join(dir, 'rootCA.crt')}
    tlsCAKeyFile: ${join(dir, 'rootCA.key')}
    tlsCertFile: ${join(dir, 'certs', 'server.crt')}
    tlsPrivateKeyFile: ${join(dir, 'certs', 'server.key')}
`;
  return { ca, caPem, cloudHubTls };
}

/**
 * Starts `dist/bin/cloudcore.js --config <config>`; resolves once its kernel is ready. Its log is
 * appended to the file `BENCH_CLOUDCORE_LOG` names, if any.
 */
export async function startCloudcore(config: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [cloudcoreBin, '--config', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const logFile = process.env.BENCH_CLOUDCORE_LOG;
  if (logFile) child.stderr!.pipe(createWriteStream(logFile, { flags: 'a' }));
  try {
    await waitUntil(
      () => err.includes('"kernel ready"') || child.exitCode !== null,
      60_000,
      'cloudcore ready',
    );
  } catch (e) {
    await stopProcess(child);
    throw new Error(`${(e as Error).message}; its log:\n${err.slice(-3000)}`);
  }
  if (child.exitCode !== null) throw new Error(`cloudcore exited:\n${err}`);
  return child;
}

/** SIGTERM, then wait for the exit. */
export async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

const keepalive = (): string =>
  encodeMessage({
    header: { msg_id: randomUUID(), timestamp: Date.now() },
    route: { source: 'websocket', group: 'resource', operation: 'keepalive', resource: 'node' },
    content: 'ping',
  }) + '\n';

/** One simulated edge: `node`, its client certificate, its connection while up. */
export class SimEdge {
  ws: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    readonly node: string,
    private readonly identity: { cert: string; key: string },
    /** Called with every frame (message JSON) the cloud writes to this edge. */
    private readonly onFrame: (edge: SimEdge, frame: string) => void,
  ) {}

  /** Dials until open (1 s + jitter between tries, as a quick edgeHub would); redials after a close. */
  connect(port: number, caPem: string): Promise<void> {
    this.stopped = false;
    return new Promise((resolve) => {
      const attempt = (): void => {
        const ws = new WebSocket(`wss://127.0.0.1:${port}/${PROJECT}/${this.node}/events`, {
          ca: caPem,
          ...this.identity,
          headers: { node_id: this.node, project_id: PROJECT, ConnectionUse: 'msg' },
        });
        ws.on('message', (data) => this.onFrame(this, data.toString()));
        ws.once('open', () => {
          this.ws = ws;
          ws.send(keepalive());
          clearInterval(this.timer);
          this.timer = setInterval(() => ws.send(keepalive()), 15_000);
          resolve();
        });
        ws.once('close', () => {
          clearInterval(this.timer);
          if (this.ws === ws) this.ws = undefined;
          if (!this.stopped && this.ws === undefined) setTimeout(attempt, 1000 + Math.random() * 1000);
        });
        ws.on('error', () => undefined);
      };
      attempt();
    });
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  send(msg: Message): void {
    this.ws!.send(encodeMessage(msg) + '\n');
  }

  /** Drops the connection and dials no more (until `connect` again). */
  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.ws?.terminate();
    this.ws = undefined;
  }
}

/** Client certificates (CN `system:node:<node>`, as edgeHub gets them) signed by `ca`. */
export function edgeIdentities(
  ca: KeyPairDer,
  nodes: readonly string[],
): Promise<{ cert: string; key: string }[]> {
  return Promise.all(
    nodes.map(async (node) => {
      const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const cert = await signCertificate(ca, {
        publicKey: publicKey.export({ type: 'spki', format: 'der' }),
        commonName: `system:node:${node}`,
        organization: ['system:nodes'],
        usages: [CLIENT_AUTH],
        validityDays: 1,
      });
      return {
        cert: toPem('CERTIFICATE', cert),
        key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      };
    }),
  );
}

/** Connects every edge, `batch` TLS handshakes at a time. */
export async function connectAll(
  edges: readonly SimEdge[],
  port: number,
  caPem: string,
  batch = 50,
): Promise<void> {
  for (let i = 0; i < edges.length; i += batch)
    await Promise.all(edges.slice(i, i + batch).map((e) => e.connect(port, caPem)));
}
