/**
 * The device CRDs' conversion webhook (issue 13: conversions/s and p99 per object): the
 * conversion function alone on the notes' v1alpha2 Device (to v1beta1 and back, as a write and a
 * read through v1alpha2 do), then ConversionReviews over HTTPS to the plugin's server on
 * loopback, one object per review (latency) and 100 per review (a list read: objects/s).
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { parse } from 'yaml';
import { createLogger } from '../../kernel/log.js';
import { convertObject, type KubeObject } from '../../plugins/admission/convert.js';
import { certPem, createCa, createServingCert, keyPem } from '../../plugins/admission/pki.js';
import { createWebhookServer } from '../../plugins/admission/server.js';
import { latencyFigures, round, type Figure } from './report.js';
import { DevicesV1alpha2, DevicesV1beta1 } from '../../protocol/index.js';

const OBJECTS = 20_000;
const REVIEWS = 2_000;
const LIST_REVIEWS = 100;
const LIST_SIZE = 100;

function post(agent: Agent, port: number, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/convert',
        method: 'POST',
        agent,
        headers: { 'Content-Type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          res.statusCode === 200 ? resolve(text) : reject(new Error(`${res.statusCode}: ${text}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const review = (objects: KubeObject[], to: string): string =>
  JSON.stringify({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'ConversionReview',
    request: { uid: 'bench', desiredAPIVersion: to, objects },
  });

export async function conversionBench(): Promise<Figure[]> {
  const alpha = parse(
    readFileSync('test/fixtures/notes/device-instance-v1alpha2.yaml', 'utf8'),
  ) as KubeObject;
  alpha.metadata = { ...alpha.metadata, namespace: 'default' };
  const beta = convertObject(alpha, DevicesV1beta1);

  // the function alone: each sample one object, alternately up (write) and down (read)
  const samples: number[] = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < OBJECTS; i++) {
    const s = process.hrtime.bigint();
    convertObject(i % 2 === 0 ? alpha : beta, i % 2 === 0 ? DevicesV1beta1 : DevicesV1alpha2);
    samples.push(Number(process.hrtime.bigint() - s));
  }
  const fnRate = OBJECTS / (Number(process.hrtime.bigint() - t0) / 1e9);

  // over HTTPS, as kube-apiserver calls it
  const ca = await createCa();
  const serving = await createServingCert(ca, '127.0.0.1');
  const { server } = createWebhookServer(
    { cert: certPem(serving.cert), key: keyPem(serving.key) },
    () => Promise.resolve(undefined),
    createLogger('silent'),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: certPem(ca.cert) });
  const one = review([beta], DevicesV1alpha2);
  const httpSamples: number[] = [];
  try {
    for (let i = 0; i < 50; i++) await post(agent, port, one); // warm up
    for (let i = 0; i < REVIEWS; i++) {
      const s = process.hrtime.bigint();
      await post(agent, port, one);
      httpSamples.push(Number(process.hrtime.bigint() - s));
    }
    const list = review(
      Array.from({ length: LIST_SIZE }, () => beta),
      DevicesV1alpha2,
    );
    const l0 = process.hrtime.bigint();
    for (let i = 0; i < LIST_REVIEWS; i++) await post(agent, port, list);
    const listRate = (LIST_REVIEWS * LIST_SIZE) / (Number(process.hrtime.bigint() - l0) / 1e9);
    return [
      { name: 'conversion_function_objects_per_s', value: round(fnRate), unit: 'obj/s' },
      ...latencyFigures('conversion_function_per_object', samples, 'us'),
      ...latencyFigures('conversion_webhook_review_1_object', httpSamples, 'ms'),
      { name: 'conversion_webhook_list_objects_per_s', value: round(listRate), unit: 'obj/s' },
    ];
  } finally {
    agent.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
}
