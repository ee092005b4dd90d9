/**
 * A cloudHub and an edgeHub that trust each other, for tests that run both kernels: the cloud's CA
 * written under `<dir>/cloud/ca`, two free loopback ports, and the two YAML sections (indented for
 * `modules:`). The edge bootstraps with a token of that CA.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCa, toPem, type KeyPairDer } from '../../plugins/cloudhub/pki.js';
import { createToken } from '../../plugins/cloudhub/token.js';
import { freePort } from '../peers/util.js';

export interface LinkSetup {
  ca: KeyPairDer;
  /** `  cloudHub:` on 127.0.0.1 (websocket and cert server). */
  cloudHub: string;
  /** cloudHub's websocket port. */
  wsPort: number;
  /** cloudHub's cert server port (`https`). */
  httpsPort: number;
  /** The same on other ports (another cloudcore of the same cluster: same CA and certificate files). */
  cloudHubOn(wsPort: number, httpsPort: number): string;
  /**
   * `  edgeHub:` dialling that cloudHub (heartbeat 2 s), or its websocket at `server` (host:port,
   * e.g. a proxy); `extra` lines (4-space indented) are added. `at`: another cert server (`https`
   * port), another directory than `edge` for the certificates (a second edge).
   */
  edgeHub(extra?: string, server?: string, at?: { https?: number; certDir?: string }): string;
}

export async function prepareLink(dir: string): Promise<LinkSetup> {
  const ca = await createCa();
  await mkdir(join(dir, 'cloud/ca'), { recursive: true });
  await writeFile(join(dir, 'cloud/ca/rootCA.crt'), toPem('CERTIFICATE', ca.cert));
  await writeFile(join(dir, 'cloud/ca/rootCA.key'), toPem('EC PRIVATE KEY', ca.key), { mode: 0o600 });
  const [wsPort, httpsPort] = [await freePort(), await freePort()];
  const cloudHubOn = (ws: number, https: number): string => `  cloudHub:
    advertiseAddress: [127.0.0.1]
    tlsCAFile: ${join(dir, 'cloud/ca/rootCA.crt')}
    tlsCAKeyFile: ${join(dir, 'cloud/ca/rootCA.key')}
    tlsCertFile: ${join(dir, 'cloud/certs/server.crt')}
    tlsPrivateKeyFile: ${join(dir, 'cloud/certs/server.key')}
    websocket: {enable: true, address: 127.0.0.1, port: ${ws}}
    https: {enable: true, address: 127.0.0.1, port: ${https}}
`;
  const edgeHub = (
    extra = '',
    server = `127.0.0.1:${wsPort}`,
    { https = httpsPort, certDir = 'edge' } = {},
  ): string => `  edgeHub:
    enable: true
    heartbeat: 2
    httpServer: https://127.0.0.1:${https}
    token: ${createToken(ca, 12)}
    tlsCaFile: ${join(dir, certDir, 'ca/rootCA.crt')}
    tlsCertFile: ${join(dir, certDir, 'certs/server.crt')}
    tlsPrivateKeyFile: ${join(dir, certDir, 'certs/server.key')}
    websocket: {enable: true, server: "${server}"}
${extra}`;
  return { ca, cloudHub: cloudHubOn(wsPort, httpsPort), wsPort, httpsPort, cloudHubOn, edgeHub };
}
