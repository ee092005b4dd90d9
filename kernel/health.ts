import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isLoopbackHost } from './config/checks.js';
import type { HealthConfig } from './config/kernel-section.js';
import { KernelError, errorText } from './errors.js';
import type { PluginStatus } from './kernel.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

/** What the health endpoint reads: the kernel (`Kernel` satisfies it). */
export interface HealthSource {
  /** True once every enabled plugin was started (and until the kernel stops). */
  readonly started: boolean;
  status(): PluginStatus[];
  readonly metrics: Metrics;
}

export interface HealthServer {
  /** The bound port (undefined while the port is taken by another process). */
  readonly port: number | undefined;
  close(): Promise<void>;
}

/** How long to wait before trying again a port another process holds (as kubelet's healthz). */
export const HEALTH_RETRY_MS = 5000;

/** `/readyz`: 200 when the kernel started and every plugin runs; else 503 naming the others. */
export function readiness(source: HealthSource): { ok: boolean; lines: string[] } {
  const lines: string[] = [];
  let ok = source.started;
  if (!source.started) lines.push('[-]kernel: not started');
  for (const p of source.status()) {
    if (p.state === 'running') {
      lines.push(`[+]${p.name} running`);
      continue;
    }
    ok = false;
    const restarts = p.restarts ? ` after ${p.restarts} restarts` : '';
    lines.push(`[-]${p.name} ${p.state}${restarts}${p.lastError ? `: ${p.lastError}` : ''}`);
  }
  return { ok, lines };
}

async function handle(source: HealthSource, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const send = (code: number, body: string, type = 'text/plain; charset=utf-8'): void => {
    res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, `${req.method} not allowed\n`);
  switch (path) {
    case '/healthz':
      return send(200, 'ok\n');
    case '/readyz': {
      const { ok, lines } = readiness(source);
      const verbose = /[?&]verbose\b/.test(req.url ?? '');
      if (ok) return send(200, verbose ? `${lines.join('\n')}\nreadyz check passed\n` : 'ok\n');
      return send(503, `${lines.join('\n')}\nreadyz check failed\n`);
    }
    case '/metrics':
      return send(200, await source.metrics.text(), source.metrics.contentType);
    default:
      return send(404, `${path} not found: try /healthz, /readyz or /metrics\n`);
  }
}

/**
 * Serve `/healthz`, `/readyz` and `/metrics` on `kernel.health.address:port` (loopback unless
 * `allowNonLoopback`). Resolves once the first attempt to listen is over. A port held by another
 * process is logged and tried again every HEALTH_RETRY_MS (as kubelet does), never fatal: health is
 * for watching edgecore, not a reason to stop it. Returns undefined when `enable` is false.
 */
export async function serveHealth(
  source: HealthSource,
  config: HealthConfig,
  log: Logger,
): Promise<HealthServer | undefined> {
  if (!config.enable) return undefined;
  if (!isLoopbackHost(config.address) && !config.allowNonLoopback) {
    throw new KernelError(
      'EHEALTH_CONFIG',
      `kernel.health.address: "${config.address}" is not a loopback address; /metrics and /readyz ` +
        'tell anyone who can reach them about this node: use 127.0.0.1, or set kernel.health.allowNonLoopback: true',
    );
  }
  // node:http is loaded here, not at import: an edgecore with the endpoint off does not pay for it.
  const { createServer } = await import('node:http');
  const server: Server = createServer((req, res) => {
    handle(source, req, res).catch((err: unknown) => {
      log.error({ err: errorText(err), path: req.url }, 'health endpoint failed');
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  let retry: NodeJS.Timeout | undefined;
  let closed = false;
  const listen = (): Promise<void> =>
    new Promise((resolve) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        server.off('listening', onListening);
        log.error(
          { err: errorText(err), address: config.address, port: config.port },
          `health endpoint cannot listen on ${config.address}:${config.port}; trying again in ${HEALTH_RETRY_MS / 1000}s`,
        );
        if (!closed) retry = setTimeout(() => void listen(), HEALTH_RETRY_MS).unref();
        resolve();
      };
      const onListening = (): void => {
        server.off('error', onError);
        log.info(
          { address: config.address, port: (server.address() as AddressInfo).port },
          'health endpoint listening',
        );
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(config.port, config.address);
    });
  await listen();
  return {
    get port() {
      return server.listening ? (server.address() as AddressInfo).port : undefined;
    },
    close: () => {
      closed = true;
      clearTimeout(retry);
      if (!server.listening) return Promise.resolve();
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
