import { KernelError } from '../../../kernel/index.js';

/**
 * Kubernetes label and field selectors, as the query parameters `labelSelector` and
 * `fieldSelector` of list and watch. Bad syntax throws EMETA_BAD_SELECTOR (answered 400).
 */

type Requirement =
  | { key: string; op: 'eq' | 'neq'; values: [string] }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'notexists'; values: [] };

export type Selector = (labels: Record<string, string> | undefined) => boolean;

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;
const VALUE = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?$/;

function bad(text: string, why: string): never {
  throw new KernelError('EMETA_BAD_SELECTOR', `unable to parse requirement "${text}": ${why}`);
}

/** Split on commas outside parentheses. */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

function checkKey(term: string, key: string): void {
  if (!KEY.test(key)) bad(term, `invalid label key "${key}"`);
}
function checkValue(term: string, value: string): void {
  if (!VALUE.test(value) || value.length > 63) bad(term, `invalid label value "${value}"`);
}

export function parseLabelSelector(text: string | null): Selector {
  if (!text) return () => true;
  const reqs: Requirement[] = [];
  for (const term of splitTerms(text)) {
    let m: RegExpExecArray | null;
    if ((m = /^(\S+?)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term))) {
      const key = m[1] as string;
      checkKey(term, key);
      const values = (m[3] as string).split(',').map((v) => v.trim());
      for (const v of values) checkValue(term, v);
      reqs.push({ key, op: m[2] as 'in' | 'notin', values });
    } else if ((m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(term))) {
      const key = m[1] as string;
      checkKey(term, key);
      checkValue(term, m[3] as string);
      reqs.push({ key, op: m[2] === '!=' ? 'neq' : 'eq', values: [m[3] as string] });
    } else if ((m = /^!\s*(\S+)$/.exec(term))) {
      checkKey(term, m[1] as string);
      reqs.push({ key: m[1] as string, op: 'notexists', values: [] });
    } else if (KEY.test(term)) {
      reqs.push({ key: term, op: 'exists', values: [] });
    } else {
      bad(term, 'expected key, key=value, key!=value, key in (v1,v2), key notin (v1,v2) or !key');
    }
  }
  return (labels) => {
    const l = labels ?? {};
    return reqs.every((r) => {
      const has = Object.prototype.hasOwnProperty.call(l, r.key);
      const v = l[r.key];
      switch (r.op) {
        case 'eq':
          return has && v === r.values[0];
        case 'neq':
          return !has || v !== r.values[0];
        case 'in':
          return has && r.values.includes(v as string);
        case 'notin':
          return !has || !r.values.includes(v as string);
        case 'exists':
          return has;
        default:
          return !has;
      }
    });
  };
}

/** The fields a field selector may name, per resource (as kube-apiserver, for what is stored). */
function fieldValue(resource: string, obj: Record<string, unknown>, field: string): string | undefined {
  const md = (obj.metadata ?? {}) as Record<string, unknown>;
  if (field === 'metadata.name') return String(md.name ?? '');
  if (field === 'metadata.namespace') return String(md.namespace ?? '');
  if (resource === 'pods') {
    const spec = (obj.spec ?? {}) as Record<string, unknown>;
    const status = (obj.status ?? {}) as Record<string, unknown>;
    if (field === 'spec.nodeName') return String(spec.nodeName ?? '');
    if (field === 'status.phase') return String(status.phase ?? '');
    if (field === 'spec.restartPolicy') return String(spec.restartPolicy ?? '');
  }
  if (resource === 'secrets' && field === 'type') return String(obj.type ?? '');
  return undefined;
}

export type FieldSelector = ((obj: Record<string, unknown>) => boolean) & {
  /** `metadata.name=<x>` (not `name`: a function's own `name` is read-only). */
  objectName?: string;
  namespace?: string;
};

export function parseFieldSelector(text: string | null, resource: string): FieldSelector {
  if (!text) return () => true;
  const terms: { field: string; neg: boolean; value: string }[] = [];
  for (const term of splitTerms(text)) {
    const m = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) bad(term, 'expected field=value or field!=value');
    const field = m[1] as string;
    if (fieldValue(resource, { metadata: {} }, field) === undefined) {
      throw new KernelError(
        'EMETA_BAD_SELECTOR',
        `field label not supported: ${field} (${resource} accept metadata.name, metadata.namespace${resource === 'pods' ? ', spec.nodeName, status.phase, spec.restartPolicy' : ''})`,
      );
    }
    terms.push({ field, neg: m[2] === '!=', value: (m[3] as string).trim() });
  }
  const fn: FieldSelector = (obj) =>
    terms.every((t) => (fieldValue(resource, obj, t.field) === t.value) !== t.neg);
  for (const t of terms) {
    if (!t.neg && t.field === 'metadata.name') fn.objectName = t.value;
    if (!t.neg && t.field === 'metadata.namespace') fn.namespace = t.value;
  }
  return fn;
}
