/**
 * The two-way strategic-merge patch kubelet sends for a status (what `strategicpatch.
 * CreateTwoWayMergePatch` produces for the fields edged writes): changed scalars, `null` for removed
 * keys, lists with a merge key (conditions by `type`, addresses by `type`, podIPs/hostIPs by `ip`)
 * diffed element by element with a `$setElementOrder/<list>` directive, other lists replaced whole.
 * Object keys come out sorted, as Go marshals maps.
 */

/** Merge keys of the lists in PodStatus and NodeStatus that use patchStrategy "merge". */
const MERGE_KEYS: Record<string, string> = {
  conditions: 'type',
  addresses: 'type',
  podIPs: 'ip',
  hostIPs: 'ip',
};

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObject(v: unknown): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

/** A deep copy with object keys sorted (Go's map marshalling order). */
export function sortKeys<T>(v: T): T {
  if (Array.isArray(v)) return v.map((x: unknown) => sortKeys(x)) as T;
  if (isObject(v)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      if (v[k] !== undefined) out[k] = sortKeys(v[k]);
    }
    return out as T;
  }
  return v;
}

/** Diff of two objects; undefined when equal. */
export function diffObject(
  oldV: Record<string, unknown>,
  newV: Record<string, unknown>,
): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(oldV)) {
    if (oldV[k] !== undefined && (newV[k] === undefined || newV[k] === null) && oldV[k] !== null)
      out[k] = null;
  }
  for (const k of Object.keys(newV)) {
    const n = newV[k];
    const o = oldV[k];
    if (n === undefined) continue;
    if (equal(o, n)) continue;
    const mergeKey = MERGE_KEYS[k];
    if (mergeKey && Array.isArray(n) && Array.isArray(o) && o.length > 0) {
      const items = diffMergeList(o as Record<string, unknown>[], n as Record<string, unknown>[], mergeKey);
      out[`$setElementOrder/${k}`] = n.map((x) => ({ [mergeKey]: (x as Record<string, unknown>)[mergeKey] }));
      if (items.length > 0) out[k] = items;
      continue;
    }
    if (isObject(n) && isObject(o)) {
      const d = diffObject(o, n);
      if (d) out[k] = d;
      continue;
    }
    out[k] = n;
  }
  return Object.keys(out).length > 0 ? sortKeys(out) : undefined;
}

function diffMergeList(
  oldList: Record<string, unknown>[],
  newList: Record<string, unknown>[],
  key: string,
): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const n of newList) {
    const o = oldList.find((x) => x[key] === n[key]);
    if (!o) {
      out.push(n);
      continue;
    }
    const d = diffObject(o, n);
    if (d) out.push({ ...d, [key]: n[key] });
  }
  for (const o of oldList) {
    if (!newList.some((n) => n[key] === o[key])) out.push({ $patch: 'delete', [key]: o[key] });
  }
  return out.map((x) => sortKeys(x));
}
