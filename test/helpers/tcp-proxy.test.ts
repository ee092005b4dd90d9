/**
 * The test TCP proxy against a real echo server on loopback: it forwards both ways; cut() resets
 * what goes through and refuses (or holds) new connections; a held connection's bytes are
 * forwarded once restored; a saturated link lets bytes through at its rate, a stalled one none,
 * in order and without loss once restored.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../peers/util.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

let echo: Server;
let proxy: TcpProxy;

beforeAll(async () => {
  echo = createServer((s) => s.on('error', () => undefined).pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  proxy = await startTcpProxy((echo.address() as { port: number }).port);
});

afterAll(async () => {
  await proxy.stop();
  await new Promise((r) => echo.close(r));
});

/** A client that collects what comes back and whether it was closed. */
function dial(): { socket: Socket; received: () => string; closed: () => boolean } {
  const socket = connect(proxy.port, '127.0.0.1');
  let data = '';
  let closed = false;
  socket.setEncoding('utf8').on('data', (d: string) => (data += d));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  return { socket, received: () => data, closed: () => closed };
}

describe('test TCP proxy', () => {
  it('forwards both ways, then cut() resets the connection and refuses new ones; restore() lets them in', async () => {
    const a = dial();
    a.socket.write('hello');
    await waitFor(() => a.received() === 'hello', { what: 'the echo through the proxy' });
    proxy.cut();
    await waitFor(() => a.closed(), { what: 'the connection reset by cut()' });
    const b = dial();
    await waitFor(() => b.closed(), { what: 'a new connection refused while cut' });
    proxy.restore();
    const c = dial();
    c.socket.write('back');
    await waitFor(() => c.received() === 'back', { what: 'the echo after restore()' });
    c.socket.destroy();
  });

  it('holds a new connection while cut (hold) and forwards what it sent once restored', async () => {
    proxy.cut('hold');
    const a = dial();
    a.socket.write('held');
    await waitFor(() => proxy.stats().waiting === 4, { what: 'the 4 bytes held by the proxy' });
    expect(a.received()).toBe('');
    proxy.restore();
    await waitFor(() => a.received() === 'held', { what: 'the held bytes forwarded and echoed' });
    a.socket.destroy();
  });

  it('a stalled link carries nothing; a saturated one carries its rate; all arrives in order once freed', async () => {
    const a = dial();
    a.socket.write('x');
    await waitFor(() => a.received() === 'x', { what: 'the first echo' });
    proxy.saturate(0);
    const payload = Array.from({ length: 4000 }, (_, i) => String(i % 10)).join('');
    a.socket.write(payload);
    await waitFor(() => proxy.stats().waiting === payload.length, {
      what: 'the payload waiting in the proxy',
    });
    expect(a.received()).toBe('x');
    proxy.saturate(2000); // 100 bytes every 50 ms
    await waitFor(() => a.received().length > 1 && proxy.stats().waiting > 0, {
      what: 'a part of the payload through the saturated link, the rest waiting',
    });
    proxy.restore();
    await waitFor(() => a.received() === `x${payload}`, { what: 'the whole payload, in order' });
    expect(proxy.stats().maxWaiting).toBeGreaterThanOrEqual(payload.length);
    a.socket.destroy();
  });
});
