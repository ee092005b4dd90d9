/**
 * cloudHub's websocket listener (wire-cloud-edge §3.1–§3.3, §3.9): HTTPS with mutual TLS (a client
 * certificate chaining to the KubeEdge CA is required, TLS >= 1.2 with KubeEdge's two TLS 1.2
 * suites), any path, the node from the `node_id` header. A connection without a certificate of the
 * CA for client authentication is closed right after the handshake. Before the upgrade a request is
 * refused with an HTTP status and a text saying why: no `node_id` (400), with node isolation a
 * certificate whose CN is not `system:node:<node_id>` (403), `nodeLimit` reached (503).
 */
import { constants } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../kernel/index.js';
import { nodeCommonName } from '../../protocol/index.js';
import type { Refusal } from './metrics.js';
import { tlsPair, type CloudPki } from './pki.js';

/** `createTLSConfig`: the TLS 1.2 suites KubeEdge allows (TLS 1.3 keeps Node's defaults). */
const TLS12_CIPHERS = 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA256';

export interface WsServerOptions {
  pki: CloudPki;
  /** Refuse a certificate whose CN is not `system:node:<node_id>` (default true). */
  nodeIsolation: boolean;
  /** Can this node connect now? (a reason text to refuse it with 503, or undefined). */
  admit(node: string): string | undefined;
  connected(node: string, ws: WebSocket, req: IncomingMessage): void;
  refused(reason: Refusal, node: string, text: string): void;
  log: Logger;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  503: 'Service Unavailable',
};

function refuse(socket: Duplex, status: number, text: string): void {
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

/** The websocket server of `cloudHub.websocket` (not yet listening). */
export function createWsServer(opts: WsServerOptions): Server {
  const { log } = opts;
  const { cert, key } = tlsPair(opts.pki.server);
  const server = createServer({
    cert,
    key,
    ca: tlsPair({ cert: opts.pki.ca.cert, key: opts.pki.ca.key }).cert,
    requestCert: true,
    // verified below, to refuse with the reason in the log and the counters (same effect: the
    // socket is closed right after the handshake, before any HTTP is read)
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    ciphers: TLS12_CIPHERS,
    // No session tickets: an edge (Go's edgeHub keeps no session cache) never resumes, and a
    // resumed session would skip the client-certificate checks. Issuing them cost about 10 KB
    // resident per link and CPU at every connection.
    secureOptions: constants.SSL_OP_NO_TICKET,
  });
  // no client set: the hub keeps the sessions (a set entry and a listener less per link)
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });

  server.prependListener('secureConnection', (socket: TLSSocket) => {
    if (socket.authorized) return;
    const peer = socket.getPeerCertificate();
    const missing = peer === null || peer.raw === undefined;
    const purpose = String(socket.authorizationError) === 'INVALID_PURPOSE';
    const reason: Refusal = missing ? 'no-client-cert' : purpose ? 'ext-key-usage' : 'untrusted-cert';
    const why = missing
      ? 'no client certificate (a certificate signed by the KubeEdge CA is required)'
      : purpose
        ? `client certificate CN=${String(peer.subject?.CN)} is not for client authentication (extended key usage clientAuth missing)`
        : `client certificate CN=${String(peer.subject?.CN)} not trusted: ${String(socket.authorizationError)}`;
    opts.refused(reason, '', `TLS connection from ${socket.remoteAddress ?? '?'} refused: ${why}`);
    socket.destroy();
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    opts.refused(
      'tls',
      '',
      `TLS handshake from ${socket.remoteAddress ?? '?'} failed: ${err.message.trim()}`,
    );
  });
  // a plain request (no upgrade) is not the hub's business: gorilla answers 400 as well
  server.on('request', (_req, res) => {
    res.writeHead(400, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end('Bad Request: a websocket upgrade is expected');
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const node = req.headers['node_id'];
    if (typeof node !== 'string' || node === '') {
      const text = 'missing node_id header: the edge names itself in node_id';
      opts.refused('no-node-id', '', text);
      refuse(socket, 400, text);
      return;
    }
    const peer = (socket as TLSSocket).getPeerCertificate();
    const cn = peer.subject?.CN;
    const wanted = nodeCommonName(node);
    if (opts.nodeIsolation && cn !== wanted) {
      const text = `node ${node}: the client certificate is for CN=${String(cn)}, expected CN=${wanted} (node isolation)`;
      opts.refused('node-isolation', node, text);
      refuse(socket, 403, text);
      return;
    }
    const full = opts.admit(node);
    if (full !== undefined) {
      opts.refused('node-limit', node, full);
      refuse(socket, 503, full);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => opts.connected(node, ws, req));
  });
  server.on('close', () => wss.close());
  log.debug('websocket server created');
  return server;
}
