import { randomUUID } from 'node:crypto';
import { KernelError } from '../errors.js';

/**
 * The beehive message, in the exact JSON form KubeEdge puts on the wire (spec wire-cloud-edge §2):
 * top-level `header`, `route`, `content`; lower-case `resourceversion`; `route`, never `router`.
 */
export interface MessageHeader {
  msg_id: string;
  parent_msg_id?: string;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  resourceversion?: string;
  sync?: boolean;
  type?: string;
}

export interface MessageRoute {
  source?: string;
  destination?: string;
  group?: string;
  operation?: string;
  resource?: string;
}

export interface Message<C = unknown> {
  header: MessageHeader;
  route: MessageRoute;
  content: C;
}

/** Operation constants of beehive's model package. */
export const Operation = {
  insert: 'insert',
  delete: 'delete',
  query: 'query',
  update: 'update',
  patch: 'patch',
  upload: 'upload',
  response: 'response',
  error: 'error',
  keepalive: 'keepalive',
} as const;

export interface NewMessageOptions {
  parentId?: string;
  resourceVersion?: string;
}

export function newMessage<C>(route: MessageRoute, content: C, options: NewMessageOptions = {}): Message<C> {
  const header: MessageHeader = { msg_id: randomUUID(), timestamp: Date.now() };
  if (options.parentId) header.parent_msg_id = options.parentId;
  if (options.resourceVersion) header.resourceversion = options.resourceVersion;
  return { header, route: { ...route }, content };
}

/**
 * KubeEdge's response helper (NewRespByMessage): fresh id, parent = request id, the request's
 * source, group and resource (not swapped), operation "response", same context type.
 */
export function newResponse<C>(request: Message, content: C): Message<C> {
  const header: MessageHeader = {
    msg_id: randomUUID(),
    parent_msg_id: request.header.msg_id,
    timestamp: Date.now(),
  };
  if (request.header.type) header.type = request.header.type;
  const route: MessageRoute = { operation: Operation.response };
  if (request.route.source !== undefined) route.source = request.route.source;
  if (request.route.group !== undefined) route.group = request.route.group;
  if (request.route.resource !== undefined) route.resource = request.route.resource;
  return { header, route, content };
}

/** KubeEdge's error helper (NewErrorMessage): operation "error", content the error text. */
export function newErrorMessage(request: Message, text: string, route: MessageRoute = {}): Message<string> {
  return {
    header: { msg_id: randomUUID(), parent_msg_id: request.header.msg_id, timestamp: Date.now() },
    route: { ...route, operation: Operation.error, resource: request.route.resource ?? '' },
    content: text,
  };
}

// ---------------------------------------------------------------------------------------------
// Encoding: the byte-for-byte form Go's encoding/json produces for model.Message.

const HEADER_KEYS = ['msg_id', 'parent_msg_id', 'timestamp', 'resourceversion', 'sync', 'type'] as const;
const ROUTE_KEYS = ['source', 'destination', 'group', 'operation', 'resource'] as const;

const HTML_UNSAFE = /[<>&\u2028\u2029]/;

/**
 * Go's encoder escapes <, > and & (and U+2028/2029) inside strings. In JSON text these characters
 * can only occur inside strings, so escaping the whole text is the same as escaping each string.
 */
function htmlSafe(json: string): string {
  return HTML_UNSAFE.test(json)
    ? json
        .replace(/</g, '\\u003c')
        .replace(/>/g, '\\u003e')
        .replace(/&/g, '\\u0026')
        .replace(/\u2028/g, '\\u2028')
        .replace(/\u2029/g, '\\u2029')
    : json;
}

function goString(value: string): string {
  return htmlSafe(JSON.stringify(value));
}

/** Content as Go encodes it: bytes as a base64 string, anything else as HTML-safe JSON. */
function goJson(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    return JSON.stringify(Buffer.from(value).toString('base64'));
  }
  return htmlSafe(JSON.stringify(value));
}

/**
 * Encode as Go does: fixed key order, omit-empty header/route fields (msg_id, timestamp, route and
 * content always present), HTML-safe escaping, byte content as base64. No trailing newline: the
 * websocket writer adds Go's "\n" itself where byte-equality with gorilla matters.
 */
export function encodeMessage(msg: Message): string {
  const h = msg.header as unknown as Record<string, unknown>;
  const header: string[] = [];
  for (const key of HEADER_KEYS) {
    const v = h[key];
    if (key === 'msg_id') header.push(`"msg_id":${goString(String(v ?? ''))}`);
    else if (key === 'timestamp') header.push(`"timestamp":${Math.trunc(Number(v ?? 0))}`);
    else if (v !== undefined && v !== '' && v !== false) header.push(`"${key}":${goJson(v)}`);
  }
  const r = msg.route as Record<string, unknown>;
  const route: string[] = [];
  for (const key of ROUTE_KEYS) {
    const v = r[key];
    if (v !== undefined && v !== '') route.push(`"${key}":${goString(String(v))}`);
  }
  return `{"header":{${header.join(',')}},"route":{${route.join(',')}},"content":${goJson(msg.content)}}`;
}

// ---------------------------------------------------------------------------------------------
// Decoding: what Go's decoder accepts (spec wire-cloud-edge §2.3): case-insensitive keys, unknown
// keys ignored, strict types. Errors name the JSON path and what was expected.

function fail(path: string, expected: string, got: unknown): never {
  const shown = got === undefined ? 'nothing' : JSON.stringify(got);
  throw new KernelError('EMSG_DECODE', `message ${path}: expected ${expected}, got ${shown}`);
}

/**
 * Go matches keys case-insensitively and the last duplicate wins, as in encoding/json. Messages
 * almost always come with lower-case keys already: then the object itself is used as it is.
 */
function lowerKeys(obj: Record<string, unknown>): Record<string, unknown> {
  let lower = true;
  for (const k in obj) {
    if (k !== k.toLowerCase()) {
      lower = false;
      break;
    }
  }
  if (lower) return obj;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[k.toLowerCase()] = v;
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Decode one wire message (a JSON text or an already parsed value). Throws EMSG_DECODE. */
export function decodeMessage(input: string | unknown): Message {
  let value: unknown = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw new KernelError('EMSG_DECODE', `message: not JSON (${(err as Error).message})`);
    }
  }
  if (!isObject(value)) fail('', 'a JSON object', value);
  const top = lowerKeys(value);
  const rawHeader = top.header ?? {};
  const rawRoute = top.route ?? {};
  if (!isObject(rawHeader)) fail('header', 'an object', rawHeader);
  if (!isObject(rawRoute)) fail('route', 'an object', rawRoute);
  const h = lowerKeys(rawHeader);
  const header: MessageHeader = { msg_id: '', timestamp: 0 };
  for (const key of ['msg_id', 'parent_msg_id', 'resourceversion', 'type'] as const) {
    const v = h[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') fail(`header.${key}`, 'a string', v);
    if (v !== '' || key === 'msg_id') header[key] = v;
  }
  const ts = h.timestamp;
  if (ts !== undefined && ts !== null) {
    if (typeof ts !== 'number' || !Number.isInteger(ts)) fail('header.timestamp', 'an integer', ts);
    header.timestamp = ts;
  }
  const sync = h.sync;
  if (sync !== undefined && sync !== null) {
    if (typeof sync !== 'boolean') fail('header.sync', 'a boolean', sync);
    if (sync) header.sync = true;
  }
  const r = lowerKeys(rawRoute);
  const route: MessageRoute = {};
  for (const key of ROUTE_KEYS) {
    const v = r[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') fail(`route.${key}`, 'a string', v);
    if (v !== '') route[key] = v;
  }
  const content = top.content;
  return { header, route, content: content === undefined ? null : content };
}

/** Parse a content that may arrive as an object or as a JSON string holding one. */
export function contentJson<T = unknown>(msg: Message): T {
  const c = msg.content;
  if (typeof c === 'string' || Buffer.isBuffer(c) || c instanceof Uint8Array) {
    const text = typeof c === 'string' ? c : Buffer.from(c).toString('utf8');
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new KernelError(
        'EMSG_DECODE',
        `message ${msg.header.msg_id} content: expected JSON, got ${JSON.stringify(text.slice(0, 80))}`,
      );
    }
  }
  return c as T;
}
