/** A pod's resolv.conf from its dnsPolicy, as kubelet builds it (podDns). */
import { describe, expect, it } from 'vitest';
import { podDns, type PodPaths } from './podspec.js';
import type { Pod, PodSpec } from './types.js';

const host = { servers: ['10.255.255.53'], searches: ['corp.example'], options: ['timeout:2'] };
const paths: PodPaths = {
  podLogsDir: '/var/log/pods',
  rootDirectory: '/var/lib/edged',
  cgroupDriver: 'cgroupfs',
  cgroupsPerQOS: true,
  dns: host,
  clusterDNS: ['192.0.2.2'],
  clusterDomain: 'cluster.local',
};
const pod = (spec: Partial<PodSpec>): Pod => ({
  metadata: { name: 'p', namespace: 'shop' },
  spec: { containers: [{ name: 'c', image: 'busybox' }], ...spec },
});

describe('podDns', () => {
  it('ClusterFirst (the default): clusterDNS, the namespace search path before the host one, ndots:5', () => {
    expect(podDns(pod({}), paths)).toEqual({
      servers: ['192.0.2.2'],
      searches: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example'],
      options: ['ndots:5'],
    });
  });

  it('the host resolv.conf for Default, for a host-network ClusterFirst pod and without clusterDNS', () => {
    expect(podDns(pod({ dnsPolicy: 'Default' }), paths)).toEqual(host);
    expect(podDns(pod({ hostNetwork: true }), paths)).toEqual(host);
    expect(podDns(pod({}), { ...paths, clusterDNS: undefined })).toEqual(host);
    expect(podDns(pod({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' }), paths).servers).toEqual([
      '192.0.2.2',
    ]);
  });

  it('None: only dnsConfig; dnsConfig is merged into the others (options by name)', () => {
    const dnsConfig = {
      nameservers: ['1.1.1.1'],
      searches: ['x.example'],
      options: [{ name: 'ndots', value: '2' }, { name: 'edns0' }],
    };
    expect(podDns(pod({ dnsPolicy: 'None', dnsConfig }), paths)).toEqual({
      servers: ['1.1.1.1'],
      searches: ['x.example'],
      options: ['ndots:2', 'edns0'],
    });
    expect(podDns(pod({ dnsConfig }), paths)).toEqual({
      servers: ['192.0.2.2', '1.1.1.1'],
      searches: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example', 'x.example'],
      options: ['ndots:2', 'edns0'],
    });
  });
});
