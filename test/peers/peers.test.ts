/**
 * Proves that each real peer of test/peers starts, answers a real client, and stops by pid.
 * A missing peer program fails these tests (run .ci/install-peers.sh); nothing is skipped.
 */
import { existsSync } from 'node:fs';
import mqtt from 'mqtt';
import ModbusSerial from 'modbus-serial';
import { afterAll, describe, expect, it } from 'vitest';
import { BUSYBOX_IMAGE, PAUSE_IMAGE, buildBusyboxImage, startContainerd } from './containerd.js';
import { startModbusRtu, startModbusTcp } from './modbus.js';
import { startMosquitto, tcpAccepts } from './mosquitto.js';
import { cleanup, requirePeer, waitFor } from './util.js';

// modbus-serial is CommonJS: its class is `module.exports` and also `.default` (what the types declare).
const ModbusRTU = ModbusSerial.default;

afterAll(cleanup);

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('util', () => {
  it('requirePeer names the missing peer and the install script', () => {
    expect(() => requirePeer('no-such-peer-binary')).toThrow(
      'peer "no-such-peer-binary" is not installed: run .ci/install-peers.sh',
    );
    expect(requirePeer('mosquitto')).toMatch(/\/mosquitto$/);
  });

  it('waitFor names what it waited for', async () => {
    await expect(
      waitFor(() => false, { what: 'the impossible', timeoutMs: 150, intervalMs: 20 }),
    ).rejects.toThrow(/timed out after 150 ms waiting for the impossible/);
  });

  it('waitFor ends by its deadline when a check never settles', async () => {
    await expect(
      waitFor(() => new Promise<boolean>(() => undefined), { what: 'a hung check', timeoutMs: 150 }),
    ).rejects.toThrow(/waiting for a hung check; last error: the check was still running at the deadline/);
  });
});

describe('mosquitto', () => {
  it('passes a message between two mqtt clients and restarts on the same port', async () => {
    const broker = await startMosquitto();
    expect(broker.url).toBe(`tcp://127.0.0.1:${broker.port}`);
    const options = { reconnectPeriod: 200, connectTimeout: 5_000 };
    const sub = await mqtt.connectAsync(broker.url, options); // mqtt.js accepts tcp:// as KubeEdge writes it
    const pub = await mqtt.connectAsync(broker.mqttUrl, options);
    try {
      const received: string[] = [];
      sub.on('message', (topic, payload) => received.push(`${topic} ${payload.toString()}`));
      await sub.subscribeAsync('$hw/events/#', { qos: 1 });
      await pub.publishAsync('$hw/events/device/dev1/twin/update', 'hello', { qos: 1 });
      await waitFor(() => received.length > 0, { what: 'the message through mosquitto', timeoutMs: 5_000 });
      expect(received).toEqual(['$hw/events/device/dev1/twin/update hello']);

      const oldPid = broker.pid();
      await broker.restart();
      expect(broker.pid()).not.toBe(oldPid);
      expect(pidAlive(oldPid)).toBe(false);
      // The clients reconnect to the same port by themselves; persistence is off, so resubscribe.
      await waitFor(() => sub.connected && pub.connected, {
        what: 'mqtt clients to reconnect',
        timeoutMs: 10_000,
      });
      await sub.subscribeAsync('$hw/events/#', { qos: 1 });
      await pub.publishAsync('$hw/events/device/dev1/twin/update', 'again', { qos: 1 });
      await waitFor(() => received.length > 1, { what: 'the message after the restart', timeoutMs: 5_000 });
      expect(received[1]).toBe('$hw/events/device/dev1/twin/update again');
    } finally {
      await Promise.all([sub.endAsync(true), pub.endAsync(true)]);
    }
    const pid = broker.pid();
    await broker.stop();
    expect(pidAlive(pid)).toBe(false);
    expect(await tcpAccepts(broker.port)).toBe(false);
    expect(existsSync(broker.dir)).toBe(false);
  });
});

describe('modbus', () => {
  it('serves Modbus TCP to modbus-serial and reads back what the client wrote', async () => {
    const device = await startModbusTcp({
      unitId: 3,
      holdingRegisters: [0x00fa, 0x1234, 0x5678, 0],
      inputRegisters: { 10: 0x41bc, 11: 0x0000 },
      coils: [false, false, false, true],
      discreteInputs: [true, false],
    });
    const client = new ModbusRTU();
    try {
      await client.connectTCP('127.0.0.1', { port: device.port });
      client.setID(3);
      client.setTimeout(3_000);
      expect((await client.readHoldingRegisters(0, 3)).data).toEqual([0x00fa, 0x1234, 0x5678]);
      expect((await client.readInputRegisters(10, 2)).data).toEqual([0x41bc, 0]);
      expect((await client.readCoils(3, 1)).data[0]).toBe(true);
      expect((await client.readDiscreteInputs(0, 2)).data.slice(0, 2)).toEqual([true, false]);
      // Unmapped address: exception 2 (ILLEGAL DATA ADDRESS), as a real device would answer.
      await expect(client.readInputRegisters(0, 1)).rejects.toThrow(/Illegal data address|exception/i);

      // What a mapper writes is visible through the control channel.
      await client.writeRegister(3, 30);
      await client.writeCoil(0, true);
      expect(await device.read('holdingRegisters', 3)).toEqual([30]);
      expect(await device.read('coils', 0, 4)).toEqual([1, 0, 0, 1]);
      // And a sensor change made through the control channel is what the client reads.
      await device.write('holdingRegisters', 0, 0x0102);
      expect((await client.readHoldingRegisters(0, 1)).data).toEqual([0x0102]);
    } finally {
      client.close(() => undefined);
    }

    const port = device.port;
    await device.restart();
    expect(device.port).toBe(port);
    expect(await device.read('holdingRegisters', 3)).toEqual([30]); // values survive a restart
    await device.restart({ keepValues: false });
    expect(await device.read('holdingRegisters', 3)).toEqual([0]);
    await device.stop();
    expect(await tcpAccepts(port)).toBe(false);
  });

  it('serves Modbus RTU on a socat pty to modbus-serial (parity none)', async () => {
    const device = await startModbusRtu({
      unitId: 1,
      baudRate: 115200,
      parity: 'none',
      holdingRegisters: [250, 7, 8],
      coils: [false, true],
    });
    expect(existsSync(device.devicePath)).toBe(true);
    const client = new ModbusRTU();
    try {
      await client.connectRTUBuffered(device.devicePath, {
        baudRate: 115200,
        parity: 'none',
        dataBits: 8,
        stopBits: 1,
      });
      client.setID(1);
      client.setTimeout(3_000);
      expect((await client.readHoldingRegisters(0, 3)).data).toEqual([250, 7, 8]);
      expect((await client.readCoils(0, 2)).data.slice(0, 2)).toEqual([false, true]);
      await client.writeRegister(2, 0xbeef);
      expect(await device.read('holdingRegisters', 2)).toEqual([0xbeef]);
    } finally {
      await new Promise<void>((resolve) => client.close(() => resolve()));
    }
    await device.stop();
    expect(existsSync(device.devicePath)).toBe(false);
  });
});

describe('containerd', () => {
  it(
    'starts offline, imports the busybox and pause images, and runs a container',
    { timeout: 120_000 },
    async () => {
      const cd = await startContainerd();
      expect(cd.endpoint).toBe(`unix://${cd.socket}`);
      expect(existsSync(cd.socket)).toBe(true);
      const status = await cd.status();
      expect(status.RuntimeReady?.status).toBe(true);
      expect(status.NetworkReady?.status).toBe(true);

      const app = await buildBusyboxImage(cd.socket, BUSYBOX_IMAGE);
      expect(app.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
      const images = (await cd.ctr(['images', 'ls', '-q'])).stdout.split('\n');
      expect(images).toContain(BUSYBOX_IMAGE);
      expect(images).toContain(PAUSE_IMAGE);

      const id = `peers-test-${process.pid}`;
      const result = await cd.ctr(
        ['run', '--rm', '--runc-root', cd.runcRoot, BUSYBOX_IMAGE, id, 'echo', 'hello'],
        {
          timeoutMs: 60_000,
        },
      );
      expect(result.stdout.trim()).toBe('hello');

      const pid = cd.pid;
      await cd.stop();
      expect(pidAlive(pid)).toBe(false);
      expect(existsSync(cd.dir)).toBe(false);
    },
  );
});
