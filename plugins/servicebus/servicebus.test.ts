import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KernelError, newMessage, type Message } from '../../kernel/index.js';
import { createLogger } from '../../kernel/log.js';
import { callApp } from './index.js';
import { LocalServer, targetUrls } from './server.js';

let app: Server;
let port: number;

beforeAll(async () => {
  app = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/hang') return; // never answers
      res.writeHead(req.url === '/missing' ? 404 : 201, {
        'Content-Type': 'text/plain',
        'X-Seen': req.headers.accept ?? '',
      });
      res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`);
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  port = (app.address() as { port: number }).port;
});
afterAll(() => {
  app.closeAllConnections();
  app.close();
});

const call = (
  resource: string,
  method = 'POST',
  body = 'hi',
  timeoutMs = 2000,
): Promise<{ status: number; header: Record<string, string[]>; text: string }> => {
  const msg: Message = newMessage(
    { source: 'router_servicebus', group: 'user', operation: method, resource },
    {
      header: { 'Content-Type': ['text/plain'] },
      body: Buffer.from(body).toString('base64'),
      method,
      url: '',
    },
  );
  return callApp(msg, timeoutMs).then((a) => ({
    status: a.status_code,
    header: a.header,
    text: Buffer.from(a.body, 'base64').toString(),
  }));
};

describe('serviceBus callApp (a real HTTP app on 127.0.0.1)', () => {
  it("passes the method, path, query, body and the app's status and headers; adds Accept: */*", async () => {
    const a = await call(`${port}:/target/x?q=1`);
    expect(a).toMatchObject({ status: 201, text: 'POST /target/x?q=1 hi' });
    expect(a.header['Content-Type']).toEqual(['text/plain']);
    expect(a.header['X-Seen']).toEqual(['*/*']);
    expect((await call(`${port}:/missing`, 'GET', '')).status).toBe(404);
  });

  it('answers itself, marked Server: kubeedge-edgecore, for a bad resource, an app not there and a slow app', async () => {
    const bad = await call('no-port');
    expect(bad).toMatchObject({ status: 400, header: { Server: ['kubeedge-edgecore'] } });
    expect(bad.text).toMatch(/resource "no-port": expected <port>:\/<path>/);
    const closed = await call(`1:/x`);
    expect(closed.status).toBe(502);
    expect(closed.text).toMatch(/cannot call 127\.0\.0\.1:1\/x/);
    const slow = await call(`${port}:/hang`, 'GET', '', 300);
    expect(slow.status).toBe(504);
    expect(slow.text).toMatch(/did not answer within 0\.3 s \(modules\.serviceBus\.timeout\)/);
  });
});

describe('serviceBus local server (edge app -> cloud; a real SQLite file, edgeHub faked)', () => {
  it('listens while a target URL is allowed, keeps the URLs across a restart, and answers as KubeEdge', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'servicebus-'));
    const db = new Database(join(dir, 'edgecore.db'));
    const sent: Message[] = [];
    /** the cloud's answers, by the targetURL of the call */
    const cloud = (msg: Message): Promise<Message> => {
      sent.push(msg);
      const url = msg.route.resource;
      if (url === 'http://slow') return new Promise(() => undefined);
      const [operation, content] = url === 'http://broken' ? ['error', 'POST failed'] : ['response', 'pong'];
      return Promise.resolve(
        newMessage({ source: 'servicebus', group: 'user', operation, resource: url }, content, {
          parentId: msg.header.msg_id,
        }),
      );
    };
    const make = (): LocalServer =>
      new LocalServer({
        address: '127.0.0.1',
        port: 0,
        timeoutMs: 300,
        urls: targetUrls(db),
        request: (msg, ms) =>
          Promise.race([
            cloud(msg),
            new Promise<Message>((_r, reject) =>
              setTimeout(() => reject(new KernelError('EBUS_TIMEOUT', 'timeout')), ms),
            ),
          ]),
        log: createLogger('silent'),
      });
    let local = make();
    await local.resume();
    expect(local.port).toBeUndefined(); // nothing allowed yet: not listening
    await local.allow('http://cloud/in');
    await local.allow('http://broken');
    await local.allow('http://slow');
    const ask = async (body: string): Promise<unknown> => {
      const res = await fetch(`http://127.0.0.1:${local.port}/any/path`, { method: 'POST', body });
      expect(res.status).toBe(200); // KubeEdge's: the outcome is in `code`
      return res.json();
    };
    const request = JSON.stringify({ method: 'POST', targetURL: 'http://cloud/in', payload: { a: 1 } });
    expect(await ask(request)).toEqual({
      code: 200,
      msg: 'receive response from cloud successfully',
      body: 'pong',
    });
    expect(sent[0]!.route).toEqual({
      source: 'servicebus',
      group: 'user',
      operation: 'upload',
      resource: 'http://cloud/in',
    });
    expect(Buffer.from(sent[0]!.content as string, 'base64').toString()).toBe(request);
    expect(await ask('{"targetURL": "http://else"}')).toEqual({
      code: 400,
      msg: 'url http://else is not allowed and please make a rule for this url in the cloud',
    });
    expect(await ask('not json')).toMatchObject({ code: 400, msg: /^expected a JSON request/ });
    expect(await ask('{"targetURL": "http://broken"}')).toEqual({ code: 502, msg: 'POST failed' });
    expect(await ask('{"targetURL": "http://slow"}')).toEqual({
      code: 504,
      msg: 'no answer from the cloud within 0.3 s (modules.serviceBus.timeout)',
    });

    // a restart listens again for the URLs in target_urls; the last one removed closes the server
    await local.close();
    local = make();
    await local.resume();
    expect(local.port).toBeGreaterThan(0);
    await local.forbid('http://broken');
    await local.forbid('http://slow');
    expect(local.port).toBeGreaterThan(0);
    await local.forbid('http://cloud/in');
    expect(local.port).toBeUndefined();
    db.close();
  });
});
