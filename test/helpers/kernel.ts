import { parseConfig } from '../../kernel/config/index.js';
import type { Mailbox } from '../../kernel/bus/mailbox.js';
import type { Message } from '../../kernel/bus/message.js';
import { Kernel } from '../../kernel/kernel.js';
import type { PluginEntry } from '../../kernel/plugin/types.js';
import { createLogger, type LogLevel } from '../../kernel/log.js';
import { cloudLayout, cloudRegistry, edgeLayout } from '../../plugins/registry.js';

export interface TestKernel {
  kernel: Kernel;
  /** Messages received by the "tester" module (group "test"). */
  inbox: Message[];
  tester: Mailbox;
  /** Wait until the tester's inbox satisfies `pred`. */
  waitInbox(pred: (msgs: Message[]) => boolean, timeoutMs?: number): Promise<void>;
}

const quiet = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel);

/** A kernel built from an edgecore.yaml text, with a "tester" module the test drives. */
export async function startTestKernel(yaml: string, registry: readonly PluginEntry[]): Promise<TestKernel> {
  const config = parseConfig(edgeLayout, yaml, 'test-edgecore.yaml');
  const kernel = new Kernel({ config, registry, logger: quiet });
  const inbox: Message[] = [];
  const tester = kernel.bus.addModule('tester', 'test');
  tester.attach(
    (m) => void inbox.push(m),
    () => undefined,
  );
  await kernel.start();
  return {
    kernel,
    inbox,
    tester,
    waitInbox: (pred, timeoutMs = 5000) => waitUntil(() => pred(inbox), timeoutMs, 'tester inbox'),
  };
}

/**
 * A cloud kernel built from a cloudcore.yaml text, with a probe in cloudHub's place: what the
 * plugins send to cloudHub is pushed to `atHub`. Resolves once started.
 */
export async function startCloudWithHubProbe(yaml: string, atHub: Message[]): Promise<Kernel> {
  const kernel = new Kernel({
    config: parseConfig(cloudLayout, yaml, 'cloudcore.yaml'),
    registry: cloudRegistry,
    logger: quiet,
  });
  kernel.bus.addModule('cloudhub', 'cloudhub').attach(
    (m) => void atHub.push(m),
    () => undefined,
  );
  await kernel.start();
  return kernel;
}

export async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const BUILT_IN = ['edged', 'edgeHub', 'eventBus', 'metaManager', 'deviceTwin'] as const;

/**
 * edgecore.yaml with the built-in modules off (unless `sections` gives one its YAML flow mapping,
 * e.g. `{ deviceTwin: '{enable: true, dmiSockPath: "/tmp/x/"}' }`), and `extra` lines appended.
 */
export function kernelYaml(
  extra = '',
  sections: Partial<Record<(typeof BUILT_IN)[number], string>> = {},
): string {
  const modules = BUILT_IN.map((k) => `  ${k}: ${sections[k] ?? '{enable: false}'}`).join('\n');
  return `apiVersion: edgecore.config.kubeedge.io/v1alpha2
kind: EdgeCore
database:
  dataSource: ":memory:"
modules:
${modules}
${extra}`;
}
