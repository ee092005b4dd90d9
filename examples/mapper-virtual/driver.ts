/**
 * A virtual device for the mapper SDK: every property is a number that drifts randomly around a
 * base value, and a written (desired) value is then read back as it is. It is the whole protocol
 * code of a mapper: connect, read property, write property.
 *
 * Device `protocol.configData`: `{ seed?: number, failConnect?: boolean }`.
 * Property `visitors.configData`: `{ base: number, jitter?: number }`.
 */
import {
  MapperConfigError,
  type DeviceHandle,
  type DeviceSpec,
  type ProtocolDriver,
} from '../../sdk/mapper/index.js';

/** Deterministic pseudo-random numbers (mulberry32), so tests can predict nothing but the range. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function createVirtualDriver(): ProtocolDriver {
  // What was written to a device outlives a handle: on an update the SDK makes a new handle for the
  // device before it closes the old one, and the device keeps its values.
  const written = new Map<string, { values: Map<string, number>; handles: number }>();
  return {
    protocol: 'virtual',
    createDevice(spec: DeviceSpec): DeviceHandle {
      const base = new Map<string, number>();
      const jitter = new Map<string, number>();
      for (const p of spec.properties) {
        const b = Number(p.visitor.base ?? 0);
        if (!Number.isFinite(b))
          throw new MapperConfigError(
            `device ${spec.id} property ${p.name}: visitors.configData.base: expected a number`,
          );
        base.set(p.name, b);
        jitter.set(p.name, Number(p.visitor.jitter ?? 1));
      }
      const device = written.get(spec.id) ?? { values: new Map<string, number>(), handles: 0 };
      device.handles++;
      written.set(spec.id, device);
      const next = random(Number(spec.protocol.seed ?? 1));
      let connected = false;
      let closed = false;
      return {
        async connect() {
          if (spec.protocol.failConnect === true) throw new Error('virtual device refuses to connect');
          connected = true;
        },
        async readProperty(p) {
          if (!connected) throw new Error('not connected');
          const w = device.values.get(p.name);
          const value = w ?? (base.get(p.name) ?? 0) + (next() * 2 - 1) * (jitter.get(p.name) ?? 0);
          return p.type === 'int' ? String(Math.round(value)) : value.toFixed(2);
        },
        async writeProperty(p, value) {
          const n = Number(value);
          if (!Number.isFinite(n)) throw new Error(`expected a number, got ${JSON.stringify(value)}`);
          device.values.set(p.name, n);
        },
        async close() {
          if (closed) return;
          closed = true;
          if (--device.handles === 0) written.delete(spec.id);
        },
      };
    },
  };
}
