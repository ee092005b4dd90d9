/**
 * metaServer against a hostile or clumsy local client: what it serves to whom (loopback only, Host
 * checked, requireAuthorization refused), malformed requests, oversized bodies, huge timeouts, and
 * a watch client that stops reading. Real HTTP over loopback, a real SQLite file.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorText } from '../../../kernel/index.js';
import { freePort } from '../../../test/peers/util.js';
import { cloudMsg, pod, startMeta, type HarnessOptions, type MetaHarness } from '../testdata/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'metaserver-hardening-'));
let h: MetaHarness;
let port: number;
let nextRv = 100;

async function feed(msg: ReturnType<typeof cloudMsg>): Promise<void> {
  await h.send(msg);
  await h.waitFor('ack', () => h.cloud.some((m) => m.header.parent_msg_id === msg.header.msg_id));
}

function pushPod(name: string, ns = 'default', extra: Record<string, unknown> = {}): Promise<void> {
  const rv = String(nextRv++);
  return feed(cloudMsg('insert', `${ns}/pod/${name}`, { ...pod(name, rv, { ns }), ...extra }, rv));
}

/** One raw HTTP/1.x exchange on a fresh connection (the request text is sent as is). */
function raw(text: string): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('utf8')));
    socket.on('error', reject);
    socket.on('end', () => {
      const i = data.indexOf('\r\n\r\n');
      const head = data.slice(0, i);
      resolve({ status: Number(/^HTTP\/1\.\d (\d+)/.exec(head)?.[1]), head, body: data.slice(i + 4) });
    });
    socket.write(text);
  });
}

function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Start a second edge with `o` and report how its metaManager came up: the start error (thrown
 * by the kernel or recorded as the plugin's last error), and whether metaServer answered.
 */
async function tryStart(o: Partial<HarnessOptions> & { metaServer: string }): Promise<{
  error: string | undefined;
  served: boolean;
}> {
  const other = await startMeta({ dataSource: join(dir, `other-${nextRv++}.db`), ...o }).catch(
    (err: unknown) => errorText(err),
  );
  if (typeof other === 'string') return { error: other, served: false };
  try {
    const p = Number(/:(\d+)$/.exec(o.metaServer)?.[1]);
    const served = await fetch(`http://127.0.0.1:${p}/api/v1/secrets`).then(
      () => true,
      () => false,
    );
    return { error: other.kernel.status().find((s) => s.name === 'metamanager')?.lastError, served };
  } finally {
    await other.stop();
  }
}

beforeAll(async () => {
  port = await freePort();
  h = await startMeta({ dataSource: join(dir, 'edgecore.db'), metaServer: `127.0.0.1:${port}` });
  await feed(
    cloudMsg(
      'update',
      'default/secret/s1',
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 's1', namespace: 'default', resourceVersion: '50' },
        data: { password: 'aHVudGVyMg==' },
      },
      '50',
    ),
  );
  await pushPod('web-1');
});

afterAll(async () => {
  await h?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('metaServer: what is served to whom', () => {
  it('featureGates.requireAuthorization is refused at start with a clear error, and nothing is served', async () => {
    const p = await freePort();
    const r = await tryStart({ metaServer: `127.0.0.1:${p}`, featureGates: { requireAuthorization: true } });
    expect(r.error).toMatch(
      /featureGates\.requireAuthorization: true is not supported with modules\.metaManager\.metaServer\.enable: true/,
    );
    expect(r.served).toBe(false);
  });

  it('a non-loopback listen address is refused, naming modules.metaManager.metaServer.server', async () => {
    const p = await freePort();
    const r = await tryStart({ metaServer: `0.0.0.0:${p}` });
    expect(r.error).toMatch(
      new RegExp(
        `modules\\.metaManager\\.metaServer\\.server: "0\\.0\\.0\\.0:${p}" is not a loopback address`,
      ),
    );
    expect(r.served).toBe(false);
    const named = await tryStart({ metaServer: `localhost:${p}` });
    expect(named).toEqual({ error: undefined, served: true });
  });

  it('only loopback Host names are answered (no DNS rebinding from a web page)', async () => {
    const secret = '/api/v1/namespaces/default/secrets/s1';
    const evil = await get(secret, { host: `attacker.example:${port}` });
    expect(evil.status).toBe(403);
    expect(JSON.parse(evil.body)).toMatchObject({ kind: 'Status', reason: 'Forbidden', code: 403 });
    expect(evil.body).not.toContain('aHVudGVyMg==');
    const rebound = await get(secret, { host: `127.0.0.1.nip.io:${port}` });
    expect(rebound.status).toBe(403);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, 'LOCALHOST']) {
      expect((await get(secret, { host })).status, host).toBe(200);
    }
    const noHost = await raw(`GET ${secret} HTTP/1.0\r\n\r\n`);
    expect(noHost.status).toBe(403);
  });
});

describe('metaServer: HTTP details', () => {
  it('malformed percent-encoding and a target that is not a path are 400 Status objects', async () => {
    for (const target of [
      '/api/v1/namespaces/%E0%A4%A/pods',
      '/api/v1/namespaces/default/pods/%ZZ',
      '/api/v1/pods?labelSelector=%ZZ',
      '/api/v1/namespaces/%FF/pods',
      'http://attacker.example/api/v1/namespaces/default/secrets/s1',
    ]) {
      const r = await raw(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect(r.status, target).toBe(400);
      expect(r.body).toMatch(/"reason":"BadRequest"/);
      expect(r.body).not.toContain('aHVudGVyMg==');
    }
  });

  it('an unmatched path is a 404, never a meta_v2 key lookup; discovery still answers', async () => {
    for (const path of ['/core/v1/secrets/default/s1', '/apis/nope.example.com', '/metrics', '/']) {
      const r = await get(path);
      expect(r.status, path).toBe(404);
      expect(JSON.parse(r.body)).toMatchObject({ kind: 'Status', reason: 'NotFound' });
    }
    expect(JSON.parse((await get('/api/v1')).body)).toMatchObject({ kind: 'APIResourceList' });
    expect(JSON.parse((await get('/apis/coordination.k8s.io/v1')).body)).toMatchObject({
      groupVersion: 'coordination.k8s.io/v1',
    });
  });

  it('timeoutSeconds beyond what a timer holds is clamped: the watch stays open and delivers', async () => {
    const lines: string[] = [];
    let ended = false;
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: `/api/v1/namespaces/default/pods?watch=true&resourceVersion=${nextRv - 1}&timeoutSeconds=99999999999`,
      },
      (res) => {
        res.on('data', (d: Buffer) => lines.push(...d.toString('utf8').split('\n').filter(Boolean)));
        res.on('end', () => (ended = true));
      },
    );
    req.end();
    try {
      await new Promise((resolve) => req.once('response', resolve));
      await pushPod('after-timeout');
      await h.waitFor('the event', () => lines.some((l) => l.includes('"after-timeout"')));
      expect(ended).toBe(false);
    } finally {
      req.destroy();
    }
  });

  it('a body over the limit is 413: before it is sent with Expect: 100-continue, and at once by Content-Length', async () => {
    const tooLarge = String(4 * 1024 * 1024);
    const r = await new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = request({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/api/v1/namespaces/default/configmaps',
        headers: { 'Content-Type': 'application/json', 'Content-Length': tooLarge, Expect: '100-continue' },
      });
      req.on('continue', () => (continued = true));
      req.on('response', (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, continued });
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(r).toEqual({ status: 413, continued: false });
    const plain = await raw(
      `POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${tooLarge}\r\n\r\n{"kind":`,
    );
    expect(plain.status).toBe(413);
    expect(plain.head).toMatch(/connection: close/i);
    expect(plain.body).toMatch(/"reason":"RequestEntityTooLarge"/);
  });
});

describe('metaServer: a watch client that stops reading', () => {
  it('is dropped with a 410 ERROR event once too much is queued for it; a reading client gets every event', async () => {
    const path = `/api/v1/namespaces/slow/pods?watch=true&resourceVersion=${nextRv - 1}`;
    // The reading client.
    const fast: string[] = [];
    let fastOpened!: () => void;
    const fastOpen = new Promise<void>((resolve) => (fastOpened = resolve));
    const fastReq = request({ host: '127.0.0.1', port, path }, (res) => {
      fastOpened();
      let buf = '';
      res.on('data', (d: Buffer) => {
        buf += d.toString('utf8');
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          fast.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    });
    fastReq.end();
    // The client that stops reading once its response has begun.
    const slow = connect(port, '127.0.0.1');
    const slowData: Buffer[] = [];
    const slowEnded = new Promise<void>((resolve) => slow.on('close', () => resolve()));
    const slowHeaders = new Promise<void>((resolve) =>
      slow.once('data', (d: Buffer) => {
        slowData.push(d);
        slow.pause();
        slow.on('data', (more: Buffer) => slowData.push(more));
        resolve();
      }),
    );
    slow.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    await slowHeaders;
    await fastOpen;
    // 400 pods of about 100 KB (40 MB): more than the socket buffers and the per-watch bound.
    const filler = 'x'.repeat(100 * 1024);
    const events = 400;
    try {
      for (let i = 0; i < events; i++) {
        const rv = String(nextRv++);
        const p = pod(`big-${i}`, rv, { ns: 'slow' });
        await feed(
          cloudMsg('insert', `slow/pod/big-${i}`, { ...p, spec: { ...(p.spec as object), filler } }, rv),
        );
        // Paced by the reading client: it never falls behind by more than one event.
        await h.waitFor(`event ${i} at the reading client`, () => fast.length === i + 1, 10_000);
      }
      slow.resume();
      await slowEnded;
    } finally {
      fastReq.destroy();
      slow.destroy();
    }
    expect(fast.every((l) => l.startsWith('{"type":"ADDED"'))).toBe(true);
    const text = Buffer.concat(slowData).toString('utf8');
    const added = text.split('{"type":"ADDED"').length - 1;
    expect(added).toBeGreaterThan(0);
    expect(added).toBeLessThan(events);
    const lastLine = text.slice(text.lastIndexOf('{"type":'));
    expect(lastLine).toMatch(
      /^\{"type":"ERROR","object":\{"kind":"Status".*"reason":"Expired".*"code":410\}\}/,
    );
    // The client lists again and finds everything.
    const list = JSON.parse((await get('/api/v1/namespaces/slow/pods')).body) as { items: unknown[] };
    expect(list.items.length).toBe(events);
    // A new watch from 0 replays all 40 MB as ADDED at the client's pace: the bound is for live
    // events a client does not take, not for the initial list.
    const replayed = await new Promise<number>((resolve, reject) => {
      let added = 0;
      let buf = '';
      const req = request(
        { host: '127.0.0.1', port, path: '/api/v1/namespaces/slow/pods?watch=true' },
        (res) => {
          res.on('data', (d: Buffer) => {
            buf += d.toString('utf8');
            let i;
            while ((i = buf.indexOf('\n')) >= 0) {
              if (!buf.startsWith('{"type":"ADDED"')) reject(new Error(buf.slice(0, 200)));
              buf = buf.slice(i + 1);
              if (++added === events) {
                req.destroy();
                resolve(added);
              }
            }
          });
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(replayed).toBe(events);
  }, 120_000);
});
