import { KernelError } from './errors.js';

/** Namespace placeholder of cluster-scoped objects in v1.23 (`null/node/<name>`). */
export const NULL_NAMESPACE = 'null';

/** A parsed edge resource string `<namespace>/<resourceType>[/<name>]`. */
export interface Resource {
  namespace: string;
  type: string;
  /** Empty for a type-wide resource (list/query of all objects of the type). */
  name: string;
}

/**
 * Parse an edge-facing resource string as metaManager does (spec edge-modules §3.4, wire §2.6):
 * 2 segments = namespace/type, 3 or more = namespace/type/name (a name may contain "/").
 * Throws EMSG_DECODE for fewer than 2 segments or an empty type.
 */
export function parseResource(resource: string): Resource {
  const parts = resource.split('/');
  if (parts.length < 2 || !parts[1]) {
    throw new KernelError(
      'EMSG_DECODE',
      `resource "${resource}": expected "<namespace>/<resourceType>[/<name>]", got ${parts.length} segment(s)`,
    );
  }
  return { namespace: parts[0] as string, type: parts[1], name: parts.slice(2).join('/') };
}
