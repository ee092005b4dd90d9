import { describe, expect, it } from 'vitest';
import { newMessage, type Message } from '../../kernel/index.js';
import { createLogger } from '../../kernel/log.js';
import { CloudSync } from './cloudsync.js';

/** Unit test of the confirm/retry bookkeeping (the end-to-end path is in devicetwin.test.ts). */
function harness(hub = true, limit?: number) {
  const sent: Message[] = [];
  const sync = new CloudSync({
    node: 'n1',
    log: createLogger('silent'),
    retryMs: 30,
    hasHub: () => hub,
    sendToHub: async (m) => void sent.push(m),
    ...(limit ? { limit } : {}),
  });
  return { sync, sent };
}
const msg = (r: string) =>
  newMessage({ source: 'twin', group: 'resource', operation: 'update', resource: r }, {});

describe('CloudSync', () => {
  it('keeps what is sent while disconnected, sends membership/detail then the backlog on connect', () => {
    const { sync, sent } = harness();
    sync.send(msg('device/default/a/state/update'));
    expect(sent).toEqual([]);
    sync.setConnected(true);
    expect(sent.map((m) => m.route.resource)).toEqual(['membership/detail', 'device/default/a/state/update']);
    sync.stop();
  });

  it('re-sends the same message (same msg_id) until confirmed', async () => {
    const { sync, sent } = harness();
    sync.setConnected(true);
    const m = msg('device/default/a/twin/edge_updated');
    sync.send(m);
    await new Promise((r) => setTimeout(r, 80));
    const copies = sent.filter((s) => s.header.msg_id === m.header.msg_id).length;
    expect(copies).toBeGreaterThanOrEqual(2);
    sync.confirm(m.header.msg_id);
    for (const s of sent) sync.confirm(s.header.msg_id);
    const before = sent.length;
    await new Promise((r) => setTimeout(r, 80));
    expect(sent.length).toBe(before);
    expect(sync.unconfirmed).toBe(0);
    sync.stop();
  });

  it('is bounded: the oldest unconfirmed message is dropped and counted', () => {
    const { sync } = harness(false, 3);
    for (let i = 0; i < 5; i++) sync.send(msg(`r${i}`));
    expect(sync.unconfirmed).toBe(3);
    expect(sync.dropped).toBe(2);
    sync.stop();
  });
});
