/**
 * The Kubernetes API's CA that cloudHub answers `k8s/ca.crt` with (wire-cloud-edge §5.9): the CA of
 * the cluster of the kubeconfig's current context (`certificate-authority-data`, or the
 * `certificate-authority` file relative to the kubeconfig), else the in-cluster service account CA.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { KernelError, errorText } from '../../kernel/index.js';

const IN_CLUSTER_CA = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';

interface KubeConfigFile {
  'current-context'?: string;
  contexts?: { name?: string; context?: { cluster?: string } }[];
  clusters?: {
    name?: string;
    cluster?: { 'certificate-authority-data'?: string; 'certificate-authority'?: string };
  }[];
}

/** PEM text of the Kubernetes CA; throws EKUBE_CA naming the file and what is missing. */
export async function readKubeCa(kubeConfig: string): Promise<string> {
  if (kubeConfig === '') return readCaFile(IN_CLUSTER_CA);
  let doc: KubeConfigFile;
  try {
    doc = (parse(await readFile(kubeConfig, 'utf8')) ?? {}) as KubeConfigFile;
  } catch (err) {
    throw new KernelError('EKUBE_CA', `kubeconfig ${kubeConfig}: ${errorText(err)}`);
  }
  const current = doc['current-context'];
  const clusterName =
    doc.contexts?.find((c) => c.name === current)?.context?.cluster ?? doc.clusters?.[0]?.name;
  const cluster = doc.clusters?.find((c) => c.name === clusterName)?.cluster;
  const data = cluster?.['certificate-authority-data'];
  if (data) return Buffer.from(data, 'base64').toString('utf8');
  const file = cluster?.['certificate-authority'];
  if (file) return readCaFile(resolve(dirname(kubeConfig), file));
  throw new KernelError(
    'EKUBE_CA',
    `kubeconfig ${kubeConfig}: cluster ${JSON.stringify(clusterName)} has no certificate-authority-data or certificate-authority`,
  );
}

async function readCaFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new KernelError('EKUBE_CA', `cannot read the Kubernetes CA ${path}: ${errorText(err)}`);
  }
}
