/**
 * The {@link PkiStore} of a real cloudcore: KubeEdge's secrets `kubeedge/casecret`,
 * `cloudcoresecret` and `tokensecret`, type Opaque, with its data keys (wire-cloud-edge §4.1), so
 * stock `keadm gettoken` and a Go cloudcore read what this one wrote and the other way round.
 * Through the kernel's Kubernetes client (`KubeToken`): rate-limited, retried, client-node loaded on
 * the first call.
 */
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { KernelError, errorText, type KubeApi } from '../../kernel/index.js';
import { PKI_NAMESPACE, type PkiSecretName, type PkiStore } from './pki.js';

/** The HTTP status of a client-node API error (`ApiException.code`), if it is one. */
function httpStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Text of a client-node API error: the Status message when the body has one. */
function apiErrorText(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  if (typeof body === 'string') {
    try {
      const message = (JSON.parse(body) as { message?: unknown }).message;
      if (typeof message === 'string') return `${httpStatus(err)} ${message}`;
    } catch {
      // not a Status object
    }
  }
  return errorText(err);
}

export class KubePkiStore implements PkiStore {
  private core: Promise<CoreV1Api> | undefined;
  private namespaceReady: Promise<void> | undefined;

  /** `namespace` is KubeEdge's `kubeedge`; tests give another to see it created. */
  constructor(
    private readonly kube: KubeApi,
    readonly namespace: string = PKI_NAMESPACE,
  ) {}

  private api(): Promise<CoreV1Api> {
    this.core ??= import('@kubernetes/client-node').then(({ CoreV1Api }) => this.kube.api(CoreV1Api));
    return this.core;
  }

  async get(name: PkiSecretName): Promise<Record<string, Buffer> | undefined> {
    const core = await this.api();
    let secret: V1Secret;
    try {
      secret = await core.readNamespacedSecret({ name, namespace: this.namespace });
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw new KernelError(
        'EPKI_STORE',
        `cannot read secret ${this.namespace}/${name}: ${apiErrorText(err)}`,
      );
    }
    const data: Record<string, Buffer> = {};
    for (const [key, value] of Object.entries(secret.data ?? {})) data[key] = Buffer.from(value, 'base64');
    return data;
  }

  /** KubeEdge's `SaveSecret`: the namespace created if absent, then create, or update if it exists. */
  async put(name: PkiSecretName, data: Record<string, Buffer>): Promise<void> {
    const core = await this.api();
    await this.ensureNamespace(core);
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace: this.namespace },
      type: 'Opaque',
      data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString('base64')])),
    };
    try {
      try {
        await core.createNamespacedSecret({ namespace: this.namespace, body });
      } catch (err) {
        if (httpStatus(err) !== 409) throw err;
        await core.replaceNamespacedSecret({ name, namespace: this.namespace, body });
      }
    } catch (err) {
      throw new KernelError(
        'EPKI_STORE',
        `cannot write secret ${this.namespace}/${name}: ${apiErrorText(err)}`,
      );
    }
  }

  private ensureNamespace(core: CoreV1Api): Promise<void> {
    this.namespaceReady ??= (async () => {
      try {
        await core.readNamespace({ name: this.namespace });
        return;
      } catch (err) {
        if (httpStatus(err) !== 404) throw err;
      }
      try {
        await core.createNamespace({ body: { metadata: { name: this.namespace } } });
      } catch (err) {
        if (httpStatus(err) !== 409) throw err;
      }
    })().catch((err: unknown) => {
      this.namespaceReady = undefined; // try again on the next put
      throw new KernelError('EPKI_STORE', `cannot create namespace ${this.namespace}: ${apiErrorText(err)}`);
    });
    return this.namespaceReady;
  }
}
