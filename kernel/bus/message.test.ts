import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isKernelError } from '../errors.js';
import {
  decodeMessage,
  encodeMessage,
  newErrorMessage,
  newMessage,
  newResponse,
  type Message,
} from './message.js';

const fixture = new URL('../../test/fixtures/kubeedge/edgecore-v1.15.4-session.jsonl', import.meta.url);
const recorded: Message[] = readFileSync(fixture, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as { dir: string; msg?: Message })
  // Only what the real edgecore wrote is authoritative (the cloud side was a stand-in).
  .flatMap((l) => (l.msg && l.dir === 'edge->cloud' ? [l.msg] : []));

describe('wire message', () => {
  it('re-encodes every message a real edgecore v1.15.4 sent, byte for byte in Go key order', () => {
    expect(recorded.length).toBeGreaterThan(15);
    for (const msg of recorded) {
      // The recorder kept Go's key order; JSON.stringify of it is the Go text (no <, >, & in it).
      expect(encodeMessage(decodeMessage(JSON.stringify(msg)))).toBe(JSON.stringify(msg));
    }
  });

  it('encodes like Go: omit-empty, route and content always present, HTML-safe escaping, bytes as base64', () => {
    const msg: Message = {
      header: { msg_id: 'id-1', timestamp: 1700000000123, parent_msg_id: '', sync: false },
      route: {},
      content: null,
    };
    expect(encodeMessage(msg)).toBe(
      '{"header":{"msg_id":"id-1","timestamp":1700000000123},"route":{},"content":null}',
    );
    msg.content = { a: '<b>&' };
    expect(encodeMessage(msg)).toContain('"content":{"a":"\\u003cb\\u003e\\u0026"}');
    msg.content = Buffer.from('hi');
    expect(encodeMessage(msg)).toContain('"content":"aGk="');
    msg.header.resourceversion = '42';
    msg.header.sync = true;
    expect(encodeMessage(msg)).toMatch(
      /^\{"header":\{"msg_id":"id-1","timestamp":1700000000123,"resourceversion":"42","sync":true\}/,
    );
  });

  it('decodes as Go does: case-insensitive keys, unknown keys ignored, missing content is null', () => {
    const m = decodeMessage(
      '{"Header":{"MSG_ID":"x","Timestamp":5,"extra":1},"ROUTE":{"Source":"edged","Operation":"query"}}',
    );
    expect(m).toEqual({
      header: { msg_id: 'x', timestamp: 5 },
      route: { source: 'edged', operation: 'query' },
      content: null,
    });
  });

  it('rejects wrong types with the JSON path and what was expected', () => {
    const bad: [string, RegExp][] = [
      ['not json', /not JSON/],
      ['[1]', /expected a JSON object/],
      ['{"header":{"timestamp":1.5}}', /header.timestamp: expected an integer, got 1.5/],
      ['{"header":{"timestamp":"1"}}', /header.timestamp: expected an integer, got "1"/],
      ['{"header":{"msg_id":7}}', /header.msg_id: expected a string, got 7/],
      ['{"header":{"sync":"yes"}}', /header.sync: expected a boolean/],
      ['{"route":{"resource":["a"]}}', /route.resource: expected a string/],
      ['{"route":"x"}', /route: expected an object/],
    ];
    for (const [text, re] of bad) {
      let caught: unknown;
      try {
        decodeMessage(text);
      } catch (err) {
        caught = err;
      }
      expect(isKernelError(caught, 'EMSG_DECODE'), text).toBe(true);
      expect((caught as Error).message).toMatch(re);
    }
  });

  it('response and error helpers follow beehive', () => {
    const req = newMessage(
      { source: 'edgecontroller', group: 'resource', operation: 'insert', resource: 'default/pod/web' },
      {},
    );
    req.header.type = 'channel';
    const resp = newResponse(req, 'OK');
    expect(resp.header.parent_msg_id).toBe(req.header.msg_id);
    expect(resp.header.type).toBe('channel');
    expect(resp.route).toEqual({
      source: 'edgecontroller',
      group: 'resource',
      operation: 'response',
      resource: 'default/pod/web',
    });
    expect(resp.header.msg_id).not.toBe(req.header.msg_id);
    const err = newErrorMessage(req, 'boom');
    expect(err.route).toEqual({ operation: 'error', resource: 'default/pod/web' });
    expect(err.content).toBe('boom');
  });
});
