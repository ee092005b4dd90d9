/**
 * keadm end to end against the real control plane, in temp dirs, cloud and edge on one machine
 * sharing one config dir (as a newcomer's /etc/kubeedge): init (CRDs Established, secrets,
 * cloudcore.yaml, cloudcore running and healthy; again: same CA), gettoken, join's refusals each
 * with its fix (bad token, expired token, node already registered, an address the cloud's
 * certificate does not name, clock skew, a cgroup driver other than the real containerd's; a runtime
 * that cannot be asked only warns), a join whose edgecore connects (cloudHub's gauge 1), init again
 * beside it (the edge reconnects), and one reset undoing both. Needs `npm run build` (cloudcore and edgecore run from dist/).
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromPem, type KeyPairDer } from '../plugins/cloudhub/pki.js';
import { createToken } from '../plugins/cloudhub/token.js';
import { startContainerd, type ContainerdPeer } from '../test/peers/containerd.js';
import { startControlPlane, type ControlPlane } from '../test/peers/kube.js';
import { cleanup, freePort, tempDir, waitFor } from '../test/peers/util.js';
import { runKeadm } from './cli.js';
import { preflight, type JoinOptions } from './join.js';

const root = join(import.meta.dirname, '..');
let cp: ControlPlane;
let runtime: ContainerdPeer;
let dir: string;
let ports: { ws: number; https: number; cloudHealth: number; edgeHealth: number; admission: number };
const CRDS = [
  'devices.devices.kubeedge.io',
  'devicemodels.devices.kubeedge.io',
  'devicestatuses.devices.kubeedge.io',
  'objectsyncs.reliablesyncs.kubeedge.io',
  'clusterobjectsyncs.reliablesyncs.kubeedge.io',
  'rules.rules.kubeedge.io',
  'ruleendpoints.rules.kubeedge.io',
];

async function keadm(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runKeadm(
    args,
    {
      crdsDir: join(root, 'crds'),
      cloudcoreBin: join(root, 'dist/bin/cloudcore.js'),
      edgecoreBin: join(root, 'dist/bin/edgecore.js'),
      kubeConfig: cp.kubeconfigPath,
    },
    { out: (t) => (out += t), err: (t) => (err += t) },
  );
  return { code, out, err };
}

const cloudDirs = (): string[] => [
  '--config-dir',
  join(dir, 'kubeedge'),
  '--run-dir',
  join(dir, 'run'),
  '--service',
  'process',
];
const edgeDirs = (): string[] => [
  '--config-dir',
  join(dir, 'kubeedge'),
  '--data-dir',
  join(dir, 'edge-data'),
  '--run-dir',
  join(dir, 'run'),
  '--service',
  'process',
];
const init = () =>
  keadm(
    'init',
    '--advertise-address',
    '127.0.0.1',
    '--kube-config',
    cp.kubeconfigPath,
    ...cloudDirs(),
    '--set',
    'modules.cloudHub.websocket.address=127.0.0.1',
    '--set',
    `modules.cloudHub.websocket.port=${ports.ws}`,
    // every loopback address, so a join through 127.0.0.2 reaches it (and meets the SAN check)
    '--set',
    'modules.cloudHub.https.address=0.0.0.0',
    '--set',
    `modules.cloudHub.https.port=${ports.https}`,
    '--set',
    `kernel.health.port=${ports.cloudHealth}`,
    '--set',
    `modules.admission.port=${ports.admission}`,
  );
const joinArgs = (
  token: string,
  node = 'edge-keadm',
  ipPort = `127.0.0.1:${ports.ws}`,
  cgroupDriver = 'cgroupfs',
): string[] => [
  'join',
  '--cloudcore-ipport',
  ipPort,
  '--certport',
  String(ports.https),
  '--token',
  token,
  '--edgenode-name',
  node,
  '--remote-runtime-endpoint',
  runtime.endpoint,
  '--cgroupdriver',
  cgroupDriver,
  ...edgeDirs(),
  '--set',
  'modules.edged.enable=false',
  '--set',
  'modules.eventBus.enable=false',
  '--set',
  'modules.deviceTwin.enable=false',
  '--set',
  'modules.edgeHub.heartbeat=2',
  '--set',
  `kernel.health.port=${ports.edgeHealth}`,
];

const secret = async (name: string): Promise<Record<string, string> | undefined> => {
  const res = await cp.get(`/api/v1/namespaces/kubeedge/secrets/${name}`);
  return res.status === 200 ? (JSON.parse(res.body) as { data: Record<string, string> }).data : undefined;
};
const caFromSecret = async (): Promise<KeyPairDer> => {
  const data = (await secret('casecret'))!;
  return { cert: Buffer.from(data.cadata!, 'base64'), key: Buffer.from(data.cakeydata!, 'base64') };
};
/** The conversion strategy of a CRD. */
const conversion = async (crd: string): Promise<string | undefined> =>
  (
    JSON.parse((await cp.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd}`)).body) as {
      spec: { conversion?: { strategy?: string } };
    }
  ).spec.conversion?.strategy;
const pidOf = async (core: string): Promise<number> =>
  Number((await readFile(join(dir, 'run', `${core}.pid`), 'utf8')).trim());
/** Running (a zombie has an empty command line). */
const alive = (pid: number): boolean => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`).length > 0;
  } catch {
    return false;
  }
};
const cloudMetrics = async (): Promise<string> =>
  (await fetch(`http://127.0.0.1:${ports.cloudHealth}/metrics`)).text();

beforeAll(async () => {
  [cp, runtime] = await Promise.all([
    startControlPlane(),
    startContainerd({ importSandboxImage: false, cni: false }),
  ]);
  dir = await tempDir('keadm');
  ports = {
    ws: await freePort(),
    https: await freePort(),
    cloudHealth: await freePort(),
    edgeHealth: await freePort(),
    admission: await freePort(),
  };
}, 600_000);

afterAll(async () => {
  // a failed test must not leave the cores running
  for (const core of ['edgecore', 'cloudcore']) {
    const pid = await pidOf(core).catch(() => 0);
    if (pid > 0 && alive(pid)) process.kill(pid, 'SIGKILL');
  }
  await cleanup();
});

describe('keadm (real control plane, cores as processes)', () => {
  let token = '';

  it('init: CRDs Established, secrets, cloudcore.yaml, cloudcore running and healthy', async () => {
    const r = await init();
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('cloudcore started as process');
    for (const name of CRDS) {
      const crd = JSON.parse(
        (await cp.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`)).body,
      ) as {
        status: { conditions: { type: string; status: string }[] };
      };
      expect(crd.status.conditions).toContainEqual(
        expect.objectContaining({ type: 'Established', status: 'True' }),
      );
    }
    expect(Object.keys((await secret('casecret'))!).sort()).toEqual(['cadata', 'cakeydata']);
    expect(Object.keys((await secret('cloudcoresecret'))!).sort()).toEqual([
      'cloudcoredata',
      'cloudcorekeydata',
    ]);
    expect(Object.keys((await secret('tokensecret'))!)).toEqual(['tokendata']);
    const config = await readFile(join(dir, 'kubeedge/config/cloudcore.yaml'), 'utf8');
    expect(config).toContain(`kubeConfig: ${cp.kubeconfigPath}`);
    expect(config).toMatch(/advertiseAddress:\n\s+- 127\.0\.0\.1/);
    expect(statSync(join(dir, 'kubeedge/config/cloudcore.yaml')).mode & 0o777).toBe(0o600);
    expect(existsSync(join(dir, 'kubeedge/ca'))).toBe(false); // no key on disk: the secrets hold the PKI
    expect(alive(await pidOf('cloudcore'))).toBe(true);
    expect((await fetch(`http://127.0.0.1:${ports.cloudHealth}/healthz`)).status).toBe(200);
    // cloudcore's admission plugin switched the device CRDs to its conversion webhook
    expect(await conversion('devices.devices.kubeedge.io')).toBe('Webhook');
  }, 120_000);

  it('init again: same CA, cloudcore restarted and healthy', async () => {
    const ca = (await secret('casecret'))!.cadata;
    const before = await pidOf('cloudcore');
    const r = await init();
    expect(r.code).toBe(0);
    expect((await secret('casecret'))!.cadata).toBe(ca);
    const after = await pidOf('cloudcore');
    expect(after).not.toBe(before);
    expect(alive(after)).toBe(true);
    expect((await fetch(`http://127.0.0.1:${ports.cloudHealth}/healthz`)).status).toBe(200);
  }, 120_000);

  it('gettoken prints the token of kubeedge/tokensecret', async () => {
    const r = await keadm('gettoken', '--kube-config', cp.kubeconfigPath);
    expect(r.code).toBe(0);
    token = r.out.trim();
    expect(token).toBe(Buffer.from((await secret('tokensecret'))!.tokendata!, 'base64').toString());
    expect(token.split('.')).toHaveLength(4);
  });

  it('join refuses a token in the wrong format, writing nothing', async () => {
    const r = await keadm(...joinArgs(token.split('.').slice(1).join('.')));
    expect(r.code).toBe(1);
    expect(r.err).toContain('the token is in the wrong format: expected 4 parts');
    expect(r.err).toContain('keadm gettoken');
    expect(existsSync(join(dir, 'kubeedge/config/edgecore.yaml'))).toBe(false);
  });

  it('join refuses an expired token, naming when it expired', async () => {
    const expired = createToken(await caFromSecret(), 1, Date.now() - 3 * 3_600_000);
    const r = await keadm(...joinArgs(expired));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/the token expired at \d{4}-\d\d-\d\dT.* \(now .*\).*keadm gettoken/);
  });

  it('join refuses a node name that is already registered', async () => {
    await cp.kubectl(['apply', '-f', '-'], {
      input: 'apiVersion: v1\nkind: Node\nmetadata:\n  name: edge-taken\n',
    });
    const r = await keadm(...joinArgs(token, 'edge-taken'));
    expect(r.code).toBe(1);
    expect(r.err).toContain('node "edge-taken" is already registered in the cluster');
    expect(r.err).toContain('kubectl delete node edge-taken');
    expect(existsSync(join(dir, 'kubeedge/config/edgecore.yaml'))).toBe(false);
  });

  it('join refuses an address the cloud certificate does not name', async () => {
    const r = await keadm(...joinArgs(token, 'edge-keadm', `127.0.0.2:${ports.ws}`));
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      "the cloud's certificate does not name 127.0.0.2 (it names: IP Address:127.0.0.1",
    );
    expect(r.err).toContain('--advertise-address');
  });

  it("join refuses a cgroup driver other than the runtime's", async () => {
    const r = await keadm(...joinArgs(token, 'edge-keadm', `127.0.0.1:${ports.ws}`, 'systemd'));
    expect(r.code).toBe(1);
    expect(r.err).toContain(
      `--cgroupdriver systemd does not match the runtime's (cgroupfs at ${runtime.endpoint}): pods would fail to start; fix: join with --cgroupdriver cgroupfs`,
    );
  });

  const joinOptions = (): JoinOptions => ({
    cloudcoreIpPort: `127.0.0.1:${ports.ws}`,
    certPort: ports.https,
    token,
    nodeName: 'edge-keadm',
    runtimeEndpoint: `unix://${join(dir, 'no-runtime.sock')}`,
    cgroupDriver: 'cgroupfs',
    configDir: join(dir, 'kubeedge'),
    dataDir: join(dir, 'edge-data'),
    edgecoreBin: '',
    sets: [],
    service: { mode: 'process', runDir: join(dir, 'run'), unitDir: join(dir, 'units') },
  });

  it('join only warns when the runtime cannot be asked for its cgroup driver', async () => {
    const warnings = await preflight(joinOptions());
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(
      `cannot ask the runtime at unix://${join(dir, 'no-runtime.sock')} for its cgroup driver`,
    );
  });

  it('join refuses a clock more than a minute off the cloud, naming both times', async () => {
    const opts = joinOptions();
    const ahead = Date.now() + 5 * 60_000;
    await expect(preflight(opts, () => ahead)).rejects.toThrow(
      new RegExp(
        `this machine's clock says ${new Date(ahead).toISOString().slice(0, 16)}.* but the cloud's says .*timedatectl`,
      ),
    );
  });

  it('join writes edgecore.yaml and the bootstrap file, starts edgecore, and it connects', async () => {
    const r = await keadm(...joinArgs(token));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('warning'); // the runtime said cgroupfs, as asked
    expect(r.out).toContain('edgecore started as process');
    const bootstrap = join(dir, 'kubeedge/bootstrap-edgecore.conf');
    expect((await readFile(bootstrap, 'utf8')).trim()).toBe(token);
    expect(statSync(bootstrap).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'kubeedge/config/edgecore.yaml')).mode & 0o777).toBeLessThanOrEqual(0o640);
    await waitFor(async () => (await cloudMetrics()).includes('kubeedge_cloudhub_connected_nodes 1'), {
      what: 'cloudcore counts the edge connected',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    const cert = new X509Certificate(
      fromPem(await readFile(join(dir, 'kubeedge/certs/server.crt'), 'utf8'), 'edge cert').der,
    );
    expect(cert.subject).toContain('CN=system:node:edge-keadm');
  }, 120_000);

  it("init again beside the joined edge: cloudcore keeps serving the secrets' PKI, the edge reconnects", async () => {
    // the edge's node certificate now sits at KubeEdge's default certs/server.crt of the same dir
    const r = await init();
    expect(r.code).toBe(0);
    await waitFor(async () => (await cloudMetrics()).includes('kubeedge_cloudhub_connected_nodes 1'), {
      what: 'the edge reconnected to the new cloudcore',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
  }, 120_000);

  it('reset stops edgecore and cloudcore and removes what they wrote', async () => {
    const edgePid = await pidOf('edgecore');
    const cloudPid = await pidOf('cloudcore');
    const r = await keadm('reset', ...edgeDirs());
    expect(r.code).toBe(0);
    expect(r.out).toContain(`stopped cloudcore (process ${cloudPid})`);
    expect(r.out).toContain(`stopped edgecore (process ${edgePid})`);
    expect(alive(edgePid)).toBe(false);
    expect(alive(cloudPid)).toBe(false);
    for (const name of ['casecret', 'cloudcoresecret', 'tokensecret', 'admissioncasecret'])
      expect(await secret(name)).toBeUndefined();
    expect(await conversion('devices.devices.kubeedge.io')).toBe('None'); // no dead webhook left
    for (const p of [
      'kubeedge/config',
      'kubeedge/certs',
      'kubeedge/ca',
      'kubeedge/bootstrap-edgecore.conf',
      'edge-data',
      'run/edgecore.pid',
      'run/cloudcore.pid',
    ])
      expect(existsSync(join(dir, p))).toBe(false);
  }, 60_000);
});
