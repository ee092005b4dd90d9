/**
 * KubePkiStore against a real control plane as the `cloudcore` ServiceAccount: KubeEdge's secrets
 * with their names, type and data keys, read back by kubectl as stock keadm would.
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../kernel/log.js';
import type { KubeApi } from '../../kernel/kube/index.js';
import { cloudcoreKube, startControlPlane, type ControlPlane } from '../../test/peers/kube.js';
import { cleanup } from '../../test/peers/util.js';
import { CA_SECRET, CLOUDCORE_SECRET, TOKEN_SECRET, preparePki } from './pki.js';
import { KubePkiStore } from './secretstore.js';

afterAll(cleanup);

const log = createLogger('warn');

describe('KubePkiStore', () => {
  let plane: ControlPlane;
  let kube: KubeApi;

  beforeAll(async () => {
    plane = await startControlPlane();
    kube = cloudcoreKube(plane, log);
  }, 3_600_000);

  afterAll(() => kube?.stop());

  const secretField = async (name: string, jsonpath: string, namespace = 'kubeedge'): Promise<string> =>
    plane.kubectl(['get', 'secret', '-n', namespace, name, '-o', `jsonpath=${jsonpath}`]);

  it("keeps the CA and server pair in KubeEdge's secrets, as DER, and reads them back", async () => {
    const store = new KubePkiStore(kube);
    expect(await store.get(CA_SECRET.name)).toBeUndefined();
    const pki = await preparePki({
      store,
      advertiseAddress: ['127.0.0.1'],
      dnsNames: ['cloudcore.test'],
      log,
    });

    // what `kubectl get secret -n kubeedge casecret -o jsonpath=...` shows is the CA's DER
    expect(await secretField('casecret', '{.type}')).toBe('Opaque');
    const cadata = Buffer.from(await secretField('casecret', '{.data.cadata}'), 'base64');
    expect(cadata.equals(pki.ca.cert)).toBe(true);
    expect(new X509Certificate(cadata).subject).toBe('CN=KubeEdge');
    const cakey = Buffer.from(await secretField('casecret', '{.data.cakeydata}'), 'base64');
    expect(cakey.equals(pki.ca.key)).toBe(true);
    expect(Object.keys(JSON.parse(await secretField('cloudcoresecret', '{.data}')) as object).sort()).toEqual(
      [CLOUDCORE_SECRET.cert, CLOUDCORE_SECRET.key],
    );
    const server = Buffer.from(await secretField('cloudcoresecret', '{.data.cloudcoredata}'), 'base64');
    expect(new X509Certificate(server).checkIssued(new X509Certificate(cadata))).toBe(true);

    // a cloudcore started again (a new store) finds the same PKI
    const again = await preparePki({
      store: new KubePkiStore(kube),
      advertiseAddress: ['127.0.0.1'],
      dnsNames: ['cloudcore.test'],
      log,
    });
    expect(again.ca.cert.equals(pki.ca.cert)).toBe(true);
    expect(again.server.cert.equals(pki.server.cert)).toBe(true);
  });

  it('creates, then replaces, the token secret that keadm gettoken prints', async () => {
    const store = new KubePkiStore(kube);
    await store.put(TOKEN_SECRET.name, { [TOKEN_SECRET.key]: Buffer.from('first.token') });
    await store.put(TOKEN_SECRET.name, { [TOKEN_SECRET.key]: Buffer.from('second.token') });
    const tokendata = await secretField('tokensecret', '{.data.tokendata}');
    expect(Buffer.from(tokendata, 'base64').toString()).toBe('second.token');
    expect((await store.get(TOKEN_SECRET.name))?.[TOKEN_SECRET.key]?.toString()).toBe('second.token');
  });

  it('creates its namespace when absent', async () => {
    const store = new KubePkiStore(kube, 'kubeedge-pki-test');
    await expect(plane.kubectl(['get', 'namespace', 'kubeedge-pki-test'])).rejects.toThrow(/NotFound/);
    await store.put(TOKEN_SECRET.name, { [TOKEN_SECRET.key]: Buffer.from('t') });
    expect(await plane.kubectl(['get', 'namespace', 'kubeedge-pki-test', '-o', 'name'])).toContain(
      'namespace/kubeedge-pki-test',
    );
    expect(await secretField('tokensecret', '{.type}', 'kubeedge-pki-test')).toBe('Opaque');
  });

  it('names the secret and the reason when the API refuses', async () => {
    // an invalid namespace name: the apiserver refuses to create it (422)
    const store = new KubePkiStore(kube, 'Not_A_Namespace');
    await expect(
      store.put(TOKEN_SECRET.name, { [TOKEN_SECRET.key]: Buffer.from('t') }),
    ).rejects.toMatchObject({
      code: 'EPKI_STORE',
      message: expect.stringMatching(
        /cannot create namespace Not_A_Namespace: POST \/api\/v1\/namespaces: 422 .*Invalid value/,
      ),
    });
  });
});
