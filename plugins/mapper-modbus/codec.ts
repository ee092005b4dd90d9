/**
 * Modbus visitor and protocol configuration, decoding of read results and encoding of writes
 * (spec devices-dmi-router.md §4.3-§4.6, with the bugs the spec marks fixed; see README.md).
 */
import {
  MapperConfigError,
  type DeviceSpec,
  type PropertySpec,
  type PropertyType,
  type Scalar,
} from '../../sdk/mapper/index.js';

export type RegisterKind = 'CoilRegister' | 'DiscreteInputRegister' | 'HoldingRegister' | 'InputRegister';
const REGISTERS: readonly RegisterKind[] = [
  'CoilRegister',
  'DiscreteInputRegister',
  'HoldingRegister',
  'InputRegister',
];

export interface ModbusVisitor {
  register: RegisterKind;
  offset: number;
  limit: number;
  scale: number;
  isSwap: boolean;
  isRegisterSwap: boolean;
}

export type ModbusConnection =
  | { kind: 'tcp'; ip: string; port: number; slaveID: number; timeoutMs: number }
  | {
      kind: 'rtu';
      serialPort: string;
      baudRate: number;
      dataBits: 5 | 6 | 7 | 8;
      parity: 'none' | 'even' | 'odd';
      stopBits: 1 | 2;
      slaveID: number;
      timeoutMs: number;
      rs485: boolean;
    };

export const isBitTable = (r: RegisterKind): boolean => r === 'CoilRegister' || r === 'DiscreteInputRegister';
export const isWritable = (r: RegisterKind): boolean => r === 'CoilRegister' || r === 'HoldingRegister';

function int(v: Scalar | undefined, where: string, min: number, max: number, fallback?: number): number {
  if (v === undefined || v === '') {
    if (fallback !== undefined) return fallback;
    throw new MapperConfigError(`${where}: required (an integer ${min}..${max})`);
  }
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new MapperConfigError(`${where}: expected an integer ${min}..${max}, got ${JSON.stringify(v)}`);
  return n;
}

function bool(v: Scalar | undefined, where: string): boolean {
  if (v === undefined || v === '') return false;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 1) return true;
  if (v === 'false' || v === 0) return false;
  throw new MapperConfigError(`${where}: expected true or false, got ${JSON.stringify(v)}`);
}

/** Validates one property's `visitors.configData`. */
export function parseVisitor(device: DeviceSpec, p: PropertySpec): ModbusVisitor {
  const where = `device ${device.id} property ${p.name}: visitors.configData`;
  const v = p.visitor;
  const regText = String(v.register ?? '');
  const register = REGISTERS.find((r) => r.toLowerCase() === regText.toLowerCase());
  if (!register)
    throw new MapperConfigError(
      `${where}.register: expected one of ${REGISTERS.join(', ')}, got ${JSON.stringify(v.register ?? null)}`,
    );
  const bits = isBitTable(register);
  const offset = int(v.offset, `${where}.offset`, 0, 65535);
  const limit = int(v.limit, `${where}.limit`, 1, bits ? 2000 : 125, 1);
  if (offset + limit > 65536)
    throw new MapperConfigError(`${where}: offset ${offset} + limit ${limit} goes past address 65535`);
  let scale = v.scale === undefined || v.scale === '' ? 1 : Number(v.scale);
  if (!Number.isFinite(scale))
    throw new MapperConfigError(`${where}.scale: expected a number, got ${JSON.stringify(v.scale)}`);
  if (scale === 0) scale = 1; // KubeEdge multiplies by an omitted (0) scale: every reading 0
  if (!bits) checkTypeLimit(p.type, limit, where);
  return {
    register,
    offset,
    limit,
    scale,
    isSwap: bool(v.isSwap, `${where}.isSwap`),
    isRegisterSwap: bool(v.isRegisterSwap, `${where}.isRegisterSwap`),
  };
}

function checkTypeLimit(type: PropertyType, limit: number, where: string): void {
  if (type === 'int' && ![1, 2, 4].includes(limit))
    throw new MapperConfigError(`${where}.limit: an int property needs 1, 2 or 4 registers, got ${limit}`);
  if ((type === 'float' || type === 'double') && ![1, 2, 4].includes(limit))
    throw new MapperConfigError(
      `${where}.limit: a ${type} property needs 1 (scaled integer), 2 (float32) or 4 (float64) registers, got ${limit}`,
    );
  if (type === 'stream')
    throw new MapperConfigError(`${where}: STREAM properties cannot be read over Modbus`);
}

const PARITY: Record<string, 'none' | 'even' | 'odd'> = {
  none: 'none',
  n: 'none',
  even: 'even',
  e: 'even',
  odd: 'odd',
  o: 'odd',
};

/** Validates `spec.protocol.configData` (flat keys, spec §1.8). */
export function parseConnection(device: DeviceSpec): ModbusConnection {
  const c = device.protocol;
  const where = `device ${device.id}: protocol.configData`;
  const slaveID = int(c.slaveID, `${where}.slaveID`, 0, 255, 1);
  const timeoutMs = int(c.timeout, `${where}.timeout`, 1, 600_000, 5000);
  const serial = c.serialPort !== undefined && c.serialPort !== '' ? String(c.serialPort) : '';
  const ip = c.ip !== undefined && c.ip !== '' ? String(c.ip) : '';
  if (serial && ip)
    throw new MapperConfigError(
      `${where}: set either ip/port (Modbus TCP) or serialPort (Modbus RTU), not both`,
    );
  if (ip) return { kind: 'tcp', ip, port: int(c.port, `${where}.port`, 1, 65535, 502), slaveID, timeoutMs };
  if (!serial)
    throw new MapperConfigError(`${where}: set ip and port (Modbus TCP) or serialPort (Modbus RTU)`);
  const parityText = String(c.parity ?? 'none').toLowerCase();
  const parity = PARITY[parityText];
  if (!parity)
    throw new MapperConfigError(
      `${where}.parity: expected none, even or odd, got ${JSON.stringify(c.parity)}`,
    );
  const dataBits = int(c.dataBits, `${where}.dataBits`, 5, 8, 8) as 5 | 6 | 7 | 8;
  const stopBits = int(c.stopBits, `${where}.stopBits`, 1, 2, 1) as 1 | 2;
  return {
    kind: 'rtu',
    serialPort: serial,
    baudRate: int(c.baudRate, `${where}.baudRate`, 50, 4_000_000, 9600),
    dataBits,
    parity,
    stopBits,
    slaveID,
    timeoutMs,
    rs485: String(c.serialType ?? '').toUpperCase() === 'RS485',
  };
}

/** Register-swap (reverse the 16-bit words), then byte-swap inside each word; returns a copy. */
export function swapBytes(bytes: Uint8Array, isRegisterSwap: boolean, isSwap: boolean): Buffer {
  const b = Buffer.from(bytes);
  const words = Math.floor(b.length / 2);
  if (isRegisterSwap)
    for (let i = 0; i < Math.floor(words / 2); i++) {
      const j = words - 1 - i;
      const a0 = b[2 * i] as number;
      const a1 = b[2 * i + 1] as number;
      b[2 * i] = b[2 * j] as number;
      b[2 * i + 1] = b[2 * j + 1] as number;
      b[2 * j] = a0;
      b[2 * j + 1] = a1;
    }
  if (isSwap)
    for (let i = 0; i < words; i++) {
      const t = b[2 * i] as number;
      b[2 * i] = b[2 * i + 1] as number;
      b[2 * i + 1] = t;
    }
  return b;
}

function formatScaled(raw: number | bigint, scale: number, type: PropertyType): string {
  if (type === 'int') {
    if (scale === 1) return raw.toString();
    return Math.trunc(Number(raw) * scale).toString();
  }
  return (Number(raw) * scale).toFixed(6);
}

/** Decodes registers (the raw big-endian bytes of `limit` registers) to the property's type. */
export function decodeRegisters(bytes: Uint8Array, v: ModbusVisitor, type: PropertyType): string {
  const b = swapBytes(bytes, v.isRegisterSwap, v.isSwap);
  switch (type) {
    case 'int':
      if (b.length === 2) return formatScaled(b.readUInt16BE(0), v.scale, type);
      if (b.length === 4) return formatScaled(b.readUInt32BE(0), v.scale, type);
      if (b.length === 8) return formatScaled(b.readBigUInt64BE(0), v.scale, type);
      throw new Error(`${b.length} bytes cannot hold an int`);
    case 'float':
    case 'double':
      if (b.length === 2) return formatScaled(b.readUInt16BE(0), v.scale, type);
      if (b.length === 4) return (b.readFloatBE(0) * v.scale).toFixed(6);
      if (b.length === 8) return (b.readDoubleBE(0) * v.scale).toFixed(6);
      throw new Error(`${b.length} bytes cannot hold a ${type}`);
    case 'boolean':
      return b.some((x) => x !== 0) ? 'true' : 'false';
    case 'bytes':
      return b.toString('hex');
    default:
      return b.toString('utf8').replace(/\0/g, '');
  }
}

/** Decodes coils / discrete inputs (`bits[i]` = address offset+i) to the property's type. */
export function decodeBits(bits: readonly boolean[], v: ModbusVisitor, type: PropertyType): string {
  const n = bits.slice(0, v.limit);
  if (type === 'boolean') return n[0] ? 'true' : 'false';
  let value = 0n;
  for (let i = n.length - 1; i >= 0; i--) value = (value << 1n) | (n[i] ? 1n : 0n);
  if (type === 'int') return formatScaled(value, v.scale, type);
  if (type === 'float' || type === 'double') return formatScaled(value, v.scale, type);
  return n.map((x) => (x ? '1' : '0')).join('');
}

function parseBool(value: string): boolean {
  const t = value.trim().toLowerCase();
  if (t === 'true' || t === '1' || t === 'on') return true;
  if (t === 'false' || t === '0' || t === 'off') return false;
  throw new Error(`expected true/false, 1/0 or on/off, got ${JSON.stringify(value)}`);
}

/** Desired value -> coil states (limit coils; an int sets bit i on coil offset+i). */
export function encodeBits(value: string, v: ModbusVisitor, type: PropertyType): boolean[] {
  if (v.limit === 1 || type === 'boolean' || type === 'string') {
    const on =
      type === 'int' || type === 'float' || type === 'double' ? Number(value) !== 0 : parseBool(value);
    if ((type === 'int' || type === 'float' || type === 'double') && !Number.isFinite(Number(value)))
      throw new Error(`expected a number, got ${JSON.stringify(value)}`);
    return Array.from({ length: v.limit }, (_, i) => (i === 0 ? on : false));
  }
  if (!/^\d+$/.test(value.trim()))
    throw new Error(`expected a non-negative integer, got ${JSON.stringify(value)}`);
  const n = BigInt(value.trim());
  if (n >= 1n << BigInt(v.limit)) throw new Error(`value ${value} does not fit in ${v.limit} coils`);
  return Array.from({ length: v.limit }, (_, i) => ((n >> BigInt(i)) & 1n) === 1n);
}

/** Desired value -> register values (u16 each), the inverse of decodeRegisters. */
export function encodeRegisters(value: string, v: ModbusVisitor, type: PropertyType): number[] {
  const size = v.limit * 2;
  const b = Buffer.alloc(size);
  const text = value.trim();
  const rawInt = (): bigint => {
    let raw: bigint;
    if (v.scale === 1 && /^-?\d+$/.test(text)) raw = BigInt(text);
    else {
      const n = Number(text);
      if (text === '' || !Number.isFinite(n))
        throw new Error(`expected a number, got ${JSON.stringify(value)}`);
      raw = BigInt(Math.round(n / v.scale));
    }
    const max = (1n << BigInt(8 * size)) - 1n;
    if (raw < 0n || raw > max)
      throw new Error(`value ${value} (raw ${raw}) does not fit in ${v.limit} register(s) (0..${max})`);
    return raw;
  };
  const putInt = (raw: bigint): void => {
    for (let i = size - 1; i >= 0; i--) {
      b[i] = Number(raw & 0xffn);
      raw >>= 8n;
    }
  };
  switch (type) {
    case 'int':
      putInt(rawInt());
      break;
    case 'float':
    case 'double': {
      if (v.limit === 1) putInt(rawInt());
      else {
        const n = Number(text);
        if (text === '' || !Number.isFinite(n))
          throw new Error(`expected a number, got ${JSON.stringify(value)}`);
        if (v.limit === 2) b.writeFloatBE(n / v.scale, 0);
        else b.writeDoubleBE(n / v.scale, 0);
      }
      break;
    }
    case 'boolean':
      b[size - 1] = parseBool(text) ? 1 : 0;
      break;
    case 'bytes': {
      const hex = Buffer.from(text, 'hex');
      if (hex.length !== size) throw new Error(`expected ${size} bytes as hex, got ${JSON.stringify(value)}`);
      hex.copy(b);
      break;
    }
    default: {
      const s = Buffer.from(value, 'utf8');
      if (s.length > size)
        throw new Error(`string of ${s.length} bytes does not fit in ${v.limit} register(s)`);
      s.copy(b);
    }
  }
  const out = swapBytes(b, v.isRegisterSwap, v.isSwap);
  return Array.from({ length: v.limit }, (_, i) => out.readUInt16BE(2 * i));
}
