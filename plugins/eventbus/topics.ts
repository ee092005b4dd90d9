/**
 * eventBus topics and the MQTT <-> beehive conversion (spec edge-modules §4.4–§4.6), pure code.
 */
import { newMessage, type Message } from '../../kernel/index.js';

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
  const f = filter.split('/');
  const t = topic.split('/');
  if (t[0]?.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const part = f[i];
    if (part === '#') return true;
    if (i >= t.length) return false;
    if (part !== '+' && part !== t[i]) return false;
  }
  return f.length === t.length;
}

/** True when `topic` equals `prefix` or continues it with `/` (eventBus's prefix rule). */
export function hasTopicPrefix(topic: string, prefix: string): boolean {
  return topic === prefix || topic.startsWith(prefix + '/');
}

/** base64url with `=` padding, as Go's base64.URLEncoding. */
export function encodeTopicResource(topic: string): string {
  return Buffer.from(topic, 'utf8').toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

export function decodeTopicResource(resource: string): string {
  return Buffer.from(resource.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8');
}

export type Destination = 'twin' | 'hub';

/** Where an MQTT message goes: group `twin` for device/node events, group `hub` (cloud) otherwise. */
export function destinationOf(topic: string): Destination {
  return hasTopicPrefix(topic, '$hw/events/device') || hasTopicPrefix(topic, '$hw/events/node')
    ? 'twin'
    : 'hub';
}

/** The beehive message eventBus produces for an MQTT publish on `topic` (spec §4.5). */
export function mqttToBeehive(topic: string, payload: Buffer | string): { to: Destination; msg: Message } {
  const content = typeof payload === 'string' ? payload : payload.toString('utf8');
  const to = destinationOf(topic);
  const msg =
    to === 'twin'
      ? newMessage(
          { source: 'bus', group: 'user', operation: 'response', resource: encodeTopicResource(topic) },
          content,
        )
      : newMessage({ source: 'bus', group: 'user', operation: 'upload', resource: topic }, content);
  return { to, msg };
}

/** The bytes of a `publish` content: bytes or a string; anything else is not publishable (null). */
export function publishPayload(content: unknown): Buffer | null {
  if (Buffer.isBuffer(content)) return content;
  if (content instanceof Uint8Array) return Buffer.from(content);
  if (typeof content === 'string') return Buffer.from(content, 'utf8');
  return null;
}
