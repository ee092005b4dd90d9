import type { ServerResponse } from 'node:http';
import { drained } from '../../../protocol/index.js';

/**
 * One watch stream of metaServer, written at the client's pace. The replay (the current objects as
 * ADDED, or the events after a resourceVersion) waits for the socket to drain between writes;
 * live events that arrive meanwhile are held and follow it. Once live, events are written as they
 * happen; a client that stops reading makes them queue in this process, and when more than
 * {@link WATCH_QUEUE_BYTES} are queued the watch is dropped as kube-apiserver drops an
 * unresponsive watcher: an `ERROR` event (410 `Expired`: the client lists again) ends the stream,
 * and a client that does not read even that is disconnected after {@link DROP_GRACE_MS}.
 */

/** Bytes of events a watch may have queued (written, not yet taken by the client) before it is dropped. */
const WATCH_QUEUE_BYTES = 16 * 1024 * 1024;
/** How long a dropped watch's client has to read what was queued before its connection is closed. */
const DROP_GRACE_MS = 10_000;

/** The Status object kube-apiserver returns for an error. */
export function statusObject(
  code: number,
  reason: string,
  message: string,
  details?: Record<string, unknown>,
): unknown {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

/** One line of a watch stream; `value` is the object's JSON text, inserted as is. */
export function eventLine(type: string, value: string): Buffer {
  return Buffer.from(`{"type":"${type}","object":${value}}\n`);
}

export class WatchStream {
  /** Live events held while the replay is written (undefined once live). */
  private held: Buffer[] | undefined = [];
  private heldBytes = 0;
  private ended = false;

  constructor(
    private readonly res: ServerResponse,
    /** The client fell behind by `queued` bytes: stop sending it events (the stream is then ended). */
    private readonly onDrop: (queued: number) => void,
  ) {}

  /** A live event. */
  push(line: Buffer): void {
    if (this.ended) return;
    if (this.held) {
      this.held.push(line);
      this.heldBytes += line.length;
      if (this.heldBytes > WATCH_QUEUE_BYTES) this.drop(this.heldBytes);
      return;
    }
    this.res.write(line);
    if (this.res.writableLength > WATCH_QUEUE_BYTES) this.drop(this.res.writableLength);
  }

  /** Write the replay at the client's pace, then the live events held meanwhile; then go live. */
  async replay(lines: Iterable<Buffer>): Promise<void> {
    for (const line of lines) if (!(await this.paced(line))) return;
    for (let i = 0; this.held && i < this.held.length; i++) {
      const line = this.held[i] as Buffer;
      this.heldBytes -= line.length;
      if (!(await this.paced(line))) return;
    }
    this.held = undefined;
  }

  /** End the stream (timeoutSeconds, the server closing, an error event). */
  end(last?: Buffer): void {
    if (this.ended) return;
    this.ended = true;
    this.held = undefined;
    if (!this.res.writableEnded) this.res.end(last);
  }

  private async paced(line: Buffer): Promise<boolean> {
    if (this.ended) return false;
    if (!this.res.write(line)) await drained(this.res);
    return !this.ended && !this.res.destroyed;
  }

  private drop(queued: number): void {
    this.onDrop(queued);
    const status = statusObject(
      410,
      'Expired',
      `watch closed: the client did not read ${queued} bytes of events in time; list again`,
    );
    this.end(eventLine('ERROR', JSON.stringify(status)));
    const res = this.res;
    const timer = setTimeout(() => res.destroy(), DROP_GRACE_MS);
    timer.unref();
    res.once('close', () => clearTimeout(timer));
  }
}
