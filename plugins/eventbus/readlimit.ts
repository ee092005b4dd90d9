/**
 * Flow control on what the internal broker reads from a connection (`ReadGate`).
 *
 * aedes reads everything buffered on a connection (`read()`: up to 64 KiB at once, ~500 small
 * PUBLISH packets), handles all of it concurrently and reads again only once every packet of that
 * batch is done. Twin-bound packets are done when deviceTwin has stored them, so with many
 * publishers tens of thousands of parsed packets waited in memory long enough to survive several
 * young-generation collections (each copying them) and to be promoted: most of the CPU spent in
 * V8's GC and most of the resident memory under load (issue 10).
 *
 * The gate hands aedes at most `max` whole MQTT packets per read, and none while `max` packets of
 * that connection wait for deviceTwin; the rest stays
 * in the socket (put back with `unshift`, so `end` still comes only after the last byte is read,
 * and TCP flow control holds the publisher once the socket's buffer is full). MQTT framing: one
 * byte of type and flags, then the remaining length in 1 to 4 bytes of 7 bits (MQTT 3.1.1 §2.2.3,
 * the same in 5.0). A packet that has not fully arrived is handed over in part, as aedes would,
 * and the bytes still owed to it are passed through before framing resumes. A malformed length
 * switches the limit off for that connection (the parser then refuses the stream itself).
 */
import type { Readable } from 'node:stream';

/** End offset of the packet starting at `at`, -1 if its fixed header is incomplete, -2 if malformed. */
export function packetEnd(buf: Uint8Array, at: number): number {
  let length = 0;
  let scale = 1;
  for (let i = at + 1; i < at + 5; i++) {
    if (i >= buf.length) return -1;
    const byte = buf[i] as number;
    length += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return i + 1 + length;
    scale *= 128;
  }
  return -2;
}

/**
 * The read gate of one connection: aedes is handed at most `max` packets per read, and nothing
 * while `max` of its messages wait for deviceTwin (`take` / `release`). After a refused read, the
 * first release that frees a slot makes aedes read again (a `readable` event, as new data would),
 * once the releases of that moment are done (a microtask later): deviceTwin answers a whole commit
 * at once, so one read then takes every freed slot instead of one read (and one packet) per release.
 */
export class ReadGate {
  private inflight = 0;
  private refused = false;
  /** Bytes of a packet handed over in part that are still to come. */
  private owed = 0;
  /** The handed-over start of a packet whose fixed header was incomplete (at most 4 bytes). */
  private head: Buffer | undefined;
  private off = false;
  private readonly read: (size?: number) => Buffer | null;

  constructor(
    private readonly socket: Readable,
    private readonly max: number,
  ) {
    this.read = socket.read.bind(socket) as (size?: number) => Buffer | null;
    socket.read = ((size?: number | null) => this.limited(size)) as Readable['read'];
  }

  take(): void {
    this.inflight++;
  }

  release(): void {
    this.inflight--;
    if (this.refused && this.inflight < this.max) {
      this.refused = false;
      queueMicrotask(this.wake);
    }
  }

  private readonly wake = (): void => void this.socket.emit('readable');

  private limited(size?: number | null): Buffer | null {
    // read(n) (stream internals, e.g. read(0)) is left alone; aedes reads with read(null)
    if (this.off || (size !== undefined && size !== null)) return this.read(size ?? undefined);
    if (this.inflight >= this.max) {
      this.refused = true;
      return null;
    }
    const buf = this.read();
    if (buf === null) return null;
    let end = 0;
    if (this.head) {
      const e = packetEnd(Buffer.concat([this.head, buf.subarray(0, 4)]), 0);
      if (e === -1) {
        this.head = Buffer.concat([this.head, buf]);
        return buf;
      }
      if (e === -2) {
        this.off = true;
        return buf;
      }
      this.owed = e - this.head.length;
      this.head = undefined;
    }
    if (this.owed > 0) {
      if (this.owed >= buf.length) {
        this.owed -= buf.length;
        return buf;
      }
      end = this.owed;
      this.owed = 0;
    }
    for (let n = this.inflight; n < this.max && end < buf.length; n++) {
      const e = packetEnd(buf, end);
      if (e === -2) {
        this.off = true;
        return buf;
      }
      if (e === -1 || e > buf.length) {
        if (end > 0) break; // the incomplete packet waits in the socket for the next read
        // the first packet is incomplete: hand it over as it is, remember what it still needs
        if (e === -1) this.head = Buffer.from(buf.subarray(end));
        else this.owed = e - buf.length;
        return buf;
      }
      end = e;
    }
    if (end === buf.length) return buf;
    this.socket.unshift(buf.subarray(end));
    return buf.subarray(0, end);
  }
}
