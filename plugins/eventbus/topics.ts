/**
 * eventBus topics and the MQTT <-> beehive conversion (spec edge-modules §4.4–§4.6), pure code.
 */
import { newMessage, type Message } from '../../kernel/index.js';
import {
  BusSource,
  DeviceETPrefix,
  HubGroup,
  NodeETPrefix,
  TwinGroup,
  UserGroup,
  encodeTopicResource,
} from '../../protocol/index.js';

/** The fixed subscriptions of edgecore v1.23.1 (`edge/pkg/eventbus/mqtt/client.go`). */
export const FIXED_TOPICS: readonly string[] = [
  '$hw/events/upload/#',
  '$hw/events/device/+/+/state/update',
  '$hw/events/device/+/+/twin/+',
  '$hw/events/node/+/membership/get',
  'SYS/dis/upload_records',
  '+/user/#',
];

/** MQTT topic filter matching (`+` one level, `#` the rest, `$` topics only by explicit prefix). */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  return matchParts(filter.split('/'), topic.split('/'));
}

/**
 * The subscription filters of eventBus, matched against every MQTT message. Filters are split once;
 * answers are remembered per topic (bounded; forgotten when the filters change), so the hot path is
 * one map lookup.
 */
export class TopicFilters {
  private readonly filters = new Map<string, string[]>();
  private readonly answers = new Map<string, boolean>();

  constructor(
    filters: Iterable<string>,
    private readonly cacheLimit = 4096,
  ) {
    for (const f of filters) this.add(f);
  }

  get size(): number {
    return this.filters.size;
  }

  has(filter: string): boolean {
    return this.filters.has(filter);
  }

  list(): string[] {
    return [...this.filters.keys()];
  }

  add(filter: string): void {
    if (this.filters.has(filter)) return;
    this.filters.set(filter, filter.split('/'));
    this.answers.clear();
  }

  delete(filter: string): void {
    if (this.filters.delete(filter)) this.answers.clear();
  }

  matches(topic: string): boolean {
    const known = this.answers.get(topic);
    if (known !== undefined) return known;
    const t = topic.split('/');
    let hit = false;
    for (const f of this.filters.values()) {
      if (matchParts(f, t)) {
        hit = true;
        break;
      }
    }
    if (this.answers.size >= this.cacheLimit) this.answers.clear();
    this.answers.set(topic, hit);
    return hit;
  }
}

function matchParts(f: string[], t: string[]): boolean {
  if (t[0]?.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const part = f[i];
    if (part === '#') return true;
    if (i >= t.length) return false;
    if (part !== '+' && part !== t[i]) return false;
  }
  return f.length === t.length;
}

export type Destination = typeof TwinGroup | typeof HubGroup;

/** Where an MQTT message goes: group `twin` for device/node events, group `hub` (cloud) otherwise. */
export function destinationOf(topic: string): Destination {
  return topic.startsWith(DeviceETPrefix) || topic.startsWith(NodeETPrefix) ? TwinGroup : HubGroup;
}

/** The beehive message eventBus produces for an MQTT publish on `topic` (spec §4.5). */
export function mqttToBeehive(topic: string, payload: Buffer | string): { to: Destination; msg: Message } {
  const content = typeof payload === 'string' ? payload : payload.toString('utf8');
  const to = destinationOf(topic);
  const msg =
    to === TwinGroup
      ? newMessage(
          {
            source: BusSource,
            group: UserGroup,
            operation: 'response',
            resource: encodeTopicResource(topic),
          },
          content,
        )
      : newMessage({ source: BusSource, group: UserGroup, operation: 'upload', resource: topic }, content);
  return { to, msg };
}

/** The bytes of a `publish` content: bytes or a string; anything else is not publishable (null). */
export function publishPayload(content: unknown): Buffer | null {
  if (Buffer.isBuffer(content)) return content;
  if (content instanceof Uint8Array) return Buffer.from(content);
  if (typeof content === 'string') return Buffer.from(content, 'utf8');
  return null;
}
