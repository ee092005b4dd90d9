/**
 * Benchmark helper (worker thread): N watch clients of metaServer on their own event loop, as
 * kubectl or an informer in another process would be. Each stream's lines are timed on arrival
 * (process.hrtime, the same monotonic clock in every thread); when an object name has reached all
 * N streams the arrival times go to the parent in one message, so the parent's event loop (the
 * server's) does no client work while an event is in flight.
 *
 * workerData: { port, path, watchers }. Messages out: { ready: true } once every stream has its
 * response headers, then { name, arrivals: number[] } (hrtime ns as numbers) per object name.
 * The parent ends it with worker.terminate().
 */
import { request } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

const { port, path, watchers } = workerData as { port: number; path: string; watchers: number };
const arrivals = new Map<string, number[]>();
const nameOf = /"name":"([^"]+)"/;

function onLine(line: string, t: number): void {
  const name = nameOf.exec(line)?.[1];
  if (!name) return;
  let list = arrivals.get(name);
  if (!list) arrivals.set(name, (list = []));
  list.push(t);
  if (list.length === watchers) {
    arrivals.delete(name);
    parentPort?.postMessage({ name, arrivals: list });
  }
}

let open = 0;
for (let i = 0; i < watchers; i++) {
  const req = request({ host: '127.0.0.1', port, path }, (res) => {
    let buf = '';
    res.on('data', (d: Buffer) => {
      const t = Number(process.hrtime.bigint());
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, nl), t);
        buf = buf.slice(nl + 1);
      }
    });
    res.on('error', () => undefined);
    if (++open === watchers) parentPort?.postMessage({ ready: true });
  });
  req.on('error', () => undefined);
  req.end();
}
