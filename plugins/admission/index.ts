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
  definePlugin,
  errorText,
  requireKube,
  type KubeApi,
  type ModuleConfig,
} from '../../kernel/index.js';
import type { AdmissionConfig } from './config.js';
import { CONVERTED_CRDS, registerConversion, registerValidation, waitEffective } from './register.js';
import { certPem, createServingCert, keyPem, loadOrCreateCa } from './pki.js';
import { CONVERT_PATH, VALIDATE_PATH, createWebhookServer } from './server.js';
import type { ModelProperty } from './validate.js';

export const AdmissionModuleName = 'admission';

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
      if (err instanceof KubeApiError && err.statusCode === 404) return undefined;
      throw err;
    }
  };

export default definePlugin<AdmissionConfig & ModuleConfig>({
  name: AdmissionModuleName,
  group: AdmissionModuleName,
  configKey: 'admission',
  async start(ctx) {
    const kube = requireKube(ctx, 'modules.admission registers its webhooks with kube-apiserver');
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
