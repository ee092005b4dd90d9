import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newMessage, type Message } from '../../kernel/index.js';
import { callApp } from './index.js';

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
