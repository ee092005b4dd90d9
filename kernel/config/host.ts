/**
 * Host-derived defaults: `<localIP>` and `<hostname>` of the KubeEdge default configuration.
 */
import os from 'node:os';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A Kubernetes node name: a lower-case RFC 1123 subdomain, at most 253 characters. */
export function isValidNodeName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => label.length <= 63 && DNS1123_LABEL.test(label));
}

/** The host name, trimmed and lower-cased; `default-edge-node` if it is not a valid node name. */
export function defaultHostname(): string {
  let name = '';
  try {
    name = os.hostname().trim().toLowerCase();
  } catch {
    name = '';
  }
  return isValidNodeName(name) ? name : 'default-edge-node';
}

/**
 * The first non-internal address of the host's interfaces, IPv4 preferred (IPv6 link-local
 * addresses are skipped); `127.0.0.1` when there is none.
 */
export function localIP(): string {
  let ifaces: NodeJS.Dict<os.NetworkInterfaceInfo[]>;
  try {
    ifaces = os.networkInterfaces();
  } catch {
    return '127.0.0.1';
  }
  let v6: string | undefined;
  for (const list of Object.values(ifaces)) {
    for (const info of list ?? []) {
      if (info.internal) continue;
      if (info.family === 'IPv4') return info.address;
      if (v6 === undefined && !info.address.toLowerCase().startsWith('fe80:')) v6 = info.address;
    }
  }
  return v6 ?? '127.0.0.1';
}
