// A third-party plugin for the kubeedge-ts kernel, in plain JavaScript. It depends only on the
// kernel's public API (the "kubeedge-ts/kernel" export).
import { definePlugin, newResponse } from 'kubeedge-ts/kernel';

/** @typedef {import('kubeedge-ts/kernel').ModuleConfig & { greeting?: string }} HelloConfig */

export default definePlugin(
  /** @type {import('kubeedge-ts/kernel').PluginDefinition<HelloConfig>} */ ({
    name: 'hello',
    group: 'hello',
    configKey: 'hello',
    start(ctx) {
      const greeting = ctx.config.greeting ?? 'hello';
      ctx.log.info({ greeting }, 'hello plugin started');
      return {
        onMessage(msg) {
          if (msg.header.sync) ctx.respond(newResponse(msg, `${greeting}, ${String(msg.content)}`));
        },
      };
    },
  }),
);
