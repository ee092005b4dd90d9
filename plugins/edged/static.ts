/**
 * Static pods: manifests in staticPodPath, run without any cloud (kubelet's file source). A pod is
 * named `<name>-<node>`, its UID is a hash of the manifest and the node name (so a changed file is
 * a new pod: the old one is killed and the new one started), and it is defaulted locally as an API
 * server would. The directory is re-read on fs events and every fileCheckFrequency.
 */
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import type { Logger } from '../../kernel/index.js';
import { md5hex, pullPolicy } from './podspec.js';
import type { Pod } from './types.js';

export const ANN_CONFIG_SOURCE = 'kubernetes.io/config.source';
export const ANN_CONFIG_HASH = 'kubernetes.io/config.hash';
export const ANN_CONFIG_SEEN = 'kubernetes.io/config.seen';
export const ANN_CONFIG_MIRROR = 'kubernetes.io/config.mirror';

export function isStaticPod(pod: Pod): boolean {
  return pod.metadata.annotations?.[ANN_CONFIG_SOURCE] === 'file';
}

export function isMirrorPod(pod: Pod): boolean {
  return pod.metadata.annotations?.[ANN_CONFIG_MIRROR] !== undefined;
}

/** A manifest as kubelet's file source turns it into a pod. */
export function staticPodFromManifest(raw: unknown, nodeName: string, file: string): Pod {
  if (typeof raw !== 'object' || raw === null) throw new Error(`${file}: expected a Pod object`);
  const pod = structuredClone(raw) as Pod;
  if ((pod.kind ?? 'Pod') !== 'Pod') throw new Error(`${file}: kind is "${pod.kind}", expected "Pod"`);
  if (!pod.metadata?.name) throw new Error(`${file}: metadata.name is required`);
  if (!Array.isArray(pod.spec?.containers) || pod.spec.containers.length === 0)
    throw new Error(`${file}: spec.containers must list at least one container`);
  for (const c of pod.spec.containers) {
    if (!c.name || !c.image) throw new Error(`${file}: every container needs name and image`);
  }
  const hash = md5hex(`${JSON.stringify(raw)}\u0000${nodeName}\u0000${file}`);
  const uid = `${hash.slice(0, 8)}-${hash.slice(8, 12)}-${hash.slice(12, 16)}-${hash.slice(16, 20)}-${hash.slice(20, 32)}`;
  pod.apiVersion = 'v1';
  pod.kind = 'Pod';
  pod.metadata = {
    ...pod.metadata,
    name: `${pod.metadata.name}-${nodeName}`,
    namespace: pod.metadata.namespace || 'default',
    uid,
    annotations: {
      ...(pod.metadata.annotations ?? {}),
      [ANN_CONFIG_SOURCE]: 'file',
      [ANN_CONFIG_HASH]: uid,
      [ANN_CONFIG_SEEN]: new Date().toISOString(),
    },
  };
  pod.spec.nodeName = nodeName;
  pod.spec.restartPolicy ??= 'Always';
  pod.spec.dnsPolicy ??= 'ClusterFirst';
  pod.spec.terminationGracePeriodSeconds ??= 30;
  for (const c of pod.spec.containers) {
    c.imagePullPolicy = pullPolicy(c);
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
  }
  pod.status = {};
  return pod;
}

export class StaticPodSource {
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private reading = false;
  private closed = false;
  private readonly errors = new Map<string, string>();

  constructor(
    private readonly dir: string,
    private readonly nodeName: string,
    private readonly periodMs: number,
    private readonly log: Logger,
    private readonly onSet: (pods: Pod[]) => void,
  ) {}

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true }).catch(() => undefined);
    await this.scan();
    try {
      this.watcher = watch(this.dir, () => this.kick());
      this.watcher.on('error', () => undefined);
    } catch {
      // polling only
    }
    const tick = (): void => {
      if (this.closed) return;
      void this.scan().finally(() => {
        if (!this.closed) this.timer = setTimeout(tick, this.periodMs);
      });
    };
    this.timer = setTimeout(tick, this.periodMs);
  }

  private kick(): void {
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.scan(), 100);
  }

  stop(): void {
    this.closed = true;
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
  }

  async scan(): Promise<void> {
    if (this.reading || this.closed) return;
    this.reading = true;
    try {
      const { parse } = await import('yaml');
      const names = (await readdir(this.dir).catch(() => [] as string[]))
        .filter((n) => !n.startsWith('.'))
        .sort();
      const pods: Pod[] = [];
      for (const name of names) {
        const file = `${this.dir}/${name}`;
        try {
          const text = await readFile(file, 'utf8');
          const pod = staticPodFromManifest(parse(text), this.nodeName, file);
          pods.push(pod);
          this.errors.delete(file);
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          if (/EISDIR/.test(msg)) continue;
          if (this.errors.get(file) !== msg)
            this.log.error({ file, err: msg }, 'static pod manifest rejected');
          this.errors.set(file, msg);
        }
      }
      if (!this.closed) this.onSet(pods);
    } finally {
      this.reading = false;
    }
  }
}
