/**
 * Where kube-apiserver is told about the webhooks: the device CRDs' `spec.conversion` and the
 * ValidatingWebhookConfiguration of Devices (set at each start), and their removal (`keadm reset`).
 */
import { KernelError, KubeApiError, errorText, type KubeApi } from '../../kernel/index.js';
import { CA_SECRET, CA_SECRET_NAMESPACE } from './pki.js';

/** The CRDs converted by the webhook. */
export const CONVERTED_CRDS = ['devices.devices.kubeedge.io', 'devicemodels.devices.kubeedge.io'] as const;
export const WEBHOOK_CONFIGURATION = 'kubeedge-admission';
export const DEVICE_WEBHOOK = 'validate-device.devices.kubeedge.io';
export const MODEL_WEBHOOK = 'validate-devicemodel.devices.kubeedge.io';

const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
const VWC_PATH = '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations';

const statusOf = (err: unknown): number | undefined =>
  err instanceof KubeApiError ? err.statusCode : undefined;

/** Points each converted CRD's conversion at `url` (strategy Webhook, our CA). */
export async function registerConversion(kube: KubeApi, url: string, caBundle: string): Promise<void> {
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

/**
 * A v1beta1 Device update that leaves the spec alone (deviceController's mirror of the DeviceStatus
 * into the Device's status, a label) has nothing to check (validate.ts: v1beta1 keeps desired
 * values in the spec, v1alpha2 in its status): kube-apiserver does not call the webhook for it.
 */
const SPEC_OR_V1ALPHA2 = {
  name: 'spec-changed-or-v1alpha2',
  expression:
    "request.operation != 'UPDATE' || request.kind.version != 'v1beta1' || !has(object.spec) || !has(oldObject.spec) || object.spec != oldObject.spec",
};

/** Creates or replaces the ValidatingWebhookConfiguration of Devices and DeviceModels. */
export async function registerValidation(kube: KubeApi, url: string, caBundle: string): Promise<void> {
  const body = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: WEBHOOK_CONFIGURATION },
    webhooks: [
      { name: DEVICE_WEBHOOK, resource: 'devices', matchConditions: [SPEC_OR_V1ALPHA2] },
      { name: MODEL_WEBHOOK, resource: 'devicemodels' },
    ].map(({ name, resource, matchConditions }) => ({
      name,
      ...(matchConditions && { matchConditions }),
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
          resources: [resource],
          scope: 'Namespaced',
        },
      ],
    })),
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
export async function waitEffective(
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

/**
 * Undoes the registration (for `keadm reset`): the CRDs back to conversion `None` (what KubeEdge
 * installs), the ValidatingWebhookConfiguration and the CA secret deleted. Absent ones are fine.
 */
export async function unregister(kube: KubeApi): Promise<string[]> {
  const done: string[] = [];
  const ignore404 = async (what: string, call: () => Promise<unknown>): Promise<void> => {
    try {
      await call();
      done.push(what);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  };
  for (const name of CONVERTED_CRDS) {
    await ignore404(`CRD ${name}: conversion None`, () =>
      kube.request(
        'PATCH',
        `${CRD_PATH}/${name}`,
        { spec: { conversion: { strategy: 'None', webhook: null } } },
        {
          contentType: 'application/merge-patch+json',
        },
      ),
    );
  }
  await ignore404(`ValidatingWebhookConfiguration ${WEBHOOK_CONFIGURATION}`, () =>
    kube.request('DELETE', `${VWC_PATH}/${WEBHOOK_CONFIGURATION}`),
  );
  await ignore404(`secret ${CA_SECRET_NAMESPACE}/${CA_SECRET.name}`, () =>
    kube.request('DELETE', `/api/v1/namespaces/${CA_SECRET_NAMESPACE}/secrets/${CA_SECRET.name}`),
  );
  return done;
}
