// A third-party plugin for the kubeedge-ts kernel, in plain JavaScript. It depends only on the
// kernel's public API (the "kubeedge-ts/kernel" export).
import {
  configSchema,
  defineConfigSection,
  definePlugin,
  newResponse,
  sectionSchema,
} from 'kubeedge-ts/kernel';

/** @typedef {import('kubeedge-ts/kernel').ModuleConfig & { greeting: string }} HelloConfig */

/**
 * `modules.hello`: its schema, defaults and rules, checked with file and line when edgecore loads
 * its config (`edgecore --config`), like a built-in section.
 */
const config = defineConfigSection({
  schema: sectionSchema({ greeting: configSchema.str() }),
  defaults: () => ({ enable: true, runAs: 'inprocess', greeting: 'hello' }),
  validate(section, r) {
    if (section.greeting.trim() === '') r.error('greeting', 'must not be empty');
  },
});

export default definePlugin(
  /** @type {import('kubeedge-ts/kernel').PluginDefinition<HelloConfig>} */ ({
    name: 'hello',
    group: 'hello',
    configKey: 'hello',
    config,
    start(ctx) {
      const greeting = ctx.config.greeting;
      ctx.log.info({ greeting }, 'hello plugin started');
      return {
        onMessage(msg) {
          if (msg.header.sync) ctx.respond(newResponse(msg, `${greeting}, ${String(msg.content)}`));
        },
      };
    },
  }),
);
