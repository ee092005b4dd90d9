/**
 * edgeMesh's TCP proxy: one listener per service port on the mesh address; each connection goes to
 * a ready endpoint of that port (round robin, the next one when a dial fails). No iptables: clients
 * reach the mesh address because the service name resolves to it.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { errorText, type Logger } from '../../kernel/index.js';
import type { Backend, Catalog, Listener } from './catalog.js';
import type { ProxyResult } from './metrics.js';

/** A dial to an endpoint that takes longer is abandoned for the next endpoint. */
const DIAL_TIMEOUT_MS = 3000;
/** A port that could not be bound (held by another process) is tried again this often. */
const REBIND_MS = 5000;

export interface ProxyOptions {
  address: string;
  catalog: Catalog;
  log: Logger;
  count(result: ProxyResult): void;
}

interface Bound {
  listener: Listener;
  server: Server;
}

export class ServiceProxy {
  private readonly bound = new Map<number, Bound>();
  private readonly conns = new Set<Socket>();
  private readonly next = new Map<string, number>();
  private readonly reported = new Set<string>();
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: ProxyOptions) {}

  /** Opens and closes listeners to match the catalog's service ports. */
  sync(): void {
    if (this.stopped) return;
    const { listeners, conflicts } = this.o.catalog.listeners();
    for (const [port, b] of this.bound) {
      const want = listeners.get(port);
      if (want) b.listener = want;
      else {
        this.bound.delete(port);
        b.server.close();
        this.o.log.info({ port, service: b.listener.key }, 'service port closed');
      }
    }
    for (const [port, listener] of listeners) if (!this.bound.has(port)) this.listen(listener);
    for (const c of conflicts) {
      const id = `${c.key}:${c.port}`;
      if (this.reported.has(id)) continue;
      this.reported.add(id);
      this.o.log.warn(
        { service: c.key, port: c.port, holder: listeners.get(c.port)?.key },
        'service port not proxied: another service has the same port on the mesh address',
      );
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    for (const c of this.conns) c.destroy();
    await Promise.all(
      [...this.bound.values()].map((b) => new Promise<void>((r) => b.server.close(() => r()))),
    );
    this.bound.clear();
  }

  private listen(listener: Listener): void {
    const bound: Bound = { listener, server: createServer((client) => this.accept(client, bound)) };
    this.bound.set(listener.port, bound);
    bound.server.once('error', (err) => {
      if (this.bound.get(listener.port) === bound) this.bound.delete(listener.port);
      this.o.log.error(
        { port: listener.port, service: listener.key, err: errorText(err) },
        'service port cannot listen; trying again',
      );
      this.retry ??= setTimeout(() => {
        this.retry = undefined;
        this.sync();
      }, REBIND_MS);
    });
    bound.server.listen(listener.port, this.o.address, () =>
      this.o.log.info({ port: listener.port, service: listener.key }, 'service port proxied'),
    );
  }

  private accept(client: Socket, bound: Bound): void {
    this.conns.add(client);
    client.on('close', () => this.conns.delete(client));
    client.on('error', () => client.destroy());
    client.setNoDelay(true);
    client.pause();
    const { key, portName, port } = bound.listener;
    const backends = this.o.catalog.backends(key, portName);
    if (backends.length === 0) {
      this.o.count('no-endpoint');
      this.o.log.warn({ service: key, port }, 'no ready endpoint for the service port; connection reset');
      client.resetAndDestroy();
      return;
    }
    const start = this.next.get(key) ?? 0;
    this.next.set(key, start + 1);
    const order = backends.map((_, i) => backends[(start + i) % backends.length]!);
    this.dial(client, order, key, port);
  }

  /** Dials the endpoints in order until one answers, then pipes both ways. */
  private dial(client: Socket, order: Backend[], key: string, port: number): void {
    const backend = order.shift();
    if (backend === undefined) {
      this.o.count('dial-failed');
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host: backend.ip, port: backend.port, noDelay: true });
    upstream.setTimeout(DIAL_TIMEOUT_MS, () =>
      upstream.destroy(new Error(`no answer in ${DIAL_TIMEOUT_MS} ms`)),
    );
    upstream.once('error', (err) => {
      this.o.log.warn(
        { service: key, port, endpoint: `${backend.ip}:${backend.port}`, err: errorText(err) },
        'endpoint dial failed',
      );
      if (!client.destroyed) this.dial(client, order, key, port);
    });
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      upstream.removeAllListeners('error');
      if (client.destroyed) {
        upstream.destroy(); // the client left while the endpoint was dialled
        return;
      }
      this.o.count('proxied');
      this.conns.add(upstream);
      upstream.on('close', () => this.conns.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.end());
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  }
}
