import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import type Database from 'better-sqlite3';
import * as k8s from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { newMessage } from '../../kernel/index.js';
import { freePort, requirePeer } from '../../test/peers/util.js';
import { cloudMsg, configMap, pod, startMeta, type MetaHarness } from './testdata/harness.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
/** tsx by path: the child may run in a directory without node_modules. */
const tsx = pathToFileURL(join(root, 'node_modules/tsx/dist/loader.mjs')).href;
const dir = mkdtempSync(join(tmpdir(), 'meta-autonomy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const openDb = (file: string): Database.Database => {
  const Driver = createRequire(import.meta.url)('better-sqlite3') as typeof Database;
  return new Driver(file);
};

async function feed(h: MetaHarness, msg: ReturnType<typeof cloudMsg>): Promise<void> {
  await h.send(msg);
  await h.waitFor('ack', () => h.cloud.some((m) => m.header.parent_msg_id === msg.header.msg_id));
}

interface WatchLine {
  type: string;
  object: {
    kind: string;
    code?: number;
    reason?: string;
    metadata: { name: string; resourceVersion: string };
  };
}

/** Read a watch stream line by line until `until` says stop or the server ends it. */
async function readWatch(
  url: string,
  until: (lines: WatchLine[]) => boolean,
  onOpen?: () => Promise<void>,
): Promise<WatchLine[]> {
  const ctl = new AbortController();
  const res = await fetch(url, { signal: ctl.signal });
  const lines: WatchLine[] = [];
  const reader = res.body!.getReader();
  let buf = '';
  const opened = onOpen?.();
  try {
    while (!until(lines)) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, i)) as WatchLine);
        buf = buf.slice(i + 1);
      }
    }
  } finally {
    ctl.abort();
  }
  await opened;
  return lines;
}

describe('edge autonomy', () => {
  it('after the cloud goes away and edgecore restarts: lists survive, a watch resumes or gets 410 Gone', async () => {
    const port = await freePort();
    const dataSource = join(dir, 'restart.db');
    const base = `http://127.0.0.1:${port}`;
    let h = await startMeta({ dataSource, metaServer: `127.0.0.1:${port}` });
    for (let i = 1; i <= 3; i++)
      await feed(h, cloudMsg('insert', `default/pod/p${i}`, pod(`p${i}`, String(100 + i)), String(100 + i)));
    await feed(h, cloudMsg('insert', 'default/configmap/cfg', configMap('cfg', '104'), '104'));
    // A watch started before the restart sees the objects; remember the last resourceVersion.
    const before = await readWatch(
      `${base}/api/v1/namespaces/default/pods?watch=true`,
      (l) => l.length === 3,
    );
    const lastRv = before[2]!.object.metadata.resourceVersion;
    expect(lastRv).toBe('103');
    // The cloud goes away, then edgecore stops and starts again on the same database.
    h.kernel.cloud.set(false);
    await h.stop();
    h = await startMeta({ dataSource, metaServer: `127.0.0.1:${port}`, withCloud: false, connected: false });
    try {
      const kc = new k8s.KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'e', server: base, skipTLSVerify: true }],
        users: [{ name: 'u' }],
        contexts: [{ name: 'e', cluster: 'e', user: 'u' }],
        currentContext: 'e',
      });
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const pods = await core.listNamespacedPod({ namespace: 'default' });
      expect(pods.items.map((p) => p.metadata?.name)).toEqual(['p1', 'p2', 'p3']);
      expect(pods.metadata?.resourceVersion).toBe('104');
      expect((await core.readNamespacedConfigMap({ name: 'cfg', namespace: 'default' })).data).toEqual({
        key: 'value-cfg',
      });
      // edged reads a configmap with the cloud gone: answered from the database.
      const q = await h.request(
        newMessage(
          { source: 'edged', group: 'meta', operation: 'query', resource: 'default/configmap/cfg' },
          null,
        ),
      );
      expect((q.content as string[]).map((s) => JSON.parse(s).metadata.name)).toEqual(['cfg']);
      // Resume from the last resourceVersion seen (the current revision): only what is new arrives.
      const resumed = await readWatch(
        `${base}/api/v1/namespaces/default/pods?watch=true&resourceVersion=104`,
        (l) => l.length === 1,
        () => h.send(cloudMsg('insert', 'default/pod/p4', pod('p4', '105'), '105')),
      );
      expect(resumed.map((l) => [l.type, l.object.metadata.name])).toEqual([['ADDED', 'p4']]);
      // Resume from an older resourceVersion: the events in between are gone with the old process.
      const gone = await readWatch(
        `${base}/api/v1/namespaces/default/pods?watch=true&resourceVersion=${lastRv}`,
        (l) => l.length === 1,
      );
      expect(gone[0]).toMatchObject({
        type: 'ERROR',
        object: { kind: 'Status', code: 410, reason: 'Expired' },
      });
    } finally {
      await h.stop();
    }
  });

  it('kill -9 in the middle of a burst of writes: the database opens clean with every acknowledged write', async () => {
    const dataSource = join(dir, 'burst.db');
    const child = spawn(
      process.execPath,
      ['--import', tsx, join(root, 'plugins/metamanager/testdata/burst-writer.ts'), dataSource],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const acked: string[] = [];
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    // Killed from the data handler itself, the moment the 3,000th ACK has been read.
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        let i;
        while ((i = out.indexOf('\n')) >= 0) {
          const line = out.slice(0, i);
          out = out.slice(i + 1);
          if (line.startsWith('ACK ')) acked.push(line.slice(4));
        }
        if (acked.length >= 3000 && child.kill('SIGKILL')) resolve();
      });
      child.on('exit', () => reject(new Error(`burst writer exited: ${acked.length} acks; stderr: ${err}`)));
    });
    await exited;
    const db = openDb(dataSource);
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      const has = db.prepare('SELECT 1 FROM meta WHERE key = ?').pluck();
      const missing = acked.filter((r) => has.get(r) === undefined);
      expect(missing).toEqual([]);
      const v2 = db.prepare('SELECT COUNT(*) FROM meta_v2').pluck().get() as number;
      expect(v2).toBeGreaterThanOrEqual(acked.length);
    } finally {
      db.close();
    }
  });

  it('edgecore --config configs/edgecore.yaml serves kubectl get pods -A from metaServer', async () => {
    const kubectl = requirePeer('kubectl');
    const port = await freePort();
    const cwd = mkdtempSync(join(dir, 'cwd-'));
    const yaml = readFileSync(join(root, 'configs/edgecore.yaml'), 'utf8')
      .replace('127.0.0.1:10550', `127.0.0.1:${port}`)
      .replace('127.0.0.1:1884', `127.0.0.1:${await freePort()}`);
    writeFileSync(join(cwd, 'edgecore.yaml'), yaml);
    const child = spawn(
      process.execPath,
      ['--import', tsx, join(root, 'bin/edgecore.ts'), '--config', 'edgecore.yaml'],
      {
        cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let log = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // Every plugin has started (metaServer listens) when the kernel logs "kernel ready".
      await new Promise<void>((resolve, reject) => {
        const onData = (d: Buffer): void => {
          log += d.toString();
          if (log.includes('kernel ready')) resolve();
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        void exited.then((code) =>
          reject(new Error(`edgecore exited (${code}) before "kernel ready":\n${log}`)),
        );
      });
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const { stdout } = await promisify(execFile)(
        kubectl,
        [
          '--server',
          `http://127.0.0.1:${port}`,
          '--cache-dir',
          join(cwd, 'cache'),
          'get',
          'pods',
          '-A',
          '-o',
          'json',
        ],
        { encoding: 'utf8', timeout: 20_000 },
      );
      expect(JSON.parse(stdout)).toMatchObject({ kind: 'List', items: [] });
      expect(readFileSync(join(cwd, '.kubeedge/edgecore.db')).length).toBeGreaterThan(0);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
