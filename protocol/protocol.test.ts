import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  decodeTopicResource,
  deviceTopic,
  dmiSocketPath,
  drained,
  encodeTopicResource,
  mapperSocketPath,
  nodeTopic,
  validTwinKey,
  validTwinValue,
} from './index.js';

describe('topic codec (Go base64.URLEncoding)', () => {
  it('encodes the spec example with padding', () => {
    expect(encodeTopicResource('$hw/events/device/default/thermo-1/twin/update')).toBe(
      'JGh3L2V2ZW50cy9kZXZpY2UvZGVmYXVsdC90aGVybW8tMS90d2luL3VwZGF0ZQ==',
    );
  });
  it('uses the URL-safe alphabet: - for +, _ for /', () => {
    expect(encodeTopicResource('a?>')).toBe('YT8-');
    expect(encodeTopicResource('a??')).toBe('YT8_');
    expect(encodeTopicResource('a?>')).toBe('YT8-'); // a second time: the remembered encoding
  });
  it('decodes what it encodes, UTF-8 included', () => {
    for (const topic of ['a?>b', 'a??', '$hw/events/node/n1/membership/get', 'usr/température/ü', ''])
      expect(decodeTopicResource(encodeTopicResource(topic))).toBe(topic);
  });
  it('builds device and node topics', () => {
    expect(deviceTopic('default/thermo-1', 'twin/update')).toBe(
      '$hw/events/device/default/thermo-1/twin/update',
    );
    expect(nodeTopic('edge-1', 'membership/get/result')).toBe('$hw/events/node/edge-1/membership/get/result');
  });
});

describe('twin key and value rules (dtcommon.ValidateTwinKey/Value)', () => {
  it('accepts letters, digits and - _ . , : / @ #', () => {
    expect(validTwinKey('temperature')).toBe(true);
    expect(validTwinKey('a-b_c.d,e:f/g@h#i0')).toBe(true);
    expect(validTwinValue('12.5')).toBe(true);
  });
  it('refuses other characters and the empty string', () => {
    for (const k of ['', 'a b', 'a$b', 'é', 'a+b', 'a"b']) expect(validTwinKey(k)).toBe(false);
    for (const v of ['', 'x y', '{}']) expect(validTwinValue(v)).toBe(false);
  });
  it('limits keys to 128 and values to 512 characters', () => {
    expect(validTwinKey('k'.repeat(128))).toBe(true);
    expect(validTwinKey('k'.repeat(129))).toBe(false);
    expect(validTwinValue('v'.repeat(512))).toBe(true);
    expect(validTwinValue('v'.repeat(513))).toBe(false);
  });
});

describe('DMI socket paths', () => {
  it('puts dmi.sock in dmiSockPath, a directory or an older .sock path', () => {
    expect(dmiSocketPath(undefined)).toBe('/etc/kubeedge/dmi.sock');
    expect(dmiSocketPath('')).toBe('/etc/kubeedge/dmi.sock');
    expect(dmiSocketPath('/run/ke')).toBe('/run/ke/dmi.sock');
    expect(dmiSocketPath('/run/ke/old.sock')).toBe('/run/ke/dmi.sock');
  });
  it("puts a mapper's socket beside edgecore's", () => {
    expect(mapperSocketPath('/run/ke/dmi.sock', 'modbus')).toBe('/run/ke/modbus.sock');
  });
});

describe('drained (a streamed response with a slow reader)', () => {
  /** A stream that takes a write only when `take()` is called, as a socket whose reader is slow. */
  const slow = () => {
    const pending: (() => void)[] = [];
    const w = new Writable({ highWaterMark: 4, write: (_c, _e, cb) => void pending.push(() => cb()) });
    return { w, take: () => pending.shift()?.() };
  };

  it('resolves once the reader took what was queued, and leaves no listener behind', async () => {
    const { w, take } = slow();
    expect(w.write(Buffer.alloc(8))).toBe(false);
    let done = false;
    const wait = drained(w).then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    take();
    await wait;
    expect(w.listenerCount('drain') + w.listenerCount('close')).toBe(0);
  });

  it('resolves when the reader is gone instead', async () => {
    const { w } = slow();
    w.write(Buffer.alloc(8));
    const wait = drained(w);
    w.destroy();
    await wait;
    expect(w.listenerCount('drain')).toBe(0);
  });
});
