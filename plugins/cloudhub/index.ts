/**
 * cloudHub: the cloud end of the edge links (KubeEdge's `cloudhub` module, group `cloudhub`). At
 * start it prepares the PKI, refreshes the join token, serves the cert server on `https` (10002) and
 * the mutual-TLS websocket on `websocket` (10000). Upstream messages go to the cloud modules by
 * KubeEdge's rules; messages sent to `cloudhub` go to the node their resource names.
 */
import { dirname, join } from 'node:path';
import type { Server } from 'node:https';
import {
  ConfigToken,
  KubeToken,
  definePlugin,
  errorText,
  isKernelError,
  localIP,
  type CloudCoreConfig,
  type KubeApi,
  type ModuleConfig,
} from '../../kernel/index.js';
import { CloudHubModuleName, holderAnnotations } from '../../protocol/index.js';
import type { CloudHubConfig } from './config.js';
import { CloudHubGroup } from './dispatch.js';

/**
 * Listen and resolve once bound; a bind error rejects (the kernel restarts the plugin). The backlog
 * is as long as the system allows (`net.core.somaxconn`), as Go's listeners have it: with Node's
 * 511, thousands of edges redialling after a restart overflow it, and each dropped SYN is retried
 * by the edge's kernel only after 1, 3, 7, 15... s, while cloudcore idles.
 */
function listen(server: Server, address: string, port: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) =>
      reject(new Error(`cloudHub.${what}: cannot listen on ${address}:${port}: ${errorText(err)}`));
    server.once('error', onError);
    server.listen({ port, host: address, backlog: 65_535 }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** `GET /node/{name}`: does the Node exist? (404 → no; another error throws: the cert server answers 500.) */
async function nodeExists(kube: KubeApi, name: string): Promise<boolean> {
  try {
    await kube.request('GET', `/api/v1/nodes/${encodeURIComponent(name)}`);
    return true;
  } catch (err) {
    if (isKernelError(err, 'EKUBE_API') && (err as { statusCode?: unknown }).statusCode === 404) return false;
    throw err;
  }
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export default definePlugin<CloudHubConfig & ModuleConfig>({
  name: CloudHubModuleName,
  group: CloudHubGroup,
  configKey: 'cloudHub',
  async start(ctx) {
    const cfg = ctx.config;
    const { log } = ctx;
    const [
      { preparePki, FilePkiStore },
      { KubePkiStore },
      { startTokenRefresh },
      { createCertServer },
      { createWsServer },
    ] = await Promise.all([
      import('./pki.js'),
      import('./secretstore.js'),
      import('./token.js'),
      import('./certserver.js'),
      import('./server.js'),
    ]);
    const { Hub } = await import('./hub.js');
    const { hubMetrics } = await import('./metrics.js');
    const { readKubeCa } = await import('./kubeca.js');
    const { openObjectSyncStore } = await import('./objectsync.js');
    const { markHolder } = await import('./holder.js');

    // Our addition (PKI.md): node isolation, on unless `nodeIsolation: false`.
    const { nodeIsolation } = cfg;
    const cloudConfig = ctx.services.get(ConfigToken).config as CloudCoreConfig;
    const kube = ctx.services.has(KubeToken) ? ctx.services.get(KubeToken) : undefined;
    // KubeEdge's secrets kubeedge/{casecret,cloudcoresecret,tokensecret}; without a Kubernetes API,
    // the same secrets in files beside the CA directory.
    const secretsDir = join(dirname(dirname(cfg.tlsCAFile)), 'secrets');
    const store = kube ? new KubePkiStore(kube) : new FilePkiStore(secretsDir);
    const pki = await preparePki({
      store,
      files: {
        caFile: cfg.tlsCAFile,
        caKeyFile: cfg.tlsCAKeyFile,
        certFile: cfg.tlsCertFile,
        keyFile: cfg.tlsPrivateKeyFile,
      },
      advertiseAddress: cfg.advertiseAddress,
      dnsNames: cfg.dnsNames.filter((d) => d !== ''),
      log,
    });
    const token = await startTokenRefresh({ ca: pki.ca, store, refreshHours: cfg.tokenRefreshDuration, log });

    // what the edges acknowledged: KubeEdge's ObjectSyncs with a Kubernetes API, else in memory
    const acks = kube ? await openObjectSyncStore(kube, log, ctx.signal) : undefined;

    const { kubeConfig } = cloudConfig.kubeAPIConfig;
    // with several cloudcores, a connected node's Node names this one (protocol/cloudcore.ts)
    const holder = holderAnnotations(cloudConfig.modules, localIP());
    // the gauges read the hub when scraped; the hub counts in the metrics
    const metrics = hubMetrics(ctx.metrics, {
      connectedNodes: () => hub.connectedNodes,
      queueDepths: () => hub.queueDepths(),
    });
    const hub = new Hub({
      port: ctx,
      log,
      keepaliveMs: cfg.keepaliveInterval * 1000,
      nodeLimit: cfg.nodeLimit,
      kubeCa: () => readKubeCa(kubeConfig),
      metrics,
      ...(acks ? { acks } : {}),
    });

    const servers: Server[] = [];
    const stopAll = async (): Promise<void> => {
      token.stop();
      hub.stop();
      await Promise.all([...servers.map(close), acks?.stop()]);
    };
    try {
      if (cfg.https.enable) {
        const certServer = createCertServer({
          pki,
          edgeCertSigningDuration: cfg.edgeCertSigningDuration,
          nodeExists: (name) => (kube ? nodeExists(kube, name) : Promise.resolve(false)),
          nodeIsolation,
          log,
          onRefused: (reason) => metrics.bootstrapFailure(reason),
        });
        servers.push(certServer);
        await listen(certServer, cfg.https.address, cfg.https.port, 'https');
      }
      if (cfg.websocket.enable) {
        const ws = createWsServer({
          pki,
          nodeIsolation,
          admit: (node) => hub.admit(node),
          connected: (node, socket, req) => {
            const project = req.headers['project_id'];
            hub.connect(node, socket, typeof project === 'string' ? project : undefined);
            if (kube) void markHolder(kube, node, holder, log);
          },
          refused: (reason, node, text) => {
            metrics.refused(reason);
            log.warn({ node, reason }, `edge connection refused: ${text}`);
          },
          log,
        });
        servers.push(ws);
        await listen(ws, cfg.websocket.address, cfg.websocket.port, 'websocket');
      }
    } catch (err) {
      await stopAll();
      throw err;
    }
    if (cfg.quic.enable) log.warn('cloudHub.quic is not supported (gQUIC): only the websocket server runs');
    log.info(
      {
        websocket: cfg.websocket.enable ? `${cfg.websocket.address}:${cfg.websocket.port}` : 'off',
        https: cfg.https.enable ? `${cfg.https.address}:${cfg.https.port}` : 'off',
        nodeIsolation,
        nodeLimit: cfg.nodeLimit,
        secrets: kube ? 'kubernetes' : secretsDir,
        acknowledgements: acks ? 'objectsyncs' : 'memory',
      },
      'cloudHub started',
    );
    return {
      onMessage: (msg) => hub.downstream(msg),
      stop: stopAll,
    };
  },
});
