/**
 * eventBus topics and the MQTT <-> beehive conversion (spec edge-modules §4.4–§4.6), pure code.
 */
import { LRUCache } from 'lru-cache';
import { Qlobber } from 'qlobber';
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

/** The limit of qlobber (aedes' own); a longer topic matches no filter. */
const MAX_LEVELS = 100;

/**
 * The subscription filters of eventBus, matched against every MQTT message with qlobber (aedes'
 * matcher, MQTT wildcards; a `$` topic is matched only by a filter that names its first level).
 * Answers are remembered per topic (LRU, forgotten when the filters change), so the hot path is
 * one cache lookup.
 */
export class TopicFilters {
  private readonly filters = new Set<string>();
  private readonly matcher = new Qlobber<string>({
    separator: '/',
    wildcard_one: '+',
    wildcard_some: '#',
    match_empty_levels: true,
    max_words: MAX_LEVELS,
  });
  private readonly answers: LRUCache<string, boolean>;

  constructor(filters: Iterable<string>, cacheLimit = 4096) {
    this.answers = new LRUCache({ max: cacheLimit });
    for (const f of filters) this.add(f);
  }

  get size(): number {
    return this.filters.size;
  }

  has(filter: string): boolean {
    return this.filters.has(filter);
  }

  list(): string[] {
    return [...this.filters];
  }

  add(filter: string): void {
    if (this.filters.has(filter)) return;
    this.filters.add(filter);
    this.matcher.add(filter, filter);
    this.answers.clear();
  }

  delete(filter: string): void {
    if (!this.filters.delete(filter)) return;
    this.matcher.remove(filter, filter);
    this.answers.clear();
  }

  matches(topic: string): boolean {
    let hit = this.answers.get(topic);
    if (hit === undefined) {
      hit = this.match(topic);
      this.answers.set(topic, hit);
    }
    return hit;
  }

  private match(topic: string): boolean {
    if (topic.split('/', MAX_LEVELS + 1).length > MAX_LEVELS) return false;
    const found = this.matcher.match(topic);
    // MQTT 4.7.2: a filter starting with a wildcard does not match a topic starting with `$`
    if (topic.startsWith('$')) return found.some((f) => f[0] !== '+' && f[0] !== '#');
    return found.length > 0;
  }
}

export type Destination = typeof TwinGroup | typeof HubGroup;

/** Where an MQTT message goes: group `twin` for device/node events, group `hub` (cloud) otherwise. */
export function destinationOf(topic: string): Destination {
  return topic.startsWith(DeviceETPrefix) || topic.startsWith(NodeETPrefix) ? TwinGroup : HubGroup;
}

/**
 * The beehive message eventBus produces for an MQTT publish on `topic` (spec §4.5), bound for `to`
 * (`destinationOf(topic)`, which the caller has decided already).
 */
export function mqttToBeehive(topic: string, payload: Buffer | string, to: Destination): Message {
  const content = typeof payload === 'string' ? payload : payload.toString('utf8');
  return to === TwinGroup
    ? newMessage(
        { source: BusSource, group: UserGroup, operation: 'response', resource: encodeTopicResource(topic) },
        content,
      )
    : newMessage({ source: BusSource, group: UserGroup, operation: 'upload', resource: topic }, content);
}

/**
 * The payload of a `publish` content: bytes, or a string (kept as it is: it is encoded to UTF-8
 * when written to a subscriber, not when published to no one); anything else is not publishable
 * (null).
 */
export function publishPayload(content: unknown): Buffer | string | null {
  if (Buffer.isBuffer(content) || typeof content === 'string') return content;
  if (content instanceof Uint8Array) return Buffer.from(content);
  return null;
}
