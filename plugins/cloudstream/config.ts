/** `modules.cloudStream` of cloudcore.yaml (cloudcore/v1alpha1), as KubeEdge v1.23.1 defines it. */
import {
  KubeEdgeTLS,
  configSchema,
  defineConfigSection,
  sectionSchema,
  type ModuleBase,
} from '../../kernel/index.js';

const { int, str } = configSchema;

export interface CloudStreamConfig extends ModuleBase {
  tlsTunnelCAFile: string;
  tlsTunnelCertFile: string;
  tlsTunnelPrivateKeyFile: string;
  tunnelPort: number;
  tlsStreamCAFile: string;
  tlsStreamCertFile: string;
  tlsStreamPrivateKeyFile: string;
  streamPort: number;
}

export const cloudStreamSection = defineConfigSection<CloudStreamConfig>({
  schema: sectionSchema<CloudStreamConfig>({
    tlsTunnelCAFile: str(),
    tlsTunnelCertFile: str(),
    tlsTunnelPrivateKeyFile: str(),
    tunnelPort: int({ min: 0, max: 4294967295 }),
    tlsStreamCAFile: str(),
    tlsStreamCertFile: str(),
    tlsStreamPrivateKeyFile: str(),
    streamPort: int({ min: 0, max: 4294967295 }),
  }),
  defaults: () => ({
    enable: false,
    runAs: 'inprocess',
    tlsTunnelCAFile: KubeEdgeTLS.caFile,
    tlsTunnelCertFile: KubeEdgeTLS.certFile,
    tlsTunnelPrivateKeyFile: KubeEdgeTLS.keyFile,
    tunnelPort: 10004,
    tlsStreamCAFile: '/etc/kubeedge/ca/streamCA.crt',
    tlsStreamCertFile: '/etc/kubeedge/certs/stream.crt',
    tlsStreamPrivateKeyFile: '/etc/kubeedge/certs/stream.key',
    streamPort: 10003,
  }),
});
