/** edgeMesh's Prometheus counters, in the kernel's registry (served on edgecore's `/metrics`). */
import type * as Prom from 'prom-client';
import type { Metrics } from '../../kernel/index.js';

const DNS = 'kubeedge_edgemesh_dns_queries_total';
const PROXY = 'kubeedge_edgemesh_proxy_connections_total';

/** How a DNS query was answered. */
export type DnsResult = 'service' | 'nodata' | 'nxdomain' | 'forwarded' | 'servfail' | 'malformed';
/** What became of a connection to a service port. */
export type ProxyResult = 'proxied' | 'no-endpoint' | 'dial-failed';

export interface EdgeMeshMetrics {
  dns(result: DnsResult): void;
  proxy(result: ProxyResult): void;
}

export function edgeMeshMetrics(metrics: Metrics): EdgeMeshMetrics {
  const counter = (name: string, help: string): Prom.Counter<'result'> =>
    metrics.replace(
      name,
      (prom, registry) => new prom.Counter({ name, help, labelNames: ['result'], registers: [registry] }),
    );
  const dns = counter(DNS, 'DNS queries edgeMesh answered, by result');
  const proxy = counter(PROXY, 'Connections to service ports, by result');
  return { dns: (result) => dns.inc({ result }), proxy: (result) => proxy.inc({ result }) };
}
