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
