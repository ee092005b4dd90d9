/**
 * `modules.eventBus` of edgecore.yaml (edgecore/v1alpha2 types.go, default.go, validation.go), with
 * the checks eventBus would otherwise only make when it starts (broker URLs, TLS files).
 */
import {
  KubeEdgeTLS,
  configSchema,
  defineConfigSection,
  fileProblem,
  sectionSchema,
  type ModuleBase,
  type SectionReporter,
} from '../../kernel/index.js';

const { bool, int, str } = configSchema;

export interface EventBusTLS {
  enable: boolean;
  tlsMqttCAFile: string;
  tlsMqttCertFile: string;
  tlsMqttPrivateKeyFile: string;
}

export interface EventBusConfig extends ModuleBase {
  mqttQOS: number;
  mqttRetain: boolean;
  mqttSessionQueueSize: number;
  mqttServerInternal: string;
  mqttServerExternal: string;
  mqttSubClientID: string;
  mqttPubClientID: string;
  mqttUsername: string;
  mqttPassword: string;
  /** 0 internal broker, 1 both, 2 external broker. */
  mqttMode: number;
  eventBusTLS: EventBusTLS;
}

/** URL schemes of the brokers, and the ones that are TLS. */
export const MQTT_SCHEMES = ['tcp:', 'ssl:', 'tls:', 'mqtt:', 'mqtts:'] as const;
export const MQTT_TLS_SCHEMES = ['ssl:', 'tls:', 'mqtts:'] as const;

/** A broker URL eventBus can use, or why not. */
export function brokerUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'expected a URL like tcp://127.0.0.1:1883';
  }
  if (!(MQTT_SCHEMES as readonly string[]).includes(url.protocol) || !url.port)
    return 'expected tcp://, ssl:// or tls:// with a port';
  return undefined;
}

const isTls = (value: string): boolean => {
  try {
    return (MQTT_TLS_SCHEMES as readonly string[]).includes(new URL(value).protocol);
  } catch {
    return false;
  }
};

function checkFiles(
  bus: EventBusConfig,
  keys: readonly (keyof EventBusTLS)[],
  why: string,
  r: SectionReporter,
) {
  for (const key of keys) {
    const file = bus.eventBusTLS[key] as string;
    const problem = fileProblem(file);
    if (problem) r.error(`eventBusTLS.${key}`, `${JSON.stringify(file)} ${problem} (${why})`);
  }
}

export const eventBusSection = defineConfigSection<EventBusConfig>({
  schema: sectionSchema<EventBusConfig>({
    mqttQOS: int({ omit: 'never', min: 0, max: 255 }),
    mqttRetain: bool({ omit: 'never' }),
    mqttSessionQueueSize: int(),
    mqttServerInternal: str(),
    mqttServerExternal: str(),
    mqttSubClientID: str({ omit: 'never' }),
    mqttPubClientID: str({ omit: 'never' }),
    mqttUsername: str({ omit: 'never' }),
    mqttPassword: str({ omit: 'never' }),
    mqttMode: int({ omit: 'never' }),
    eventBusTLS: configSchema.ptrObj<EventBusTLS>({
      enable: bool({ omit: 'never' }),
      tlsMqttCAFile: str(),
      tlsMqttCertFile: str(),
      tlsMqttPrivateKeyFile: str(),
    }),
  }),
  defaults: () => ({
    enable: true,
    runAs: 'inprocess',
    mqttQOS: 0,
    mqttRetain: false,
    mqttSessionQueueSize: 100,
    mqttServerInternal: 'tcp://127.0.0.1:1884',
    mqttServerExternal: 'tcp://127.0.0.1:1883',
    mqttSubClientID: '',
    mqttPubClientID: '',
    mqttUsername: '',
    mqttPassword: '',
    mqttMode: 2,
    eventBusTLS: {
      enable: false,
      tlsMqttCAFile: KubeEdgeTLS.caFile,
      tlsMqttCertFile: KubeEdgeTLS.certFile,
      tlsMqttPrivateKeyFile: KubeEdgeTLS.keyFile,
    },
  }),
  // NewMinEdgeCoreConfig leaves `enable` at false (printed so), faithfully.
  min: () => ({
    mqttQOS: 0,
    mqttRetain: false,
    mqttServerExternal: 'tcp://127.0.0.1:1883',
    mqttServerInternal: 'tcp://127.0.0.1:1884',
    mqttMode: 2,
  }),
  validate(bus, r) {
    if (!bus.enable) return;
    if (bus.mqttMode < 0 || bus.mqttMode > 2) {
      r.error(
        'mqttMode',
        `must be 0 (internal broker), 1 (both) or 2 (external broker), got ${bus.mqttMode}`,
      );
      return;
    }
    if (bus.mqttQOS > 2) r.error('mqttQOS', `must be 0, 1 or 2 (an MQTT QoS), got ${bus.mqttQOS}`);
    const internal = bus.mqttMode <= 1;
    const external = bus.mqttMode >= 1;
    if (internal && bus.mqttSessionQueueSize <= 0) {
      r.error(
        'mqttSessionQueueSize',
        `must be > 0 (messages queued per client), got ${bus.mqttSessionQueueSize}`,
      );
    }
    for (const [key, used] of [
      ['mqttServerInternal', internal],
      ['mqttServerExternal', external],
    ] as const) {
      const problem = used ? brokerUrlProblem(bus[key]) : undefined;
      if (problem) r.error(key, `${problem}, got ${JSON.stringify(bus[key])}`);
    }
    // The files eventBus reads at start (sides.ts): a TLS internal broker needs its certificate and
    // key (and the CA to check clients with eventBusTLS.enable); the external client with
    // eventBusTLS.enable needs all three.
    const all = ['tlsMqttCAFile', 'tlsMqttCertFile', 'tlsMqttPrivateKeyFile'] as const;
    if (external && bus.eventBusTLS.enable) {
      checkFiles(bus, all, 'eventBusTLS.enable is true', r);
    } else if (internal && isTls(bus.mqttServerInternal)) {
      checkFiles(bus, bus.eventBusTLS.enable ? all : all.slice(1), 'mqttServerInternal is a TLS URL', r);
    }
  },
});
