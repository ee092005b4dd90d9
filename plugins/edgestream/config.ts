/** `modules.edgeStream` of edgecore.yaml (edgecore/v1alpha2), as KubeEdge v1.23.1 defines it. */
import {
  KubeEdgeTLS,
  configSchema,
  defineConfigSection,
  sectionSchema,
  type ModuleBase,
} from '../../kernel/index.js';

const { int, str } = configSchema;

export interface EdgeStreamConfig extends ModuleBase {
  tlsTunnelCAFile: string;
  tlsTunnelCertFile: string;
  tlsTunnelPrivateKeyFile: string;
  handshakeTimeout: number;
  readDeadline: number;
  server: string;
  writeDeadline: number;
}

export const edgeStreamSection = defineConfigSection<EdgeStreamConfig>({
  schema: sectionSchema<EdgeStreamConfig>({
    tlsTunnelCAFile: str(),
    tlsTunnelCertFile: str(),
    tlsTunnelPrivateKeyFile: str(),
    handshakeTimeout: int(),
    readDeadline: int(),
    server: str(),
    writeDeadline: int(),
  }),
  defaults: () => ({
    enable: false,
    runAs: 'inprocess',
    tlsTunnelCAFile: KubeEdgeTLS.caFile,
    tlsTunnelCertFile: KubeEdgeTLS.certFile,
    tlsTunnelPrivateKeyFile: KubeEdgeTLS.keyFile,
    handshakeTimeout: 30,
    readDeadline: 15,
    server: '127.0.0.1:10004',
    writeDeadline: 15,
  }),
});
