/**
 * What edgeController's two halves share: the cloud-internal resource `node/<id>/<ns>/<type>/<name>`,
 * the messages it sends to cloudHub, KubeEdge's `ObjectResp` and `ErrStatus` contents (wire §2.4).
 */
import { KubeApiError, errorText, newMessage, type Message } from '../../kernel/index.js';
import { EdgeControllerModuleName, ResourceGroup, nodeResource } from '../../protocol/index.js';

export const EdgeControllerGroup = 'edgecontroller';
/** The label that makes a Node an edge node (informer_manager.go `EdgeNode`). */
export const EdgeNodeLabel = 'node-role.kubernetes.io/edge';

/** The parts of a cloud-internal resource (messagelayer/util.go: fixed indices after split). */
export interface InternalResource {
  node: string;
  namespace: string;
  type: string;
  name: string;
}

/** `node/<id>/<ns>/<type>[/<name>]`, else undefined. */
export function parseInternal(resource: string): InternalResource | undefined {
  const parts = resource.split('/');
  if (parts.length < 4 || parts[0] !== 'node' || !parts[1] || !parts[3]) return undefined;
  return { node: parts[1], namespace: parts[2] ?? '', type: parts[3], name: parts.slice(4).join('/') };
}

/** A message from edgecontroller to one node (`node/<id>/<ns>/<type>/<name>`). */
export function toNode(
  node: string,
  operation: string,
  edgeResource: string,
  content: unknown,
  opts: { parentId?: string; resourceVersion?: string } = {},
): Message {
  return newMessage(
    {
      source: EdgeControllerModuleName,
      group: ResourceGroup,
      operation,
      resource: nodeResource(node, edgeResource),
    },
    content,
    opts,
  );
}

/** metav1.Status of a failed request, as Go encodes a `*errors.StatusError`: `{"ErrStatus": ...}`. */
export interface ErrStatus {
  ErrStatus: {
    metadata: Record<string, never>;
    status: 'Failure';
    message: string;
    reason: string;
    details?: { name?: string; group?: string; kind?: string };
    code: number;
  };
}

const REASON_BY_CODE: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
};

/** The `ErrStatus` of an error (a Kubernetes answer keeps its code, reason and message). */
export function errStatus(
  err: unknown,
  details?: { name?: string; group?: string; kind?: string },
): ErrStatus {
  if (err instanceof KubeApiError && err.statusCode > 0) {
    // KubeEdge answers NotFound with apimachinery's NewNotFound of its own resource names
    // (`lease.coordination.k8s.io "edge-1" not found`, recorded); else the API server's message
    // (KubeApiError's message is "<METHOD> <path>: <code> <Status message>").
    const message =
      err.statusCode === 404 && details?.kind !== undefined
        ? `${details.group ? `${details.kind}.${details.group}` : details.kind} "${details.name ?? ''}" not found`
        : err.message.replace(/^\S+ \S+: \d+ /, '');
    return {
      ErrStatus: {
        metadata: {},
        status: 'Failure',
        message,
        reason: err.reason ?? REASON_BY_CODE[err.statusCode] ?? 'InternalError',
        ...(details ? { details } : {}),
        code: err.statusCode,
      },
    };
  }
  return {
    ErrStatus: {
      metadata: {},
      status: 'Failure',
      message: errorText(err),
      reason: 'InternalError',
      code: 500,
    },
  };
}

/** Go's `ObjectResp` (no JSON tags: capitalised keys). */
export interface ObjectResp {
  Object: unknown;
  Err: ErrStatus | null;
}

export const isNotFound = (err: unknown): boolean => err instanceof KubeApiError && err.statusCode === 404;
