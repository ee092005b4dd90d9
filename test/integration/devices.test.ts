/**
 * Devices from kubectl, end to end over real peers: a control plane with KubeEdge's device CRDs, a
 * cloud kernel (cloudHub, deviceController, syncController and admission on the cloudcore
 * identity), an edge kernel (edgeHub, metaManager, eventBus, deviceTwin + dmiserver,
 * mapper-modbus) over the real link, and the pymodbus simulator over Modbus TCP.
 *
 * The notes' device section runs twice on the same stack, once per version
 * (`VERSIONS`): the fixtures' v1beta1 translation of the notes
 * (`test/fixtures/devices/*-v1beta1.yaml`), then the notes' v1alpha2 files as written (the model
 * `test/fixtures/notes/device-model-v1alpha2.yaml`, the device
 * `test/fixtures/devices/device-instance-v1alpha2.yaml`: Modbus TCP instead of the serial port),
 * read, patched and deleted in v1alpha2 through the admission plugin's conversion webhook
 * (`__NODE__`/`__PORT__` filled in).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createChannel, createClient, type Channel } from 'nice-grpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../kernel/config/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger, type LogLevel } from '../../kernel/log.js';
import { cloudLayout, cloudRegistry, edgeLayout, edgeRegistry } from '../../plugins/registry.js';
import { DeviceMapperServiceDefinition } from '../../proto/gen/dmi/v1beta1/api.js';
import { applyDeviceCrds } from '../helpers/device-crds.js';
import { prepareLink } from '../helpers/link.js';
import { edgeNode } from '../helpers/pod.js';
import { startControlPlane, type ControlPlane } from '../peers/kube.js';
import { startModbusTcp, type ModbusTcpPeer } from '../peers/modbus.js';
import { cleanup, freePort, tempDir, waitFor } from '../peers/util.js';

afterAll(cleanup);

const logger = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel);
const NODE = 'device-edge-1';
const DEVICE = 'sensor-tag-instance-01';

/** One version of the notes' device: its files, the kind to read it as, its desired-value patch. */
interface Version {
  name: string;
  manifests: string[];
  /** `kubectl get`/`patch`/`delete` of the Device in this version */
  kind: string;
  /** `kubectl patch` arguments setting the desired temperature to `v`, given the Device as read */
  desiredPatch(device: DeviceObj, v: string): string[];
}
const jsonPatch = (kind: string, ops: unknown[]): string[] => [
  kind,
  DEVICE,
  '--type=json',
  '-p',
  JSON.stringify(ops),
];
const VERSIONS: Version[] = [
  {
    name: 'v1beta1',
    manifests: [
      'test/fixtures/devices/device-model-v1beta1.yaml',
      'test/fixtures/devices/device-instance-v1beta1.yaml',
    ],
    kind: 'device',
    desiredPatch: (_d, value) =>
      jsonPatch('device', [{ op: 'replace', path: '/spec/properties/0/desired/value', value }]),
  },
  {
    name: 'v1alpha2 (the notes as written)',
    manifests: [
      'test/fixtures/notes/device-model-v1alpha2.yaml',
      'test/fixtures/devices/device-instance-v1alpha2.yaml',
    ],
    kind: 'device.v1alpha2.devices.kubeedge.io',
    // the twin of temperature where it is in the list the user reads
    desiredPatch: (d, value) => {
      const i = d.status?.twins?.findIndex((t) => t.propertyName === 'temperature') ?? -1;
      return jsonPatch('device.v1alpha2.devices.kubeedge.io', [
        { op: 'test', path: `/status/twins/${i}/propertyName`, value: 'temperature' },
        { op: 'replace', path: `/status/twins/${i}/desired/value`, value },
      ]);
    },
  },
];
const SYNC_CRDS = ['crds/objectsync_v1alpha1.yaml', 'crds/cluster_objectsync_v1alpha1.yaml'];

interface Twin {
  propertyName: string;
  reported?: { value: string; metadata?: Record<string, string> };
  observedDesired?: { value: string };
}
interface DeviceObj {
  apiVersion: string;
  metadata: { name: string; uid: string; ownerReferences?: { kind: string; name: string; uid: string }[] };
  status?: { twins?: Twin[]; state?: string; lastOnlineTime?: string };
}

/** A v1beta1 Device on holding register `offset` of the simulator (INT, ReadWrite), desired `value`. */
function holdingDevice(name: string, port: number, offset: number, value: string): string {
  return JSON.stringify({
    apiVersion: 'devices.kubeedge.io/v1beta1',
    kind: 'Device',
    metadata: { name, namespace: 'default' },
    spec: {
      deviceModelRef: { name: 'setpoint-model' },
      nodeName: NODE,
      protocol: { protocolName: 'modbus', configData: { ip: '127.0.0.1', port, slaveID: 1 } },
      properties: [
        {
          name: 'setpoint',
          collectCycle: 200,
          reportToCloud: true,
          desired: { value },
          visitors: { protocolName: 'modbus', configData: { register: 'HoldingRegister', offset, limit: 1 } },
        },
      ],
    },
  });
}
const SETPOINT_MODEL = JSON.stringify({
  apiVersion: 'devices.kubeedge.io/v1beta1',
  kind: 'DeviceModel',
  metadata: { name: 'setpoint-model', namespace: 'default' },
  spec: { protocol: 'modbus', properties: [{ name: 'setpoint', type: 'INT', accessMode: 'ReadWrite' }] },
});

describe('deviceController: kubectl -> edge -> mapper-modbus -> simulator, and reported values back', () => {
  let cp: ControlPlane;
  let sim: ModbusTcpPeer;
  let cloud: Kernel | undefined;
  let edge: Kernel | undefined;
  let edgeYaml = '';
  let cloudYaml = '';
  let dir = '';
  let mapperChannel: Channel | undefined;

  const startCloud = async (): Promise<void> => {
    cloud = new Kernel({
      config: parseConfig(cloudLayout, cloudYaml, 'cloudcore.yaml'),
      registry: cloudRegistry,
      logger,
    });
    await cloud.start();
  };
  const startEdge = async (): Promise<void> => {
    edge = new Kernel({
      config: parseConfig(edgeLayout, edgeYaml, join(dir, 'edge/edgecore.yaml')),
      registry: edgeRegistry,
      logger,
    });
    await edge.start();
  };
  const kubectlJson = async <T>(args: string[]): Promise<T | undefined> => {
    try {
      return JSON.parse(await cp.kubectl(['get', ...args, '-o', 'json'])) as T;
    } catch (err) {
      if (String(err).includes('NotFound')) return undefined;
      throw err;
    }
  };
  const reported = async (kind: string, name: string, prop: string): Promise<string | undefined> =>
    (await kubectlJson<DeviceObj>([kind, name]))?.status?.twins?.find((t) => t.propertyName === prop)
      ?.reported?.value;
  /** The edge's database, read alongside the running edge (WAL). */
  const edgeRows = (sql: string): string[] => {
    const db = new Database(join(dir, 'edge/edgecore.db'), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare(sql).all() as { v: string }[]).map((r) => r.v).sort();
    } finally {
      db.close();
    }
  };
  const edgeDevices = (): string[] => edgeRows('SELECT id AS v FROM device');
  const storedDevices = (): string[] => edgeRows("SELECT key AS v FROM meta WHERE type = 'device'");
  /** The mapper's own view: GetDevice answers NOT_FOUND once it stopped and forgot a device. */
  const mapperHas = async (name: string): Promise<boolean> => {
    mapperChannel ??= createChannel(`unix://${join(dir, 'modbus.sock')}`);
    const client = createClient(DeviceMapperServiceDefinition, mapperChannel);
    try {
      await client.getDevice({ deviceName: name, deviceNamespace: 'default' });
      return true;
    } catch (err) {
      if (String(err).includes('NOT_FOUND')) return false;
      throw err;
    }
  };

  beforeAll(async () => {
    cp = await startControlPlane();
    await applyDeviceCrds(cp);
    for (const f of SYNC_CRDS) await cp.kubectl(['apply', '-f', f]);
    await cp.waitForCrds([
      'objectsyncs.reliablesyncs.kubeedge.io',
      'clusterobjectsyncs.reliablesyncs.kubeedge.io',
    ]);
    // the edge's Node (no kubelet here): syncController keeps the records of existing nodes only
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify(edgeNode(NODE)),
    });
    // coil 2 (temperature) off, discrete input 3 (temperature-enable) on, holding registers 10-12
    sim = await startModbusTcp({
      coils: { 2: 0 },
      discreteInputs: { 3: 1 },
      holdingRegisters: { 10: 0, 11: 0, 12: 0 },
    });
    dir = await tempDir('devices-it');
    const link = await prepareLink(dir);
    cloudYaml = `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${cp.cloudcoreKubeconfigPath}
modules:
  edgeController: {enable: false}
  deviceController: {enable: true}
  syncController: {enable: true}
  admission: {enable: true, address: 127.0.0.1, port: ${await freePort()}}
${link.cloudHub}`;
    await startCloud();
    const mqttPort = await freePort();
    edgeYaml = `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ${join(dir, 'edge/edgecore.db')}
modules:
  edged: {enable: false, hostnameOverride: ${NODE}}
  metaManager: {enable: true}
  eventBus: {enable: true, mqttMode: 0, mqttServerInternal: "tcp://127.0.0.1:${mqttPort}"}
  deviceTwin: {enable: true, dmiSockPath: ${JSON.stringify(dir + '/')}}
  mapperModbus: {enable: true, socketPath: ${JSON.stringify(join(dir, 'modbus.sock'))}, reconnectInitialMs: 200}
${link.edgeHub()}`;
    await startEdge();
  }, 240_000);

  afterAll(async () => {
    mapperChannel?.close();
    await edge?.stop();
    await cloud?.stop();
    await sim?.stop();
    await cp?.stop();
  });

  for (const v of VERSIONS) {
    describe(`the notes' device in ${v.name}`, () => {
      it('kubectl apply model + device: the mapper reads the registers, kubectl get device shows the reported values', async () => {
        for (const f of v.manifests) {
          const yaml = readFileSync(f, 'utf8')
            .replaceAll('__NODE__', NODE)
            .replaceAll('__PORT__', String(sim.port));
          await cp.kubectl(['apply', '-f', '-'], { input: yaml });
        }
        // the desired value 1 reached the coil; the mapper's values reach the Device (as read in
        // this version: the notes' own reported 10 replaced) and its DeviceStatus
        await waitFor(async () => (await sim.read('coils', 2))[0] === 1, {
          what: 'desired 1 in coil 2',
          timeoutMs: 30_000,
        });
        await waitFor(async () => (await reported(v.kind, DEVICE, 'temperature')) === '1', {
          what: `reported temperature 1 in kubectl get ${v.kind}`,
          timeoutMs: 30_000,
        });
        await waitFor(async () => (await reported(v.kind, DEVICE, 'temperature-enable')) === '1', {
          what: `reported temperature-enable 1 in kubectl get ${v.kind}`,
        });
        await waitFor(async () => (await reported('devicestatus', DEVICE, 'temperature')) === '1', {
          what: 'reported temperature in the DeviceStatus',
        });
        const device = await kubectlJson<DeviceObj>([v.kind, DEVICE]);
        expect(device?.apiVersion).toBe(
          v.kind === 'device' ? 'devices.kubeedge.io/v1beta1' : 'devices.kubeedge.io/v1alpha2',
        );
        const status = await kubectlJson<DeviceObj>(['devicestatus', DEVICE]);
        expect(status?.metadata.ownerReferences).toEqual([
          expect.objectContaining({ kind: 'Device', name: DEVICE, uid: device?.metadata.uid }),
        ]);
        const twin = status?.status?.twins?.find((t) => t.propertyName === 'temperature');
        expect(twin?.reported?.metadata?.timestamp).toMatch(/^\d+$/);
        expect(twin?.observedDesired?.value).toBe('1');
        // the device state (mapper: online once connected)
        await waitFor(
          async () => (await kubectlJson<DeviceObj>(['devicestatus', DEVICE]))?.status?.state === 'online',
          { what: 'state online in the DeviceStatus' },
        );
        expect(edgeDevices()).toEqual([`default/${DEVICE}`]);
      });

      it('kubectl patch of a desired value of a ReadWrite property: the simulator holds it, reported back', async () => {
        const device = await kubectlJson<DeviceObj>([v.kind, DEVICE]);
        await cp.kubectl(['patch', ...v.desiredPatch(device!, '0')]);
        await waitFor(async () => (await sim.read('coils', 2))[0] === 0, { what: 'desired 0 in coil 2' });
        await waitFor(async () => (await reported(v.kind, DEVICE, 'temperature')) === '0', {
          what: 'reported temperature 0',
        });
      });

      it('kubectl delete device: the mapper stops polling it and the edge forgets it', async () => {
        expect(await mapperHas(DEVICE)).toBe(true);
        await cp.kubectl(['delete', v.kind, DEVICE]);
        await waitFor(async () => !(await mapperHas(DEVICE)), { what: 'the mapper forgot the device' });
        await waitFor(() => edgeDevices().length === 0 && storedDevices().length === 0, {
          what: 'the edge forgot the device (twin table and metaManager store)',
        });
        // the model too; and the DeviceStatus, as the garbage collector (not run here) would
        await cp.kubectl(['delete', 'devicemodel', 'sensor-tag-model']);
        await cp.kubectl(['delete', 'devicestatus', DEVICE]);
      });
    });
  }

  it('edge offline: devices created, changed and deleted meanwhile; on reconnection the edge has exactly the current set', async () => {
    await cp.kubectl(['apply', '-f', '-'], { input: SETPOINT_MODEL });
    await cp.kubectl(['apply', '-f', '-'], { input: holdingDevice('setpoint-a', sim.port, 10, '5') });
    await cp.kubectl(['apply', '-f', '-'], { input: holdingDevice('setpoint-c', sim.port, 12, '9') });
    await waitFor(async () => (await sim.read('holdingRegisters', 10, 3)).join() === '5,0,9', {
      what: 'a and c written',
      timeoutMs: 20_000,
    });
    expect(edgeDevices()).toEqual(['default/setpoint-a', 'default/setpoint-c']);

    await edge?.stop();
    edge = undefined;
    mapperChannel?.close();
    mapperChannel = undefined;
    await cp.kubectl(['apply', '-f', '-'], { input: holdingDevice('setpoint-b', sim.port, 11, '7') });
    await cp.kubectl(['apply', '-f', '-'], { input: holdingDevice('setpoint-a', sim.port, 10, '6') });
    await cp.kubectl(['delete', 'device', 'setpoint-c']);
    await startEdge();

    await waitFor(async () => (await sim.read('holdingRegisters', 10, 2)).join() === '6,7', {
      what: 'a changed and b created while offline, written',
      timeoutMs: 30_000,
    });
    const current = ['default/setpoint-a', 'default/setpoint-b'];
    await waitFor(() => edgeDevices().join() === current.join() && storedDevices().length === 2, {
      what: 'exactly a and b at the edge',
      timeoutMs: 20_000,
      details: () => `twin: ${edgeDevices().join()}; metaManager: ${storedDevices().join()}`,
    });
    expect(storedDevices()).toEqual(['default/device/setpoint-a', 'default/device/setpoint-b']);
    await waitFor(async () => !(await mapperHas('setpoint-c')), { what: 'the mapper forgot c' });
    expect(await mapperHas('setpoint-a')).toBe(true);
    expect(await mapperHas('setpoint-b')).toBe(true);
    await waitFor(async () => (await reported('device', 'setpoint-b', 'setpoint')) === '7', {
      what: 'b reported to the cloud',
    });
  });

  it('cloudcore restarted after a desired value changed and a device was deleted: the edge gets both', async () => {
    await cloud?.stop();
    cloud = undefined;
    await cp.kubectl(['apply', '-f', '-'], { input: holdingDevice('setpoint-a', sim.port, 10, '8') });
    await cp.kubectl(['delete', 'device', 'setpoint-b']);
    await startCloud();
    // the change: deviceController's replay; the delete: syncController's resync of the ObjectSync
    await waitFor(async () => (await sim.read('holdingRegisters', 10))[0] === 8, {
      what: 'a changed while cloudcore was down, written',
      timeoutMs: 30_000,
    });
    await waitFor(
      () =>
        edgeDevices().join() === 'default/setpoint-a' &&
        storedDevices().join() === 'default/device/setpoint-a',
      {
        what: 'only a at the edge',
        timeoutMs: 30_000,
        details: () => `twin: ${edgeDevices().join()}; metaManager: ${storedDevices().join()}`,
      },
    );
    await waitFor(async () => !(await mapperHas('setpoint-b')), { what: 'the mapper forgot b' });
  }, 120_000);
});
