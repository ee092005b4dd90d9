/**
 * A cloudcore whose kubeAPIConfig names no cluster: the plugins that need the Kubernetes API fail
 * their start with the one EKUBE_NO_CLUSTER naming the plugin and the config fields; the ones that
 * idle let the cloudcore boot and count what they drop.
 */
import { describe, expect, it } from 'vitest';
import { cloudLayout, cloudRegistry } from '../../plugins/registry.js';
import { waitFor } from '../../test/peers/util.js';
import { parseConfig } from '../config/index.js';
import { newMessage } from '../index.js';
import { Kernel } from '../kernel.js';
import { createLogger } from '../log.js';

const logger = createLogger('error');

/** A cloudcore with only the modules in `enabled`, its kubeAPIConfig naming no cluster. */
const cloudcore = (...enabled: string[]): Kernel => {
  const keys = new Set(['cloudHub', 'edgeController', 'syncController', 'deviceController', ...enabled]);
  const modules = [...keys].map((key) => `  ${key}: {enable: ${enabled.includes(key)}}`);
  const yaml = `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig: {kubeConfig: "", master: ""}
modules:
${modules.join('\n')}
`;
  return new Kernel({
    config: parseConfig(cloudLayout, yaml, 'cloudcore.yaml'),
    registry: cloudRegistry,
    logger,
  });
};

describe('a cloudcore without a Kubernetes API', () => {
  it.each([
    ['router', 'modules.router reads its Rules'],
    ['admission', 'modules.admission registers its webhooks'],
    ['cloudStream', "modules.cloudStream writes the nodes' kubelet port"],
  ])('fails the start of %s naming kubeAPIConfig.kubeConfig and master', async (key, what) => {
    const kernel = cloudcore(key);
    const err = await kernel.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'EPLUGIN_START', cause: { code: 'EKUBE_NO_CLUSTER' } });
    const { message } = (err as { cause: Error }).cause;
    expect(message).toContain(what);
    expect(message).toContain('kubeAPIConfig.kubeConfig');
    expect(message).toContain('kubeAPIConfig.master');
  });

  it('boots with the controllers that idle, which count the reports they drop', async () => {
    const kernel = cloudcore('syncController', 'deviceController', 'edgeController');
    await kernel.start();
    try {
      await kernel.bus.send(
        'devicecontroller',
        newMessage({ source: 'edge', group: 'twin', resource: 'default/device/d1', operation: 'update' }, {}),
      );
      await kernel.bus.send(
        'edgecontroller',
        newMessage(
          { source: 'edged', group: 'meta', operation: 'query', resource: 'node/n/kube-node-lease/lease/n' },
          null,
        ),
      );
      for (const plugin of ['devicecontroller', 'edgecontroller'])
        await waitFor(
          async () =>
            (await kernel.metrics.text()).includes(
              `kubeedge_${plugin}_dropped_total{direction="upstream",reason="no-kubernetes"} 1`,
            ),
          { what: `the drop counted by ${plugin}` },
        );
    } finally {
      await kernel.stop();
    }
  });
});
