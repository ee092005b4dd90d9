/**
 * The cloud side of keadm: `gettoken`, `init` and the cloud half of `reset`, through the kernel's
 * Kubernetes client (JSON requests; client-node's typed clients are not loaded).
 */
import { readdir, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Document, parse as parseYaml } from 'yaml';
import type { V1CustomResourceDefinition, V1Secret } from '@kubernetes/client-node';
import { parseConfig } from '../kernel/config/index.js';
import { KubeApiError, errorText, type KubeApi, type Logger } from '../kernel/index.js';
import { createKubeApi } from '../kernel/kube/index.js';
import { unregister as unregisterAdmission } from '../plugins/admission/register.js';
import { cloudLayout } from '../plugins/registry.js';
import {
  CA_SECRET,
  CLOUDCORE_SECRET,
  PKI_NAMESPACE,
  TOKEN_SECRET,
  preparePki,
} from '../plugins/cloudhub/pki.js';
import { KubePkiStore } from '../plugins/cloudhub/secretstore.js';
import { DEFAULT_TOKEN_REFRESH_HOURS, createToken, verifyJwt } from '../plugins/cloudhub/token.js';
import { applySets, keadmError, layout, waitReady, writeOwnerOnly } from './common.js';
import { startService, stopService, type ServiceOptions } from './service.js';

const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
const SECRETS = `/api/v1/namespaces/${PKI_NAMESPACE}/secrets`;

/** A client of the cluster named by a kubeconfig file (its current context). */
export function kubeClient(kubeConfig: string, log: Logger): KubeApi {
  return createKubeApi(
    { kubeConfig: resolve(kubeConfig), master: '', contentType: '', qps: 50, burst: 100 },
    log,
  );
}

const notFound = (err: unknown): boolean => err instanceof KubeApiError && err.statusCode === 404;

/** `keadm gettoken`: the join token in `kubeedge/tokensecret`. */
export async function getToken(kube: KubeApi): Promise<string> {
  let secret: V1Secret;
  try {
    secret = await kube.request<V1Secret>('GET', `${SECRETS}/${TOKEN_SECRET.name}`);
  } catch (err) {
    if (notFound(err)) {
      throw keadmError(
        'EKEADM_NO_TOKEN',
        `no secret ${PKI_NAMESPACE}/${TOKEN_SECRET.name} in this cluster: run \`keadm init\` (or start cloudcore) first`,
      );
    }
    throw keadmError(
      'EKEADM_KUBE',
      `cannot read secret ${PKI_NAMESPACE}/${TOKEN_SECRET.name}: ${errorText(err)}`,
    );
  }
  const data = secret.data?.[TOKEN_SECRET.key];
  if (data === undefined) {
    throw keadmError(
      'EKEADM_NO_TOKEN',
      `secret ${PKI_NAMESPACE}/${TOKEN_SECRET.name} has no key ${TOKEN_SECRET.key}`,
    );
  }
  return Buffer.from(data, 'base64').toString('utf8');
}

/** Create or update each CRD of `dir`, then wait until each is Established and its lists answer. */
export async function applyCrds(kube: KubeApi, dir: string, timeoutMs = 60_000): Promise<string[]> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  } catch (err) {
    throw keadmError(
      'EKEADM_CRDS',
      `cannot read the CRD manifests in ${dir}: ${errorText(err)} (--crds-dir)`,
    );
  }
  const crds: V1CustomResourceDefinition[] = [];
  for (const file of files) {
    const crd = parseYaml(await readFile(join(dir, file), 'utf8')) as V1CustomResourceDefinition;
    const name = crd.metadata?.name ?? '';
    try {
      try {
        await kube.request('POST', CRD_PATH, crd);
      } catch (err) {
        if (!(err instanceof KubeApiError && err.statusCode === 409)) throw err;
        const existing = await kube.request<V1CustomResourceDefinition>('GET', `${CRD_PATH}/${name}`);
        // a conversion webhook cloudcore's admission plugin set stays (the manifests say None)
        const conversion =
          existing.spec.conversion?.strategy === 'Webhook' ? existing.spec.conversion : crd.spec.conversion;
        const update = {
          ...crd,
          metadata: { ...crd.metadata, resourceVersion: existing.metadata?.resourceVersion },
          spec: { ...crd.spec, conversion },
        };
        await kube.request('PUT', `${CRD_PATH}/${name}`, update);
      }
    } catch (err) {
      throw keadmError('EKEADM_CRDS', `cannot create or update CRD ${name} (${file}): ${errorText(err)}`);
    }
    crds.push(crd);
  }
  const deadline = Date.now() + timeoutMs;
  for (const crd of crds) {
    const name = crd.metadata?.name ?? '';
    for (;;) {
      const got = await kube.request<V1CustomResourceDefinition>('GET', `${CRD_PATH}/${name}`);
      if (got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
      if (Date.now() > deadline) {
        throw keadmError('EKEADM_CRDS', `CRD ${name} is not Established after ${timeoutMs / 1000} s`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    // right after Established, lists answer 429 for a while: the client retries those
    for (const v of crd.spec.versions.filter((v) => v.served)) {
      await kube.request('GET', `/apis/${crd.spec.group}/${v.name}/${crd.spec.names.plural}?limit=1`);
    }
  }
  return crds.map((c) => c.metadata?.name ?? '');
}

export interface InitOptions {
  advertiseAddress: string[];
  kubeConfig: string;
  configDir: string;
  crdsDir: string;
  cloudcoreBin: string;
  sets: string[];
  service: ServiceOptions;
}

/**
 * `keadm init`: CRDs, PKI and token secrets (kept when they exist), cloudcore.yaml, cloudcore
 * started and ready (`/readyz`). No key is written to disk: cloudHub serves the secrets' PKI.
 */
export async function init(
  kube: KubeApi,
  opts: InitOptions,
  log: Logger,
  say: (line: string) => void,
): Promise<void> {
  const files = layout(opts.configDir);
  const configFile = files.configFile('cloudcore');
  // the config first: a bad --set fails before anything is written
  const doc = new Document({
    apiVersion: 'cloudcore.config.kubeedge.io/v1alpha1',
    kind: 'CloudCore',
    kubeAPIConfig: { kubeConfig: resolve(opts.kubeConfig) },
    modules: {
      cloudHub: {
        enable: true,
        advertiseAddress: opts.advertiseAddress,
        // no files: the PKI of the secrets (an edge joined on this machine writes its own
        // certificate at KubeEdge's default paths, which cloudHub would otherwise take first)
        tlsCAFile: '',
        tlsCAKeyFile: '',
        tlsCertFile: '',
        tlsPrivateKeyFile: '',
      },
      // the device CRDs' conversion and validating webhooks, where kube-apiserver reaches cloudcore
      admission: { enable: true, address: opts.advertiseAddress[0] },
    },
  });
  applySets(doc, opts.sets);
  const text = doc.toString();
  const config = parseConfig(cloudLayout, text, configFile).config;
  const dnsNames = config.modules.cloudHub?.dnsNames.filter((d) => d !== '') ?? [];

  const crds = await applyCrds(kube, opts.crdsDir);
  say(`CRDs established: ${crds.join(', ')}`);

  const store = new KubePkiStore(kube);
  const pki = await preparePki({ store, advertiseAddress: opts.advertiseAddress, dnsNames, log });
  const stored = (await store.get(TOKEN_SECRET.name))?.[TOKEN_SECRET.key]?.toString('utf8');
  const jwt = stored?.split('.').slice(1).join('.');
  if (jwt === undefined || verifyJwt(jwt, pki.ca.key) !== undefined) {
    const token = createToken(
      pki.ca,
      config.modules.cloudHub?.tokenRefreshDuration ?? DEFAULT_TOKEN_REFRESH_HOURS,
    );
    await store.put(TOKEN_SECRET.name, { [TOKEN_SECRET.key]: Buffer.from(token) });
  }
  say(`secrets ready: ${PKI_NAMESPACE}/${CA_SECRET.name}, ${CLOUDCORE_SECRET.name}, ${TOKEN_SECRET.name}`);

  await writeOwnerOnly(configFile, text);
  say(`wrote ${configFile}`);

  const started = await startService('cloudcore', opts.cloudcoreBin, configFile, opts.service);
  const health = config.kernel.health;
  if (health.enable) {
    await waitReady({
      what: 'cloudcore',
      url: `http://${health.address}:${health.port}/readyz`,
      timeoutMs: 60_000,
      running: started.running,
      logHint: started.logHint,
    });
  }
  say(`cloudcore started as ${started.how}`);
  say('KubeEdge cloudcore is running. Get the join token for edge nodes with: keadm gettoken');
}

/** The cloud half of `keadm reset`: stop cloudcore, delete the PKI secrets, remove the files. */
export async function resetCloud(
  kube: KubeApi | undefined,
  configFile: string,
  service: ServiceOptions,
  say: (line: string) => void,
): Promise<void> {
  const stopped = await stopService('cloudcore', service, configFile);
  say(stopped === undefined ? 'cloudcore was not running as a service' : `stopped cloudcore (${stopped})`);
  if (kube !== undefined) {
    for (const done of await unregisterAdmission(kube)) say(`admission webhooks: ${done}`);
    for (const name of [CA_SECRET.name, CLOUDCORE_SECRET.name, TOKEN_SECRET.name]) {
      try {
        await kube.request('DELETE', `${SECRETS}/${name}`);
        say(`deleted secret ${PKI_NAMESPACE}/${name}`);
      } catch (err) {
        if (!notFound(err))
          throw keadmError('EKEADM_KUBE', `cannot delete secret ${PKI_NAMESPACE}/${name}: ${errorText(err)}`);
      }
    }
  }
  await rm(service.runDir + '/cloudcore.log', { force: true });
}
