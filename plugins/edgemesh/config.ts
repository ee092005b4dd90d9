/**
 * `modules.edgeMesh` of edgecore.yaml: the service DNS and TCP proxy at the edge (plugin
 * `index.ts`, README). Ours: a Go edgecore of v1.23 has no such section (EdgeMesh runs there as
 * its own agent); KubeEdge ≤ v1.5 had an `edgeMesh` module in edgecore.
 */
import { isIP } from 'node:net';
import { configSchema, defineConfigSection, sectionSchema, type ModuleBase } from '../../kernel/index.js';

const { int, str } = configSchema;

export interface EdgeMeshConfig extends ModuleBase {
  /** Where the DNS server and the service ports listen; the address service names resolve to. */
  listenAddress: string;
  /** DNS port, UDP and TCP (pods' resolvers use 53). */
  dnsPort: number;
  /** `<svc>.<ns>.svc.<clusterDomain>` (kubelet's `clusterDomain`). */
  clusterDomain: string;
  /** The host resolver file whose nameservers answer every other name. */
  resolvConf: string;
}

export const edgeMeshSection = defineConfigSection<EdgeMeshConfig>({
  // ours: loaded and validated, never printed by --defaultconfig/--minconfig (KubeEdge's output)
  schema: {
    ...sectionSchema<EdgeMeshConfig>({
      listenAddress: str(),
      dnsPort: int(),
      clusterDomain: str(),
      resolvConf: str(),
    }),
    hidden: true,
  },
  defaults: () => ({
    enable: false,
    runAs: 'inprocess',
    listenAddress: '127.0.0.1',
    dnsPort: 53,
    clusterDomain: 'cluster.local',
    resolvConf: '/etc/resolv.conf',
  }),
  validate(mesh, r) {
    if (!mesh.enable) return;
    if (isIP(mesh.listenAddress) !== 4)
      r.error('listenAddress', `expected an IPv4 address, got ${JSON.stringify(mesh.listenAddress)}`);
    if (!Number.isInteger(mesh.dnsPort) || mesh.dnsPort < 0 || mesh.dnsPort > 65535)
      r.error('dnsPort', `expected a port 0-65535, got ${mesh.dnsPort}`);
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(mesh.clusterDomain))
      r.error(
        'clusterDomain',
        `expected a DNS domain such as cluster.local, got ${JSON.stringify(mesh.clusterDomain)}`,
      );
    if (mesh.resolvConf === '') r.error('resolvConf', 'expected a file path such as /etc/resolv.conf');
  },
});
