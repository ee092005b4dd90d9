/**
 * The {@link PkiStore} of a real cloudcore: KubeEdge's secrets `kubeedge/casecret`,
 * `cloudcoresecret` and `tokensecret`, type Opaque, with its data keys (wire-cloud-edge §4.1), so
 * stock `keadm gettoken` and a Go cloudcore read what this one wrote and the other way round.
 * Through the kernel's Kubernetes client (`KubeToken`): rate-limited, retried, JSON over HTTPS
 * (client-node's types only: it is not loaded).
 */
import type { V1Namespace, V1Secret } from '@kubernetes/client-node';
import { KernelError, errorText, isKernelError, type KubeApi } from '../../kernel/index.js';
import { PKI_NAMESPACE, type PkiSecretName, type PkiStore } from './pki.js';

/** The HTTP status of a `KubeApi.request` error (`KubeApiError.statusCode`), if it is one. */
function httpStatus(err: unknown): number | undefined {
  if (!isKernelError(err, 'EKUBE_API')) return undefined;
  const code = (err as { statusCode?: unknown }).statusCode;
  return typeof code === 'number' ? code : undefined;
}

export class KubePkiStore implements PkiStore {
  private namespaceReady: Promise<void> | undefined;

  /** `namespace` is KubeEdge's `kubeedge`; tests give another to see it created. */
  constructor(
    private readonly kube: KubeApi,
    readonly namespace: string = PKI_NAMESPACE,
  ) {}

  private get secrets(): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/secrets`;
  }

  async get(name: PkiSecretName): Promise<Record<string, Buffer> | undefined> {
    let secret: V1Secret;
    try {
      secret = await this.kube.request<V1Secret>('GET', `${this.secrets}/${name}`);
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw new KernelError('EPKI_STORE', `cannot read secret ${this.namespace}/${name}: ${errorText(err)}`);
    }
    const data: Record<string, Buffer> = {};
    for (const [key, value] of Object.entries(secret.data ?? {})) data[key] = Buffer.from(value, 'base64');
    return data;
  }

  /** KubeEdge's `SaveSecret`: the namespace created if absent, then create, or update if it exists. */
  async put(name: PkiSecretName, data: Record<string, Buffer>): Promise<void> {
    await this.ensureNamespace();
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace: this.namespace },
      type: 'Opaque',
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString('base64')])),
    };
    try {
      try {
        await this.kube.request('POST', this.secrets, body);
      } catch (err) {
        if (httpStatus(err) !== 409) throw err;
        await this.kube.request('PUT', `${this.secrets}/${name}`, body);
      }
    } catch (err) {
      throw new KernelError('EPKI_STORE', `cannot write secret ${this.namespace}/${name}: ${errorText(err)}`);
    }
  }

  private ensureNamespace(): Promise<void> {
    this.namespaceReady ??= (async () => {
      const path = `/api/v1/namespaces/${encodeURIComponent(this.namespace)}`;
      try {
        await this.kube.request('GET', path);
        return;
      } catch (err) {
        if (httpStatus(err) !== 404) throw err;
      }
      const body: V1Namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: this.namespace } };
      try {
        await this.kube.request('POST', '/api/v1/namespaces', body);
      } catch (err) {
        if (httpStatus(err) !== 409) throw err;
      }
    })().catch((err: unknown) => {
      this.namespaceReady = undefined; // try again on the next put
      throw new KernelError('EPKI_STORE', `cannot create namespace ${this.namespace}: ${errorText(err)}`);
    });
    return this.namespaceReady;
  }
}
