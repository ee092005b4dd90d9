import { definePlugin, newResponse } from '../../../kernel/index.js';

/** Counts messages; answers a sync "count" with the total, a sync "query" at once. */
export default definePlugin({
  name: 'sink',
  group: 'bench',
  configKey: 'benchSink',
  start(ctx) {
    let count = 0;
    return {
      onMessage(msg) {
        if (!msg.header.sync) {
          count++;
          return;
        }
        ctx.respond(newResponse(msg, msg.route.operation === 'count' ? count : null));
      },
    };
  },
});
