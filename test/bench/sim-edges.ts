/**
 * What the cloud benchmarks share: a cloudcore process (dist/bin/cloudcore.js) with its CA in files,
 * its CPU and memory read from /proc, and simulated edges (real TLS websockets as edgeHub dials
 * them, one client certificate per node, a keepalive every 15 s, redialled with edgeHub's back-off
 * after a close), in this process ({@link SimEdge}) or spread over child processes ({@link EdgeFleet}).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext, type ConnectionOptions, type SecureContext } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { WebSocket, type ClientOptions } from 'ws';
import { encodeMessage, type Message } from '../../kernel/index.js';
import {
  CLIENT_AUTH,
  createCa,
  signCertificate,
  toPem,
  type KeyPairDer,
} from '../../plugins/cloudhub/pki.js';
import { nodeCommonName } from '../../protocol/index.js';
import { ReconnectBackoff } from '../../plugins/edgehub/client.js';
import { waitUntil } from '../helpers/kernel.js';
import { sleep } from '../peers/util.js';

/** The cloudcore benchmarked: this checkout's, or `BENCH_CLOUDCORE` (another build, side by side). */
const cloudcoreBin =
  process.env.BENCH_CLOUDCORE ?? fileURLToPath(new URL('../../bin/cloudcore.js', import.meta.url));
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
  // cloudHub keeps its secrets beside the CA's directory: in `dir` too
  mkdirSync(join(dir, 'ca'));
  writeFileSync(join(dir, 'ca', 'rootCA.crt'), caPem);
  writeFileSync(join(dir, 'ca', 'rootCA.key'), toPem('EC PRIVATE KEY', ca.key), { mode: 0o600 });
  const cloudHubTls = `    tlsCAFile: ${join(dir, 'ca', 'rootCA.crt')}
    tlsCAKeyFile: ${join(dir, 'ca', 'rootCA.key')}
    tlsCertFile: ${join(dir, 'certs', 'server.crt')}
    tlsPrivateKeyFile: ${join(dir, 'certs', 'server.key')}
`;
  return { ca, caPem, cloudHubTls };
}

/**
 * cloudcore.yaml of a cloud on a real control plane holding edges: cloudHub on `ports` with the
 * bench CA, edgeController, and syncController when `syncController` is set; nothing else.
 */
export function edgeCloudcoreYaml(o: {
  kubeConfig: string;
  cloudHubTls: string;
  ports: { ws: number; https: number };
  nodeLimit?: number;
  syncController: boolean;
}): string {
  return `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${o.kubeConfig}
modules:
  cloudHub:
${o.nodeLimit === undefined ? '' : `    nodeLimit: ${o.nodeLimit}\n`}    advertiseAddress: [127.0.0.1]
${o.cloudHubTls}    websocket: {enable: true, address: 127.0.0.1, port: ${o.ports.ws}}
    https: {enable: true, address: 127.0.0.1, port: ${o.ports.https}}
  edgeController: {enable: true}
  syncController: {enable: ${o.syncController}}
  deviceController: {enable: false}
  dynamicController: {enable: false}
  taskManager: {enable: false}
kernel:
  health: {enable: false}
`;
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

/** The simulated edges' keepalive period (edgeHub's `heartbeat`), which also caps their back-off. */
const HEARTBEAT_MS = 15_000;

/** One simulated edge: `node`, its client certificate, its connection while up. */
export class SimEdge {
  ws: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private context: SecureContext | undefined;

  constructor(
    readonly node: string,
    private readonly identity: { cert: string; key: string },
    /** Called with every frame (message JSON) the cloud writes to this edge. */
    private readonly onFrame: (edge: SimEdge, frame: string) => void,
    /** Called at each (re)connection. */
    private readonly onOpen?: (edge: SimEdge) => void,
  ) {}

  /**
   * Dials until open, with edgeHub's back-off (1 s doubling, jittered, capped at the heartbeat);
   * redials after a close. The TLS context (CA, certificate, key) is parsed once, not at every dial
   * (so that 10,000 redialling edges do not starve the cloudcore they wait for).
   */
  connect(port: number, caPem: string): Promise<void> {
    this.stopped = false;
    this.context ??= createSecureContext({ ca: caPem, ...this.identity });
    const secureContext = this.context;
    const backoff = new ReconnectBackoff(Math.random, HEARTBEAT_MS);
    return new Promise((resolve) => {
      const attempt = (): void => {
        let upSince = 0;
        // ws hands its options to tls.connect, which takes a prepared context
        const options: ClientOptions & Pick<ConnectionOptions, 'secureContext'> = {
          secureContext,
          headers: { node_id: this.node, project_id: PROJECT, ConnectionUse: 'msg' },
        };
        const ws = new WebSocket(`wss://127.0.0.1:${port}/${PROJECT}/${this.node}/events`, options);
        ws.on('message', (data) => this.onFrame(this, data.toString()));
        ws.once('open', () => {
          upSince = Date.now();
          this.ws = ws;
          this.onOpen?.(this);
          ws.send(keepalive());
          clearInterval(this.timer);
          this.timer = setInterval(() => ws.send(keepalive()), HEARTBEAT_MS);
          resolve();
        });
        ws.once('close', () => {
          clearInterval(this.timer);
          if (this.ws === ws) this.ws = undefined;
          if (!this.stopped && this.ws === undefined)
            setTimeout(attempt, backoff.next(upSince > 0 ? Date.now() - upSince : 0));
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

/** One DER element: tag, definite length, content. */
function der(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), content]);
}

/** The elements of a DER SEQUENCE (lengths below 64 KB). */
function derElements(seq: Buffer): Buffer[] {
  const body = (at: number): { start: number; end: number } => {
    const first = seq[at + 1]!;
    if (first < 0x80) return { start: at + 2, end: at + 2 + first };
    const bytes = first & 0x7f;
    const n = seq.readUIntBE(at + 2, bytes);
    return { start: at + 2 + bytes, end: at + 2 + bytes + n };
  };
  const out: Buffer[] = [];
  const { start, end } = body(0);
  for (let at = start; at < end;) {
    const next = body(at).end;
    out.push(seq.subarray(at, next));
    at = next;
  }
  return out;
}

const utf8Attribute = (oid: number[], value: string): Buffer =>
  der(0x31, der(0x30, Buffer.concat([der(0x06, Buffer.from(oid)), der(0x0c, Buffer.from(value))])));

/**
 * Client certificates (CN `system:node:<node>`, O `system:nodes`, clientAuth, as edgeHub gets them)
 * signed by `ca`, one key pair each. The first is made by cloudHub's `signCertificate`; the others
 * copy it with their own serial, subject and key, signed here (`signCertificate` takes about 4 ms a
 * certificate, too slow for 10,000 edges).
 */
export async function edgeIdentities(
  ca: KeyPairDer,
  nodes: readonly string[],
): Promise<{ cert: string; key: string }[]> {
  if (nodes.length === 0) return [];
  const caKey = createPrivateKey({ key: ca.key, format: 'der', type: 'sec1' });
  const keys = nodes.map(() =>
    generateKeyPairSync('ec', {
      namedCurve: 'P-256',
      publicKeyEncoding: { type: 'spki', format: 'der' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    }),
  );
  const spki = (i: number): Buffer => keys[i]!.publicKey;
  const template = await signCertificate(ca, {
    publicKey: spki(0),
    commonName: nodeCommonName(nodes[0]!),
    organization: ['system:nodes'],
    usages: [CLIENT_AUTH],
    validityDays: 1,
  });
  const [tbs, signatureAlgorithm] = derElements(template);
  // version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo, extensions
  const [version, , signature, issuer, validity, , , extensions] = derElements(tbs!);
  return nodes.map((node, i) => {
    const serial = randomBytes(8);
    serial[0] = (serial[0]! & 0x7f) | 0x40; // positive, minimal DER
    const subject = der(
      0x30,
      Buffer.concat([
        utf8Attribute([0x55, 0x04, 0x0a], 'system:nodes'),
        utf8Attribute([0x55, 0x04, 0x03], nodeCommonName(node)),
      ]),
    );
    const body = der(
      0x30,
      Buffer.concat([
        version!,
        der(0x02, serial),
        signature!,
        issuer!,
        validity!,
        subject,
        spki(i),
        extensions!,
      ]),
    );
    const sig = sign('sha256', body, caKey);
    const cert = der(
      0x30,
      Buffer.concat([body, signatureAlgorithm!, der(0x03, Buffer.concat([Buffer.from([0]), sig]))]),
    );
    return {
      cert: toPem('CERTIFICATE', cert),
      key: keys[i]!.privateKey,
    };
  });
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

/** What the edges of a fleet saw (summed over its processes). */
export interface FleetStats {
  /** Edges connected now. */
  open: number;
  /** Frames received since the last reset, in all and by the edge that got the fewest. */
  received: number;
  minReceived: number;
  /** Wall-clock times (ms, `performance.timeOrigin + performance.now()`) of the last frame and open. */
  lastReceivedAt: number;
  lastOpenAt: number;
  /** CPU time the edge processes used so far (user + system). */
  cpuMs: number;
  /** Frame latencies (ns) since the last reset, when asked for: content = the send time. */
  latenciesNs: number[];
}

/** Requests to a fleet process and its answers (`id` pairs them). */
export type FleetRequest =
  | { op: 'start'; ca: { cert: string; key: string }; nodes: string[] }
  | { op: 'connect'; port: number; caPem: string }
  | { op: 'send'; node: string; msg: Message }
  | { op: 'reset' }
  | { op: 'stats'; latencies: boolean };
export type FleetAnswer = { id: number } & ({ ok: true; stats?: FleetStats } | { ok: false; error: string });

const fleetWorker = fileURLToPath(new URL('./sim-edges-worker.js', import.meta.url));

/**
 * Simulated edges spread over `workers` child processes (./sim-edges-worker.ts), so the edges' TLS
 * and frame handling does not compete in one event loop with the benchmark's own. Each process
 * signs its edges' certificates and connects them 50 handshakes at a time; every frame an edge gets
 * is counted (its content taken as the send time, for latencies).
 */
export class EdgeFleet {
  private nextId = 0;
  private readonly pending = new Map<number, (a: FleetAnswer) => void>();
  private readonly byNode = new Map<string, ChildProcess>();

  private constructor(private readonly children: ChildProcess[]) {
    for (const child of children) {
      child.on('message', (a: FleetAnswer) => {
        this.pending.get(a.id)?.(a);
        this.pending.delete(a.id);
      });
      child.on('exit', (code, signal) => {
        for (const [id, done] of this.pending)
          done({ id, ok: false, error: `edge process exited (${code ?? signal})` });
        this.pending.clear();
      });
    }
  }

  /** Starts the processes, each signing its edges' certificates. */
  static async start(opts: {
    ca: KeyPairDer;
    nodes: readonly string[];
    workers: number;
  }): Promise<EdgeFleet> {
    const children = Array.from({ length: opts.workers }, () =>
      fork(fleetWorker, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    const fleet = new EdgeFleet(children);
    const ca = { cert: opts.ca.cert.toString('base64'), key: opts.ca.key.toString('base64') };
    try {
      await Promise.all(
        children.map((child, w) => {
          const nodes = opts.nodes.filter((_, i) => i % opts.workers === w);
          for (const node of nodes) fleet.byNode.set(node, child);
          return fleet.ask(child, { op: 'start', ca, nodes });
        }),
      );
    } catch (err) {
      await fleet.stop();
      throw err;
    }
    return fleet;
  }

  private ask(child: ChildProcess, req: FleetRequest): Promise<FleetStats | undefined> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (a) => (a.ok ? resolve(a.stats) : reject(new Error(a.error))));
      child.send({ id, ...req });
    });
  }

  /** Connects every edge to cloudHub's websocket on `port` (resolves once all are open). */
  async connect(port: number, caPem: string): Promise<void> {
    await Promise.all(this.children.map((c) => this.ask(c, { op: 'connect', port, caPem })));
  }

  /** The edge `node` sends `msg` to the cloud. */
  async send(node: string, msg: Message): Promise<void> {
    await this.ask(this.byNode.get(node)!, { op: 'send', node, msg });
  }

  /** Forget the frames received so far. */
  async reset(): Promise<void> {
    await Promise.all(this.children.map((c) => this.ask(c, { op: 'reset' })));
  }

  async stats(latencies = false): Promise<FleetStats> {
    const all = await Promise.all(this.children.map((c) => this.ask(c, { op: 'stats', latencies })));
    const s = all.filter((x): x is FleetStats => x !== undefined);
    return {
      open: s.reduce((n, x) => n + x.open, 0),
      received: s.reduce((n, x) => n + x.received, 0),
      minReceived: Math.min(...s.map((x) => x.minReceived)),
      lastReceivedAt: Math.max(...s.map((x) => x.lastReceivedAt)),
      lastOpenAt: Math.max(...s.map((x) => x.lastOpenAt)),
      cpuMs: s.reduce((n, x) => n + x.cpuMs, 0),
      latenciesNs: s.flatMap((x) => x.latenciesNs),
    };
  }

  /** Polls the stats (every 100 ms) until `check` holds; resolves with them. */
  async until(check: (s: FleetStats) => boolean, timeoutMs: number, what: string): Promise<FleetStats> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.stats();
      if (check(s)) return s;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(100);
    }
  }

  /** Ends the processes (their edges' connections drop). */
  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise((r) => c.once('exit', r));
        c.disconnect(); // the process exits when its channel closes
        await exited;
      }),
    );
  }
}
