/**
 * metaManager / metaServer figures: SQLite upserts (single and batched), query latency on a
 * database of 10,000 objects, metaServer list of 1,000 pods, watch fan-out to 50 watchers.
 */
import { request as httpGet, Agent } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../kernel/db.js';
import { newMessage } from '../../kernel/bus/message.js';
import { MetaStore } from '../../plugins/metamanager/store.js';
import { cloudMsg, pod, startMeta } from '../../plugins/metamanager/testdata/harness.js';
import { freePort } from '../peers/util.js';
import { latencyFigures, round, type Figure } from './report.js';

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
    // 50 watchers; each event is timed from the send to its arrival at every watcher.
    const sentAt = new Map<string, bigint>();
    const lat: number[] = [];
    const watchers = await Promise.all(
      Array.from(
        { length: 50 },
        () =>
          new Promise<() => void>((resolve) => {
            const req = httpGet(
              {
                host: '127.0.0.1',
                port,
                path: `/api/v1/namespaces/default/pods?watch=true&resourceVersion=${1000}`,
              },
              (res) => {
                let buf = '';
                res.on('data', (d: Buffer) => {
                  const t = now();
                  buf += d.toString();
                  let i;
                  while ((i = buf.indexOf('\n')) >= 0) {
                    const line = buf.slice(0, i);
                    buf = buf.slice(i + 1);
                    const name = /"name":"([^"]+)"/.exec(line)?.[1];
                    const s = name ? sentAt.get(name) : undefined;
                    if (s !== undefined) lat.push(Number(t - s));
                  }
                });
                resolve(() => req.destroy());
              },
            );
            req.end();
          }),
      ),
    );
    const events = 200;
    for (let i = 0; i < events; i++) {
      const name = `w-${i}`;
      const msg = cloudMsg('insert', `default/pod/${name}`, pod(name, String(2000 + i)), String(2000 + i));
      sentAt.set(name, now());
      await h.send(msg);
      const want = (i + 1) * 50;
      await h.waitFor('fan-out', () => lat.length >= want, 10_000);
    }
    for (const close of watchers) close();
    return [
      ...latencyFigures('metaserver_list_1000_pods', list, 'ms', '<= 20'),
      { name: 'metaserver_list_1000_pods_bytes', value: bytes, unit: 'B' },
      ...latencyFigures('metaserver_list_1000_pods_labelselector', selected, 'ms'),
      ...latencyFigures('metaserver_watch_event_50_watchers', lat, 'ms', '<= 5'),
    ];
  } finally {
    agent.destroy();
    await h.stop();
  }
}

export async function metamanagerBench(): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-metamanager-'));
  try {
    return [...(await storeFigures(dir)), ...(await queryFigures(dir)), ...(await metaServerFigures(dir))];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
