/**
 * admission (KubeEdge's name for its webhook server) as a cloudcore plugin: the conversion webhook
 * of the device CRDs (Device, DeviceModel: v1alpha2 <-> v1beta1) and the validating webhook of
 * Devices, on one HTTPS server. At start it makes its serving certificate, writes the caBundle and
 * URL into the CRDs' `spec.conversion` and creates or updates its ValidatingWebhookConfiguration.
 * See README.md.
 */
import { isIP } from 'node:net';
import {
  KernelError,
  KubeApiError,
  KubeToken,
  definePlugin,
  errorText,
  type KubeApi,
  type ModuleConfig,
} from '../../kernel/index.js';
import type { AdmissionConfig } from './config.js';
import { CA_SECRET_NAMESPACE, certPem, createServingCert, keyPem, loadOrCreateCa } from './pki.js';
import { CONVERT_PATH, VALIDATE_PATH, createWebhookServer } from './server.js';
import type { ModelProperty } from './validate.js';

export const AdmissionModuleName = 'admission';
/** The CRDs converted by the webhook. */
export const CONVERTED_CRDS = ['devices.devices.kubeedge.io', 'devicemodels.devices.kubeedge.io'] as const;
export const WEBHOOK_CONFIGURATION = 'kubeedge-admission';
export const DEVICE_WEBHOOK = 'validate-device.devices.kubeedge.io';

const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
const VWC_PATH = '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations';

const statusOf = (err: unknown): number | undefined =>
  err instanceof KubeApiError ? err.statusCode : undefined;

/** Points each converted CRD's conversion at `url` (strategy Webhook, our CA). */
async function registerConversion(kube: KubeApi, url: string, caBundle: string): Promise<void> {
  for (const name of CONVERTED_CRDS) {
    const patch = {
      spec: {
        conversion: {
          strategy: 'Webhook',
          webhook: { conversionReviewVersions: ['v1'], clientConfig: { url, caBundle } },
        },
      },
    };
    try {
      await kube.request('PATCH', `${CRD_PATH}/${name}`, patch, {
        contentType: 'application/merge-patch+json',
      });
    } catch (err) {
      throw new KernelError(
        'EADMISSION_CRD',
        statusOf(err) === 404
          ? `CRD ${name} is not installed: apply the device CRDs of crds/ first (keadm init does)`
          : `cannot set the conversion webhook of CRD ${name}: ${errorText(err)}`,
      );
    }
  }
}

/** Creates or replaces the ValidatingWebhookConfiguration of Devices. */
async function registerValidation(kube: KubeApi, url: string, caBundle: string): Promise<void> {
  const body = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: WEBHOOK_CONFIGURATION },
    webhooks: [
      {
        name: DEVICE_WEBHOOK,
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        // KubeEdge's choice: a cloudcore that is down does not block device writes
        failurePolicy: 'Ignore',
        timeoutSeconds: 10,
        clientConfig: { url, caBundle },
        rules: [
          {
            apiGroups: ['devices.kubeedge.io'],
            apiVersions: ['v1alpha2', 'v1beta1'],
            operations: ['CREATE', 'UPDATE'],
            resources: ['devices'],
            scope: 'Namespaced',
          },
        ],
      },
    ],
  };
  try {
    try {
      await kube.request('POST', VWC_PATH, body);
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
      const existing = await kube.request<{ metadata?: { resourceVersion?: string } }>(
        'GET',
        `${VWC_PATH}/${WEBHOOK_CONFIGURATION}`,
      );
      await kube.request('PUT', `${VWC_PATH}/${WEBHOOK_CONFIGURATION}`, {
        ...body,
        metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion },
      });
    }
  } catch (err) {
    throw new KernelError(
      'EADMISSION_WEBHOOK',
      `cannot create or update ValidatingWebhookConfiguration ${WEBHOOK_CONFIGURATION}: ${errorText(err)}`,
    );
  }
}

/** How long kube-apiserver may take to use a new conversion stanza. */
const EFFECTIVE_TIMEOUT_MS = 30_000;

/**
 * Waits until kube-apiserver converts through this server: a dry-run create of a v1alpha2
 * DeviceModel (nothing is stored) is converted to the storage version, which makes a
 * ConversionReview arrive once the CRD's new conversion stanza is in use.
 */
async function waitEffective(
  kube: KubeApi,
  seen: () => number,
  base: string,
  signal: AbortSignal,
): Promise<void> {
  const probe = {
    apiVersion: 'devices.kubeedge.io/v1alpha2',
    kind: 'DeviceModel',
    metadata: { name: 'admission-probe', namespace: CA_SECRET_NAMESPACE },
    spec: { properties: [{ name: 'p', type: { int: { accessMode: 'ReadOnly', defaultValue: 1 } } }] },
  };
  const before = seen();
  const deadline = Date.now() + EFFECTIVE_TIMEOUT_MS;
  let last = '';
  while (seen() === before) {
    if (signal.aborted) return;
    if (Date.now() > deadline)
      throw new KernelError(
        'EADMISSION_UNREACHABLE',
        `kube-apiserver did not call the conversion webhook at ${base} within ${EFFECTIVE_TIMEOUT_MS / 1000} s${last && ` (last answer: ${last})`}: check that it can reach modules.admission.advertiseAddress and port`,
      );
    try {
      await kube.request(
        'POST',
        `/apis/devices.kubeedge.io/v1alpha2/namespaces/${CA_SECRET_NAMESPACE}/devicemodels?dryRun=All`,
        probe,
      );
    } catch (err) {
      last = errorText(err);
    }
    if (seen() === before) await new Promise((r) => setTimeout(r, 200));
  }
}

/** A model's properties, read fresh (a model made just before its device must be seen). */
const modelLookup =
  (kube: KubeApi) =>
  async (namespace: string, name: string): Promise<ModelProperty[] | undefined> => {
    try {
      const model = await kube.request<{ spec?: { properties?: { name?: string; type?: string }[] } }>(
        'GET',
        `/apis/devices.kubeedge.io/v1beta1/namespaces/${encodeURIComponent(namespace)}/devicemodels/${encodeURIComponent(name)}`,
      );
      return (model.spec?.properties ?? []).map((p) => ({ name: p.name ?? '', type: p.type ?? '' }));
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  };

export default definePlugin<AdmissionConfig & ModuleConfig>({
  name: AdmissionModuleName,
  group: AdmissionModuleName,
  configKey: 'admission',
  async start(ctx) {
    if (!ctx.services.has(KubeToken))
      throw new KernelError(
        'EADMISSION_NO_KUBE',
        'modules.admission serves kube-apiserver: kubeAPIConfig names no cluster (kubeConfig, master or in-cluster)',
      );
    const kube = ctx.services.get(KubeToken);
    const { address, port } = ctx.config;
    const host = ctx.config.advertiseAddress || address;
    const base = `https://${isIP(host) === 6 ? `[${host}]` : host}:${port}`;

    const ca = await loadOrCreateCa(kube, ctx.log);
    const serving = await createServingCert(ca, host);
    const { server, stats } = createWebhookServer(
      { cert: certPem(serving.cert), key: keyPem(serving.key) },
      modelLookup(kube),
      ctx.log,
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new KernelError(
            'EADMISSION_LISTEN',
            `modules.admission: cannot listen on ${address}:${port}: ${errorText(err)}`,
          ),
        ),
      );
      server.listen(port, address, () => resolve());
    });
    const close = (): Promise<void> =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    try {
      const caBundle = Buffer.from(certPem(ca.cert)).toString('base64');
      await registerConversion(kube, `${base}${CONVERT_PATH}`, caBundle);
      await registerValidation(kube, `${base}${VALIDATE_PATH}`, caBundle);
      await waitEffective(kube, () => stats.conversions, base, ctx.signal);
    } catch (err) {
      await close();
      throw err;
    }
    ctx.log.info({ address: `${address}:${port}`, url: base, crds: CONVERTED_CRDS }, 'admission started');
    return {
      onMessage: () => undefined,
      stop: close,
    };
  },
});
