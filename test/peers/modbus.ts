/**
 * Real Modbus devices for mapper tests: `modbus_sim.py` (pymodbus from Debian's
 * `python3-pymodbus`, run by `/usr/bin/python3`) serving one unit over Modbus TCP on loopback, or
 * Modbus RTU on one end of a socat pty pair.
 *
 * Addresses are the raw 0-based protocol addresses (what KubeEdge's `offset` means). A table given
 * as an array is a contiguous block starting at address 0; a table given as an object
 * `{ 10: 250, 11: 3 }` has only those addresses. A table that is left out has no addresses, so
 * every access to it answers exception 2 (ILLEGAL DATA ADDRESS).
 *
 * Read-back: every simulator also serves a line-based control channel on 127.0.0.1 (see
 * `modbus_sim.py`), wrapped here as `read(table, address, count)` (what the mapper wrote) and
 * `write(table, address, values)` (what a sensor would change, e.g. a new temperature).
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import {
  peerAsset,
  requirePeer,
  run,
  sleep,
  spawnPeer,
  stopOnce,
  tempDir,
  waitFor,
  type Peer,
} from './util.js';

/** Debian's interpreter, which has `python3-pymodbus` (the first `python3` on PATH may not). */
const PYTHON = '/usr/bin/python3';

/** Coil / discrete-input values: an array from address 0, or a sparse `{ address: value }` map. */
export type BitTable = readonly (boolean | 0 | 1)[] | Readonly<Record<number, boolean | 0 | 1>>;
/** 16-bit register values: an array from address 0, or a sparse `{ address: value }` map. */
export type RegisterTable = readonly number[] | Readonly<Record<number, number>>;

/** The four Modbus tables of a simulated unit. */
export type ModbusTable = 'coils' | 'discreteInputs' | 'holdingRegisters' | 'inputRegisters';

/** Register map and unit id of a simulated device. */
export interface ModbusMaps {
  coils?: BitTable;
  discreteInputs?: BitTable;
  holdingRegisters?: RegisterTable;
  inputRegisters?: RegisterTable;
  /** Unit (slave) id the device answers to (default 1); other ids get no valid answer. */
  unitId?: number;
  /** Log pymodbus debug output into the peer output. */
  debug?: boolean;
}

/** Read-back and stimulus access to a simulated device's tables (through the control channel). */
export interface ModbusControl {
  /** Port of the line-based control channel on 127.0.0.1. */
  readonly controlPort: number;
  /** Current values at `address..address+count-1` (coils and inputs as 0/1). */
  read(table: ModbusTable, address: number, count?: number): Promise<number[]>;
  /** Sets values directly in the device (no Modbus request), e.g. a changed sensor reading. */
  write(
    table: ModbusTable,
    address: number,
    values: number | boolean | readonly (number | boolean)[],
  ): Promise<void>;
  /** The simulator's recent output. */
  output(): string;
}

/** A running Modbus TCP device from {@link startModbusTcp}. */
export interface ModbusTcpPeer extends ModbusControl {
  /** Modbus TCP port on 127.0.0.1. */
  readonly port: number;
  readonly host: '127.0.0.1';
  /** Stops the simulator by pid and removes its temp dir. */
  stop(): Promise<void>;
  /**
   * Stops the device and starts it again on the same ports (device loss). Values written so far
   * are kept unless `keepValues: false`, which resets the tables to the initial map.
   */
  restart(opts?: { keepValues?: boolean; downMs?: number }): Promise<void>;
}

/** Options of {@link startModbusTcp}. */
export interface ModbusTcpOptions extends ModbusMaps {
  /** Modbus TCP port (default: picked by the kernel when the simulator binds). */
  port?: number;
}

/** Options of {@link startModbusRtu}. */
export interface ModbusRtuOptions extends ModbusMaps {
  /** Baud rate of the simulator's end (default 9600; a pty accepts any). */
  baudRate?: number;
  /**
   * Parity of the simulator's end (default none). Even or odd parity cannot be set on a pty
   * (tcsetattr answers EINVAL), so over socat only `'none'` works; test other parities by checking
   * the port settings the mapper requests.
   */
  parity?: 'none' | 'even' | 'odd' | 'N' | 'E' | 'O';
  dataBits?: 5 | 6 | 7 | 8;
  stopBits?: 1 | 2;
}

/** A running Modbus RTU device from {@link startModbusRtu}. */
export interface ModbusRtuPeer extends ModbusControl {
  /** The client end of the pty pair (a symlink in the temp dir): open it with baud rate + parity none. */
  readonly devicePath: string;
  /** Stops the simulator and socat by pid and removes the temp dir. */
  stop(): Promise<void>;
  /** Restarts only the simulator (the pty pair stays), keeping the values unless `keepValues: false`. */
  restart(opts?: { keepValues?: boolean; downMs?: number }): Promise<void>;
}

const TABLE_CODES: Record<ModbusTable, 'co' | 'di' | 'hr' | 'ir'> = {
  coils: 'co',
  discreteInputs: 'di',
  holdingRegisters: 'hr',
  inputRegisters: 'ir',
};

type TableSpec = { start: number; values: number[] } | { sparse: Record<string, number> };

function tableSpec(table: BitTable | RegisterTable | undefined): TableSpec {
  if (table === undefined) return { sparse: {} };
  const num = (v: number | boolean): number => (typeof v === 'boolean' ? (v ? 1 : 0) : v);
  if (Array.isArray(table)) return { start: 0, values: (table as readonly (number | boolean)[]).map(num) };
  const sparse: Record<string, number> = {};
  for (const [k, v] of Object.entries(table as Record<string, number | boolean>)) sparse[k] = num(v);
  return { sparse };
}

function tablesOf(maps: ModbusMaps): Record<string, TableSpec> {
  return {
    co: tableSpec(maps.coils),
    di: tableSpec(maps.discreteInputs),
    hr: tableSpec(maps.holdingRegisters),
    ir: tableSpec(maps.inputRegisters),
  };
}

/** Sends one command line to a simulator's control channel and returns the text after `ok`. */
export async function modbusControl(
  controlPort: number,
  command: string,
  timeoutMs = 5_000,
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: controlPort });
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`modbus control "${command}": no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(command + '\n'));
    socket.on('data', (chunk: string) => {
      data += chunk;
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.destroy();
      const line = data.slice(0, nl);
      if (line === 'ok' || line.startsWith('ok ')) resolve(line.slice(3));
      else reject(new Error(`modbus control "${command}": ${line}`));
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`modbus control "${command}": ${err.message}`));
    });
  });
}

function requirePymodbus(): string {
  return requirePeer(PYTHON, 'python3-pymodbus');
}

/** The `READY {...}` line of modbus_sim.py. */
interface SimReady {
  port: number | null;
  control: number;
}

interface SimConfig {
  mode: 'tcp' | 'rtu';
  unit_id: number;
  tcp?: { port: number };
  rtu?: { device: string; baudrate: number; parity: string; bytesize: number; stopbits: number };
  control_port: number;
  tables: Record<string, TableSpec>;
}

/** One simulator process plus its control-channel helpers; shared by the TCP and RTU launchers. */
class Simulator {
  peer: Peer | undefined;
  port: number | null = null;
  controlPort = 0;

  constructor(
    private readonly dir: string,
    private readonly config: SimConfig,
    private readonly debug: boolean,
  ) {}

  async launch(): Promise<void> {
    const python = requirePymodbus();
    const configPath = join(this.dir, 'modbus-sim.json');
    await writeFile(configPath, JSON.stringify(this.config, null, 2));
    let ready: SimReady | undefined;
    let pending = '';
    const args = [
      peerAsset('modbus_sim.py'),
      '--config',
      configPath,
      '--exit-on-stdin-eof',
      ...(this.debug ? ['--debug'] : []),
    ];
    const peer = await spawnPeer(python, args, {
      cwd: this.dir,
      name: `modbus-sim(${this.config.mode})`,
      stdin: 'pipe',
      graceMs: 3_000,
      onOutput: (chunk) => {
        if (ready) return;
        pending += chunk;
        const m = /^READY (\{.*\})$/m.exec(pending);
        if (m?.[1]) ready = JSON.parse(m[1]) as SimReady;
      },
    });
    this.peer = peer;
    let r: SimReady | undefined;
    await waitFor(
      () => {
        r = ready;
        if (r) return true;
        if (!peer.running()) throw new Error('modbus_sim.py exited early');
        return false;
      },
      {
        what: `modbus_sim.py (${this.config.mode}) to be ready`,
        timeoutMs: 15_000,
        intervalMs: 50,
        details: () => peer.output(),
      },
    );
    if (!r) throw new Error('modbus_sim.py did not report its ports');
    this.port = r.port;
    this.controlPort = r.control;
    // Keep the same ports on a restart.
    if (this.config.tcp && r.port !== null) this.config.tcp.port = r.port;
    this.config.control_port = r.control;
  }

  async halt(keepValues: boolean): Promise<void> {
    if (keepValues && this.peer?.running()) {
      const dumped = await modbusControl(this.controlPort, 'dump');
      this.config.tables = JSON.parse(dumped) as Record<string, TableSpec>;
    }
    await this.peer?.stop();
  }

  /** Replaces the tables the next {@link Simulator.launch} starts with. */
  setTables(tables: Record<string, TableSpec>): void {
    this.config.tables = structuredClone(tables);
  }

  async read(table: ModbusTable, address: number, count = 1): Promise<number[]> {
    const reply = await modbusControl(this.controlPort, `get ${TABLE_CODES[table]} ${address} ${count}`);
    return reply.split(' ').map(Number);
  }

  async write(
    table: ModbusTable,
    address: number,
    values: number | boolean | readonly (number | boolean)[],
  ): Promise<void> {
    const list = (Array.isArray(values) ? values : [values]) as (number | boolean)[];
    const text = list.map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v)).join(' ');
    await modbusControl(this.controlPort, `set ${TABLE_CODES[table]} ${address} ${text}`);
  }
}

/**
 * Starts a Modbus TCP device on 127.0.0.1 serving the given tables for `unitId` (default 1).
 * Resolves once the simulator has bound its ports.
 */
export async function startModbusTcp(opts: ModbusTcpOptions = {}): Promise<ModbusTcpPeer> {
  requirePymodbus();
  const dir = await tempDir('kubeedge-modbus-tcp');
  const sim = new Simulator(
    dir,
    {
      mode: 'tcp',
      unit_id: opts.unitId ?? 1,
      tcp: { port: opts.port ?? 0 },
      control_port: 0,
      tables: tablesOf(opts),
    },
    opts.debug ?? false,
  );
  const stop = stopOnce(dir, async () => {
    await sim.peer?.stop();
  });
  try {
    await sim.launch();
  } catch (err) {
    await stop();
    throw err;
  }
  const initial = tablesOf(opts);
  return {
    get port() {
      return sim.port ?? -1;
    },
    host: '127.0.0.1',
    get controlPort() {
      return sim.controlPort;
    },
    read: (table, address, count) => sim.read(table, address, count),
    write: (table, address, values) => sim.write(table, address, values),
    output: () => sim.peer?.output() ?? '',
    stop,
    restart: async ({ keepValues = true, downMs = 0 } = {}) => {
      await sim.halt(keepValues);
      if (!keepValues) sim.setTables(initial);
      if (downMs > 0) await sleep(downMs);
      await sim.launch();
    },
  };
}

function parityCode(parity: ModbusRtuOptions['parity']): 'N' | 'E' | 'O' {
  switch (parity) {
    case 'even':
    case 'E':
      return 'E';
    case 'odd':
    case 'O':
      return 'O';
    default:
      return 'N';
  }
}

/**
 * Creates a socat pty pair in a temp dir and serves Modbus RTU for `unitId` on one end; the test
 * (or the mapper) opens {@link ModbusRtuPeer.devicePath}, the other end.
 */
export async function startModbusRtu(opts: ModbusRtuOptions = {}): Promise<ModbusRtuPeer> {
  requirePymodbus();
  const socatBin = requirePeer('socat');
  const dir = await tempDir('kubeedge-modbus-rtu');
  const devicePath = join(dir, 'ttyMAPPER');
  const simPath = join(dir, 'ttySIM');
  let socat: Peer | undefined;
  let sim: Simulator | undefined;
  const stop = stopOnce(dir, async () => {
    await sim?.peer?.stop();
    await socat?.stop();
  });

  const initial = tablesOf(opts);
  try {
    const socatPeer = await spawnPeer(
      socatBin,
      ['-d', '-d', `pty,raw,echo=0,link=${devicePath}`, `pty,raw,echo=0,link=${simPath}`],
      { cwd: dir, name: 'socat(pty pair)', graceMs: 2_000 },
    );
    socat = socatPeer;
    await waitFor(
      () => {
        if (!socatPeer.running()) throw new Error('socat exited early');
        return existsSync(devicePath) && existsSync(simPath);
      },
      { what: 'socat pty pair', timeoutMs: 5_000, intervalMs: 25, details: () => socatPeer.output() },
    );
    sim = new Simulator(
      dir,
      {
        mode: 'rtu',
        unit_id: opts.unitId ?? 1,
        rtu: {
          device: simPath,
          baudrate: opts.baudRate ?? 9600,
          parity: parityCode(opts.parity),
          bytesize: opts.dataBits ?? 8,
          stopbits: opts.stopBits ?? 1,
        },
        control_port: 0,
        tables: structuredClone(initial),
      },
      opts.debug ?? false,
    );
    await sim.launch();
  } catch (err) {
    await stop();
    throw err;
  }
  const s = sim;
  return {
    devicePath,
    get controlPort() {
      return s.controlPort;
    },
    read: (table, address, count) => s.read(table, address, count),
    write: (table, address, values) => s.write(table, address, values),
    output: () => `${socat?.output() ?? ''}${s.peer?.output() ?? ''}`,
    stop,
    restart: async ({ keepValues = true, downMs = 0 } = {}) => {
      await s.halt(keepValues);
      if (!keepValues) s.setTables(initial);
      if (downMs > 0) await sleep(downMs);
      await s.launch();
    },
  };
}

/** Runs `mbpoll` (Debian) against a device, e.g. to cross-check a mapper; returns its stdout. */
export async function mbpoll(args: readonly string[]): Promise<string> {
  return (await run(requirePeer('mbpoll'), args, { timeoutMs: 15_000 })).stdout;
}
