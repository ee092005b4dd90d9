import { describe, expect, it } from 'vitest';
import { isKernelError } from '../errors.js';
import { Bus } from './bus.js';
import { newMessage, newResponse, type Message } from './message.js';

describe('bus', () => {
  it('unknown module or group is an error, not a silent drop', async () => {
    const bus = new Bus();
    await expect(bus.send('nope', newMessage({}, null))).rejects.toMatchObject({ code: 'EBUS_NO_MODULE' });
    await expect(bus.sendToGroup('nope', newMessage({}, null))).rejects.toMatchObject({
      code: 'EBUS_NO_GROUP',
    });
    await expect(bus.request('nope', newMessage({}, null))).rejects.toMatchObject({ code: 'EBUS_NO_MODULE' });
  });

  it('delivers in order, one handler at a time unless concurrency allows more', async () => {
    const bus = new Bus();
    const box = bus.addModule('m', 'g');
    const seen: number[] = [];
    let active = 0;
    let maxActive = 0;
    box.attach(
      async (msg) => {
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise((r) => setTimeout(r, 1));
        seen.push(msg.content as number);
        active--;
      },
      () => undefined,
    );
    for (let i = 0; i < 20; i++) await bus.send('m', newMessage({}, i));
    while (seen.length < 20) await new Promise((r) => setTimeout(r, 5));
    expect(seen).toEqual([...Array(20).keys()]);
    expect(maxActive).toBe(1);
  });

  it('group send reaches every member; group request waits for one reply each', async () => {
    const bus = new Bus();
    for (const name of ['a', 'b']) {
      bus.addModule(name, 'bus').attach(
        (m) => void bus.respond(newResponse(m, name)),
        () => undefined,
      );
    }
    const replies = await bus.requestGroup('bus', newMessage({}, null), 1000);
    expect(replies.map((r) => r.content).sort()).toEqual(['a', 'b']);
  });

  it('a reply nobody waits for is counted and reported', () => {
    const bus = new Bus();
    const stray: Message[] = [];
    bus.onStrayReply = (m) => stray.push(m);
    expect(bus.respond(newResponse(newMessage({}, null), 'late'))).toBe(false);
    expect(bus.strayReplies).toBe(1);
    expect(stray).toHaveLength(1);
  });

  it('sync timeout <= 0 means beehive default; close() rejects pending requests', async () => {
    const bus = new Bus();
    bus.addModule('m', 'g');
    const p = bus.request('m', newMessage({}, null), 0);
    bus.close();
    const err = await p.catch((e: unknown) => e);
    expect(isKernelError(err, 'EBUS_CLOSED')).toBe(true);
  });
});
