import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { newMessage, type Message } from '../../kernel/index.js';
import { createLogger } from '../../kernel/log.js';
import { CloudSync, RESEND_PAUSE_MS, RESEND_SLICE } from './cloudsync.js';

/** Unit test of the confirm/retry bookkeeping (the end-to-end path is in devicetwin.test.ts). */
function harness(hub = true, limit?: number) {
  const sent: Message[] = [];
  const lines: string[] = [];
  const sync = new CloudSync({
    node: 'n1',
    log: createLogger('info', {}, (line) => void lines.push(line)),
    retryMs: 60_000,
    hasHub: () => hub,
    sendToHub: async (m) => void sent.push(m),
    ...(limit ? { limit } : {}),
  });
  return { sync, sent, lines };
}
const msg = (r: string) =>
  newMessage({ source: 'twin', group: 'resource', operation: 'update', resource: r }, {});

beforeEach(() => void vi.useFakeTimers());
afterEach(() => void vi.useRealTimers());

describe('CloudSync', () => {
  it('keeps what is sent while disconnected, sends membership/detail then the backlog on connect', () => {
    const { sync, sent } = harness();
    sync.send(msg('device/default/a/state/update'));
    expect(sent).toEqual([]);
    sync.setConnected(true);
    expect(sent.map((m) => m.route.resource)).toEqual(['membership/detail', 'device/default/a/state/update']);
    sync.stop();
  });

  it('re-sends the same message (same msg_id) every period until confirmed', () => {
    const { sync, sent } = harness();
    sync.setConnected(true);
    const m = msg('device/default/a/twin/edge_updated');
    sync.send(m);
    vi.advanceTimersByTime(60_000);
    expect(sent.filter((s) => s.header.msg_id === m.header.msg_id)).toHaveLength(2);
    for (const s of sent) sync.confirm(s.header.msg_id);
    const before = sent.length;
    vi.advanceTimersByTime(120_000);
    expect(sent.length).toBe(before);
    expect(sync.unconfirmed).toBe(0);
    sync.stop();
  });

  it('paces a re-send round: slices of RESEND_SLICE with a pause between them', () => {
    const { sync, sent } = harness();
    for (let i = 0; i < 1000; i++) sync.send(msg(`r${i}`));
    sync.setConnected(true);
    expect(sent).toHaveLength(1 + RESEND_SLICE); // membership/detail, then the first slice
    vi.advanceTimersByTime(RESEND_PAUSE_MS);
    expect(sent).toHaveLength(1 + 2 * RESEND_SLICE);
    vi.advanceTimersByTime(RESEND_PAUSE_MS * 10);
    expect(sent).toHaveLength(1001);
    expect(sent.slice(1).map((m) => m.route.resource)).toEqual(
      Array.from({ length: 1000 }, (_, i) => `r${i}`),
    );
    sync.stop();
  });

  it('is bounded: the oldest is dropped and counted, logged once and then once per period', () => {
    const { sync, lines } = harness(false, 3);
    for (let i = 0; i < 5000; i++) sync.send(msg(`r${i}`));
    expect(sync.unconfirmed).toBe(3);
    expect(sync.dropped).toBe(4997);
    expect(lines).toHaveLength(1);
    vi.advanceTimersByTime(60_000);
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1]!)).toMatchObject({ dropped: 4997, refused: 0 });
    vi.advanceTimersByTime(60_000);
    expect(lines).toHaveLength(2); // nothing new to report
    sync.stop();
  });
});
