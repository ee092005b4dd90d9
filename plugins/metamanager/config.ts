/**
 * `modules.metaManager` of edgecore.yaml (edgecore/v1alpha2 types.go, default.go), with the checks
 * metaManager would otherwise only make when it starts (remoteQueryTimeout, metaServer.server).
 */
import {
  KubeEdgeTLS,
  configSchema,
  defineConfigSection,
  hostOf,
  hostPortProblem,
  isLoopbackHost,
  sectionSchema,
  type ModuleBase,
} from '../../kernel/index.js';

const { any, bool, int, list, str } = configSchema;

export interface MetaServerConfig {
  enable: boolean;
  server: string;
  tlsCaFile: string;
  tlsCertFile: string;
  tlsPrivateKeyFile: string;
  serviceAccountIssuers: string[] | null;
  apiAudiences: string[] | null;
  serviceAccountKeyFiles: string[] | null;
  dummyServer: string;
}

export interface MetaManagerConfig extends ModuleBase {
  contextSendGroup: string;
  contextSendModule: string;
  /** Seconds. */
  remoteQueryTimeout: number;
  metaServer: MetaServerConfig;
}

export const metaManagerSection = defineConfigSection<MetaManagerConfig>({
  schema: sectionSchema<MetaManagerConfig>(
    {
      contextSendGroup: str(),
      contextSendModule: str(),
      remoteQueryTimeout: int(),
      metaServer: configSchema.ptrObj<MetaServerConfig>({
        enable: bool({ omit: 'never' }),
        server: str({ omit: 'never' }),
        tlsCaFile: str({ omit: 'never' }),
        tlsCertFile: str({ omit: 'never' }),
        tlsPrivateKeyFile: str({ omit: 'never' }),
        serviceAccountIssuers: list(str(), { omit: 'never' }),
        apiAudiences: list(str(), { omit: 'never' }),
        serviceAccountKeyFiles: list(str(), { omit: 'never' }),
        dummyServer: str({ omit: 'never' }),
      }),
    },
    { legacy: { podStatusSyncInterval: { schema: any(), note: 'removed in v1.11' } } },
  ),
  defaults: () => ({
    enable: true,
    runAs: 'inprocess',
    contextSendGroup: 'hub',
    contextSendModule: 'websocket',
    remoteQueryTimeout: 60,
    metaServer: {
      enable: false,
      server: '127.0.0.1:10550',
      tlsCaFile: KubeEdgeTLS.caFile,
      tlsCertFile: KubeEdgeTLS.certFile,
      tlsPrivateKeyFile: KubeEdgeTLS.keyFile,
      serviceAccountIssuers: ['https://kubernetes.default.svc.cluster.local'],
      apiAudiences: null,
      serviceAccountKeyFiles: null,
      dummyServer: '169.254.30.10:10550',
    },
  }),
  validate(meta, r, file) {
    if (!meta.enable) return;
    if (meta.remoteQueryTimeout <= 0) {
      r.error('remoteQueryTimeout', `must be a positive number of seconds, got ${meta.remoteQueryTimeout}`);
    }
    if (!meta.metaServer.enable) return;
    const server = meta.metaServer.server;
    // Port 0 is allowed: an ephemeral port (tests use it).
    const problem = hostPortProblem(server, true);
    if (problem) r.error('metaServer.server', `${problem}, got ${JSON.stringify(server)}`);
    else if (!isLoopbackHost(hostOf(server))) {
      r.error(
        'metaServer.server',
        `${JSON.stringify(server)} is not a loopback address; metaServer serves every object (Secrets included) ` +
          'without authentication, so it listens only on 127.0.0.1, ::1 or localhost',
      );
    }
    const gates = file.featureGates as Record<string, unknown> | undefined;
    if (gates?.requireAuthorization === true) {
      // KubeEdge v1.23 then serves HTTPS with a certificate the cluster signs (a CSR through the
      // cloud), authenticates service-account tokens and authorizes with RBAC rules fetched from
      // the cloud. None of that exists here yet; serving without it would be a silent downgrade.
      r.error(
        'metaServer.enable',
        'featureGates.requireAuthorization: true is not supported with modules.metaManager.metaServer.enable: true ' +
          '(HTTPS with a cluster-signed certificate, service-account token authentication and RBAC are not implemented); ' +
          'disable metaServer or the gate',
      );
    }
  },
});
