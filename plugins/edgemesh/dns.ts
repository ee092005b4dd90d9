/**
 * edgeMesh's DNS server (UDP and TCP, RFC 1035 framing): service names of the cluster domain are
 * answered from the catalog with the address the proxy listens on; every other name is forwarded
 * to the host's nameservers (resolv.conf). Wire format: dns-packet.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';
import { errorText, type Logger } from '../../kernel/index.js';
import type { Catalog } from './catalog.js';
import type { DnsResult } from './metrics.js';

/** Seconds a service answer may be cached (CoreDNS's kubernetes plugin default). */
const SERVICE_TTL = 5;
const UPSTREAM_TIMEOUT_MS = 2000;
const TCP_IDLE_MS = 10_000;

type NameLookup =
  { kind: 'service'; namespace: string; name: string } | { kind: 'nxdomain' } | { kind: 'forward' };

/**
 * What a name is: `<svc>.<ns>.svc.<domain>` (and the short `<svc>.<ns>.svc`, `<svc>.<ns>` when that
 * service exists), another name of the cluster domain (NXDOMAIN: never forwarded), or anything else.
 */
function lookupName(qname: string, domain: string, catalog: Catalog): NameLookup {
  const name = qname.toLowerCase().replace(/\.$/, '');
  const svcSuffix = `.svc.${domain}`;
  if (name.endsWith(svcSuffix)) {
    const labels = name.slice(0, -svcSuffix.length).split('.');
    if (labels.length === 2 && catalog.service(labels[1]!, labels[0]!))
      return { kind: 'service', namespace: labels[1]!, name: labels[0]! };
    return { kind: 'nxdomain' };
  }
  if (name === domain || name.endsWith(`.${domain}`)) return { kind: 'nxdomain' };
  const labels = name.split('.');
  if (labels.length === 3 && labels[2] !== 'svc') return { kind: 'forward' };
  if ((labels.length === 2 || labels.length === 3) && catalog.service(labels[1]!, labels[0]!))
    return { kind: 'service', namespace: labels[1]!, name: labels[0]! };
  return { kind: 'forward' };
}

/** The host's nameservers (resolv.conf), without `exclude` (our own address: no loop). */
export function upstreamServers(resolvConf: string, exclude: string): string[] {
  let text: string;
  try {
    text = readFileSync(resolvConf, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'nameserver' && f[1] && f[1] !== exclude) out.push(f[1]);
  }
  return out;
}

export interface DnsOptions {
  address: string;
  port: number;
  domain: string;
  /** The address service names resolve to (the proxy's). */
  answerAddress: string;
  upstream: string[];
  catalog: Catalog;
  log: Logger;
  count(result: DnsResult): void;
}

export class DnsServer {
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private readonly conns = new Set<Socket>();

  constructor(private readonly o: DnsOptions) {}

  /** Binds UDP and TCP on the same port (a port 0 picks one for UDP, then TCP takes it too). */
  async start(): Promise<number> {
    const udp = createSocket('udp4');
    this.udp = udp;
    udp.on('message', (query, rinfo) => {
      void this.answer(query, false).then((reply) => {
        if (reply) udp.send(reply, rinfo.port, rinfo.address);
      });
    });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(this.o.port, this.o.address, () => {
        udp.off('error', reject);
        resolve();
      });
    });
    udp.on('error', (err) => this.o.log.error({ err: errorText(err) }, 'DNS UDP socket error'));
    const port = udp.address().port;
    const tcp = createServer((sock) => this.serveTcp(sock));
    this.tcp = tcp;
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, this.o.address, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    tcp.on('error', (err) => this.o.log.error({ err: errorText(err) }, 'DNS TCP server error'));
    return port;
  }

  async stop(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await Promise.all([
      new Promise<void>((r) => (this.udp ? this.udp.close(() => r()) : r())),
      new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r())),
    ]);
  }

  private serveTcp(sock: Socket): void {
    this.conns.add(sock);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on('close', () => this.conns.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf: Buffer = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const query = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        void this.answer(query, true).then((reply) => {
          if (!reply || sock.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(reply.length);
          sock.write(Buffer.concat([head, reply]));
        });
      }
    });
  }

  /** The reply to one query, or undefined when the query cannot be read (dropped, as servers do). */
  async answer(query: Buffer, tcp: boolean): Promise<Buffer | undefined> {
    let packet: dnsPacket.DecodedPacket;
    try {
      packet = dnsPacket.decode(query);
    } catch {
      this.o.count('malformed');
      return undefined;
    }
    const q = packet.questions?.[0];
    if (packet.type !== 'query' || q === undefined) {
      this.o.count('malformed');
      return undefined;
    }
    const found = lookupName(q.name, this.o.domain, this.o.catalog);
    if (found.kind === 'forward') return this.forward(query, packet, tcp);
    const reply = (rcode: number, answers: dnsPacket.Answer[], result: DnsResult): Buffer => {
      this.o.count(result);
      return dnsPacket.encode({
        type: 'response',
        id: packet.id,
        flags:
          dnsPacket.AUTHORITATIVE_ANSWER |
          dnsPacket.RECURSION_AVAILABLE |
          ((packet.flags ?? 0) & dnsPacket.RECURSION_DESIRED) |
          rcode,
        questions: [q],
        answers,
      });
    };
    if (found.kind === 'nxdomain') return reply(NXDOMAIN, [], 'nxdomain');
    const svc = this.o.catalog.service(found.namespace, found.name);
    const external = svc?.spec?.type === 'ExternalName' ? svc.spec.externalName : undefined;
    if (external) {
      return reply(0, [{ type: 'CNAME', name: q.name, ttl: SERVICE_TTL, data: external }], 'service');
    }
    if (q.type !== 'A' || !this.o.catalog.hasBackends(found.namespace, found.name))
      return reply(0, [], 'nodata');
    return reply(0, [{ type: 'A', name: q.name, ttl: SERVICE_TTL, data: this.o.answerAddress }], 'service');
  }

  /** The query as it came, to each upstream nameserver in turn; SERVFAIL when none answers. */
  private async forward(query: Buffer, packet: dnsPacket.DecodedPacket, tcp: boolean): Promise<Buffer> {
    for (const server of this.o.upstream) {
      try {
        const reply = await (tcp ? askTcp(server, query) : askUdp(server, query));
        this.o.count('forwarded');
        return reply;
      } catch (err) {
        this.o.log.warn(
          { server, name: packet.questions?.[0]?.name, err: errorText(err) },
          'upstream DNS failed',
        );
      }
    }
    this.o.count('servfail');
    return dnsPacket.encode({
      type: 'response',
      id: packet.id,
      flags: dnsPacket.RECURSION_AVAILABLE | SERVFAIL,
      questions: packet.questions ?? [],
    });
  }
}

const NXDOMAIN = 3;
const SERVFAIL = 2;

function askUdp(server: string, query: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(
      () => done(new Error(`no answer in ${UPSTREAM_TIMEOUT_MS} ms`)),
      UPSTREAM_TIMEOUT_MS,
    );
    const done = (err: Error | undefined, reply?: Buffer): void => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(reply!);
    };
    sock.on('error', (err) => done(err));
    sock.on('message', (reply) => {
      if (reply.length >= 2 && reply.readUInt16BE(0) === query.readUInt16BE(0)) done(undefined, reply);
    });
    sock.send(query, 53, server);
  });
}

function askTcp(server: string, query: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect(53, server);
    sock.setTimeout(UPSTREAM_TIMEOUT_MS, () =>
      sock.destroy(new Error(`no answer in ${UPSTREAM_TIMEOUT_MS} ms`)),
    );
    let buf: Buffer = Buffer.alloc(0);
    sock.on('connect', () => {
      const head = Buffer.alloc(2);
      head.writeUInt16BE(query.length);
      sock.write(Buffer.concat([head, query]));
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        sock.destroy();
      }
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error('connection closed before an answer')));
  });
}
