/**
 * `modules.edgeHub` of edgecore.yaml (edgecore/v1alpha2 types.go, default.go, validation.go).
 * Config only: edgeHub itself is not built yet.
 */
import {
  KubeEdgeTLS,
  configSchema,
  defineConfigSection,
  localIP,
  sectionSchema,
  type ModuleBase,
  type ObjectSchemaOf,
} from '../../kernel/index.js';

const { bool, int, str } = configSchema;

export interface EdgeHubTransport {
  enable: boolean;
  handshakeTimeout: number;
  readDeadline: number;
  server: string;
  writeDeadline: number;
}

export interface EdgeHubConfig extends ModuleBase {
  heartbeat: number;
  messageQPS: number;
  messageBurst: number;
  projectID: string;
  tlsCaFile: string;
  tlsCertFile: string;
  tlsPrivateKeyFile: string;
  quic: EdgeHubTransport;
  websocket: EdgeHubTransport;
  token: string;
  httpServer: string;
  rotateCertificates: boolean;
}

const transportSchema = (): ObjectSchemaOf<EdgeHubTransport> =>
  configSchema.ptrObj<EdgeHubTransport>({
    enable: bool({ omit: 'never' }),
    handshakeTimeout: int(),
    readDeadline: int(),
    server: str(),
    writeDeadline: int(),
  });

const transport = (enable: boolean, server: string): EdgeHubTransport => ({
  enable,
  handshakeTimeout: 30,
  readDeadline: 15,
  server,
  writeDeadline: 15,
});

export const edgeHubSection = defineConfigSection<EdgeHubConfig>({
  schema: sectionSchema<EdgeHubConfig>({
    heartbeat: int(),
    messageQPS: int(),
    messageBurst: int(),
    projectID: str(),
    tlsCaFile: str(),
    tlsCertFile: str(),
    tlsPrivateKeyFile: str(),
    quic: transportSchema(),
    websocket: transportSchema(),
    token: str({ omit: 'never' }),
    httpServer: str(),
    rotateCertificates: bool(),
  }),
  defaults: () => {
    const ip = localIP();
    return {
      enable: true,
      runAs: 'inprocess',
      heartbeat: 15,
      messageQPS: 30,
      messageBurst: 60,
      projectID: 'e632aba927ea4ac2b575ec1603d56f10',
      tlsCaFile: KubeEdgeTLS.caFile,
      tlsCertFile: KubeEdgeTLS.certFile,
      tlsPrivateKeyFile: KubeEdgeTLS.keyFile,
      quic: transport(false, `${ip}:10001`),
      websocket: transport(true, `${ip}:10000`),
      token: '',
      httpServer: `https://${ip}:10002`,
      rotateCertificates: true,
    };
  },
  // NewMinEdgeCoreConfig leaves `enable` at false (printed so), faithfully.
  min: () => {
    const ip = localIP();
    return {
      heartbeat: 15,
      tlsCaFile: KubeEdgeTLS.caFile,
      tlsCertFile: KubeEdgeTLS.certFile,
      tlsPrivateKeyFile: KubeEdgeTLS.keyFile,
      websocket: transport(true, `${ip}:10000`),
      httpServer: `https://${ip}:10002`,
    };
  },
  validate(hub, r) {
    if (!hub.enable) return;
    if (hub.websocket.enable === hub.quic.enable) {
      r.error(
        r.isSet('quic.enable') && !r.isSet('websocket.enable') ? 'quic.enable' : 'websocket.enable',
        `exactly one of modules.edgeHub.websocket.enable and modules.edgeHub.quic.enable must be true, ` +
          `got websocket.enable=${hub.websocket.enable}, quic.enable=${hub.quic.enable}`,
      );
    }
    if (hub.messageQPS < 0) r.error('messageQPS', `must be >= 0, got ${hub.messageQPS}`);
    if (hub.messageBurst < 0) r.error('messageBurst', `must be >= 0, got ${hub.messageBurst}`);
  },
});
