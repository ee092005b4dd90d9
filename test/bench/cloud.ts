/**
 * cloudcore's idle memory with no edge connected (issue 11: Go cloudcore v1.23.1 idles at about
 * 74 MB on this kind of machine; goal <= 1x). A real `cloudcore` process (dist/bin/cloudcore.js)
 * whose kubeAPIConfig points at the test control plane (test/peers/kube.ts, the `cloudcore`
 * ServiceAccount), measured three times: the kernel alone (nothing uses Kubernetes); with the
 * shared informers cloudcore keeps (nodes, pods, configmaps, secrets, services, endpoints) synced
 * (the kernel's own JSON client: @kubernetes/client-node is not loaded); and with one call through
 * a client-node API client on top (what loading client-node costs).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from '../peers/kube.js';
import { round, type Figure } from './report.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const cloudcoreBin = join(here, '..', '..', 'bin', 'cloudcore.js');
const informersPlugin = join(here, 'plugins', 'informers.js');
const GO_CLOUDCORE_MB = 74;
const IDLE_MS = 2000;

function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
}

/** Starts cloudcore, waits for the log line `readyLine`, idles, returns its RSS, stops it. */
function idleRss(configYaml: string, readyLine: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-cloudcore-'));
  const file = join(dir, 'cloudcore.yaml');
  writeFileSync(file, configYaml);
  return new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, [cloudcoreBin, '--config', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let out = '';
    let ready = false;
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (ready || !out.includes(readyLine)) return;
      ready = true;
      setTimeout(() => {
        const rss = rssMb(child.pid ?? 0);
        child.kill('SIGTERM');
        resolve(rss);
      }, IDLE_MS);
    });
    child.once('exit', (code) => {
      rmSync(dir, { recursive: true, force: true });
      if (!ready)
        reject(new Error(`cloudcore exited with ${code} before "${readyLine}":\n${out.slice(-4000)}`));
    });
  });
}

export async function cloudBench(): Promise<Figure[]> {
  const plane = await startControlPlane();
  try {
    const base = `apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
kubeAPIConfig:
  kubeConfig: ${plane.cloudcoreKubeconfigPath}
kernel:
  logLevel: warn
  health: {enable: false}
`;
    const kernelOnly = await idleRss(base.replace('logLevel: warn', 'logLevel: info'), '"kernel ready"');
    const informers = (apiClient: boolean): string =>
      `${base}  plugins:\n    - package: ${informersPlugin}\nmodules:\n  benchInformers: {enable: true, apiClient: ${apiClient}}\n`;
    const withInformers = await idleRss(informers(false), '"informers synced"');
    const withClientNode = await idleRss(informers(true), '"informers synced"');
    const goal = `<= ${GO_CLOUDCORE_MB}`;
    return [
      { name: 'cloudcore_idle_rss_kernel', value: round(kernelOnly), unit: 'MB', goal },
      { name: 'cloudcore_idle_rss_informers', value: round(withInformers), unit: 'MB', goal },
      { name: 'cloudcore_informers_cost', value: round(withInformers - kernelOnly), unit: 'MB' },
      { name: 'cloudcore_idle_rss_client_node', value: round(withClientNode), unit: 'MB', goal },
      { name: 'cloudcore_client_node_cost', value: round(withClientNode - withInformers), unit: 'MB' },
    ];
  } finally {
    await plane.stop();
  }
}
