/**
 * A TCP load balancer with failover, as one stands in front of several cloudcores (a Service, an
 * HAProxy, a keepalived VIP): each connection goes to the first backend that accepts it, in the
 * given order, so a client keeps one address and lands on the next cloudcore when its own is gone.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface FailoverProxy {
  readonly port: number;
  /** Backend ports of the connections made so far, in order. */
  readonly chosen: number[];
  stop(): Promise<void>;
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export async function startFailoverProxy(backends: readonly number[]): Promise<FailoverProxy> {
  const sockets = new Set<Socket>();
  const chosen: number[] = [];
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('error', () => s.destroy());
    s.once('close', () => sockets.delete(s));
  };
  const server: Server = createServer((client) => {
    track(client);
    client.pause();
    void (async () => {
      for (const port of backends) {
        let upstream: Socket;
        try {
          upstream = await dial(port);
        } catch {
          continue; // refused: the next backend
        }
        if (client.destroyed) {
          upstream.destroy();
          return;
        }
        track(upstream);
        chosen.push(port);
        client.pipe(upstream).pipe(client);
        client.once('close', () => upstream.destroy());
        upstream.once('close', () => client.destroy());
        client.resume();
        return;
      }
      client.destroy();
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('failover proxy: no port');
  return {
    port: address.port,
    chosen,
    stop: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
