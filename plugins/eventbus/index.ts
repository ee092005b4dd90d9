/**
 * eventBus: MQTT at the edge (spec edge-modules §4). Module `eventbus`, group `bus`, config
 * `modules.eventBus`. Internal broker (aedes, mqttMode 0/1), external broker client (mqttMode 1/2).
 */
import {
  DatabaseToken,
  KernelError,
  Operation,
  definePlugin,
  errorText,
  isKernelError,
  nodeName,
  type Message,
  type ModuleConfig,
  type PluginContext,
} from '../../kernel/index.js';
import type { EventBusConfig as KernelEventBusConfig } from './config.js';
import {
  BusGroup,
  DeviceTwinModuleName,
  EventBusModuleName,
  TwinGroup,
  nodeTopic,
} from '../../protocol/index.js';
import type { BrokerSide, SideHooks } from './sides.js';
import { FIXED_TOPICS, TopicFilters, destinationOf, mqttToBeehive, publishPayload } from './topics.js';

/** `modules.eventBus` as the kernel's config loader types it (spec §1.4.3). */
export type EventBusConfig = KernelEventBusConfig & ModuleConfig;

/** Messages held for the external broker while it is unreachable (then the oldest is dropped, logged). */
export const EXTERNAL_QUEUE_LIMIT = 1024;
/** How long eventBus waits for deviceTwin to store a twin-bound message; then it is not acknowledged. */
export const TWIN_ACK_TIMEOUT_MS = 10_000;
/**
 * Twin-bound MQTT messages handed to deviceTwin at once (its mailbox holds 1024). The others wait
 * here, and so do their publishers: their acknowledgement is held and the broker reads nothing
 * more from them until then.
 */
export const TWIN_WINDOW = 256;
/** First pause before a message refused by deviceTwin's full mailbox is offered again (doubling). */
const QUEUE_FULL_RETRY_MS = 5;

interface SubTopicsDao {
  all(): string[];
  add(topic: string): void;
  remove(topic: string): void;
}

function subTopicsDao(ctx: PluginContext<EventBusConfig>): SubTopicsDao {
  const db = ctx.services.get(DatabaseToken);
  db.exec('CREATE TABLE IF NOT EXISTS `sub_topics` (`topic` text, PRIMARY KEY (`topic`))');
  const all = db.prepare('SELECT `topic` FROM `sub_topics`').pluck();
  const add = db.prepare('INSERT OR REPLACE INTO `sub_topics` (`topic`) VALUES (?)');
  const remove = db.prepare('DELETE FROM `sub_topics` WHERE `topic` = ?');
  return {
    all: () => all.all() as string[],
    add: (t) => void add.run(t),
    remove: (t) => void remove.run(t),
  };
}

export default definePlugin<EventBusConfig>({
  name: EventBusModuleName,
  group: BusGroup,
  configKey: 'eventBus',
  requires: [DatabaseToken],
  async start(ctx) {
    const mode = ctx.config.mqttMode ?? 2;
    if (mode !== 0 && mode !== 1 && mode !== 2) {
      throw new KernelError(
        'EEVENTBUS_CONFIG',
        `modules.eventBus.mqttMode: expected 0 (internal), 1 (both) or 2 (external), got ${JSON.stringify(mode)}`,
      );
    }
    const dao = subTopicsDao(ctx);
    const topics = new TopicFilters([...FIXED_TOPICS, ...dao.all()]);
    const counters = { inbound: 0, dispatchFailures: 0, dropped: 0, notPublishable: 0 };

    const matches = (topic: string): boolean => topics.matches(topic);

    // The window towards deviceTwin: `inWindow` messages handed over, `waiting` wait for a slot.
    // What waits is the topic, the payload and the callback alone (the beehive message is built
    // once it enters the window): with many publishers, thousands wait.
    interface Twinbound {
      topic: string;
      payload: Buffer;
      qos: number;
      done: (err?: Error) => void;
    }
    let inWindow = 0;
    // a FIFO: an array and the index of its head (Array#shift copies the array, O(n) per message)
    let waiting: (Twinbound | undefined)[] = [];
    let head = 0;
    const nextWaiting = (): Twinbound | undefined => {
      const m = waiting[head];
      if (!m) return undefined;
      waiting[head++] = undefined;
      if (head === waiting.length) {
        waiting = [];
        head = 0;
      } else if (head >= 1024 && head * 2 >= waiting.length) {
        waiting = waiting.slice(head);
        head = 0;
      }
      return m;
    };
    /**
     * A sync request to deviceTwin for `m`; `finish` once it reports the message stored, or with
     * the reason it was not. A full mailbox (nothing queued) is tried again until the deadline.
     */
    const requestTwin = (m: Twinbound, msg: Message, deadline: number, pause = QUEUE_FULL_RETRY_MS): void =>
      void ctx.request(DeviceTwinModuleName, msg, deadline - Date.now()).then(
        (reply) =>
          finish(
            m,
            reply.route.operation === Operation.error
              ? new KernelError(
                  'EEVENTBUS_NOT_STORED',
                  `deviceTwin did not store it: ${errorText(reply.content)}`,
                )
              : undefined,
          ),
        (err: unknown) => {
          if (!isKernelError(err, 'EBUS_QUEUE_FULL') || Date.now() + pause >= deadline)
            return finish(m, err as KernelError);
          setTimeout(() => requestTwin(m, msg, deadline, pause * 2), pause);
        },
      );
    const finish = (m: Twinbound, err?: KernelError): void => {
      const next = nextWaiting();
      if (next)
        run(next); // the slot passes to the next message
      else inWindow--;
      if (err) {
        counters.dispatchFailures++;
        ctx.log.error(
          { topic: m.topic, qos: m.qos, code: err.code, err: errorText(err) },
          `eventbus: MQTT message on ${m.topic} not stored by deviceTwin${m.qos > 0 ? '; not acknowledged' : ''}: ${errorText(err)}`,
        );
      }
      m.done(err);
    };
    const run = (m: Twinbound): void =>
      requestTwin(m, mqttToBeehive(m.topic, m.payload, TwinGroup), Date.now() + TWIN_ACK_TIMEOUT_MS);

    /**
     * One MQTT message into beehive (spec §4.5). For a message bound for deviceTwin (any QoS),
     * `done` is called once deviceTwin has stored it (or answered it with an error result), with an
     * error when it did not (no acknowledgement then). Anything else is done once handed over; a
     * failure to hand it over is logged, as KubeEdge does.
     */
    const dispatch = (topic: string, payload: Buffer, qos: number, done: (err?: Error) => void): void => {
      counters.inbound++;
      const to = destinationOf(topic);
      if (to === TwinGroup && ctx.hasModule(DeviceTwinModuleName)) {
        const m: Twinbound = { topic, payload, qos, done };
        if (inWindow < TWIN_WINDOW) {
          inWindow++;
          run(m);
        } else waiting.push(m);
        return;
      }
      ctx.sendToGroup(to, mqttToBeehive(topic, payload, to)).then(
        () => done(),
        (err: unknown) => {
          counters.dispatchFailures++;
          ctx.log.error(
            { topic, group: to, code: (err as KernelError).code, err: errorText(err) },
            `eventbus: MQTT message on ${topic} not delivered to group ${to}`,
          );
          done();
        },
      );
    };

    const hooks: SideHooks = {
      matches,
      dispatch,
      log: ctx.log,
      onDrop: (topic, why) => {
        counters.dropped++;
        ctx.log.error({ topic, why }, `eventbus: message for MQTT topic ${topic} dropped: ${why}`);
      },
    };

    const sides: BrokerSide[] = [];
    const { startInternalBroker, startExternalClient } = await import('./sides.js');
    try {
      if (mode === 0 || mode === 1) sides.push(await startInternalBroker(ctx.config, hooks));
      if (mode === 1 || mode === 2) {
        sides.push(startExternalClient(ctx.config, hooks, topics.list(), EXTERNAL_QUEUE_LIMIT));
      }
    } catch (err) {
      await Promise.all(sides.map((s) => s.close()));
      throw err;
    }

    const publish = (topic: string, payload: Buffer | string): void => {
      for (const side of sides) side.publish(topic, payload);
    };

    const handle = (msg: Message): void => {
      const op = msg.route.operation ?? '';
      const resource = msg.route.resource ?? '';
      switch (op) {
        case 'subscribe':
          if (!resource)
            return void ctx.log.warn({ op }, 'eventbus: subscribe without a topic (route.resource)');
          topics.add(resource);
          for (const side of sides) side.subscribe(resource);
          dao.add(resource);
          return;
        case 'unsubscribe':
          topics.delete(resource);
          for (const side of sides) side.unsubscribe(resource);
          dao.remove(resource);
          return;
        case 'publish': {
          const payload = publishPayload(msg.content);
          if (!payload) {
            counters.notPublishable++;
            ctx.log.warn(
              { topic: resource, contentType: typeof msg.content },
              `eventbus: publish on ${resource}: content must be bytes or a string; dropped`,
            );
            return;
          }
          publish(resource, payload);
          return;
        }
        case 'message': {
          const inner = (msg.content as { message?: { topic?: unknown } } | null)?.message;
          if (!inner || typeof inner !== 'object' || typeof inner.topic !== 'string') {
            ctx.log.warn(
              { op },
              'eventbus: "message" content must be {"message":{"topic":"<t>",...}}; dropped',
            );
            return;
          }
          publish(inner.topic, JSON.stringify(inner));
          return;
        }
        case 'get_result':
          if (resource !== 'auth_info') {
            ctx.log.warn({ resource }, 'eventbus: get_result only for resource auth_info; dropped');
            return;
          }
          publish(
            nodeTopic(nodeName(ctx.services), 'authInfo/get/result'),
            JSON.stringify(msg.content ?? null),
          );
          return;
        default:
          ctx.log.debug({ op, resource }, 'eventbus: action not found');
      }
    };

    ctx.log.info({ mode, topics: topics.size }, 'eventbus started');
    return {
      onMessage: handle,
      async stop() {
        await Promise.all(sides.map((s) => s.close()));
      },
    };
  },
});
