/**
 * The admission plugin in a real cloudcore kernel against a real control plane: the device CRDs
 * of crds/, the notes' v1alpha2 DeviceModel and Device applied with kubectl, read back in both
 * versions; bad devices refused with the field named.
 */
import { request } from 'node:https';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../kernel/config/index.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger, type LogLevel } from '../../kernel/log.js';
import { cloudLayout, cloudRegistry } from '../registry.js';
import { applyDeviceCrds } from '../../test/helpers/device-crds.js';
import { startControlPlane, type ControlPlane } from '../../test/peers/kube.js';
import { freePort } from '../../test/peers/util.js';
import {
  NOTES_DEVICE,
  NOTES_MODEL,
  notesDeviceV1beta1Spec,
  notesFixture,
  notesModelV1beta1Spec,
} from '../../test/helpers/notes-devices.js';
import { keptAnnotation, type KubeObject } from './convert.js';
import { DEVICE_WEBHOOK, WEBHOOK_CONFIGURATION } from './register.js';

/** What the API server adds: dropped before comparing with what was applied. */
function withoutServerFields(o: KubeObject): KubeObject {
  const { annotations, ...metadata } = o.metadata ?? {};
  for (const k of ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'namespace'])
    delete metadata[k];
  const rest = { ...(annotations ?? {}) };
  delete rest['kubectl.kubernetes.io/last-applied-configuration'];
  return { ...o, metadata: { ...metadata, ...(Object.keys(rest).length > 0 && { annotations: rest }) } };
}

describe('admission webhooks (real kube-apiserver, real cloudcore kernel)', () => {
  let cp: ControlPlane;
  let cloud: Kernel;
  let port: number;
  let yaml = '';
  const logger = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel);
  const kubectl = (args: string[], input?: string): Promise<string> =>
    cp.kubectl(args, input === undefined ? {} : { input });
  const getJson = async (what: string): Promise<KubeObject> =>
    JSON.parse(await kubectl(['get', what, '-o', 'json'])) as KubeObject;

  beforeAll(async () => {
    cp = await startControlPlane();
    await applyDeviceCrds(cp);
    port = await freePort();
    yaml = `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${cp.cloudcoreKubeconfigPath}
modules:
  cloudHub: {enable: false}
  edgeController: {enable: false}
  syncController: {enable: false}
  admission: {enable: true, address: 127.0.0.1, port: ${port}}
`;
    cloud = new Kernel({
      config: parseConfig(cloudLayout, yaml, 'cloudcore.yaml'),
      registry: cloudRegistry,
      logger,
    });
    await cloud.start(); // returns once kube-apiserver converts through the webhook
  }, 240_000);

  afterAll(async () => {
    await cloud?.stop();
    await cp?.stop();
  });

  it('writes its URL and CA into the device CRDs and its ValidatingWebhookConfiguration', async () => {
    for (const crd of ['devices.devices.kubeedge.io', 'devicemodels.devices.kubeedge.io']) {
      const got = (await getJson(`crd/${crd}`)) as {
        spec?: {
          conversion?: {
            strategy?: string;
            webhook?: { clientConfig?: { url?: string; caBundle?: string } };
          };
        };
      };
      expect(got.spec?.conversion?.strategy).toBe('Webhook');
      expect(got.spec?.conversion?.webhook?.clientConfig?.url).toBe(`https://127.0.0.1:${port}/convert`);
      expect(got.spec?.conversion?.webhook?.clientConfig?.caBundle).toBeTruthy();
    }
    const vwc = (await getJson(`validatingwebhookconfiguration/${WEBHOOK_CONFIGURATION}`)) as {
      webhooks?: { clientConfig?: { url?: string } }[];
    };
    expect(vwc.webhooks?.[0]?.clientConfig?.url).toBe(`https://127.0.0.1:${port}/validate`);
    // the CA is kept in a Secret, for the next start
    await kubectl(['get', 'secret', '-n', 'kubeedge', 'admissioncasecret']);
  });

  it("kubectl apply of the notes' v1alpha2 model and device: stored as v1beta1, read back as applied", async () => {
    await kubectl(['apply', '-f', '-'], notesFixture(NOTES_MODEL));
    await kubectl(['apply', '-f', '-'], notesFixture(NOTES_DEVICE));

    const beta = await getJson('device.v1beta1.devices.kubeedge.io/sensor-tag-instance-01');
    expect(beta.apiVersion).toBe('devices.kubeedge.io/v1beta1');
    expect(beta.spec).toMatchObject(notesDeviceV1beta1Spec);
    expect(beta.metadata?.annotations?.[keptAnnotation('v1alpha2', 'properties')]).toBeDefined();

    const model = await getJson('devicemodel.v1beta1.devices.kubeedge.io/sensor-tag-model');
    expect(model.spec?.properties).toEqual(notesModelV1beta1Spec.properties);

    const applied = { ...(parse(notesFixture(NOTES_DEVICE)) as KubeObject) };
    const alpha = withoutServerFields(
      await getJson('device.v1alpha2.devices.kubeedge.io/sensor-tag-instance-01'),
    );
    expect(alpha).toEqual(applied);
    const alphaModel = withoutServerFields(
      await getJson('devicemodel.v1alpha2.devices.kubeedge.io/sensor-tag-model'),
    );
    expect(alphaModel).toEqual({
      ...(parse(notesFixture(NOTES_MODEL)) as KubeObject),
      metadata: { name: 'sensor-tag-model' },
    });

    // applying the same file again changes nothing
    expect(await kubectl(['apply', '-f', '-'], notesFixture(NOTES_DEVICE))).toContain('unchanged');
  });

  it('a v1beta1 device is read as v1alpha2; a desired value patched in v1beta1 shows in v1alpha2', async () => {
    const device = {
      apiVersion: 'devices.kubeedge.io/v1beta1',
      kind: 'Device',
      metadata: { name: 'beta-device', namespace: 'default' },
      spec: {
        deviceModelRef: { name: 'sensor-tag-model' },
        nodeName: 'edge-1',
        protocol: { protocolName: 'modbus', configData: { ip: '127.0.0.1', port: 5020, slaveID: 1 } },
        properties: [
          {
            name: 'temperature',
            collectCycle: 2000,
            reportCycle: 2000,
            reportToCloud: true,
            desired: { value: '30' },
            visitors: {
              protocolName: 'modbus',
              configData: { register: 'HoldingRegister', offset: 2, limit: 1, scale: 1 },
            },
          },
        ],
        stateReport: { reportToCloud: true, reportCycle: 5000 },
      },
    };
    await kubectl(['apply', '-f', '-'], JSON.stringify(device));
    const alpha = await getJson('device.v1alpha2.devices.kubeedge.io/beta-device');
    expect(alpha.spec).toEqual({
      deviceModelRef: { name: 'sensor-tag-model' },
      nodeSelector: {
        nodeSelectorTerms: [{ matchExpressions: [{ key: '', operator: 'In', values: ['edge-1'] }] }],
      },
      protocol: { modbus: { slaveID: 1 }, common: { tcp: { ip: '127.0.0.1', port: 5020 } } },
      propertyVisitors: [
        {
          propertyName: 'temperature',
          collectCycle: 2_000_000_000,
          reportCycle: 2_000_000_000,
          modbus: { register: 'HoldingRegister', offset: 2, limit: 1, scale: 1 },
        },
      ],
    });
    expect(alpha.status).toEqual({ twins: [{ propertyName: 'temperature', desired: { value: '30' } }] });
    expect(alpha.metadata?.annotations?.[keptAnnotation('v1beta1', 'extensions')]).toContain('stateReport');

    await kubectl([
      'patch',
      'device.v1beta1.devices.kubeedge.io',
      'beta-device',
      '--type',
      'json',
      '-p',
      '[{"op":"replace","path":"/spec/properties/0/desired/value","value":"31"}]',
    ]);
    const patched = await getJson('device.v1alpha2.devices.kubeedge.io/beta-device');
    expect(patched.status).toEqual({ twins: [{ propertyName: 'temperature', desired: { value: '31' } }] });
    // v1beta1-only fields survive a write through v1alpha2
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({ ...patched, metadata: { ...patched.metadata, labels: { via: 'v1alpha2' } } }),
    );
    // v1.23's DeviceStatus, where reported values go, is served beside it
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'devices.kubeedge.io/v1beta1',
        kind: 'DeviceStatus',
        metadata: { name: 'beta-device', namespace: 'default' },
        spec: {},
        status: {
          twins: [{ propertyName: 'temperature', reported: { value: '29', metadata: { type: 'int' } } }],
          state: 'online',
        },
      }),
    );
    expect((await getJson('devicestatus/beta-device')).status).toMatchObject({
      twins: [{ propertyName: 'temperature', reported: { value: '29' } }],
      state: 'online',
    });
    const beta = await getJson('device.v1beta1.devices.kubeedge.io/beta-device');
    expect(beta.spec?.stateReport).toEqual({ reportToCloud: true, reportCycle: 5000 });
    expect(beta.metadata?.labels).toEqual({ via: 'v1alpha2' });
  });

  it("a v1beta1 write leaving the spec alone (deviceController's status mirror) is not sent to the webhook; a spec or a v1alpha2 status write is", async () => {
    // kube-apiserver's own count of its calls of the device webhook on updates
    const calls = async (): Promise<number> =>
      [
        ...(await cp.get('/metrics')).body.matchAll(
          /^apiserver_admission_webhook_request_total\{([^}]*)\} (\d+)/gm,
        ),
      ]
        .filter(
          ([, labels]) =>
            labels!.includes(`name="${DEVICE_WEBHOOK}"`) && labels!.includes('operation="UPDATE"'),
        )
        .reduce((n, m) => n + Number(m[2]), 0);
    const patch = (version: string, type: string, body: unknown) =>
      kubectl([
        'patch',
        `device.${version}.devices.kubeedge.io`,
        'beta-device',
        '--type',
        type,
        '-p',
        JSON.stringify(body),
      ]);
    const before = await calls();
    await patch('v1beta1', 'merge', {
      status: { state: 'online', twins: [{ propertyName: 'temperature', reported: { value: '28' } }] },
    });
    expect(await calls()).toBe(before);
    await patch('v1beta1', 'json', [
      { op: 'replace', path: '/spec/properties/0/desired/value', value: '32' },
    ]);
    expect(await calls()).toBe(before + 1);
    await patch('v1alpha2', 'json', [{ op: 'replace', path: '/status/twins/0/desired/value', value: '33' }]);
    expect(await calls()).toBe(before + 2);
    expect((await getJson('device.v1beta1.devices.kubeedge.io/beta-device')).spec).toMatchObject({
      properties: [{ desired: { value: '33' } }],
    });
  });

  it('a restart reuses the CA of the Secret: the caBundle kube-apiserver trusts does not change', async () => {
    const caBundle = async (): Promise<string | undefined> =>
      (
        (await getJson('crd/devices.devices.kubeedge.io')) as {
          spec?: { conversion?: { webhook?: { clientConfig?: { caBundle?: string } } } };
        }
      ).spec?.conversion?.webhook?.clientConfig?.caBundle;
    const before = await caBundle();
    await cloud.stop();
    cloud = new Kernel({
      config: parseConfig(cloudLayout, yaml, 'cloudcore.yaml'),
      registry: cloudRegistry,
      logger,
    });
    await cloud.start();
    expect(await caBundle()).toBe(before);
  });

  it('refuses bad devices with the field named, and keeps serving', async () => {
    const refused = async (o: object): Promise<string> => {
      const err = await kubectl(['apply', '-f', '-'], JSON.stringify(o)).then(
        () => 'accepted',
        (e: unknown) => String(e),
      );
      expect(err).toContain('denied the request');
      return err;
    };
    const beta = (name: string, spec: object): object => ({
      apiVersion: 'devices.kubeedge.io/v1beta1',
      kind: 'Device',
      metadata: { name, namespace: 'default' },
      spec,
    });
    expect(await refused(beta('no-model', { deviceModelRef: { name: 'nope' } }))).toContain(
      'spec.deviceModelRef.name: model "nope" not found in namespace "default"',
    );
    expect(
      await refused(
        beta('bad-property', {
          deviceModelRef: { name: 'sensor-tag-model' },
          properties: [{ name: 'temperature' }, { name: 'foo' }],
        }),
      ),
    ).toContain('spec.properties[1].name: property "foo" is not in model "sensor-tag-model"');
    expect(
      await refused({
        apiVersion: 'devices.kubeedge.io/v1alpha2',
        kind: 'Device',
        metadata: { name: 'bad-value', namespace: 'default' },
        spec: {
          deviceModelRef: { name: 'sensor-tag-model' },
          propertyVisitors: [
            {
              propertyName: 'temperature',
              collectCycle: 1500,
              modbus: { register: 'CoilRegister', offset: 0, limit: 1 },
            },
          ],
        },
        status: {
          twins: [{ propertyName: 'temperature', desired: { value: 'hot' }, reported: { value: '0' } }],
        },
      }),
    ).toMatch(
      /spec\.propertyVisitors\[0\]\.collectCycle: 1500 ns is not a whole number.*status\.twins\[0\]\.desired\.value: "hot" is not a valid INT value/,
    );
    await expect(kubectl(['get', 'device', 'no-model', 'bad-property', 'bad-value'])).rejects.toThrow(
      /not found/,
    );
    expect(
      await refused({
        apiVersion: 'devices.kubeedge.io/v1beta1',
        kind: 'DeviceModel',
        metadata: { name: 'bad-model', namespace: 'default' },
        spec: {
          properties: [
            { name: 't', type: 'INT', accessMode: 'ReadOnly', maximum: 'high' },
            { name: 't', type: 'STRING', accessMode: 'ReadOnly' },
          ],
        },
      }),
    ).toMatch(
      /spec\.properties\[0\]\.maximum: "high" is not a valid INT bound.*spec\.properties\[1\]\.name: property "t" is named twice/,
    );

    // a request that is no review: 400 naming what was expected; the plugin keeps running
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/convert', method: 'POST', rejectUnauthorized: false },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end('{"kind":"ConversionReview"}');
    });
    expect(answer).toEqual({
      status: 400,
      body: '/convert: expected a ConversionReview with request.uid, request.desiredAPIVersion and request.objects\n',
    });
    expect(cloud.status().find((p) => p.name === 'admission')?.state).toBe('running');
    expect((await getJson('device.v1alpha2.devices.kubeedge.io/sensor-tag-instance-01')).apiVersion).toBe(
      'devices.kubeedge.io/v1alpha2',
    );
  });
});
