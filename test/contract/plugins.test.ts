import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../kernel/config/index.js';
import { newMessage } from '../../kernel/bus/message.js';
import { Kernel } from '../../kernel/kernel.js';
import { createLogger } from '../../kernel/log.js';
import { edgeRegistry } from '../../plugins/registry.js';
import { freePort } from '../peers/util.js';
import { waitUntil } from '../helpers/kernel.js';
import { edgeLayout } from '../../plugins/registry.js';

/**
 * The lifecycle contract every built-in plugin passes in both transports: it starts from its
 * config section alone (no cloud, no runtime, no broker outside), survives a message it does not
 * understand, is restarted after its process is killed, and stops within its timeout.
 */
type Modules = Record<string, Record<string, unknown>>;
interface Case {
  title: string;
  modules: (dir: string, port: number) => Modules;
  /** mailboxes the section starts */
  names: string[];
}

const cases: Case[] = [
  { title: 'metaManager', names: ['metamanager'], modules: () => ({ metaManager: { enable: true } }) },
  {
    title: 'eventBus (internal broker)',
    names: ['eventbus'],
    modules: (_dir, port) => ({
      eventBus: { enable: true, mqttMode: 0, mqttServerInternal: `tcp://127.0.0.1:${port}` },
    }),
  },
  {
    title: 'deviceTwin + dmiserver',
    names: ['twin', 'dmiserver'],
    modules: (dir) => ({ deviceTwin: { enable: true, dmiSockPath: `${dir}/` } }),
  },
  {
    title: 'edged (runtime unreachable)',
    names: ['edged'],
    modules: (dir) => ({
      edged: {
        enable: true,
        hostnameOverride: 'contract-node',
        nodeIP: '127.0.0.1',
        rootDirectory: join(dir, 'kubelet'),
        tailoredKubeletConfig: {
          containerRuntimeEndpoint: `unix://${dir}/no-runtime.sock`,
          imageServiceEndpoint: `unix://${dir}/no-runtime.sock`,
          podLogsDir: join(dir, 'pods'),
          staticPodPath: join(dir, 'manifests'),
        },
      },
    }),
  },
  {
    title: 'edgeHub (cloud unreachable, no certificate)',
    names: ['websocket'],
    modules: (dir, port) => ({
      edged: { enable: false, hostnameOverride: 'contract-node' },
      edgeHub: {
        enable: true,
        httpServer: `https://127.0.0.1:${port}`,
        tlsCaFile: join(dir, 'ca.crt'),
        tlsCertFile: join(dir, 'node.crt'),
        tlsPrivateKeyFile: join(dir, 'node.key'),
        websocket: { enable: true, server: `127.0.0.1:${port}` },
      },
    }),
  },
  { title: 'serviceBus', names: ['servicebus'], modules: () => ({ serviceBus: { enable: true } }) },
  {
    title: 'edgeStream (cloud unreachable, no certificate)',
    names: ['edgestream'],
    modules: (dir, port) => ({
      edged: { enable: false, hostnameOverride: 'contract-node' },
      edgeStream: {
        enable: true,
        server: `127.0.0.1:${port}`,
        tlsTunnelCAFile: join(dir, 'ca.crt'),
        tlsTunnelCertFile: join(dir, 'node.crt'),
        tlsTunnelPrivateKeyFile: join(dir, 'node.key'),
      },
    }),
  },
  {
    title: 'edgeMesh (nothing stored, no upstream)',
    names: ['edgemesh'],
    modules: (dir, port) => ({ edgeMesh: { enable: true, dnsPort: port, resolvConf: join(dir, 'none') } }),
  },
  {
    title: 'mapper-modbus (no devices)',
    names: ['mapper-modbus'],
    modules: (dir) => ({
      deviceTwin: { enable: false, dmiSockPath: `${dir}/` },
      mapperModbus: { enable: true, socketPath: join(dir, 'modbus.sock') },
    }),
  },
];

const OFF = ['edged', 'edgeHub', 'eventBus', 'metaManager', 'deviceTwin'];

async function startPlugin(c: Case, runAs: string): Promise<Kernel> {
  const dir = mkdtempSync(join(tmpdir(), 'plugin-contract-'));
  const modules: Modules = Object.fromEntries(OFF.map((k) => [k, { enable: false }]));
  for (const [key, section] of Object.entries(c.modules(dir, await freePort()))) {
    modules[key] = { ...section, ...(section.enable ? { runAs } : {}) };
  }
  const text = JSON.stringify({
    apiVersion: 'edgecore.config.kubeedge.io/v1alpha2',
    kind: 'EdgeCore',
    database: { dataSource: join(dir, 'edgecore.db') },
    modules,
    kernel: { restart: { maxRestarts: 3, initialBackoff: '100ms', maxBackoff: '500ms' } },
  });
  const kernel = new Kernel({
    config: parseConfig(edgeLayout, text, 'contract.yaml'),
    registry: edgeRegistry,
    logger: createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent'),
  });
  await kernel.start();
  return kernel;
}

describe.each(['inprocess', 'process'])('built-in plugin contract (%s)', (runAs) => {
  let kernel: Kernel | undefined;
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });

  it.each(cases)('$title: starts, shrugs off a bad message, restarts, stops', async (c) => {
    kernel = await startPlugin(c, runAs);
    const k = kernel;
    for (const name of c.names) {
      await waitUntil(() => k.host(name)?.state === 'running', 10_000, `${name} running`);
    }
    // A message no plugin understands: answered or logged, never a crash.
    for (const name of c.names) {
      await k.bus.send(
        name,
        newMessage({ source: 'contract', group: 'x', operation: 'bogus', resource: 'a' }, '{'),
      );
    }
    // Handled (acknowledged, in a process): delivered, nothing queued or in flight.
    for (const name of c.names) {
      const box = (k.host(name) as NonNullable<ReturnType<Kernel['host']>>).box;
      await waitUntil(
        () => box.stats.delivered >= 1 && box.depth === 0 && box.busy === 0,
        10_000,
        `${name} handled it`,
      );
    }
    for (const name of c.names) {
      expect(k.host(name)?.state, name).toBe('running');
      expect(k.host(name)?.failures, name).toBe(0);
    }
    if (runAs === 'process') {
      const [name] = c.names as [string];
      const pid = (k.host(name) as unknown as { pid?: number }).pid;
      expect(pid).toBeGreaterThan(0);
      process.kill(pid as number, 'SIGKILL');
      await waitUntil(() => (k.host(name)?.restarts ?? 0) >= 1, 10_000, `${name} restarted`);
      await waitUntil(() => k.host(name)?.state === 'running', 10_000, `${name} running again`);
    }
    await k.stop();
    for (const name of c.names) expect(k.host(name)?.state).toBe('stopped');
  });
});
