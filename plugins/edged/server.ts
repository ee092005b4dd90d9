/**
 * edged's kubelet-API server on loopback (KubeEdge: edged's server on 127.0.0.1:10350, what
 * edgeStream forwards the API server's requests to): `/containerLogs` from the CRI log files
 * (follow, tailLines, sinceSeconds/sinceTime, timestamps, previous, limitBytes), `/exec` and
 * `/attach` through the runtime's streaming server (CRI Exec/Attach give its URL; the upgraded
 * connection is proxied byte for byte, as kubelet's upgrade-aware proxy does: stdin, tty, resize and
 * the exit status pass through untouched). Imported lazily from edged's start().
 */
import { watch, type FSWatcher } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { errorText, type Logger } from '../../kernel/index.js';
import { drained } from '../../protocol/index.js';
import { ContainerState, type CriClient, type ContainerStatus } from './cri.js';
import { ANN_RESTART_COUNT, LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE } from './podspec.js';

const HOST = '127.0.0.1';
/** How often a followed log is checked when no file event came (its container may have stopped). */
const FOLLOW_CHECK_MS = 1000;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface LogOptions {
  follow: boolean;
  tailLines?: number;
  /** Only lines at or after this time (ns since epoch is not needed: ms precision, as kubelet). */
  sinceMs?: number;
  timestamps: boolean;
  previous: boolean;
  limitBytes?: number;
}

const flag = (q: URLSearchParams, ...names: string[]): boolean =>
  names.some((n) => q.get(n) === '1' || q.get(n) === 'true');

function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new HttpError(400, `${name}: expected a non-negative integer, got "${v}"`);
  return n;
}

export function logOptions(q: URLSearchParams, now = Date.now()): LogOptions {
  const sinceSeconds = intParam(q, 'sinceSeconds');
  const sinceTime = q.get('sinceTime');
  let sinceMs: number | undefined;
  if (sinceSeconds !== undefined) sinceMs = now - sinceSeconds * 1000;
  else if (sinceTime) {
    sinceMs = Date.parse(sinceTime);
    if (Number.isNaN(sinceMs)) throw new HttpError(400, `sinceTime: expected RFC 3339, got "${sinceTime}"`);
  }
  const tailLines = intParam(q, 'tailLines');
  const limitBytes = intParam(q, 'limitBytes');
  return {
    follow: flag(q, 'follow'),
    ...(tailLines !== undefined ? { tailLines } : {}),
    ...(sinceMs !== undefined ? { sinceMs } : {}),
    timestamps: flag(q, 'timestamps'),
    previous: flag(q, 'previous'),
    ...(limitBytes !== undefined ? { limitBytes } : {}),
  };
}

const NL = Buffer.from('\n');

/**
 * One line of a CRI log file (`<RFC3339Nano> <stdout|stderr> <F|P> <content>`) as `kubectl logs`
 * shows it, pushed onto `out`: the timestamp first if asked, the content, a newline unless the line
 * is partial. Nothing for a line before `sinceMs` or not in the CRI format.
 */
export function formatLogLine(line: Buffer, opts: LogOptions, out: Buffer[]): void {
  const s1 = line.indexOf(0x20);
  const s2 = s1 < 0 ? -1 : line.indexOf(0x20, s1 + 1);
  const s3 = s2 < 0 ? -1 : line.indexOf(0x20, s2 + 1);
  if (s3 < 0) return;
  if (opts.sinceMs !== undefined && Date.parse(line.subarray(0, s1).toString()) < opts.sinceMs) return;
  if (opts.timestamps) out.push(line.subarray(0, s1 + 1));
  out.push(line.subarray(s3 + 1));
  if (line[s2 + 1] !== 0x50) out.push(NL); // 'P': partial
}

/** Offset where the last `n` lines of the file start (a last line without a newline counts). */
async function tailOffset(fh: FileHandle, size: number, n: number): Promise<number> {
  if (n === 0) return size;
  const buf = Buffer.alloc(64 * 1024);
  let pos = size;
  let count = 0;
  while (pos > 0) {
    const len = Math.min(buf.length, pos);
    pos -= len;
    await fh.read(buf, 0, len, pos);
    for (let i = len - 1; i >= 0; i--) {
      if (buf[i] === 0x0a && pos + i !== size - 1 && ++count === n) return pos + i + 1;
    }
  }
  return 0;
}

/** `/containerLogs|exec|attach/{ns}/{pod}[/{uid}]/{container}` */
function target(
  path: string,
): { kind: string; namespace: string; pod: string; container: string } | undefined {
  const parts = path
    .split('/')
    .filter((p) => p !== '')
    .map((p) => decodeURIComponent(p));
  if (parts.length === 4 || parts.length === 5) {
    return { kind: parts[0]!, namespace: parts[1]!, pod: parts[2]!, container: parts[parts.length - 1]! };
  }
  return undefined;
}

export interface KubeletServerOptions {
  cri: CriClient;
  log: Logger;
  port: number;
}

export class KubeletServer {
  private readonly server: Server;
  private readonly cri: CriClient;
  private readonly log: Logger;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly opts: KubeletServerOptions) {
    this.cri = opts.cri;
    this.log = opts.log;
    this.server = createServer((req, res) => {
      this.request(req, res).catch((err: unknown) => {
        const e = err instanceof HttpError ? err : new HttpError(500, errorText(err));
        if (!res.headersSent) res.writeHead(e.status, { 'Content-Type': 'text/plain' }).end(`${e.message}\n`);
        else res.end();
      });
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      this.upgrade(req, socket, head).catch((err: unknown) => {
        const e = err instanceof HttpError ? err : new HttpError(500, errorText(err));
        const body = `${e.message}\n`;
        socket.end(
          `HTTP/1.1 ${e.status} ${e.status === 404 ? 'Not Found' : 'Error'}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
        );
      });
    });
  }

  /** Listens on 127.0.0.1:port; a port in use is logged and tried again every 5 s (never fatal). */
  listen(): void {
    let warned = false;
    const attempt = (): void => {
      this.retry = undefined;
      if (this.closed) return;
      const onError = (err: NodeJS.ErrnoException): void => {
        if (!warned)
          this.log.warn(
            { port: this.opts.port, err: errorText(err) },
            'kubelet-API server cannot listen: retrying every 5 s',
          );
        warned = true;
        if (!this.closed) this.retry = setTimeout(attempt, 5000);
      };
      this.server.once('error', onError);
      this.server.listen(this.opts.port, HOST, () => {
        this.server.off('error', onError);
        this.log.info({ address: `${HOST}:${this.opts.port}` }, 'kubelet-API server listening');
      });
    };
    attempt();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    for (const s of this.sockets) s.destroy();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** The pod's instances of a container, newest first (edged keeps one dead instance). */
  private async instances(namespace: string, pod: string, container: string): Promise<ContainerStatus[]> {
    const list = await this.cri.listContainers({
      [LABEL_POD_NAMESPACE]: namespace,
      [LABEL_POD_NAME]: pod,
      [LABEL_CONTAINER_NAME]: container,
    });
    const statuses = await Promise.all(
      list.map((c) => this.cri.containerStatus(c.id).catch(() => undefined)),
    );
    const restarts = (s: ContainerStatus): number => Number(s.annotations[ANN_RESTART_COUNT] ?? 0);
    return statuses
      .filter((s): s is ContainerStatus => s !== undefined)
      .sort((a, b) => restarts(b) - restarts(a));
  }

  private async request(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const t = target(url.pathname);
    if (!t || (t.kind !== 'containerLogs' && t.kind !== 'exec' && t.kind !== 'attach'))
      throw new HttpError(404, `no such path ${url.pathname}`);
    if (t.kind !== 'containerLogs')
      throw new HttpError(400, `${t.kind} needs an upgraded connection (SPDY or websocket)`);
    const opts = logOptions(url.searchParams);
    const inst = await this.instances(t.namespace, t.pod, t.container);
    const c = inst[opts.previous ? 1 : 0];
    if (!c) {
      throw new HttpError(
        opts.previous ? 400 : 404,
        opts.previous
          ? `previous terminated container "${t.container}" in pod "${t.pod}" not found`
          : `container "${t.container}" in pod "${t.pod}" is not available`,
      );
    }
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.flushHeaders();
    await this.streamLog(c, opts, res);
    res.end();
  }

  private async streamLog(c: ContainerStatus, opts: LogOptions, res: ServerResponse): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await open(c.logPath, 'r');
    } catch (err) {
      throw new HttpError(404, `log of container ${c.id}: ${errorText(err)}`);
    }
    let watcher: FSWatcher | undefined;
    let wake: (() => void) | undefined;
    let gone = false;
    res.on('close', () => {
      gone = true;
      wake?.();
    });
    try {
      const size = (await fh.stat()).size;
      let pos = opts.tailLines !== undefined ? await tailOffset(fh, size, opts.tailLines) : 0;
      let rest = Buffer.alloc(0);
      let budget = opts.limitBytes ?? Infinity;
      const buf = Buffer.alloc(256 * 1024);
      if (opts.follow) {
        watcher = watch(c.logPath, () => wake?.());
        watcher.on('error', () => undefined);
      }
      for (;;) {
        if (gone || budget <= 0) return;
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead > 0) {
          pos += bytesRead;
          const data = Buffer.concat([rest, buf.subarray(0, bytesRead)]);
          let nl: number;
          const out: Buffer[] = [];
          let at = 0;
          while ((nl = data.indexOf(0x0a, at)) >= 0) {
            formatLogLine(data.subarray(at, nl), opts, out);
            at = nl + 1;
          }
          rest = Buffer.from(data.subarray(at));
          if (out.length > 0) {
            let chunk = Buffer.concat(out);
            if (chunk.length > budget) chunk = chunk.subarray(0, budget);
            budget -= chunk.length;
            if (!res.write(chunk)) await drained(res);
          }
          continue;
        }
        if (!opts.follow) return;
        // at the end: wait for more while the container runs
        const st = await this.cri.containerStatus(c.id).catch(() => undefined);
        if (st?.state !== ContainerState.CONTAINER_RUNNING) {
          // what it wrote before it stopped
          if ((await fh.stat()).size > pos) continue;
          return;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, FOLLOW_CHECK_MS);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    } finally {
      watcher?.close();
      await fh.close();
    }
  }

  private async upgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const t = target(url.pathname);
    if (!t || (t.kind !== 'exec' && t.kind !== 'attach'))
      throw new HttpError(404, `no such path ${url.pathname}`);
    const q = url.searchParams;
    const io = {
      stdin: flag(q, 'input', 'stdin'),
      stdout: flag(q, 'output', 'stdout'),
      stderr: flag(q, 'error', 'stderr'),
      tty: flag(q, 'tty'),
    };
    const running = (await this.instances(t.namespace, t.pod, t.container)).find(
      (s) => s.state === ContainerState.CONTAINER_RUNNING,
    );
    if (!running) throw new HttpError(404, `container "${t.container}" in pod "${t.pod}" is not running`);
    let streamUrl: string;
    if (t.kind === 'exec') {
      const cmd = q.getAll('command');
      if (cmd.length === 0) throw new HttpError(400, 'exec: no command');
      streamUrl = await this.cri.exec(running.id, cmd, io);
    } else {
      streamUrl = await this.cri.attach(running.id, io);
    }
    const u = new URL(streamUrl);
    const upstream = netConnect({ host: u.hostname, port: Number(u.port || 80), noDelay: true });
    upstream.on('error', (err) => {
      this.log.debug({ err: errorText(err) }, 'runtime streaming server connection failed');
      socket.destroy();
    });
    // the request as received, pointed at the runtime's URL (kubelet's upgrade-aware proxy)
    const lines = [`${req.method ?? 'GET'} ${u.pathname}${u.search} HTTP/1.1`, `Host: ${u.host}`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (req.rawHeaders[i]!.toLowerCase() !== 'host')
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    }
    upstream.write(lines.join('\r\n') + '\r\n\r\n');
    if (head.length > 0) upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
    upstream.on('close', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
  }
}
