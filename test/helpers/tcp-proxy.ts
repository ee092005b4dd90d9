/**
 * A TCP proxy a test puts on a path (edgeHub → cloudHub) to break it the ways networks break:
 *
 *  - `cut()`: every connection through it is reset (RST on both sides); new connections are reset
 *    as soon as they are accepted (`refuse`, a link that answers "no"), or accepted and held without
 *    a byte going through (`hold`, a black hole: the dialler's handshake times out; when the link
 *    comes back, what a held connection sent is forwarded, as TCP would retransmit it);
 *  - `saturate(bytesPerSecond)`: each direction of each connection carries at most that many bytes
 *    per second (0: nothing, the link is stalled); what the ends send meanwhile waits in the proxy,
 *    then in their socket buffers (back-pressure), in order;
 *  - `restore()`: the link as it was, what waited is forwarded at once.
 *
 * The proxy never drops a byte of a connection it keeps; stats() tells what it forwarded and what
 * waits, so a test can show the link was the bottleneck. Stopped with stop(); every socket closed.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

/** What the proxy does with traffic now. */
export type ProxyMode =
  | { state: 'open' }
  | { state: 'cut'; newConnections: 'refuse' | 'hold' }
  | { state: 'saturated'; bytesPerSecond: number };

export interface ProxyStats {
  /** Connections open through the proxy now (held ones included). */
  connections: number;
  /** Connections accepted since the start. */
  accepted: number;
  /** Bytes forwarded to the target / to the dialler since the start. */
  upBytes: number;
  downBytes: number;
  /** Bytes waiting in the proxy now, and the most that ever waited. */
  waiting: number;
  maxWaiting: number;
}

export interface TcpProxy {
  /** `127.0.0.1:<port>`: dial this instead of the target. */
  readonly address: string;
  readonly port: number;
  readonly mode: ProxyMode;
  cut(newConnections?: 'refuse' | 'hold'): void;
  saturate(bytesPerSecond: number): void;
  restore(): void;
  stats(): ProxyStats;
  stop(): Promise<void>;
}

/** The throttle's period: each direction gets bytesPerSecond × TICK_MS / 1000 bytes per tick. */
const TICK_MS = 50;
/** A direction with this much waiting stops reading from its source (back-pressure). */
const HIGH_WATER = 64 * 1024;

/** One direction of a connection: bytes read from `src`, waiting, written to the other end. */
class Direction {
  private chunks: Buffer[] = [];
  waiting = 0;

  constructor(
    private readonly src: Socket,
    private readonly count: (bytes: number) => void,
  ) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.waiting += chunk.length;
    if (this.waiting >= HIGH_WATER) this.src.pause();
  }

  /** Write at most `budget` bytes to `dst` (while it takes them); what was written. */
  forward(dst: Socket, budget: number): number {
    let sent = 0;
    while (this.chunks.length > 0 && sent < budget && dst.writableLength < HIGH_WATER) {
      let chunk = this.chunks[0]!;
      if (chunk.length > budget - sent) {
        this.chunks[0] = chunk.subarray(budget - sent);
        chunk = chunk.subarray(0, budget - sent);
      } else this.chunks.shift();
      dst.write(chunk);
      sent += chunk.length;
    }
    this.waiting -= sent;
    this.count(sent);
    if (this.waiting < HIGH_WATER && !this.src.destroyed) this.src.resume();
    return sent;
  }
}

interface Link {
  client: Socket;
  target: Socket | undefined;
  up: Direction;
  down: Direction | undefined;
}

/** Starts a proxy on a free loopback port forwarding to `targetHost:targetPort`. */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  let mode: ProxyMode = { state: 'open' };
  const links = new Set<Link>();
  const totals = { accepted: 0, upBytes: 0, downBytes: 0, maxWaiting: 0 };
  let ticker: NodeJS.Timeout | undefined;

  const close = (link: Link): void => {
    if (!links.delete(link)) return;
    link.client.resetAndDestroy();
    link.target?.resetAndDestroy();
  };

  const dialTarget = (link: Link): void => {
    const target = connect({ host: targetHost, port: targetPort });
    link.target = target;
    link.down = new Direction(target, (n) => (totals.downBytes += n));
    target.on('data', (chunk: Buffer) => {
      link.down!.push(chunk);
      pump();
    });
    target.on('drain', pump);
    target.on('connect', pump);
    target.on('error', () => close(link));
    target.on('close', () => close(link));
  };

  /** Forward what the mode allows now (`budget` bytes per direction; Infinity when open). */
  const forwardAll = (budget: number): void => {
    for (const link of links) {
      if (!link.target) {
        if (mode.state === 'cut') continue;
        dialTarget(link);
      }
      if (link.target!.connecting) continue;
      link.up.forward(link.target!, budget);
      link.down?.forward(link.client, budget);
    }
    const waiting = [...links].reduce((n, l) => n + l.up.waiting + (l.down?.waiting ?? 0), 0);
    totals.maxWaiting = Math.max(totals.maxWaiting, waiting);
  };
  const pump = (): void => {
    if (mode.state === 'open') forwardAll(Infinity);
    else forwardAll(0); // only updates the figures; the ticker forwards a saturated link
  };

  const server: Server = createServer((client) => {
    totals.accepted++;
    if (mode.state === 'cut' && mode.newConnections === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const link: Link = {
      client,
      target: undefined,
      up: new Direction(client, (n) => (totals.upBytes += n)),
      down: undefined,
    };
    links.add(link);
    client.on('data', (chunk: Buffer) => {
      link.up.push(chunk);
      pump();
    });
    client.on('drain', pump);
    client.on('error', () => close(link));
    client.on('close', () => close(link));
    if (mode.state !== 'cut') dialTarget(link);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = (server.address() as { port: number }).port;

  const setMode = (next: ProxyMode): void => {
    mode = next;
    clearInterval(ticker);
    ticker = undefined;
    if (next.state === 'saturated' && next.bytesPerSecond > 0) {
      const budget = Math.max(1, Math.floor((next.bytesPerSecond * TICK_MS) / 1000));
      ticker = setInterval(() => forwardAll(budget), TICK_MS);
    }
    pump();
  };

  return {
    address: `127.0.0.1:${port}`,
    port,
    get mode() {
      return mode;
    },
    cut(newConnections = 'refuse') {
      for (const link of [...links]) close(link);
      setMode({ state: 'cut', newConnections });
    },
    saturate(bytesPerSecond) {
      setMode({ state: 'saturated', bytesPerSecond });
    },
    restore() {
      setMode({ state: 'open' });
    },
    stats() {
      let waiting = 0;
      for (const l of links) waiting += l.up.waiting + (l.down?.waiting ?? 0);
      return { connections: links.size, waiting, ...totals };
    },
    async stop() {
      clearInterval(ticker);
      for (const link of [...links]) close(link);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
