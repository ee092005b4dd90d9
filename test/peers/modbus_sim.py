#!/usr/bin/python3
"""Modbus device simulator for the tests in test/peers (started by test/peers/modbus.ts).

Runs with Debian's /usr/bin/python3 and its python3-pymodbus (3.0.0rc1 on Debian 12): one unit
(slave) whose four tables come from a JSON config, served over Modbus TCP or Modbus RTU on a serial
device (a socat pty). Addresses are the raw 0-based protocol addresses (zero_mode).

Config (JSON file given with --config):
  {"mode": "tcp" | "rtu", "unit_id": 1,
   "tcp": {"port": 0},                                   # 0 = let the kernel pick
   "rtu": {"device": "/path/pty", "baudrate": 9600, "parity": "N", "bytesize": 8, "stopbits": 1},
   "control_port": 0,
   "tables": {"co": TABLE, "di": TABLE, "hr": TABLE, "ir": TABLE}}
  TABLE = {"start": 0, "values": [..]}   # contiguous block
        | {"sparse": {"addr": value}}    # only these addresses exist
  A missing table has no addresses (every access answers ILLEGAL DATA ADDRESS).

Once serving, prints one line to stdout:  READY {"port": <tcp port or null>, "control": <port>}

Control channel: a line-based TCP server on 127.0.0.1:<control>; one command per line, one reply
line per command ("ok ..." or "err <message>"):
  get <co|di|hr|ir> <address> [count]     -> ok v1 v2 ...   (coils/inputs as 0/1)
  set <co|di|hr|ir> <address> v1 [v2 ...] -> ok             (what a sensor would change)
  dump                                    -> ok <JSON of all tables, in the config format>
  ping                                    -> ok pong

With --exit-on-stdin-eof the simulator exits when its stdin closes, i.e. when the test process that
started it dies, so a crashed test run leaves no simulator behind.
"""
import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import traceback

import serial

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
    ModbusSparseDataBlock,
)
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer

TABLE_KEYS = {"co": "c", "di": "d", "hr": "h", "ir": "i"}
BIT_TABLES = ("co", "di")


def make_block(name, spec):
    """Build a pymodbus data block from a TABLE spec."""
    bits = name in BIT_TABLES

    def conv(value):
        return bool(value) if bits else int(value) & 0xFFFF

    if spec and "values" in spec and len(spec["values"]) > 0:
        return ModbusSequentialDataBlock(int(spec.get("start", 0)), [conv(v) for v in spec["values"]])
    sparse = {int(k): conv(v) for k, v in ((spec or {}).get("sparse") or {}).items()}
    return ModbusSparseDataBlock(sparse, mutable=False)


def dump_block(block):
    """Serialise a block back to the TABLE format (used to keep values across a restart)."""
    if isinstance(block, ModbusSequentialDataBlock):
        return {"start": block.address, "values": [int(v) for v in block.values]}
    return {"sparse": {str(k): int(v) for k, v in block.values.items()}}


class Control:
    """The line-based control channel."""

    def __init__(self, slave):
        self.slave = slave

    def block(self, table):
        if table not in TABLE_KEYS:
            raise ValueError(f"unknown table {table!r} (use co, di, hr or ir)")
        return self.slave.store[TABLE_KEYS[table]]

    def handle(self, line):
        parts = line.split()
        if not parts:
            return "err empty command"
        cmd, args = parts[0].lower(), parts[1:]
        if cmd == "ping":
            return "ok pong"
        if cmd == "dump":
            tables = {name: dump_block(self.block(name)) for name in TABLE_KEYS}
            return "ok " + json.dumps(tables, separators=(",", ":"))
        if cmd == "get" and len(args) in (2, 3):
            block = self.block(args[0])
            address, count = int(args[1], 0), int(args[2], 0) if len(args) == 3 else 1
            if not block.validate(address, count):
                return f"err address {address} count {count} not in table {args[0]}"
            return "ok " + " ".join(str(int(v)) for v in block.getValues(address, count))
        if cmd == "set" and len(args) >= 3:
            block = self.block(args[0])
            address = int(args[1], 0)
            raw = [int(v, 0) for v in args[2:]]
            values = [bool(v) for v in raw] if args[0] in BIT_TABLES else [v & 0xFFFF for v in raw]
            if not block.validate(address, len(values)):
                return f"err address {address} count {len(values)} not in table {args[0]}"
            block.setValues(address, values)
            return "ok"
        return f"err unknown command {line!r}"

    async def serve(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    reply = self.handle(line.decode("utf-8").strip())
                except Exception as exc:  # pylint: disable=broad-except
                    reply = f"err {exc}"
                writer.write((reply + "\n").encode("utf-8"))
                await writer.drain()
        finally:
            writer.close()


def watch_stdin():
    """Exit when stdin reaches EOF (the parent test process is gone)."""
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)  # pylint: disable=protected-access


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr)
    if args.exit_on_stdin_eof:
        threading.Thread(target=watch_stdin, daemon=True).start()

    with open(args.config, encoding="utf-8") as fh:
        cfg = json.load(fh)
    tables = cfg.get("tables") or {}
    slave = ModbusSlaveContext(zero_mode=True, **{name: make_block(name, tables.get(name)) for name in TABLE_KEYS})
    unit_id = int(cfg.get("unit_id", 1))
    context = ModbusServerContext(slaves={unit_id: slave}, single=False)

    control = Control(slave)
    control_server = await asyncio.start_server(control.serve, "127.0.0.1", int(cfg.get("control_port", 0)))
    control_port = control_server.sockets[0].getsockname()[1]

    if cfg["mode"] == "tcp":
        server = await StartAsyncTcpServer(
            context=context,
            address=("127.0.0.1", int(cfg["tcp"].get("port", 0))),
            framer=ModbusSocketFramer,
            allow_reuse_address=True,
            defer_start=True,
        )
        task = asyncio.create_task(server.serve_forever())
        await asyncio.wait([server.serving, task], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # re-raise the bind error
        port = server.server.sockets[0].getsockname()[1]
    elif cfg["mode"] == "rtu":
        rtu = cfg["rtu"]
        server = await StartAsyncSerialServer(
            context=context,
            framer=ModbusRtuFramer,
            port=rtu["device"],
            baudrate=int(rtu.get("baudrate", 9600)),
            parity=rtu.get("parity", "N"),
            bytesize=int(rtu.get("bytesize", 8)),
            stopbits=int(rtu.get("stopbits", 1)),
            timeout=0.05,
            defer_start=True,
        )
        await server.start()  # opens the serial device; raises if it cannot
        if server.transport is None:
            # pymodbus logs why at debug level only; open the port once more to name the cause
            # (even/odd parity on a pty: termios EINVAL).
            reason = "see --debug output"
            try:
                serial.Serial(
                    rtu["device"],
                    baudrate=int(rtu.get("baudrate", 9600)),
                    parity=rtu.get("parity", "N"),
                    bytesize=int(rtu.get("bytesize", 8)),
                    stopbits=int(rtu.get("stopbits", 1)),
                    timeout=0.05,
                ).close()
            except Exception as exc:  # pylint: disable=broad-except
                reason = repr(exc)
            raise RuntimeError(
                f"cannot open serial device {rtu['device']} (parity {rtu.get('parity', 'N')}): {reason}"
            )
        task = asyncio.create_task(server.serve_forever())
        port = None
    else:
        raise ValueError(f"unknown mode {cfg['mode']!r}")

    print("READY " + json.dumps({"port": port, "control": control_port}), flush=True)
    await task


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        os._exit(0)  # pylint: disable=protected-access
    except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()
        sys.stderr.flush()
        # os._exit: the stdin watcher thread would otherwise block interpreter shutdown.
        os._exit(1)  # pylint: disable=protected-access
