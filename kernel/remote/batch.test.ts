import { describe, expect, it } from 'vitest';
import { newMessage } from '../bus/message.js';
import { isKernelError } from '../errors.js';
import { decodeBatch, encodeBatch } from './batch.js';

describe('message batches on the plugin stream', () => {
  it('round-trips messages in order, byte content as base64 as on the wire', () => {
    const a = newMessage({ source: 's', operation: 'update', resource: 'r' }, { x: '<&>', n: [1, 2] });
    const b = newMessage({ operation: 'query' }, Buffer.from('hi'));
    expect(decodeBatch(encodeBatch([a]))).toEqual([a]);
    expect(decodeBatch(encodeBatch([a, b]))).toEqual([a, { ...b, content: 'aGk=' }]);
  });

  it('an element that is not a message is an error in its place; the others decode', () => {
    const ok = newMessage({ operation: 'x' }, 1);
    const out = decodeBatch(Buffer.from(JSON.stringify([ok, { header: 'nope' }, ok])));
    expect(out[0]).toEqual(ok);
    expect(out[1]).toBeInstanceOf(Error);
    expect((out[1] as Error).message).toMatch(/header/);
    expect(out[2]).toEqual(ok);
  });

  it('a batch that is not a JSON array is a protocol error', () => {
    for (const bytes of [Buffer.from('{"a":1}'), Buffer.from('[1,'), Buffer.from([0xff, 0xfe])]) {
      let err: unknown;
      try {
        decodeBatch(bytes);
      } catch (e) {
        err = e;
      }
      expect(isKernelError(err, 'EREMOTE_PROTOCOL')).toBe(true);
    }
  });
});
