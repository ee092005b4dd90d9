/**
 * MQTT topics of devices and nodes (edge/pkg/eventbus/mqtt/client.go, edge/pkg/devicetwin/dtcommon)
 * and the beehive resource eventBus makes of a topic: the topic in base64 with the URL-safe alphabet
 * and `=` padding (Go's `base64.URLEncoding`), so that `/` in a topic does not split the resource.
 */
import { LRUCache } from 'lru-cache';

/** Topics of one device: `$hw/events/device/<namespace>/<name>/<suffix>`. */
export const DeviceETPrefix = '$hw/events/device/';
/** Topics of this node: `$hw/events/node/<node>/<suffix>`. */
export const NodeETPrefix = '$hw/events/node/';

/** `$hw/events/device/<id>/<suffix>`; `id` is `<namespace>/<name>`. */
export const deviceTopic = (id: string, suffix: string): string => `${DeviceETPrefix}${id}/${suffix}`;

/** `$hw/events/node/<node>/<suffix>`. */
export const nodeTopic = (node: string, suffix: string): string => `${NodeETPrefix}${node}/${suffix}`;

// devices publish on few topics: remember the encoding of the most recent ones
const encoded = new LRUCache<string, string>({ max: 4096 });

/** The beehive resource of an MQTT topic (base64url with padding). */
export function encodeTopicResource(topic: string): string {
  let r = encoded.get(topic);
  if (r === undefined) {
    r = Buffer.from(topic, 'utf8').toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
    encoded.set(topic, r);
  }
  return r;
}

/** The MQTT topic of a beehive resource made by `encodeTopicResource`. */
export function decodeTopicResource(resource: string): string {
  return Buffer.from(resource.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8');
}
