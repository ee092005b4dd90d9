/**
 * The webhooks' HTTPS server: `POST /convert` answers an apiextensions.k8s.io/v1 ConversionReview,
 * `POST /validate` an admission.k8s.io/v1 AdmissionReview of a Device or DeviceModel. A request that is not a
 * review gets 400 with what was expected; the server keeps serving.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorText, type Logger } from '../../kernel/index.js';
import { convertObject, type KubeObject } from './convert.js';
import { validateDevice, validateModel, type ModelLookup } from './validate.js';

export const CONVERT_PATH = '/convert';
export const VALIDATE_PATH = '/validate';
/** A ConversionReview of a large list is large: kube-apiserver's own request limit. */
const MAX_BODY_BYTES = 64 << 20;

/** Thrown for a body that is not the review expected: answered 400. */
class BadRequest extends Error {}

interface ConversionReview {
  apiVersion?: string;
  kind?: string;
  request?: { uid?: string; desiredAPIVersion?: string; objects?: KubeObject[] };
}

interface AdmissionReview {
  apiVersion?: string;
  kind?: string;
  request?: {
    uid?: string;
    kind?: { group?: string; version?: string; kind?: string };
    operation?: string;
    namespace?: string;
    object?: KubeObject;
    oldObject?: KubeObject | null;
  };
}

/** Answers one ConversionReview (a failed conversion is a `Failure` result, as the API expects). */
function convertReview(review: ConversionReview, log: Logger): object {
  const req = review.request;
  if (
    typeof req?.uid !== 'string' ||
    typeof req.desiredAPIVersion !== 'string' ||
    !Array.isArray(req.objects)
  )
    throw new BadRequest(
      'expected a ConversionReview with request.uid, request.desiredAPIVersion and request.objects',
    );
  let response: object;
  try {
    const convertedObjects = req.objects.map((o) => convertObject(o, req.desiredAPIVersion!));
    response = { uid: req.uid, convertedObjects, result: { status: 'Success' } };
  } catch (err) {
    log.warn({ err: errorText(err), to: req.desiredAPIVersion }, 'admission: conversion refused');
    response = { uid: req.uid, convertedObjects: [], result: { status: 'Failure', message: errorText(err) } };
  }
  return { apiVersion: 'apiextensions.k8s.io/v1', kind: 'ConversionReview', response };
}

/** Answers one AdmissionReview of a Device or a DeviceModel. */
async function validateReview(review: AdmissionReview, lookup: ModelLookup, log: Logger): Promise<object> {
  const req = review.request;
  if (typeof req?.uid !== 'string' || req.object === undefined)
    throw new BadRequest('expected an AdmissionReview with request.uid and request.object');
  let problems: string[];
  try {
    const object = { ...req.object, metadata: { ...req.object.metadata, namespace: req.namespace } };
    problems =
      req.kind?.kind === 'DeviceModel'
        ? validateModel(object, req.oldObject ?? undefined)
        : await validateDevice(object, req.oldObject ?? undefined, lookup);
  } catch (err) {
    problems = [`cannot check the device: ${errorText(err)}`];
  }
  if (problems.length > 0) {
    log.info(
      {
        kind: req.kind?.kind,
        object: `${req.namespace ?? ''}/${String(req.object.metadata?.name ?? '')}`,
        problems,
      },
      'admission: object refused',
    );
  }
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response:
      problems.length === 0
        ? { uid: req.uid, allowed: true }
        : {
            uid: req.uid,
            allowed: false,
            status: { code: 422, reason: 'Invalid', message: problems.join('; ') },
          },
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new BadRequest(`body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Reviews answered, by webhook. */
export interface WebhookStats {
  conversions: number;
  validations: number;
}

/** The HTTPS server of both webhooks (not listening yet) and its counters. */
export function createWebhookServer(
  tls: { cert: string; key: string },
  lookup: ModelLookup,
  log: Logger,
): { server: Server; stats: WebhookStats } {
  const stats: WebhookStats = { conversions: 0, validations: 0 };
  const answer = (res: ServerResponse, status: number, body: string, type: string): void => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };
  const serve = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'POST' || (path !== CONVERT_PATH && path !== VALIDATE_PATH)) {
      answer(res, 404, `expected POST ${CONVERT_PATH} or POST ${VALIDATE_PATH}\n`, 'text/plain');
      return;
    }
    try {
      let review: unknown;
      try {
        review = JSON.parse(await readBody(req));
      } catch (err) {
        throw err instanceof BadRequest ? err : new BadRequest(`body is not JSON: ${errorText(err)}`);
      }
      const out =
        path === CONVERT_PATH
          ? convertReview(review as ConversionReview, log)
          : await validateReview(review as AdmissionReview, lookup, log);
      stats[path === CONVERT_PATH ? 'conversions' : 'validations']++;
      answer(res, 200, JSON.stringify(out), 'application/json');
    } catch (err) {
      if (!(err instanceof BadRequest)) log.error({ err: errorText(err), path }, 'admission: request failed');
      answer(res, err instanceof BadRequest ? 400 : 500, `${path}: ${errorText(err)}\n`, 'text/plain');
    }
  };
  const server = createServer({ ...tls, minVersion: 'TLSv1.2' }, (req, res) => void serve(req, res));
  return { server, stats };
}
