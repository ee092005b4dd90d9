/**
 * deviceTwin (spec edge-modules §5): module `twin`, group `twin`, config `modules.deviceTwin`.
 * Keeps each device's attributes and twins in the kernel's SQLite database, answers the MQTT twin
 * topics (through eventBus), syncs reported values and states to the cloud, and tells the DMI
 * server (module `dmiserver`) about device and model changes.
 */
import {
  CloudConnectionToken,
  DatabaseToken,
  definePlugin,
  errorText,
  newMessage,
  nodeName,
  newResponse,
  newErrorMessage,
  parseResource,
  type Message,
  type ModuleConfig,
} from '../../kernel/index.js';
import {
  BusGroup,
  BusSource,
  CloudConnected,
  CloudDisconnected,
  DeviceTwinModuleName,
  DmiGroup,
  DmiServerModuleName,
  EdgeHubModuleName,
  EventBusModuleName,
  MessageSuccessfulContent,
  MetaGroup,
  MetaManagerModuleName,
  ResourceGroup,
  ResourceTypeNodeConnection,
  SourceNodeConnection,
  TwinGroup,
  decodeTopicResource,
} from '../../protocol/index.js';
import type { DeviceTwinConfig } from './config.js';
import type { CloudSend, Outcome, TwinEngine } from './engine.js';
import type { ChangeSet } from './store.js';
import type { CloudSync } from './cloudsync.js';

/** Re-send period of unconfirmed cloud messages (KubeEdge: ~60 s of idleness). */
export const CONFIRM_RETRY_MS = 60_000;
/** Write attempts before an event is answered with 500 (KubeEdge: 5). */
const WRITE_ATTEMPTS = 5;
/** First pause before a failed write is tried again (doubling: 50, 100, 200, 400 ms). */
const WRITE_RETRY_MS = 50;

const contentText = (c: unknown): string => {
  if (typeof c === 'string') return c;
  if (Buffer.isBuffer(c) || c instanceof Uint8Array) return Buffer.from(c).toString('utf8');
  return JSON.stringify(c ?? null);
};

export default definePlugin<DeviceTwinConfig & ModuleConfig>({
  name: DeviceTwinModuleName,
  group: TwinGroup,
  configKey: 'deviceTwin',
  requires: [DatabaseToken],
  // Handlers run their state change synchronously in mailbox order, then wait for the group commit.
  concurrency: 256,
  async start(ctx) {
    const { TwinStore } = await import('./store.js');
    const { TwinEngine, classifyTopic } = await import('./engine.js');
    const { CloudSync } = await import('./cloudsync.js');
    const { LRUCache } = await import('lru-cache');
    const node = nodeName(ctx.services);
    // resource (base64url of the MQTT topic) -> topic and its parts; devices publish on few topics
    const topics = new LRUCache<string, { topic: string; t: ReturnType<typeof classifyTopic> }>({
      max: 4096,
    });
    const topicOf = (resource: string): { topic: string; t: ReturnType<typeof classifyTopic> } => {
      let known = topics.get(resource);
      if (!known) {
        const topic = decodeTopicResource(resource);
        known = { topic, t: classifyTopic(topic) };
        topics.set(resource, known);
      }
      return known;
    };
    const store = new TwinStore(ctx.services.get(DatabaseToken));
    // Group commit: the changes of every event handled in one event-loop turn are written in one
    // transaction; results are published (and publishers acknowledged) only once it is committed.
    // Commits run one after the other; a failed one is retried after a back-off (the event loop
    // keeps running meanwhile), and after WRITE_ATTEMPTS its events are answered as not stored and
    // the in-memory state is reloaded from the database once no commit is queued behind it.
    // The changes of the events handled since the last flush, and those events with their outcome:
    // each is answered (and its results published) once the commit holding its changes is done.
    const batch: ChangeSet[] = [];
    let events: { msg: Message; outcome: Outcome }[] = [];
    let next: Promise<void> | undefined;
    let committing: Promise<unknown> = Promise.resolve();
    let queued = 0;
    let reloadDue = false;
    const commit = async (items: ChangeSet[]): Promise<boolean> => {
      for (let attempt = 1; ; attempt++) {
        try {
          store.applyMany(items);
          return true;
        } catch (err) {
          if (attempt >= WRITE_ATTEMPTS) {
            ctx.log.error(
              { err: errorText(err), events: items.length, attempts: attempt },
              `twin: database write failed ${attempt} times; ${items.length} events not stored, state reloaded`,
            );
            reloadDue = true;
            return false;
          }
          ctx.log.warn({ err: errorText(err), attempt }, 'twin: database write failed; retrying');
          await new Promise((r) => setTimeout(r, WRITE_RETRY_MS * 2 ** (attempt - 1)));
        }
      }
    };
    /**
     * Queue an event's outcome (its changes are in `batch` already) for the next flush; the
     * promise settles once the event is answered. One promise per flush, not per event: the hot
     * path (twin updates) costs no promise or closure of its own here.
     */
    const apply = (msg: Message, outcome: Outcome): Promise<void> => {
      events.push({ msg, outcome });
      return (next ??= new Promise<void>((resolve) =>
        setImmediate(() => {
          const items = batch.splice(0);
          const settled = events;
          events = [];
          next = undefined;
          if (items.length === 0) return resolve(answer(settled, true));
          queued++;
          const done = committing.then(() => commit(items));
          committing = done.then(() => {
            if (--queued === 0 && reloadDue) {
              reloadDue = false;
              engine.reload();
            }
          });
          resolve(done.then((stored) => answer(settled, stored)));
        }),
      ));
    };
    // Without an edgeHub module there is no cloud to sync to: no cloud-bound message is built or kept.
    const engine: TwinEngine = new TwinEngine(
      store,
      node,
      (c) => void batch.push(c),
      () => ctx.hasModule(EdgeHubModuleName),
    );
    const stats = { publishFailures: 0, ignored: 0 };

    const cloud: CloudSync = new CloudSync({
      node,
      log: ctx.log,
      retryMs: CONFIRM_RETRY_MS,
      hasHub: () => ctx.hasModule(EdgeHubModuleName),
      sendToHub: (msg) => ctx.send(EdgeHubModuleName, msg),
    });

    const publish = (topic: string, payload: string): void => {
      ctx
        .send(
          EventBusModuleName,
          newMessage(
            { source: DeviceTwinModuleName, group: BusGroup, operation: 'publish', resource: topic },
            payload,
          ),
        )
        .catch((err: unknown) => {
          stats.publishFailures++;
          ctx.log.warn({ topic, err: errorText(err) }, `twin: cannot publish on ${topic} through eventbus`);
        });
    };

    // ------------------------------------------------------------------------------ DMI (contract)
    const dmiObjects = new Map<string, unknown>(); // "device/<ns>/<name>" | "devicemodel/<ns>/<name>" -> object
    const toDmi = async (operation: 'insert' | 'update' | 'delete', resource: string, content: unknown) => {
      if (!ctx.hasModule(DmiServerModuleName)) return;
      try {
        await ctx.send(
          DmiServerModuleName,
          newMessage({ source: DeviceTwinModuleName, group: DmiGroup, operation, resource }, content),
        );
      } catch (err) {
        ctx.log.warn({ resource, err: errorText(err) }, `twin: cannot tell dmiserver about ${resource}`);
      }
    };

    /**
     * Answer the events of a flush once their commit is done (`stored`: it succeeded, or there was
     * nothing to write): publish and send what each produced, or its write-failure result when not
     * stored. Resolves once every event is answered (after DMI is told of membership changes).
     */
    const answer = (settled: { msg: Message; outcome: Outcome }[], stored: boolean): Promise<void> | void => {
      let dmi: Promise<void>[] | undefined;
      for (const { msg, outcome } of settled) {
        try {
          if (!stored) {
            for (const p of outcome.onWriteFailure?.() ?? []) publish(p.topic, p.payload);
            done(msg, false);
            continue;
          }
          // queued synchronously, in order: result, document, delta of one event stay together
          for (const p of outcome.publish) publish(p.topic, p.payload);
          for (const c of outcome.cloud) cloud.send(cloudMessage(c));
          if (!outcome.added && !outcome.removed) {
            done(msg, true);
            continue;
          }
          (dmi ??= []).push(
            membershipToDmi(outcome).then(
              () => done(msg, true),
              (err: unknown) => {
                failed(msg, err);
                done(msg, false);
              },
            ),
          );
        } catch (err) {
          failed(msg, err);
          done(msg, false);
        }
      }
      if (dmi) return Promise.all(dmi).then(() => undefined);
    };

    /** Tell dmiserver about the devices an event added or removed. */
    const membershipToDmi = async (outcome: Outcome): Promise<void> => {
      for (const id of outcome.added ?? []) {
        const obj = dmiObjects.get(`device/${id}`);
        if (obj) await toDmi('insert', `device/${id}`, obj);
      }
      for (const id of outcome.removed ?? []) {
        const [namespace, name] = id.split('/');
        await toDmi(
          'delete',
          `device/${id}`,
          dmiObjects.get(`device/${id}`) ?? { metadata: { name, namespace } },
        );
        dmiObjects.delete(`device/${id}`);
      }
    };

    const cloudMessage = (c: CloudSend): Message =>
      newMessage(
        { source: DeviceTwinModuleName, group: ResourceGroup, operation: c.operation, resource: c.resource },
        c.content,
      );

    /** An MQTT message from eventBus (or the same shape from dmiserver). */
    const fromBus = (msg: Message): Promise<void> | void => {
      const { topic, t } = topicOf(msg.route.resource ?? '');
      const payload = contentText(msg.content);
      if (!t) {
        stats.ignored++;
        ctx.log.warn({ topic }, `twin: topic ${topic} is not a device or node event topic; ignored`);
        return;
      }
      if (t.kind === 'device') {
        if (t.suffix === 'twin/update') return apply(msg, engine.twinUpdate(t.id, payload));
        if (t.suffix === 'twin/get') return apply(msg, engine.twinGet(t.id, payload));
        if (t.suffix === 'state/update') {
          const o = engine.stateUpdate(t.id, payload);
          if (o.ignored)
            ctx.log.warn({ topic, why: o.ignored }, `twin: state update on ${topic} ignored: ${o.ignored}`);
          return apply(msg, o);
        }
      } else if (t.suffix === 'membership/get') {
        const o = engine.membershipGet(payload);
        if (o.ignored) ctx.log.warn({ topic, why: o.ignored }, `twin: ${o.ignored}`);
        return apply(msg, o);
      }
      stats.ignored++;
      ctx.log.debug({ topic }, 'twin: no handler for topic');
    };

    /** Device / DeviceModel objects (forwarded by metaManager) → DMI. */
    const fromMeta = async (msg: Message): Promise<void> => {
      const op = msg.route.operation ?? '';
      const r = parseResource(msg.route.resource ?? '');
      const type = r.type;
      if (!['insert', 'update', 'delete'].includes(op)) return;
      const key = `${type}/${r.namespace}/${r.name}`;
      let content: unknown = msg.content;
      if (typeof content === 'string') {
        try {
          content = JSON.parse(content);
        } catch {
          ctx.log.error(
            { resource: msg.route.resource },
            `twin: ${type} ${r.namespace}/${r.name}: content is not JSON`,
          );
          return;
        }
      }
      if (op === 'delete') dmiObjects.delete(key);
      else dmiObjects.set(key, content);
      await toDmi(
        op as 'insert' | 'update' | 'delete',
        key,
        content ?? { metadata: { name: r.name, namespace: r.namespace } },
      );
    };

    const onConnection = (connected: boolean): void => cloud.setConnected(connected);
    const conn = ctx.services.get(CloudConnectionToken);
    const unlisten = conn.onChange(onConnection);
    if (conn.connected) cloud.setConnected(true);

    /**
     * The message's work. A promise when the answer waits (for the group commit, or DMI): the
     * message is answered when it settles. Nothing: handled, answer it now.
     */
    const route = (msg: Message): Promise<void> | void => {
      const { source, operation, resource = '', group } = msg.route;
      if (source === BusSource && operation === 'response') return fromBus(msg);
      if (source === SourceNodeConnection && resource === ResourceTypeNodeConnection) {
        if (msg.content === CloudConnected) cloud.setConnected(true);
        else if (msg.content === CloudDisconnected) cloud.setConnected(false);
      } else if (resource.includes('membership/detail')) {
        // the cloud's answer to our membership/detail request: it confirms the request and (unless a
        // bare "OK") lists the node's complete device set, as KubeEdge's twin confirms the parent
        // and then handles the message (MemDetailResult)
        if (msg.header.parent_msg_id) cloud.confirm(msg.header.parent_msg_id);
        if (msg.content !== MessageSuccessfulContent)
          return apply(msg, engine.membershipDetail(parseContent(msg)));
      } else if (msg.header.parent_msg_id && group === TwinGroup) cloud.confirm(msg.header.parent_msg_id);
      else if (resource === 'membership' || resource.endsWith('/membership'))
        return apply(msg, engine.membershipUpdate(parseContent(msg)));
      else if (/(^|\/)(device|devicemodel)\//.test(resource) && !resource.startsWith('device/'))
        return fromMeta(msg).then(
          () => done(msg, true),
          (err: unknown) => {
            failed(msg, err);
            done(msg, false);
          },
        );
      else ctx.log.debug({ source, operation, resource }, 'twin: message not handled');
    };
    const failed = (msg: Message, err: unknown): void => {
      const { operation, resource = '', source } = msg.route;
      ctx.log.error(
        { source, operation, resource, err: errorText(err) },
        `twin: cannot handle ${operation ?? ''} ${resource}: ${errorText(err)}`,
      );
    };
    /**
     * A sync request (eventBus's twin-bound MQTT messages) is answered once handled: "OK" when its
     * changes are stored (or it needed none, e.g. an error result), an error message when not.
     */
    const done = (msg: Message, stored: boolean): void => {
      if (!msg.header.sync || msg.header.parent_msg_id) return;
      ctx.respond(
        stored
          ? newResponse(msg, MessageSuccessfulContent)
          : newErrorMessage(msg, 'twin: not stored (database write failed)'),
      );
    };
    // No async wrapper: a twin update shares its flush's promise (the mailbox counts it in flight).
    const handle = (msg: Message): Promise<void> | void => {
      let pending: Promise<void> | void = undefined;
      try {
        pending = route(msg);
      } catch (err) {
        failed(msg, err);
        return done(msg, false);
      }
      return pending ?? done(msg, true);
    };

    // Tell dmiserver about every object known at start (from metaManager's store, when there is one).
    void (async () => {
      if (!ctx.hasModule(MetaManagerModuleName) || !ctx.hasModule(DmiServerModuleName)) return;
      for (const type of ['devicemodel', 'device']) {
        try {
          const reply = await ctx.request(
            MetaManagerModuleName,
            newMessage(
              {
                source: DeviceTwinModuleName,
                group: MetaGroup,
                operation: 'query',
                resource: `default/${type}`,
              },
              null,
            ),
            10_000,
          );
          const list = Array.isArray(reply.content) ? reply.content : [];
          for (const item of list) {
            const obj = (typeof item === 'string' ? JSON.parse(item) : item) as {
              metadata?: { name?: string; namespace?: string };
            };
            const key = `${type}/${obj.metadata?.namespace ?? 'default'}/${obj.metadata?.name ?? ''}`;
            dmiObjects.set(key, obj);
            await toDmi('insert', key, obj);
          }
        } catch (err) {
          ctx.log.warn({ type, err: errorText(err) }, `twin: cannot list ${type} objects from metamanager`);
        }
      }
    })();

    ctx.log.info({ devices: engine.devices.size, node }, 'twin started');
    return {
      onMessage: handle,
      stop() {
        unlisten();
        cloud.stop();
      },
    };
  },
});

function parseContent(msg: Message): unknown {
  const c = msg.content;
  if (typeof c === 'string' || Buffer.isBuffer(c)) return JSON.parse(contentText(c));
  return c;
}
