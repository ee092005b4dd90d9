import { KernelError, errorText } from '../errors.js';
import { decodeMessage, encodeMessage, type Message } from '../bus/message.js';

/**
 * Collects items and hands them over in one batch per turn of the event loop, so that many small
 * messages share one gRPC frame (the out-of-process throughput comes from here).
 */
export class Batcher<T> {
  private items: T[] = [];
  private scheduled = false;

  constructor(private readonly flush: (items: T[]) => void) {}

  add(item: T): void {
    this.items.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }

  private readonly run = (): void => {
    this.scheduled = false;
    const items = this.items;
    this.items = [];
    if (items.length) this.flush(items);
  };
}

/**
 * A batch of messages as one bytes field: a JSON array of the messages, in one JSON.stringify.
 * The same value as their KubeEdge wire JSON once parsed (Go's HTML escaping and key order do not
 * matter between the kernel and its plugins); byte content is base64 as on the wire, so a batch
 * with bytes goes through the wire encoder.
 */
export function encodeBatch(msgs: readonly Message[]): Buffer {
  const bytes = msgs.some((m) => m.content instanceof Uint8Array);
  return Buffer.from(bytes ? `[${msgs.map(encodeMessage).join(',')}]` : JSON.stringify(msgs));
}

/**
 * The messages of a batch, in order; an element that is not a valid message is an Error in its
 * place (the caller reports it and goes on with the others). A batch that is not a JSON array is
 * a broken stream: EREMOTE_PROTOCOL.
 */
export function decodeBatch(bytes: Uint8Array): (Message | Error)[] {
  let items: unknown;
  try {
    items = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new KernelError('EREMOTE_PROTOCOL', `message batch is not JSON: ${errorText(err)}`);
  }
  if (!Array.isArray(items)) throw new KernelError('EREMOTE_PROTOCOL', 'message batch is not a JSON array');
  return items.map((item) => {
    try {
      return decodeMessage(item);
    } catch (err) {
      return err as Error;
    }
  });
}
