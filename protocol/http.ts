import type { Writable } from 'node:stream';

/**
 * The HTTP headers the router and serviceBus never carry across a message (cloud REST call ⇄ edge
 * app): the hop-by-hop ones (RFC 9110 §7.6.1) plus `host` and `content-length`, which the next hop
 * sets for itself. Lower case, as node:http gives header names.
 */
export const HopByHopHeaders: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'host',
  'content-length',
]);

/** Go's CanonicalMIMEHeaderKey, the key form of an http.Header: `content-type` → `Content-Type`. */
export function canonicalHeader(name: string): string {
  return name.toLowerCase().replace(/(^|-)([a-z])/g, (_m, dash: string, c: string) => dash + c.toUpperCase());
}

/**
 * Resolves when a streamed response (edged's container logs, metaServer's watch) can take more
 * data after a `write` that returned false, or when the client is gone: the one wait for a slow
 * reader of the edge's HTTP servers.
 */
export function drained(res: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
