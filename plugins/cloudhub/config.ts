/**
 * `modules.cloudHub` of cloudcore.yaml (cloudcore/v1alpha1 types.go, default.go, validation.go;
 * AdjustCloudCoreConfig), plus our `nodeIsolation` (never printed, as `runAs`).
 */
import { isIP } from 'node:net';
import {
  KubeEdgeTLS,
  configSchema,
  defineConfigSection,
  localIP,
  sectionSchema,
  type ModuleBase,
} from '../../kernel/index.js';

const { bool, int, list, ptrObj, str } = configSchema;

/** cloudHub.nodeLimit by default (DefaultNodeLimit). */
const DEFAULT_NODE_LIMIT = 500;
const UNIX_SOCKET = 'unix:///var/lib/kubeedge/kubeedge.sock';

export interface CloudHubQUIC {
  enable: boolean;
  address: string;
  port: number;
  maxIncomingStreams: number;
}

export interface CloudHubUnixSocket {
  enable: boolean;
  address: string;
}

export interface CloudHubServer {
  enable: boolean;
  address: string;
  port: number;
}

export interface CloudHubAuthorization {
  enable: boolean;
  debug: boolean;
  modes: Array<{ node?: { enable: boolean } }> | null;
}

export interface CloudHubConfig extends ModuleBase {
  /** Seconds. */
  keepaliveInterval: number;
  nodeLimit: number;
  tlsCAFile: string;
  tlsCAKeyFile: string;
  tlsCertFile: string;
  tlsPrivateKeyFile: string;
  /** Seconds. */
  writeTimeout: number;
  quic: CloudHubQUIC;
  unixsocket: CloudHubUnixSocket;
  websocket: CloudHubServer;
  https: CloudHubServer;
  advertiseAddress: string[];
  dnsNames: string[];
  /** Days (a Go time.Duration used as a plain number). */
  edgeCertSigningDuration: number;
  /** Hours (a Go time.Duration used as a plain number). */
  tokenRefreshDuration: number;
  authorization: CloudHubAuthorization;
  /**
   * Ours, not KubeEdge's (never printed by --minconfig/--defaultconfig): an edge connects and gets
   * certificates only as `CN=system:node:<its node_id>`. Default true; false is KubeEdge's behaviour.
   */
  nodeIsolation: boolean;
}

const validPort = (p: number) => Number.isInteger(p) && p >= 1 && p <= 65535;
const port = () => int({ min: 0, max: 4294967295 });
const server = () =>
  ptrObj<CloudHubServer>({ enable: bool({ omit: 'never' }), address: str(), port: port() });

export const cloudHubSection = defineConfigSection<CloudHubConfig>({
  schema: sectionSchema<CloudHubConfig>({
    keepaliveInterval: int(),
    nodeLimit: int(),
    tlsCAFile: str(),
    tlsCAKeyFile: str(),
    tlsCertFile: str(),
    tlsPrivateKeyFile: str(),
    writeTimeout: int(),
    quic: ptrObj<CloudHubQUIC>({
      enable: bool({ omit: 'never' }),
      address: str(),
      port: port(),
      maxIncomingStreams: int(),
    }),
    unixsocket: ptrObj<CloudHubUnixSocket>({ enable: bool({ omit: 'never' }), address: str() }),
    websocket: server(),
    https: server(),
    advertiseAddress: list(str()),
    dnsNames: list(str()),
    edgeCertSigningDuration: int({ int64: true }),
    tokenRefreshDuration: int({ int64: true }),
    authorization: ptrObj<CloudHubAuthorization>({
      enable: bool({ omit: 'never' }),
      debug: bool({ omit: 'never' }),
      modes: list(
        configSchema.obj<{ node?: { enable: boolean } }>({
          node: ptrObj<{ enable: boolean }>({ enable: bool({ omit: 'never' }) }),
        }),
        { omit: 'never' },
      ),
    }),
    nodeIsolation: bool({ hidden: true }),
  }),
  defaults: () => ({
    enable: true,
    runAs: 'inprocess',
    keepaliveInterval: 30,
    nodeLimit: DEFAULT_NODE_LIMIT,
    tlsCAFile: KubeEdgeTLS.caFile,
    tlsCAKeyFile: KubeEdgeTLS.caKeyFile,
    tlsCertFile: KubeEdgeTLS.certFile,
    tlsPrivateKeyFile: KubeEdgeTLS.keyFile,
    writeTimeout: 30,
    quic: { enable: false, address: '0.0.0.0', port: 10001, maxIncomingStreams: 10000 },
    unixsocket: { enable: true, address: UNIX_SOCKET },
    websocket: { enable: true, address: '0.0.0.0', port: 10000 },
    https: { enable: true, address: '0.0.0.0', port: 10002 },
    advertiseAddress: [localIP()],
    dnsNames: [''],
    edgeCertSigningDuration: 365,
    tokenRefreshDuration: 12,
    authorization: { enable: false, debug: true, modes: [{ node: { enable: true } }] },
    nodeIsolation: true,
  }),
  // NewMinCloudCoreConfig
  min: () => ({
    nodeLimit: 1000,
    tlsCAFile: KubeEdgeTLS.caFile,
    tlsCAKeyFile: KubeEdgeTLS.caKeyFile,
    tlsCertFile: KubeEdgeTLS.certFile,
    tlsPrivateKeyFile: KubeEdgeTLS.keyFile,
    advertiseAddress: [localIP()],
    unixsocket: { enable: true, address: UNIX_SOCKET },
    websocket: { enable: true, port: 10000, address: '0.0.0.0' },
    https: { enable: true, port: 10002, address: '0.0.0.0' },
  }),
  // AdjustCloudCoreConfig: the Kubernetes client's QPS and burst follow nodeLimit.
  adjust(hub, file) {
    const kube = file.kubeAPIConfig as { qps: number; burst: number };
    kube.qps = 5 * hub.nodeLimit;
    kube.burst = 10 * hub.nodeLimit;
  },
  validate(hub, r) {
    if (!hub.enable) return;
    for (const [key, srv] of [
      ['https', hub.https],
      ['websocket', hub.websocket],
      ['quic', hub.quic],
    ] as const) {
      if (!validPort(srv.port)) r.error(`${key}.port`, `must be a port between 1 and 65535, got ${srv.port}`);
    }
    for (const [key, addr] of [
      ['websocket', hub.websocket.address],
      ['quic', hub.quic.address],
    ] as const) {
      if (isIP(addr) === 0)
        r.error(`${key}.address`, `must be a valid IP address, got ${JSON.stringify(addr)}`);
    }
    if (!hub.unixsocket.address.toLowerCase().startsWith('unix://')) {
      r.error(
        'unixsocket.address',
        `must start with "unix://", got ${JSON.stringify(hub.unixsocket.address)}`,
      );
    }
    if (hub.tokenRefreshDuration <= 0) {
      r.error('tokenRefreshDuration', `must be positive, got ${hub.tokenRefreshDuration}`);
    }
  },
});
