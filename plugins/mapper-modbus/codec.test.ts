import { describe, expect, it } from 'vitest';
import type { DeviceSpec, PropertySpec } from '../../sdk/mapper/index.js';
import {
  decodeBits,
  decodeRegisters,
  encodeBits,
  encodeRegisters,
  parseConnection,
  parseVisitor,
  type ModbusVisitor,
} from './codec.js';
import { serialOptions } from './driver.js';

const v = (o: Partial<ModbusVisitor> = {}): ModbusVisitor => ({
  register: 'HoldingRegister',
  offset: 0,
  limit: 1,
  scale: 1,
  isSwap: false,
  isRegisterSwap: false,
  ...o,
});
const regs = (...words: number[]): Buffer => {
  const b = Buffer.alloc(words.length * 2);
  words.forEach((w, i) => b.writeUInt16BE(w, 2 * i));
  return b;
};
const dev = (protocol: DeviceSpec['protocol'], props: Partial<PropertySpec>[] = []): DeviceSpec => ({
  id: 'default/d1',
  name: 'd1',
  namespace: 'default',
  model: 'm',
  protocolName: 'modbus',
  protocol,
  properties: props.map((p) => ({
    name: 'p',
    type: 'int',
    accessMode: 'ReadWrite',
    visitor: {},
    collectCycleMs: 1000,
    reportCycleMs: 0,
    reportToCloud: true,
    ...p,
  })),
  stateReport: { reportToCloud: false, cycleMs: 1000 },
});

describe('Modbus decoding (spec §4.4 worked examples)', () => {
  it('int with scale truncates toward zero', () => {
    expect(decodeRegisters(regs(0x00fa), v({ scale: 0.1 }), 'int')).toBe('25');
  });
  it('register swap, then byte swap', () => {
    expect(decodeRegisters(regs(0x1234, 0x5678), v({ limit: 2, isRegisterSwap: true }), 'int')).toBe(
      '1450709556',
    );
    expect(
      decodeRegisters(regs(0x1234, 0x5678), v({ limit: 2, isRegisterSwap: true, isSwap: true }), 'int'),
    ).toBe('2018915346');
  });
  it('float32 ABCD and CDAB', () => {
    expect(decodeRegisters(regs(0x41bc, 0), v({ limit: 2 }), 'float')).toBe('23.500000');
    expect(decodeRegisters(regs(0, 0x41bc), v({ limit: 2, isRegisterSwap: true }), 'float')).toBe(
      '23.500000',
    );
  });
  it('a FLOAT on one register is a scaled integer; u64 stays exact', () => {
    expect(decodeRegisters(regs(235), v({ scale: 0.1 }), 'float')).toBe('23.500000');
    expect(decodeRegisters(regs(0xffff, 0xffff, 0xffff, 0xffff), v({ limit: 4 }), 'int')).toBe(
      '18446744073709551615',
    );
  });
  it('boolean, string and bits', () => {
    expect(decodeRegisters(regs(0x0100), v(), 'boolean')).toBe('true');
    expect(decodeRegisters(regs(0x4f4b, 0), v({ limit: 2 }), 'string')).toBe('OK');
    expect(decodeBits([false, true, true], v({ register: 'CoilRegister', limit: 3 }), 'int')).toBe('6');
    expect(decodeBits([true], v({ register: 'CoilRegister' }), 'boolean')).toBe('true');
  });
});

describe('Modbus encoding of desired values (what KubeEdge truncates or zeroes)', () => {
  it('writes ints on 1, 2 or 4 registers, floats as float32, scale inverted', () => {
    expect(encodeRegisters('70000', v({ limit: 2 }), 'int')).toEqual([0x0001, 0x1170]);
    expect(encodeRegisters('25', v({ scale: 0.1 }), 'int')).toEqual([250]);
    expect(encodeRegisters('23.5', v({ limit: 2 }), 'float')).toEqual([0x41bc, 0]);
    expect(encodeRegisters('23.5', v({ limit: 2, isRegisterSwap: true }), 'float')).toEqual([0, 0x41bc]);
    expect(encodeRegisters('true', v(), 'boolean')).toEqual([1]);
    expect(encodeRegisters('OK', v({ limit: 2 }), 'string')).toEqual([0x4f4b, 0]);
  });
  it('refuses values that do not fit instead of truncating', () => {
    expect(() => encodeRegisters('70000', v(), 'int')).toThrow(/does not fit in 1 register/);
    expect(() => encodeRegisters('-1', v(), 'int')).toThrow(/does not fit/);
    expect(() => encodeRegisters('abc', v(), 'int')).toThrow(/expected a number/);
  });
  it('coils: on/off, and an int across several coils', () => {
    expect(encodeBits('ON', v({ register: 'CoilRegister' }), 'string')).toEqual([true]);
    expect(encodeBits('0', v({ register: 'CoilRegister' }), 'int')).toEqual([false]);
    expect(encodeBits('5', v({ register: 'CoilRegister', limit: 3 }), 'int')).toEqual([true, false, true]);
    expect(() => encodeBits('maybe', v({ register: 'CoilRegister' }), 'boolean')).toThrow(
      /expected true\/false/,
    );
  });
});

describe('Modbus configuration errors name the device, property and field', () => {
  it('visitors', () => {
    const d = dev({ ip: '127.0.0.1' });
    const p = (visitor: PropertySpec['visitor'], type: PropertySpec['type'] = 'int') =>
      parseVisitor(d, { ...dev({}, [{ visitor, type }]).properties[0]! });
    expect(() => p({ register: 'Weird', offset: 0 })).toThrow(
      'device default/d1 property p: visitors.configData.register: expected one of CoilRegister, DiscreteInputRegister, HoldingRegister, InputRegister, got "Weird"',
    );
    expect(() => p({ register: 'HoldingRegister', offset: -1 })).toThrow(
      /offset: expected an integer 0..65535, got -1/,
    );
    expect(() => p({ register: 'HoldingRegister' })).toThrow(/offset: required/);
    expect(() => p({ register: 'HoldingRegister', offset: 0, limit: 3 })).toThrow(
      /int property needs 1, 2 or 4/,
    );
    expect(() => p({ register: 'InputRegister', offset: 0, limit: 200 })).toThrow(
      /limit: expected an integer 1..125/,
    );
    expect(p({ register: 'holdingregister', offset: 4 })).toEqual(v({ offset: 4 })); // scale defaults to 1, not 0
  });
  it('connections, and the RTU port settings that reach the serial port', () => {
    expect(() => parseConnection(dev({}))).toThrow(/set ip and port \(Modbus TCP\) or serialPort/);
    expect(() => parseConnection(dev({ serialPort: '/dev/ttyS0', parity: 'mark' }))).toThrow(
      /parity: expected none, even or odd/,
    );
    const rtu = parseConnection(
      dev({
        serialPort: '/dev/ttyS0',
        baudRate: 115200,
        dataBits: 8,
        parity: 'even',
        stopBits: 1,
        slaveID: 1,
      }),
    );
    expect(rtu.kind === 'rtu' && serialOptions(rtu)).toEqual({
      baudRate: 115200,
      dataBits: 8,
      stopBits: 1,
      parity: 'even',
    });
    expect(parseConnection(dev({ ip: '10.0.0.1', port: 1502 }))).toMatchObject({
      kind: 'tcp',
      port: 1502,
      slaveID: 1,
    });
  });
});
