/**
 * The Modbus protocol driver of the mapper SDK: Modbus TCP and RTU through modbus-serial. One
 * connection per TCP endpoint + unit, or per serial port (shared by the units on that bus); every
 * request holds the connection's lock and sets its own unit id.
 */
import type { ModbusRTU, SerialPortOptions } from 'modbus-serial/ModbusRTU.js';
import {
  DeviceOfflineError,
  type DeviceHandle,
  type DeviceSpec,
  type PropertySpec,
  type ProtocolDriver,
} from '../../sdk/mapper/index.js';
import {
  decodeBits,
  decodeRegisters,
  encodeBits,
  encodeRegisters,
  isWritable,
  parseConnection,
  parseVisitor,
  type ModbusConnection,
  type ModbusVisitor,
} from './codec.js';

type ModbusCtor = new () => ModbusRTU;

/** The port settings an RTU connection asks for (exported for tests: parity cannot be set on a pty). */
export function serialOptions(c: Extract<ModbusConnection, { kind: 'rtu' }>): SerialPortOptions {
  return { baudRate: c.baudRate, dataBits: c.dataBits, stopBits: c.stopBits, parity: c.parity };
}

/** A Modbus exception reply (the device answered): a property error, not a lost connection. */
export class ModbusExceptionError extends Error {
  readonly code = 'EMODBUS_EXCEPTION';
  constructor(
    readonly modbusCode: number,
    message: string,
  ) {
    super(message);
  }
}

const EXCEPTIONS: Record<number, string> = {
  1: 'ILLEGAL FUNCTION',
  2: 'ILLEGAL DATA ADDRESS',
  3: 'ILLEGAL DATA VALUE',
  4: 'SERVER DEVICE FAILURE',
  6: 'SERVER DEVICE BUSY',
};

class Connection {
  private client: ModbusRTU | undefined;
  private opening: Promise<void> | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  users = 0;

  constructor(
    readonly key: string,
    readonly conf: ModbusConnection,
    private readonly Modbus: ModbusCtor,
  ) {}

  get open(): boolean {
    return this.client?.isOpen === true;
  }

  async connect(): Promise<void> {
    if (this.open) return;
    this.opening ??= this.doOpen().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async doOpen(): Promise<void> {
    this.drop();
    const client = new this.Modbus();
    const c = this.conf;
    try {
      if (c.kind === 'tcp') await client.connectTCP(c.ip, { port: c.port, timeout: c.timeoutMs });
      else await client.connectRTUBuffered(c.serialPort, serialOptions(c));
    } catch (err) {
      try {
        client.close(() => undefined);
      } catch {
        // already closed
      }
      throw new DeviceOfflineError(`${this.key}: ${(err as Error).message}`, { cause: err });
    }
    client.setTimeout(c.timeoutMs);
    this.client = client;
  }

  /** Closes the transport; the next connect() opens a new one. */
  drop(): void {
    const c = this.client;
    this.client = undefined;
    if (c)
      try {
        c.close(() => undefined);
      } catch {
        // already closed
      }
  }

  /** Runs one request under the connection's lock with the device's unit id. */
  run<T>(unit: number, what: string, fn: (c: ModbusRTU) => Promise<T>): Promise<T> {
    const next = this.lock.then(async () => {
      const client = this.client;
      if (!client || !client.isOpen) throw new DeviceOfflineError(`${this.key}: not connected`);
      client.setID(unit);
      try {
        return await fn(client);
      } catch (err) {
        const e = err as { modbusCode?: number; message?: string; name?: string };
        if (typeof e.modbusCode === 'number')
          throw new ModbusExceptionError(
            e.modbusCode,
            `${what}: Modbus exception ${e.modbusCode} (${EXCEPTIONS[e.modbusCode] ?? 'unknown'})`,
          );
        this.drop();
        throw new DeviceOfflineError(`${what}: ${e.message ?? String(err)}`, { cause: err });
      }
    });
    this.lock = next.catch(() => undefined);
    return next;
  }
}

class ModbusDevice implements DeviceHandle {
  constructor(
    private readonly spec: DeviceSpec,
    private readonly conn: Connection,
    private readonly visitors: Map<string, ModbusVisitor>,
    private readonly release: () => void,
  ) {}

  connect(): Promise<void> {
    return this.conn.connect();
  }

  private visitor(p: PropertySpec): ModbusVisitor {
    const v = this.visitors.get(p.name);
    if (!v) throw new Error(`property ${p.name} has no Modbus visitor`);
    return v;
  }

  async readProperty(p: PropertySpec): Promise<string> {
    const v = this.visitor(p);
    const what = `read ${v.register} ${v.offset}+${v.limit} of unit ${this.conn.conf.slaveID}`;
    switch (v.register) {
      case 'CoilRegister':
        return this.conn.run(this.conn.conf.slaveID, what, async (c) =>
          decodeBits((await c.readCoils(v.offset, v.limit)).data, v, p.type),
        );
      case 'DiscreteInputRegister':
        return this.conn.run(this.conn.conf.slaveID, what, async (c) =>
          decodeBits((await c.readDiscreteInputs(v.offset, v.limit)).data, v, p.type),
        );
      case 'HoldingRegister':
        return this.conn.run(this.conn.conf.slaveID, what, async (c) =>
          decodeRegisters((await c.readHoldingRegisters(v.offset, v.limit)).buffer, v, p.type),
        );
      case 'InputRegister':
        return this.conn.run(this.conn.conf.slaveID, what, async (c) =>
          decodeRegisters((await c.readInputRegisters(v.offset, v.limit)).buffer, v, p.type),
        );
    }
  }

  async writeProperty(p: PropertySpec, value: string): Promise<void> {
    const v = this.visitor(p);
    if (!isWritable(v.register))
      throw new Error(`${v.register} is read-only (write ${p.name}=${JSON.stringify(value)})`);
    const unit = this.conn.conf.slaveID;
    if (v.register === 'CoilRegister') {
      const bits = encodeBits(value, v, p.type);
      await this.conn.run(unit, `write coils ${v.offset}+${v.limit}`, async (c) => {
        if (bits.length === 1) await c.writeCoil(v.offset, bits[0] as boolean);
        else await c.writeCoils(v.offset, bits);
      });
      return;
    }
    const regs = encodeRegisters(value, v, p.type);
    await this.conn.run(unit, `write holding registers ${v.offset}+${v.limit}`, async (c) => {
      if (regs.length === 1) await c.writeRegister(v.offset, regs[0] as number);
      else await c.writeRegisters(v.offset, regs);
    });
  }

  async close(): Promise<void> {
    this.release();
  }
}

/** The Modbus driver; `modbus-serial` is loaded when the driver is created. */
export async function createModbusDriver(): Promise<ProtocolDriver & { connections(): number }> {
  const mod = (await import('modbus-serial')) as unknown as { default: ModbusCtor };
  const Modbus = mod.default;
  const pool = new Map<string, Connection>();
  return {
    protocol: 'modbus',
    connections: () => pool.size,
    createDevice(spec: DeviceSpec): DeviceHandle {
      const conf = parseConnection(spec);
      const visitors = new Map<string, ModbusVisitor>();
      for (const p of spec.properties) {
        if (Object.keys(p.visitor).length === 0) continue;
        visitors.set(p.name, parseVisitor(spec, p));
      }
      const key =
        conf.kind === 'tcp'
          ? `modbus tcp ${conf.ip}:${conf.port} unit ${conf.slaveID}`
          : `modbus rtu ${conf.serialPort}`;
      let conn = pool.get(key);
      if (!conn) {
        conn = new Connection(key, conf, Modbus);
        pool.set(key, conn);
      }
      conn.users++;
      const c = conn;
      let released = false;
      return new ModbusDevice(spec, conn, visitors, () => {
        // The device is removed: the last user of a connection closes it.
        if (released) return;
        released = true;
        if (--c.users > 0) return;
        c.drop();
        pool.delete(key);
      });
    },
  };
}
