/**
 * metaManager / metaServer figures: SQLite upserts (single and batched), query latency on a
 * database of 10,000 objects, metaServer list of 1,000 pods, watch fan-out to 50 watchers (clients in
 * a worker thread, and on the server's own event loop), and the memory a watch client that stops
 * reading costs.
 */
import { request as httpGet, Agent, type ClientRequest } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { openDatabase } from '../../kernel/db.js';
import { newMessage } from '../../kernel/bus/message.js';
import { MetaStore } from '../../plugins/metamanager/store.js';
import { cloudMsg, pod, startMeta, type MetaHarness } from '../../plugins/metamanager/testdata/harness.js';
import { freePort } from '../peers/util.js';
import { latencyFigures, percentile, round, type Figure } from './report.js';

const now = (): bigint => process.hrtime.bigint();

function podJson(i: number): string {
  return JSON.stringify(pod(`pod-${i}`, String(i + 1)));
}

async function storeFigures(dir: string): Promise<Figure[]> {
  const db = openDatabase(join(dir, 'store.db'));
  const store = new MetaStore(db);
  const single = 20_000;
  let t0 = now();
  for (let i = 0; i < single; i++) store.upsert(`default/pod/s-${i}`, 'pod', podJson(i));
  const singleRate = single / (Number(now() - t0) / 1e9);
  const batched = 100_000;
  const rows: [string, string, string][] = [];
  for (let i = 0; i < batched; i++) rows.push([`default/pod/b-${i}`, 'pod', podJson(i)]);
  t0 = now();
  for (let i = 0; i < batched; i += 1000) store.upsertMany(rows.slice(i, i + 1000));
  const batchedRate = batched / (Number(now() - t0) / 1e9);
  db.close();
  return [
    { name: 'meta_upserts_single', value: round(singleRate), unit: '/s' },
    { name: 'meta_upserts_batched_1000', value: round(batchedRate), unit: '/s', goal: '>= 50000' },
  ];
}

async function queryFigures(dir: string): Promise<Figure[]> {
  const h = await startMeta({ dataSource: join(dir, 'query.db'), connected: false });
  try {
    const db = openDatabase(join(dir, 'query.db'));
    const store = new MetaStore(db);
    const rows: [string, string, string][] = [];
    for (let i = 0; i < 10_000; i++) rows.push([`default/pod/pod-${i}`, 'pod', podJson(i)]);
    store.upsertMany(rows);
    const direct: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const t = now();
      store.queryKey(`default/pod/pod-${(i * 7919) % 10_000}`);
      direct.push(Number(now() - t));
    }
    db.close();
    const viaBus: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const msg = newMessage(
        {
          source: 'edged',
          group: 'meta',
          operation: 'query',
          resource: `default/pod/pod-${(i * 7919) % 10_000}`,
        },
        null,
      );
      const t = now();
      await h.request(msg);
      viaBus.push(Number(now() - t));
    }
    return [
      ...latencyFigures('meta_query_by_key_10k', direct, 'us'),
      ...latencyFigures('meta_query_edged_request_10k', viaBus, 'us'),
    ];
  } finally {
    await h.stop();
  }
}

async function metaServerFigures(dir: string): Promise<Figure[]> {
  const port = await freePort();
  const h = await startMeta({ dataSource: join(dir, 'server.db'), metaServer: `127.0.0.1:${port}` });
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  try {
    for (let i = 0; i < 1000; i++) {
      await h.send(cloudMsg('insert', `default/pod/pod-${i}`, pod(`pod-${i}`, String(i + 1)), String(i + 1)));
      if (i % 500 === 499) await h.waitFor('acks', () => h.cloud.length >= i + 1, 30_000);
    }
    h.cloud.length = 0;
    const get = (path: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = httpGet({ host: '127.0.0.1', port, path, agent }, (res) => {
          let n = 0;
          res.on('data', (d: Buffer) => (n += d.length));
          res.on('end', () => resolve(n));
        });
        req.on('error', reject);
        req.end();
      });
    const list: number[] = [];
    let bytes = 0;
    for (let i = 0; i < 300; i++) {
      const t = now();
      bytes = await get('/api/v1/namespaces/default/pods');
      list.push(Number(now() - t));
    }
    const selected: number[] = [];
    for (let i = 0; i < 100; i++) {
      const t = now();
      await get('/api/v1/namespaces/default/pods?labelSelector=app%3Dweb');
      selected.push(Number(now() - t));
    }
    const sameThread = await watchSameThread(h, port);
    const separate = await watchFromWorker(h, port);
    const stalled = await stalledWatcher(h, port);
    return [
      ...latencyFigures('metaserver_list_1000_pods', list, 'ms', '<= 20'),
      { name: 'metaserver_list_1000_pods_bytes', value: bytes, unit: 'B' },
      ...latencyFigures('metaserver_list_1000_pods_labelselector', selected, 'ms'),
      ...latencyFigures('metaserver_watch_event_50_watchers', separate, 'ms', '<= 5'),
      ...tailFigures('metaserver_watch_event_50_watchers', separate),
      ...latencyFigures('metaserver_watch_event_50_watchers_same_thread', sameThread, 'ms'),
      ...tailFigures('metaserver_watch_event_50_watchers_same_thread', sameThread),
      ...stalled,
    ];
  } finally {
    agent.destroy();
    await h.stop();
  }
}

/** p99.9 and max (ms): the rare slow events (a WAL checkpoint, a GC pause) that p99 may hide. */
function tailFigures(name: string, samplesNs: number[]): Figure[] {
  const sorted = [...samplesNs].sort((a, b) => a - b);
  return [
    { name: `${name}_p999`, value: round(percentile(sorted, 99.9) / 1e6), unit: 'ms' },
    { name: `${name}_max`, value: round(percentile(sorted, 100) / 1e6), unit: 'ms' },
  ];
}

const WATCHERS = 50;
const WARMUP_EVENTS = 50;
const EVENTS = 500;
let nextRv = 2000;

/** A pod pushed by the cloud (edgecontroller insert), as metaManager receives it from edgeHub. */
function pushPod(h: MetaHarness, name: string): Promise<void> {
  const rv = String(nextRv++);
  return h.send(cloudMsg('insert', `default/pod/${name}`, pod(name, rv), rv));
}

/**
 * Watch fan-out as the issue asks: a cloud message enters metaManager (store, imitator, watch
 * event) and is timed until its line has arrived at each of 50 watch streams. The clients run in
 * a worker thread (their own event loop, like kubectl or an informer in another process); one
 * sample per watcher per event. The first WARMUP_EVENTS events are not counted (JIT, first
 * checkpoint); then each event is sent when the previous one has reached every watcher.
 */
async function watchFromWorker(h: MetaHarness, port: number): Promise<number[]> {
  const worker = new Worker(
    new URL('../../plugins/metamanager/testdata/bench-watchers.js', import.meta.url),
    {
      workerData: {
        port,
        watchers: WATCHERS,
        path: `/api/v1/namespaces/default/pods?watch=true&resourceVersion=${nextRv - 1}`,
      },
    },
  );
  const waiting = new Map<string, (arrivals: number[]) => void>();
  try {
    await new Promise<void>((resolve, reject) => {
      worker.once('error', reject);
      worker.on('message', (m: { ready?: boolean; name?: string; arrivals?: number[] }) => {
        if (m.ready) resolve();
        else if (m.name) waiting.get(m.name)?.(m.arrivals ?? []);
      });
    });
    const lat: number[] = [];
    for (let i = 0; i < WARMUP_EVENTS + EVENTS; i++) {
      const name = `ww-${i}`;
      const done = new Promise<number[]>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`watch event ${name}: not at every watcher in 10 s`)),
          10_000,
        );
        waiting.set(name, (a) => {
          clearTimeout(t);
          waiting.delete(name);
          resolve(a);
        });
      });
      const sent = Number(now());
      await pushPod(h, name);
      const arrivals = await done;
      if (i >= WARMUP_EVENTS) for (const a of arrivals) lat.push(a - sent);
    }
    return lat;
  } finally {
    await worker.terminate();
  }
}

/**
 * The same with the 50 clients on the server's own event loop (the first version of this
 * benchmark): each sample then also holds the client work of the watchers served before it.
 */
async function watchSameThread(h: MetaHarness, port: number): Promise<number[]> {
  const sentAt = new Map<string, number>();
  const lat: number[] = [];
  let arrived = 0;
  let wake: (() => void) | undefined;
  const reqs: ClientRequest[] = [];
  await Promise.all(
    Array.from(
      { length: WATCHERS },
      () =>
        new Promise<void>((resolve) => {
          const req = httpGet(
            {
              host: '127.0.0.1',
              port,
              path: `/api/v1/namespaces/default/pods?watch=true&resourceVersion=${nextRv - 1}`,
            },
            (res) => {
              let buf = '';
              res.on('data', (d: Buffer) => {
                const t = Number(now());
                buf += d.toString();
                let nl;
                while ((nl = buf.indexOf('\n')) >= 0) {
                  const line = buf.slice(0, nl);
                  buf = buf.slice(nl + 1);
                  const name = /"name":"([^"]+)"/.exec(line)?.[1];
                  const s = name ? sentAt.get(name) : undefined;
                  if (s === undefined) continue;
                  if (s >= 0) lat.push(t - s);
                  if (++arrived % WATCHERS === 0) wake?.();
                }
              });
              res.on('error', () => undefined);
              resolve();
            },
          );
          req.on('error', () => undefined);
          reqs.push(req);
          req.end();
        }),
    ),
  );
  try {
    for (let i = 0; i < WARMUP_EVENTS + EVENTS; i++) {
      const name = `ws-${i}`;
      const done = new Promise<void>((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`watch event ${name}: not at every watcher in 10 s`)),
          10_000,
        );
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      const sent = Number(now());
      sentAt.set(name, i >= WARMUP_EVENTS ? sent : -1);
      await pushPod(h, name);
      await done;
    }
    return lat;
  } finally {
    for (const r of reqs) r.destroy();
  }
}

/**
 * A watch client that stops reading while 3,000 pods of about 50 KB (150 MB of events) are pushed:
 * the peak growth of the memory outside the JS heap (`arrayBuffers`: the encoded event lines,
 * where what is queued for a client lives) and of the RSS (which also holds the JS heap's
 * garbage of 150 MB of messages, the event history and SQLite's cache),
 * and whether the watch was ended with the 410 ERROR event (1) once the client reads again.
 * Without a bound every event stayed queued for it.
 */
async function stalledWatcher(h: MetaHarness, port: number): Promise<Figure[]> {
  h.cloud.length = 0;
  h.edged.length = 0;
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  const opened = new Promise<void>((resolve) =>
    socket.once('data', (d: Buffer) => {
      chunks.push(d);
      socket.pause();
      socket.on('data', (more: Buffer) => chunks.push(more));
      resolve();
    }),
  );
  socket.write(
    `GET /api/v1/namespaces/stalled/pods?watch=true&resourceVersion=${nextRv - 1} HTTP/1.1\r\n` +
      'Host: 127.0.0.1\r\nConnection: close\r\n\r\n',
  );
  await opened;
  const filler = 'x'.repeat(50 * 1024);
  const events = 3000;
  const before = process.memoryUsage();
  let rssMax = before.rss;
  let buffersMax = before.arrayBuffers;
  for (let i = 0; i < events; i++) {
    const rv = String(nextRv++);
    const p = pod(`stalled-${i}`, rv, { ns: 'stalled' });
    await h.send(
      cloudMsg('insert', `stalled/pod/stalled-${i}`, { ...p, spec: { ...(p.spec as object), filler } }, rv),
    );
    if (i % 100 === 99) {
      await h.waitFor('acks', () => h.cloud.length >= 100, 30_000);
      h.cloud.length = 0;
      h.edged.length = 0; // the stand-in edged keeps what it receives
      const m = process.memoryUsage();
      rssMax = Math.max(rssMax, m.rss);
      buffersMax = Math.max(buffersMax, m.arrayBuffers);
    }
  }
  socket.resume();
  // Ended by the server once read; if it never ends (no bound), give up after 30 s.
  const giveUp = setTimeout(() => socket.destroy(), 30_000);
  await closed;
  clearTimeout(giveUp);
  const text = Buffer.concat(chunks).toString('utf8');
  const last = text.slice(text.lastIndexOf('{"type":'));
  const ended = /^\{"type":"ERROR","object":\{"kind":"Status".*"code":410\}\}/.test(last) ? 1 : 0;
  return [
    {
      name: 'metaserver_stalled_watcher_3000_pods_50k_buffers_growth',
      value: round((buffersMax - before.arrayBuffers) / 2 ** 20),
      unit: 'MB',
      goal: '<= 40',
    },
    {
      name: 'metaserver_stalled_watcher_3000_pods_50k_rss_growth',
      value: round((rssMax - before.rss) / 2 ** 20),
      unit: 'MB',
    },
    { name: 'metaserver_stalled_watcher_dropped_with_410', value: ended, unit: 'bool', goal: '>= 1' },
  ];
}

export async function metamanagerBench(): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-metamanager-'));
  try {
    return [...(await storeFigures(dir)), ...(await queryFigures(dir)), ...(await metaServerFigures(dir))];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
