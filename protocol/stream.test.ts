import { describe, expect, it } from 'vitest';
import {
  MessageType,
  decodeTunnelMessage,
  edgedConnection,
  encodeTunnelMessage,
  parseEdgedConnection,
} from './stream.js';

describe('stream tunnel message (KubeEdge pkg/stream)', () => {
  it('encodes the header as two Go uvarints before the data', () => {
    // Go: binary.PutUvarint(300) = ac 02, MessageTypeData = 3
    expect([...encodeTunnelMessage(300, MessageType.Data, Buffer.from('hi'))]).toEqual([
      0xac, 0x02, 0x03, 0x68, 0x69,
    ]);
    expect([...encodeTunnelMessage(1, MessageType.RemoveConnect)]).toEqual([0x01, 0x04]);
  });

  it('decodes what it encodes, large ids included', () => {
    const id = 2 ** 40 + 7;
    const m = decodeTunnelMessage(
      encodeTunnelMessage(id, MessageType.AttachConnect, Buffer.from([0, 1, 255])),
    );
    expect(m).toEqual({ connectId: id, type: MessageType.AttachConnect, data: Buffer.from([0, 1, 255]) });
  });

  it('refuses a truncated header', () => {
    expect(() => decodeTunnelMessage(Buffer.from([0x80]))).toThrow(/truncated/);
    expect(() => decodeTunnelMessage(Buffer.from([0x01]))).toThrow(/truncated/);
  });
});

describe('connect data (Go BaseEdgedConnection)', () => {
  it("writes Go's keys and url.URL fields, pointed at edged's server", () => {
    const c = edgedConnection(5, 'POST', { Upgrade: ['SPDY/3.1'] }, '/exec/ns/p/c', 'command=true');
    expect(JSON.parse(JSON.stringify(c))).toMatchObject({
      messID: 5,
      method: 'POST',
      header: { Upgrade: ['SPDY/3.1'] },
      url: {
        Scheme: 'http',
        Host: '127.0.0.1:10350',
        Path: '/exec/ns/p/c',
        RawQuery: 'command=true',
        User: null,
      },
    });
  });

  it('reads the older capitalised keys a Go cloudcore may send', () => {
    const data = Buffer.from(
      JSON.stringify({
        MessID: 9,
        URL: {
          Scheme: 'http',
          Host: '127.0.0.1:10350',
          Path: '/containerLogs/a/b/c',
          RawQuery: 'follow=true',
        },
        Header: { 'User-Agent': ['kube-apiserver'] },
      }),
    );
    expect(parseEdgedConnection(data)).toMatchObject({
      messID: 9,
      method: 'GET',
      header: { 'User-Agent': ['kube-apiserver'] },
      url: { Path: '/containerLogs/a/b/c', RawQuery: 'follow=true' },
    });
  });
});
