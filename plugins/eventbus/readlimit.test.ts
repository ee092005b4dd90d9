/**
 * The read gate of the internal broker's connections (unit test over an in-process stream; the
 * path with aedes, eventBus and deviceTwin is in ack.test.ts).
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ReadGate, packetEnd } from './readlimit.js';

/** MQTT 3.1.1 remaining length (§2.2.3). */
function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}
const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);

/** A QoS 1 PUBLISH (MQTT 3.1.1 §3.3) on `t/<i>` with packet id i + 1 and `size` payload bytes. */
function publish(i: number, size = 20): Buffer {
  const topic = Buffer.from(`t/${i}`);
  const body = Buffer.concat([u16(topic.length), topic, u16(i + 1), Buffer.alloc(size, 'x')]);
  return Buffer.concat([Buffer.from([0x32]), varint(body.length), body]);
}

/**
 * A stream to which `packets` will be pushed, gated to `max`; `parse` reads as aedes does and
 * returns the packets that the bytes handed over so far complete (by their known boundaries).
 */
function gated(max: number, packets: Buffer[]) {
  const s = new Readable({ read() {} });
  const gate = new ReadGate(s, max);
  const ends: number[] = [];
  for (const p of packets) ends.push((ends.at(-1) ?? 0) + p.length);
  let handed = 0;
  const got: number[] = [];
  const parse = (): number[] => {
    const buf = s.read() as Buffer | null; // aedes calls read(null): the same
    if (!buf) return [];
    handed += buf.length;
    const done: number[] = [];
    while (got.length < ends.length && (ends[got.length] as number) <= handed) {
      done.push(got.length);
      got.push(got.length);
    }
    return done;
  };
  return { s, gate, parse, got, all: Buffer.concat(packets) };
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
    const {
      s,
      parse,
      all: chunk,
    } = gated(
      4,
      Array.from({ length: 10 }, (_, i) => publish(i)),
    );
    s.push(chunk);
    expect(parse()).toEqual([0, 1, 2, 3]);
    expect(s.readableLength).toBe(chunk.length - 4 * publish(0).length);
    expect(parse()).toEqual([4, 5, 6, 7]);
    expect(parse()).toEqual([8, 9]);
    expect(s.readableLength).toBe(0);
  });

  it('reads nothing while max packets are taken, and makes the reader read again on release', async () => {
    const { s, gate, parse, all } = gated(
      3,
      Array.from({ length: 8 }, (_, i) => publish(i)),
    );
    s.push(all);
    let readable = 0;
    s.on('readable', () => void readable++);
    const first = parse();
    expect(first).toEqual([0, 1, 2]);
    gate.take();
    gate.take();
    gate.take();
    expect(parse()).toEqual([]); // refused: every slot taken
    readable = 0;
    gate.release();
    gate.release();
    expect(readable).toBe(0); // once the releases of this moment are done
    await Promise.resolve();
    expect(readable).toBe(1); // one wake for both
    expect(parse()).toEqual([3, 4]); // two slots free: two packets in one read
    gate.release();
    expect(parse()).toEqual([5, 6, 7]);
  });

  it('keeps the framing when packets are split across chunks, including the fixed header', () => {
    const { s, parse, got, all } = gated(1, [publish(0), publish(1, 300), publish(2), publish(3)]);
    // cut inside packet 1's two-byte remaining length, then inside its payload, then inside packet 3
    const cuts = [publish(0).length + 2, publish(0).length + 100, all.length - 5];
    const chunks = [0, ...cuts].map((c, i) => all.subarray(c, [...cuts, all.length][i]));
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
    const { s, parse } = gated(2, [big, publish(1), publish(2), publish(3)]);
    s.push(big.subarray(0, 60_000));
    expect(parse()).toEqual([]); // the start of packet 0: handed over, incomplete
    s.push(Buffer.concat([big.subarray(60_000), rest]));
    expect(parse()).toEqual([0, 1, 2]); // the end of packet 0, then max whole packets
    expect(parse()).toEqual([3]);
  });
});
