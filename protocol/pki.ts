/**
 * Names of the certificate server on cloudcore's :10002 that the cloud (cloudHub) and the edge
 * (edgeHub's bootstrap and rotation) must spell alike (KubeEdge v1.23.1
 * `cloud/pkg/cloudhub/servers/httpserver`, `edge/pkg/edgehub/certificate`), and the one lazy loader
 * of @peculiar/x509 both use.
 */
import { createRequire } from 'node:module';
import { webcrypto } from 'node:crypto';
import type * as X509Lib from '@peculiar/x509';

/** `GET /ca.crt`: the CA certificate, DER. */
export const CA_PATH = '/ca.crt';
/** `GET /edge.crt` (with a CSR body): the edge's certificate, DER. */
export const CERT_PATH = '/edge.crt';
/** `GET /node/{name}`: 404 when no such Node (keadm join's pre-check). */
export const CHECK_NODE_PATH = '/node/';
/** Request header naming the node (Go sends it as `Nodename`; Node lower-cases header names). */
export const NODE_NAME_HEADER = 'nodename';
/** KubeEdge's `MaxRespBodyLength`: request and response bodies of the cert server. */
export const MAX_CERT_BODY_BYTES = 1 << 20;
/** Subject organisation of an edge node's certificate. */
export const NODE_ORGANIZATION = 'system:nodes';
/** Subject common name of an edge node's certificate. */
export const nodeCommonName = (node: string): string => `system:node:${node}`;

let x509Lib: typeof X509Lib | undefined;
/** @peculiar/x509, loaded on first use (~15 MB; it needs reflect-metadata before it). */
export function x509(): typeof X509Lib {
  if (x509Lib === undefined) {
    const require = createRequire(import.meta.url);
    require('reflect-metadata');
    const lib = require('@peculiar/x509') as typeof X509Lib;
    lib.cryptoProvider.set(webcrypto as unknown as Parameters<typeof lib.cryptoProvider.set>[0]);
    x509Lib = lib;
  }
  return x509Lib;
}
