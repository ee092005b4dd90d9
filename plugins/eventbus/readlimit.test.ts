/**
 * The read gate of the internal broker's connections (unit test over an in-process stream; the
 * path with aedes, eventBus and deviceTwin is in ack.test.ts).
 */
import { Readable } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { ReadGate, packetEnd } from './readlimit.js';

const publish = (i: number, size = 20): Buffer =>
  mqttPacket.generate({
    cmd: 'publish',
    topic: `t/${i}`,
    payload: Buffer.alloc(size, 'x'),
    qos: 1,
    messageId: i + 1,
    retain: false,
    dup: false,
  });

/** A stream holding `chunks`, gated to `max`; `parse` reads as aedes does and returns the packets. */
function gated(max: number, ...chunks: Buffer[]) {
  const s = new Readable({ read() {} });
  for (const c of chunks) s.push(c);
  const gate = new ReadGate(s, max);
  const parser = mqttPacket.parser();
  const got: number[] = [];
  parser.on('packet', (p: mqttPacket.Packet) => got.push((p as mqttPacket.IPublishPacket).messageId! - 1));
  const parse = (): number[] => {
    const before = got.length;
    const buf = s.read() as Buffer | null; // aedes calls read(null): the same
    if (buf) parser.parse(buf);
    return got.slice(before);
  };
  return { s, gate, parse, got };
}

describe('packetEnd', () => {
  it('reads the remaining length of MQTT fixed headers', () => {
    const p = publish(0, 200); // a two-byte remaining length
    expect(packetEnd(p, 0)).toBe(p.length);
    expect(packetEnd(p.subarray(0, 1), 0)).toBe(-1);
    expect(packetEnd(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), 0)).toBe(-2);
  });
});

describe('ReadGate', () => {
  it('hands over at most max whole packets per read; the rest stays in the stream', () => {
    const chunk = Buffer.concat(Array.from({ length: 10 }, (_, i) => publish(i)));
    const { s, parse } = gated(4, chunk);
    expect(parse()).toEqual([0, 1, 2, 3]);
    expect(s.readableLength).toBe(chunk.length - 4 * publish(0).length);
    expect(parse()).toEqual([4, 5, 6, 7]);
    expect(parse()).toEqual([8, 9]);
    expect(s.readableLength).toBe(0);
  });

  it('reads nothing while max packets are taken, and makes the reader read again on release', () => {
    const chunk = Buffer.concat(Array.from({ length: 6 }, (_, i) => publish(i)));
    const { s, gate, parse } = gated(2, chunk);
    let readable = 0;
    s.on('readable', () => void readable++);
    const first = parse();
    expect(first).toEqual([0, 1]);
    gate.take();
    gate.take();
    expect(parse()).toEqual([]); // refused: both slots taken
    readable = 0;
    gate.release();
    expect(readable).toBe(1);
    expect(parse()).toEqual([2]); // one slot free: one packet
    gate.release();
    expect(parse()).toEqual([3, 4]);
  });

  it('keeps the framing when packets are split across chunks, including the fixed header', () => {
    const all = Buffer.concat([publish(0), publish(1, 300), publish(2), publish(3)]);
    // cut inside packet 1's two-byte remaining length, then inside its payload, then inside packet 3
    const cuts = [publish(0).length + 2, publish(0).length + 100, all.length - 5];
    const chunks = [0, ...cuts].map((c, i) => all.subarray(c, [...cuts, all.length][i]));
    const { s, parse, got } = gated(1);
    const seen: number[][] = [];
    for (const c of chunks) {
      s.push(c);
      // read as aedes does until the stream has nothing more to give (at most one packet per read)
      for (let n = 0; n < 4; n++) seen.push(parse());
    }
    expect(got).toEqual([0, 1, 2, 3]);
    // one whole packet per read, besides the end of a packet handed over in part before
    expect(Math.max(...seen.map((p) => p.length))).toBeLessThanOrEqual(2);
  });

  it('hands over a packet larger than what has arrived, then frames what follows it', () => {
    const big = publish(0, 100_000);
    const rest = Buffer.concat([publish(1), publish(2), publish(3)]);
    const { s, parse } = gated(2, big.subarray(0, 60_000));
    expect(parse()).toEqual([]); // the start of packet 0: handed over, incomplete
    s.push(Buffer.concat([big.subarray(60_000), rest]));
    expect(parse()).toEqual([0, 1, 2]); // the end of packet 0, then max whole packets
    expect(parse()).toEqual([3]);
  });
});
