/**
 * The Services and Endpoints this edge stores, as edgeMesh sees them: what a service name resolves
 * to and which ready endpoint a service port reaches. Fed by metaManager's messages (and its stored
 * list at start); nothing here does I/O.
 */
import type { MeshResourceType } from '../../protocol/index.js';

export interface ServicePort {
  name?: string;
  port: number;
  protocol?: string;
}

export interface Service {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: { type?: string; clusterIP?: string; externalName?: string; ports?: ServicePort[] };
}

export interface Endpoints {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  subsets?: {
    addresses?: { ip: string }[];
    ports?: { name?: string; port: number; protocol?: string }[];
  }[];
}

/** A service port the proxy serves: `<ns>/<name>` and the port's name (endpoints match by name). */
export interface Listener {
  key: string;
  port: number;
  portName: string;
}

export interface Backend {
  ip: string;
  port: number;
}

const keyOf = (o: { metadata?: { name?: string; namespace?: string } }): string =>
  `${o.metadata?.namespace ?? 'default'}/${o.metadata?.name ?? ''}`;

/** resourceVersions are opaque, but etcd's are integers: an older one is never applied over a newer. */
function older(incoming: string | undefined, current: string | undefined): boolean {
  if (incoming === undefined || current === undefined) return false;
  const a = Number(incoming);
  const b = Number(current);
  return Number.isSafeInteger(a) && Number.isSafeInteger(b) && a < b;
}

export class Catalog {
  private readonly services = new Map<string, Service>();
  private readonly endpoints = new Map<string, Endpoints>();

  /** An insert/update/delete of a Service or Endpoints; false when it changes nothing (an older version). */
  apply(operation: string, type: MeshResourceType, obj: Service | Endpoints): boolean {
    const map: Map<string, Service | Endpoints> = type === 'service' ? this.services : this.endpoints;
    const key = keyOf(obj);
    if (older(obj.metadata?.resourceVersion, map.get(key)?.metadata?.resourceVersion)) return false;
    if (operation === 'delete') return map.delete(key);
    map.set(key, obj);
    return true;
  }

  service(namespace: string, name: string): Service | undefined {
    return this.services.get(`${namespace}/${name}`);
  }

  get size(): { services: number; endpoints: number } {
    return { services: this.services.size, endpoints: this.endpoints.size };
  }

  /** The ready addresses of a service port (Endpoints name their ports as the Service does). */
  backends(key: string, portName: string): Backend[] {
    const out: Backend[] = [];
    for (const subset of this.endpoints.get(key)?.subsets ?? []) {
      const port = subset.ports?.find((p) => (p.name ?? '') === portName && (p.protocol ?? 'TCP') === 'TCP');
      if (!port) continue;
      for (const a of subset.addresses ?? []) out.push({ ip: a.ip, port: port.port });
    }
    return out;
  }

  /** Whether any port of the service has a ready endpoint. */
  hasBackends(namespace: string, name: string): boolean {
    const svc = this.service(namespace, name);
    const key = `${namespace}/${name}`;
    return (svc?.spec?.ports ?? []).some((p) => this.backends(key, p.name ?? '').length > 0);
  }

  /**
   * The TCP service ports to listen on, one service per port number: the first service stored
   * keeps a port, the others are returned as conflicts (they share one listen address).
   */
  listeners(): { listeners: Map<number, Listener>; conflicts: Listener[] } {
    const listeners = new Map<number, Listener>();
    const conflicts: Listener[] = [];
    for (const [key, svc] of this.services) {
      if (svc.spec?.type === 'ExternalName') continue;
      for (const p of svc.spec?.ports ?? []) {
        if ((p.protocol ?? 'TCP') !== 'TCP') continue;
        const l = { key, port: p.port, portName: p.name ?? '' };
        if (listeners.has(p.port)) conflicts.push(l);
        else listeners.set(p.port, l);
      }
    }
    return { listeners, conflicts };
  }
}
