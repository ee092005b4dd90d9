import { definePlugin, newMessage, newResponse } from '../../../kernel/index.js';

/**
 * On a sync "send" {n}: sends n one-way messages to the sink, then answers once it counted them. On a sync "rtt" {n}: n sync round trips
 * to the sink, answering with the latencies in ns.
 */
export default definePlugin({
  name: 'sender',
  group: 'bench',
  configKey: 'benchSender',
  start(ctx) {
    return {
      async onMessage(msg) {
        const { n } = msg.content as { n: number };
        if (msg.route.operation === 'send') {
          const payload = { kind: 'bench', i: 0 };
          const base = (await ctx.request('sink', newMessage({ operation: 'count' }, null), 10_000))
            .content as number;
          // Pipelined: at each checkpoint wait for the previous one, so at most 512 messages are
          // unconfirmed (the sink's mailbox holds 1024) and the pipe never runs dry.
          let previous: Promise<void> = Promise.resolve();
          for (let i = 0; i < n; i++) {
            const p = ctx.send(
              'sink',
              newMessage({ source: 'sender', operation: 'update', resource: 'bench' }, payload),
            );
            if ((i & 255) === 255) {
              await previous;
              previous = p;
            }
          }
          await previous;
          let got = 0;
          while (got < base + n) {
            const r = await ctx.request('sink', newMessage({ operation: 'count' }, null), 10_000);
            got = r.content as number;
          }
          ctx.respond(newResponse(msg, n));
        } else if (msg.route.operation === 'rtt') {
          const samples: number[] = [];
          for (let i = 0; i < n; i++) {
            const t0 = process.hrtime.bigint();
            await ctx.request('sink', newMessage({ operation: 'query' }, null), 10_000);
            samples.push(Number(process.hrtime.bigint() - t0));
          }
          ctx.respond(newResponse(msg, samples));
        }
      },
    };
  },
});
