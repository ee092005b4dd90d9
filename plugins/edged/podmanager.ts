/**
 * The pod workers: one serialized sync per pod that drives containerd towards the pod spec
 * (kubelet's SyncPod, cri.md §2.2), a relist that notices container state changes (PLEG), the
 * kill path (§2.7) that also removes what it stopped, and orphan adoption/cleanup after a restart.
 */
import { chmod, mkdir, writeFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { formatDuration, type Logger } from '../../kernel/index.js';
import { CriError, isNotFound, type CriClient, type ContainerStatus, type PodSandboxStatus } from './cri.js';
import {
  LABEL_POD_UID,
  LABEL_POD_NAME,
  byNewest,
  computeStatus,
  containerConfig,
  containerHash,
  gracePeriod,
  instancesOf,
  normalizeImage,
  nsToMs,
  podDir,
  podKey,
  podLogDirectory,
  pullPolicy,
  restartCountOf,
  sandboxConfig,
  sandboxReady,
  shouldRestart,
  ANN_HASH,
  type Failure,
  type Observed,
  type PodPaths,
} from './podspec.js';
import { CrashBackoff } from './backoff.js';
import { ensurePodDir, ensureSecretDir, removePodDir } from './volumes.js';
import {
  rfc3339,
  type KeyToPath,
  type Pod,
  type PodContainer,
  type PodStatus,
  type Volume,
} from './types.js';

const CONTAINER_RUNNING = 1;
const CONTAINER_EXITED = 2;
const SANDBOX_READY = 0;
/** Syncs kept for benchmarks (the most recent ones). */
const SYNC_SAMPLES = 1000;
/** A pod status the cloud did not take is sent again after this long. */
const STATUS_RETRY_MS = 2000;

export interface PodManagerHooks {
  log: Logger;
  nodeIP(): string;
  runtimeName(): string;
  /** Network readiness of the runtime (pod-network pods wait while false). */
  networkReady(): boolean;
  /**
   * Send the status of a pod (called when it changed, or when it must be sent again). `previous`
   * is the status the API is known to hold (the patch is its difference); undefined = the pod's own
   * status; `{}` = unknown, send the whole status.
   */
  reportStatus(pod: Pod, status: PodStatus, previous: PodStatus | undefined): Promise<void>;
  /** A pod whose deletion was requested is fully stopped and removed from the runtime. */
  podTerminated(pod: Pod, requestedByUpdate: boolean): Promise<void>;
  /**
   * A service account token for the pod (TokenRequest through metaManager and the cloud,
   * `<ns>/serviceaccounttoken/<serviceaccount>`): the token.
   */
  requestToken(ns: string, serviceAccount: string, request: Record<string, unknown>): Promise<string>;
  /** configmap/secret data from metaManager (undefined: not found). */
  getObject(
    ns: string,
    type: 'configmap' | 'secret',
    name: string,
  ): Promise<Record<string, unknown> | undefined>;
}

interface PodEntry {
  pod: Pod;
  uid: string;
  startTime: string;
  failures: Map<string, Failure>;
  backoff: CrashBackoff;
  lastStatus?: PodStatus;
  /** lastStatus reached the cloud (false: send it, whole, at the next sync). */
  reported: boolean;
  /** Deletion requested: 'update' (deletionTimestamp, cloud still has it) or 'delete' (already gone). */
  deleting?: 'update' | 'delete';
  running: boolean;
  dirty: boolean;
  timer?: NodeJS.Timeout;
  signature: string;
  done?: boolean;
}

export class ContainerError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export class PodManager {
  private readonly pods = new Map<string, PodEntry>();
  private relistTimer?: NodeJS.Timeout;
  private relisting = false;
  private stopped = false;
  /** The sync loops running now (stop() waits for them). */
  private readonly active = new Set<Promise<void>>();
  /** Pod UIDs whose removal is in flight (orphans). */
  private readonly cleaning = new Set<string>();
  /** Set once the pod source has delivered its full set: orphans may then be removed. */
  sourcesReady = false;
  /** Durations of the last {@link SYNC_SAMPLES} syncs that created a pod, for benchmarks. */
  readonly syncs: { totalMs: number; criMs: number }[] = [];

  constructor(
    private readonly cri: CriClient,
    private readonly paths: PodPaths,
    private readonly hooks: PodManagerHooks,
    private readonly relistMs = 1000,
  ) {}

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      void this.relist().finally(() => {
        if (!this.stopped) this.relistTimer = setTimeout(tick, this.relistMs);
      });
    };
    this.relistTimer = setTimeout(tick, this.relistMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.relistTimer) clearTimeout(this.relistTimer);
    for (const e of this.pods.values()) if (e.timer) clearTimeout(e.timer);
    // wait for in-flight syncs (at most 5 s)
    const ac = new AbortController();
    await Promise.race([
      Promise.allSettled(this.active),
      delay(5000, undefined, { signal: ac.signal }).catch(() => undefined),
    ]);
    ac.abort();
  }

  list(): Pod[] {
    return [...this.pods.values()].map((e) => e.pod);
  }

  get(uid: string): Pod | undefined {
    return this.pods.get(uid)?.pod;
  }

  findByKey(key: string): Pod | undefined {
    for (const e of this.pods.values()) if (podKey(e.pod) === key) return e.pod;
    return undefined;
  }

  /** Add or update a pod. A deletionTimestamp starts a graceful kill. */
  upsert(pod: Pod): void {
    const uid = pod.metadata.uid;
    if (!uid) throw new Error(`pod ${podKey(pod)} has no metadata.uid`);
    // a new UID under the same name replaces the old pod
    for (const e of this.pods.values()) {
      if (e.uid !== uid && podKey(e.pod) === podKey(pod) && !e.deleting) {
        e.deleting = 'delete';
        this.schedule(e);
      }
    }
    let e = this.pods.get(uid);
    if (!e) {
      e = {
        pod,
        uid,
        startTime: rfc3339(),
        failures: new Map(),
        backoff: new CrashBackoff(),
        running: false,
        dirty: false,
        signature: '',
        lastStatus: pod.status && Object.keys(pod.status).length > 0 ? pod.status : undefined,
        // a pod known before (edgecore restarted) gets its whole status sent once: the API may
        // hold another one (the node controller marks pods not Ready while the node is away)
        reported: false,
      };
      this.pods.set(uid, e);
    } else {
      e.pod = pod;
      // someone else rewrote the status (the node lifecycle controller marks the pods of a node
      // gone NotReady not Ready): send ours, whole, again (kubelet's status manager reconciles so)
      if (e.reported && e.lastStatus && conditionsDiffer(pod.status, e.lastStatus)) e.reported = false;
    }
    if (pod.metadata.deletionTimestamp && !e.deleting) e.deleting = 'update';
    this.schedule(e);
  }

  /** The pod was deleted at the source: kill and forget it. */
  remove(uidOrPod: Pod): void {
    const uid = uidOrPod.metadata.uid;
    let e = uid ? this.pods.get(uid) : undefined;
    if (!e) {
      const key = podKey(uidOrPod);
      e = [...this.pods.values()].find((x) => podKey(x.pod) === key);
    }
    if (!e) return;
    if (uidOrPod.metadata.deletionGracePeriodSeconds !== undefined)
      e.pod = {
        ...e.pod,
        metadata: {
          ...e.pod.metadata,
          deletionGracePeriodSeconds: uidOrPod.metadata.deletionGracePeriodSeconds,
        },
      };
    e.deleting = e.deleting ?? 'delete';
    if (e.deleting === 'update') e.deleting = 'delete';
    this.schedule(e);
  }

  /** SET semantics: the full list of pods for this node from one source. */
  setAll(pods: Pod[], keep: (p: Pod) => boolean): void {
    const uids = new Set(pods.map((p) => p.metadata.uid));
    for (const e of this.pods.values()) {
      if (!uids.has(e.uid) && !keep(e.pod)) this.remove(e.pod);
    }
    for (const p of pods) this.upsert(p);
  }

  private schedule(e: PodEntry, delayMs = 0): void {
    if (this.stopped) return;
    if (delayMs > 0) {
      if (e.timer) clearTimeout(e.timer);
      e.timer = setTimeout(() => {
        e.timer = undefined;
        this.schedule(e);
      }, delayMs);
      return;
    }
    if (e.running) {
      e.dirty = true;
      return;
    }
    e.running = true;
    const run = (async () => {
      try {
        do {
          e.dirty = false;
          await this.sync(e);
        } while (e.dirty && !this.stopped);
      } catch (err) {
        this.hooks.log.error({ pod: podKey(e.pod), err: errText(err) }, 'pod sync failed');
        this.schedule(e, 2000);
      } finally {
        e.running = false;
      }
    })();
    this.active.add(run);
    void run.finally(() => this.active.delete(run));
  }

  // -------------------------------------------------------------------------------------------

  private async observe(uid: string): Promise<Observed> {
    const [sbs, cs] = await Promise.all([
      this.cri.listPodSandbox({ [LABEL_POD_UID]: uid }),
      this.cri.listContainers({ [LABEL_POD_UID]: uid }),
    ]);
    sbs.sort(byNewest);
    const sandboxes: PodSandboxStatus[] = [];
    for (const sb of sbs) {
      try {
        const st = await this.cri.podSandboxStatus(sb.id);
        if (st) sandboxes.push(st);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    const containers: ContainerStatus[] = [];
    await Promise.all(
      cs.map(async (c) => {
        try {
          const st = await this.cri.containerStatus(c.id);
          if (st) containers.push(st);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }),
    );
    containers.sort(byNewest);
    return { sandboxes, containers };
  }

  private async sync(e: PodEntry): Promise<void> {
    if (e.done) return;
    const t0 = performance.now();
    const cri0 = this.cri.criTimeMs;
    let created = false;
    const pod = e.pod;
    let obs = await this.observe(e.uid);

    if (e.deleting) {
      await this.killPod(pod, obs, gracePeriod(pod), true);
      await this.removeDir(pod);
      obs = await this.observe(e.uid);
      await this.report(e, obs);
      e.done = true;
      this.pods.delete(e.uid);
      await this.hooks.podTerminated(pod, e.deleting === 'update');
      return;
    }

    const phase = e.lastStatus?.phase;
    const terminal = phase === 'Succeeded' || phase === 'Failed';
    if (!terminal) {
      const needSandbox = !sandboxReady(pod, obs);
      const newest = obs.sandboxes[0];
      const policy = pod.spec.restartPolicy ?? 'Always';
      const attempt = newest ? (newest.metadata?.attempt ?? 0) + 1 : 0;
      let sandboxId = newest?.id;
      let proceed = true;
      if (needSandbox) {
        const anyContainerSeen = obs.containers.length > 0;
        const allDone = pod.spec.containers.every((c) => !shouldRestart(pod, instancesOf(obs, c.name)[0]));
        if ((policy === 'Never' && attempt > 0 && anyContainerSeen) || (anyContainerSeen && allDone)) {
          proceed = false;
        } else if (!pod.spec.hostNetwork && !this.hooks.networkReady()) {
          for (const c of pod.spec.containers)
            e.failures.set(c.name, {
              reason: 'ContainerCreating',
              message: 'network is not ready: container runtime network not ready',
            });
          proceed = false;
          this.schedule(e, 2000);
        } else {
          if (obs.sandboxes.length > 0 || obs.containers.length > 0) {
            await this.killPod(pod, obs, gracePeriod(pod), true);
          }
          sandboxId = await this.createSandbox(e, attempt);
          created = true;
          obs = await this.observe(e.uid);
          if (!sandboxId) proceed = false;
        }
      }
      if (proceed && sandboxId) {
        const sb = obs.sandboxes.find((s) => s.id === sandboxId);
        await this.syncContainers(e, obs, sandboxId, sb?.metadata?.attempt ?? attempt);
        obs = await this.observe(e.uid);
      }
    }

    // nothing running and nothing to start: stop the sandbox (kubelet kills the pod)
    const anyRunning = obs.containers.some((c) => c.state === CONTAINER_RUNNING);
    const anyToStart = pod.spec.containers.some((c) => shouldRestart(pod, instancesOf(obs, c.name)[0]));
    if (!anyRunning && !anyToStart && obs.sandboxes.some((s) => s.state === SANDBOX_READY)) {
      for (const sb of obs.sandboxes) await this.ignoreNotFound(() => this.cri.stopPodSandbox(sb.id));
      obs = await this.observe(e.uid);
    }
    await this.report(e, obs);
    e.signature = signatureOf(obs);
    if (created) {
      if (this.syncs.length >= SYNC_SAMPLES) this.syncs.shift();
      this.syncs.push({ totalMs: performance.now() - t0, criMs: this.cri.criTimeMs - cri0 });
    }
  }

  private async report(e: PodEntry, obs: Observed): Promise<void> {
    const status = computeStatus(e.pod, obs, {
      nodeIP: this.hooks.nodeIP(),
      runtimeName: this.hooks.runtimeName(),
      startTime: e.startTime,
      failures: e.failures,
      previous: e.lastStatus,
    });
    const prev = e.lastStatus;
    if (e.reported && prev && JSON.stringify(stripTimes(prev)) === JSON.stringify(stripTimes(status))) return;
    e.lastStatus = status;
    try {
      await this.hooks.reportStatus(e.pod, status, e.reported ? prev : prev ? {} : undefined);
      e.reported = true;
    } catch (err) {
      // kubelet's status manager retries too (every 10 s); the next sync sends the whole status
      e.reported = false;
      this.hooks.log.warn({ pod: podKey(e.pod), err: errText(err) }, 'pod status not reported; retrying');
      this.schedule(e, STATUS_RETRY_MS);
    }
  }

  /**
   * A configmap or secret changed at the source: the files of the volumes of running pods that
   * mount it are rewritten now (kubelet does it at the pod's next periodic sync, up to a minute
   * later). Environment variables keep their values until the container restarts, as in kubelet.
   */
  async refreshVolumes(
    ns: string,
    type: 'configmap' | 'secret',
    name: string,
    obj: Record<string, unknown>,
  ): Promise<void> {
    for (const e of this.pods.values()) {
      if (e.deleting || (e.pod.metadata.namespace ?? 'default') !== ns) continue;
      for (const vol of e.pod.spec.volumes ?? []) {
        const of = type === 'configmap' ? vol.configMap?.name : vol.secret?.secretName;
        if (of !== name) continue;
        const host = `${podDir(e.pod, this.paths.rootDirectory)}/volumes/kubernetes.io~${type}/${vol.name}`;
        if (!(await stat(host).catch(() => undefined))) continue; // not set up yet: the sync writes it
        try {
          await writeVolumeFiles(host, vol, obj);
          this.hooks.log.info({ pod: podKey(e.pod), volume: vol.name }, `${type} volume updated`);
        } catch (err) {
          this.hooks.log.warn(
            { pod: podKey(e.pod), volume: vol.name, err: errText(err) },
            `${type} volume not updated`,
          );
        }
      }
    }
  }

  /** Send every pod's whole status again (the node was registered again). */
  resendStatuses(): void {
    for (const e of this.pods.values()) {
      e.reported = false;
      this.schedule(e);
    }
  }

  private async createSandbox(e: PodEntry, attempt: number): Promise<string | undefined> {
    const pod = e.pod;
    await mkdir(podLogDirectory(pod, this.paths.podLogsDir), { recursive: true, mode: 0o755 });
    await ensurePodDir(podDir(pod, this.paths.rootDirectory));
    const config = sandboxConfig(pod, attempt, this.paths);
    try {
      const id = await this.cri.runPodSandbox(config);
      return id;
    } catch (err) {
      const msg = err instanceof CriError ? err.details : errText(err);
      this.hooks.log.error({ pod: podKey(pod), attempt, err: msg }, 'RunPodSandbox failed');
      for (const c of pod.spec.containers)
        e.failures.set(c.name, {
          reason: 'ContainerCreating',
          message: `failed to create pod sandbox: ${msg}`,
        });
      // a failed RunPodSandbox leaves a NOTREADY sandbox holding the name: remove it (no leak)
      const left = await this.cri.listPodSandbox({ [LABEL_POD_UID]: e.uid }).catch(() => []);
      for (const sb of left) {
        if (sb.state === SANDBOX_READY) continue;
        await this.ignoreNotFound(() => this.cri.stopPodSandbox(sb.id)).catch(() => undefined);
        await this.cri.removePodSandbox(sb.id).catch(() => undefined);
      }
      this.schedule(e, 5000);
      return undefined;
    }
  }

  private async syncContainers(
    e: PodEntry,
    obs: Observed,
    sandboxId: string,
    attempt: number,
  ): Promise<void> {
    const pod = e.pod;
    const config = sandboxConfig(pod, attempt, this.paths);
    let nextWake = Infinity;
    for (const c of pod.spec.containers) {
      const inst = instancesOf(obs, c.name);
      const cur = inst[0];
      // garbage: keep one dead instance besides the current one (kubelet's maxPerPodContainer 1;
      // `kubectl logs --previous` reads it)
      for (const old of inst.slice(cur?.state === CONTAINER_EXITED ? 1 : 2)) {
        if (old.state !== CONTAINER_RUNNING) await this.cri.removeContainer(old.id).catch(() => undefined);
      }
      if (cur && cur.state === CONTAINER_RUNNING) {
        if (cur.annotations[ANN_HASH] && cur.annotations[ANN_HASH] !== containerHash(c)) {
          this.hooks.log.info({ pod: podKey(pod), container: c.name }, 'container spec changed; restarting');
          await this.ignoreNotFound(() => this.cri.stopContainer(cur.id, gracePeriod(pod)));
        } else {
          e.failures.delete(c.name);
          continue;
        }
      } else if (!shouldRestart(pod, cur)) {
        continue;
      }
      // back-off (keyed by container; measured from the last finish)
      if (cur && cur.state === CONTAINER_EXITED) {
        const finished = nsToMs(cur.finishedAt) || nsToMs(cur.createdAt);
        const wait = e.backoff.remaining(c.name, finished);
        if (wait > 0) {
          e.failures.set(c.name, {
            reason: 'CrashLoopBackOff',
            message: `back-off ${formatDuration(e.backoff.delay(c.name))} restarting failed container=${c.name} pod=${pod.metadata.name}_${pod.metadata.namespace ?? 'default'}(${e.uid})`,
          });
          nextWake = Math.min(nextWake, wait + 50);
          continue;
        }
        e.backoff.next(c.name, finished);
      }
      const restartCount = cur ? restartCountOf(cur) + 1 : 0;
      try {
        await this.startContainer(e, c, sandboxId, config, restartCount);
        e.failures.delete(c.name);
      } catch (err) {
        const f =
          err instanceof ContainerError
            ? { reason: err.reason, message: err.message }
            : { reason: 'RunContainerError', message: errText(err) };
        this.hooks.log.warn({ pod: podKey(pod), container: c.name, ...f }, 'container did not start');
        e.failures.set(c.name, f);
        e.backoff.ensure(c.name);
        nextWake = Math.min(nextWake, e.backoff.delay(c.name));
      }
    }
    if (nextWake !== Infinity) this.schedule(e, Math.max(100, nextWake));
  }

  private async ensureImage(
    pod: Pod,
    c: PodContainer,
    sbConfig: ReturnType<typeof sandboxConfig>,
  ): Promise<string> {
    const image = normalizeImage(c.image);
    const policy = pullPolicy(c);
    if (policy !== 'Always') {
      let present;
      try {
        present = await this.cri.imageStatus(image);
      } catch (err) {
        throw new ContainerError('ImageInspectError', `Failed to inspect image "${image}": ${errText(err)}`);
      }
      if (present) return present.id;
      if (policy === 'Never')
        throw new ContainerError(
          'ErrImageNeverPull',
          `Container image "${c.image}" is not present with pull policy of Never`,
        );
    }
    try {
      return await this.cri.pullImage(image, sbConfig);
    } catch (err) {
      throw new ContainerError('ErrImagePull', err instanceof CriError ? err.details : errText(err));
    }
  }

  private async startContainer(
    e: PodEntry,
    c: PodContainer,
    sandboxId: string,
    sbConfig: ReturnType<typeof sandboxConfig>,
    restartCount: number,
  ): Promise<void> {
    const pod = e.pod;
    const imageRef = await this.ensureImage(pod, c, sbConfig);
    let envs: { key: string; value: string }[];
    let mounts: { containerPath: string; hostPath: string; readonly: boolean; propagation: number }[];
    try {
      envs = await this.buildEnv(pod, c);
      mounts = await this.buildMounts(pod, c);
    } catch (err) {
      throw new ContainerError('CreateContainerConfigError', errText(err));
    }
    await mkdir(`${podLogDirectory(pod, this.paths.podLogsDir)}/${c.name}`, { recursive: true, mode: 0o755 });
    const config = containerConfig(pod, c, { imageRef, restartCount, envs, mounts });
    let id: string;
    try {
      id = await this.cri.createContainer(sandboxId, config, sbConfig);
    } catch (err) {
      throw new ContainerError('CreateContainerError', err instanceof CriError ? err.details : errText(err));
    }
    try {
      await this.cri.startContainer(id);
    } catch (err) {
      throw new ContainerError('RunContainerError', err instanceof CriError ? err.details : errText(err));
    }
  }

  private async buildEnv(pod: Pod, c: PodContainer): Promise<{ key: string; value: string }[]> {
    const ns = pod.metadata.namespace ?? 'default';
    const out = new Map<string, string>();
    const dataOf = async (type: 'configmap' | 'secret', name: string, optional: boolean | undefined) => {
      const obj = await this.hooks.getObject(ns, type, name);
      if (!obj) {
        if (optional) return undefined;
        throw new Error(`${type} "${name}" not found`);
      }
      const data: Record<string, string> = {};
      for (const [k, v] of Object.entries((obj.data as Record<string, string> | undefined) ?? {}))
        data[k] = type === 'secret' ? Buffer.from(v, 'base64').toString('utf8') : v;
      if (type === 'secret')
        for (const [k, v] of Object.entries((obj.stringData as Record<string, string> | undefined) ?? {}))
          data[k] = v;
      return data;
    };
    for (const src of c.envFrom ?? []) {
      const ref = src.configMapRef ?? src.secretRef;
      if (!ref) continue;
      const data = await dataOf(src.configMapRef ? 'configmap' : 'secret', ref.name, ref.optional);
      for (const [k, v] of Object.entries(data ?? {})) out.set(`${src.prefix ?? ''}${k}`, v);
    }
    const expandEnv = (s: string) =>
      s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, n: string | undefined) =>
        m === '$$' ? '$' : n !== undefined && out.has(n) ? (out.get(n) ?? '') : m,
      );
    for (const v of c.env ?? []) {
      if (v.valueFrom?.configMapKeyRef || v.valueFrom?.secretKeyRef) {
        const ref = v.valueFrom.configMapKeyRef ?? v.valueFrom.secretKeyRef;
        if (!ref) continue;
        const type = v.valueFrom.configMapKeyRef ? 'configmap' : 'secret';
        const data = await dataOf(type, ref.name, ref.optional);
        if (data === undefined) continue;
        if (!(ref.key in data)) {
          if (ref.optional) continue;
          throw new Error(
            `couldn't find key ${ref.key} in ${type === 'configmap' ? 'ConfigMap' : 'Secret'} ${ns}/${ref.name}`,
          );
        }
        out.set(v.name, data[ref.key] ?? '');
      } else if (v.valueFrom?.fieldRef) {
        out.set(v.name, this.fieldValue(pod, v.valueFrom.fieldRef.fieldPath));
      } else {
        out.set(v.name, expandEnv(v.value ?? ''));
      }
    }
    return [...out].map(([key, value]) => ({ key, value }));
  }

  /** A downward-API field of the pod (env `fieldRef`, downwardAPI volume items). */
  private fieldValue(pod: Pod, fieldPath: string): string {
    const pairs = (m: Record<string, string> | undefined): string =>
      Object.entries(m ?? {})
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join('\n');
    const val: Record<string, () => string> = {
      'metadata.name': () => pod.metadata.name ?? '',
      'metadata.namespace': () => pod.metadata.namespace ?? 'default',
      'metadata.uid': () => pod.metadata.uid ?? '',
      'metadata.labels': () => pairs(pod.metadata.labels),
      'metadata.annotations': () => pairs(pod.metadata.annotations),
      'spec.nodeName': () => pod.spec.nodeName ?? '',
      'spec.serviceAccountName': () => pod.spec.serviceAccountName ?? '',
      'status.hostIP': () => this.hooks.nodeIP(),
      'status.podIP': () => (pod.spec.hostNetwork ? this.hooks.nodeIP() : ''),
    };
    return val[fieldPath]?.() ?? '';
  }

  /**
   * The files of a projected volume (kubelet's kube-api-access-*: a bound service account token,
   * the kube-root-ca.crt configmap, the namespace from the downward API).
   */
  private async projectedFiles(pod: Pod, vol: Volume): Promise<VolumeFile[]> {
    const ns = pod.metadata.namespace ?? 'default';
    const mode = vol.projected?.defaultMode ?? 0o644;
    const files: VolumeFile[] = [];
    for (const src of vol.projected?.sources ?? []) {
      if (src.serviceAccountToken) {
        const t = src.serviceAccountToken;
        const sa = pod.spec.serviceAccountName || 'default';
        const token = await this.hooks.requestToken(ns, sa, {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          metadata: { name: sa, namespace: ns },
          spec: {
            audiences: t.audience ? [t.audience] : [],
            expirationSeconds: t.expirationSeconds ?? 3600,
            boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
          },
        });
        files.push({ path: t.path, content: Buffer.from(token), mode });
      } else if (src.configMap || src.secret) {
        const isCm = !!src.configMap;
        const ref = (src.configMap ?? src.secret)!;
        const obj = await this.hooks.getObject(ns, isCm ? 'configmap' : 'secret', ref.name);
        if (!obj && !ref.optional)
          throw new Error(
            `MountVolume.SetUp failed for volume "${vol.name}": ${isCm ? 'configmap' : 'secret'} "${ref.name}" not found`,
          );
        files.push(...keyFiles(vol.name, isCm, ref, obj, mode));
      } else if (src.downwardAPI) {
        for (const it of src.downwardAPI.items ?? []) {
          if (!it.fieldRef)
            throw new Error(`volume "${vol.name}": downwardAPI item ${it.path}: only fieldRef is supported`);
          const content = Buffer.from(this.fieldValue(pod, it.fieldRef.fieldPath));
          files.push({ path: it.path, content, mode: it.mode ?? mode });
        }
      }
    }
    return files;
  }

  private async buildMounts(
    pod: Pod,
    c: PodContainer,
  ): Promise<{ containerPath: string; hostPath: string; readonly: boolean; propagation: number }[]> {
    const ns = pod.metadata.namespace ?? 'default';
    const base = `${podDir(pod, this.paths.rootDirectory)}/volumes`;
    const mounts: { containerPath: string; hostPath: string; readonly: boolean; propagation: number }[] = [];
    for (const vm of c.volumeMounts ?? []) {
      const vol = (pod.spec.volumes ?? []).find((v) => v.name === vm.name);
      if (!vol) throw new Error(`volume "${vm.name}" of container ${c.name} is not in spec.volumes`);
      let host: string;
      if (vol.emptyDir) {
        host = `${base}/kubernetes.io~empty-dir/${vol.name}`;
        await mkdir(host, { recursive: true, mode: 0o777 });
      } else if (vol.hostPath) {
        host = vol.hostPath.path;
        const type = vol.hostPath.type ?? '';
        const st = await stat(host).catch(() => undefined);
        if (type === 'DirectoryOrCreate' && !st) await mkdir(host, { recursive: true, mode: 0o755 });
        else if (type === 'FileOrCreate' && !st) await writeFile(host, '', { mode: 0o644 });
        else if (type === 'Directory' && !st?.isDirectory())
          throw new Error(`hostPath type check failed: ${host} is not a directory`);
        else if (type === 'File' && !st?.isFile())
          throw new Error(`hostPath type check failed: ${host} is not a file`);
      } else if (vol.projected) {
        // kubelet backs projected volumes with memory: a tmpfs as for secrets
        host = `${base}/kubernetes.io~projected/${vol.name}`;
        await ensureSecretDir(host);
        await writeFiles(host, await this.projectedFiles(pod, vol));
      } else if (vol.configMap || vol.secret) {
        const isCm = !!vol.configMap;
        const name = vol.configMap?.name ?? vol.secret?.secretName ?? '';
        const obj = await this.hooks.getObject(ns, isCm ? 'configmap' : 'secret', name);
        const optional = vol.configMap?.optional ?? vol.secret?.optional;
        if (!obj && !optional)
          throw new Error(
            `MountVolume.SetUp failed for volume "${vol.name}": ${isCm ? 'configmap' : 'secret'} "${name}" not found`,
          );
        host = `${base}/kubernetes.io~${isCm ? 'configmap' : 'secret'}/${vol.name}`;
        if (isCm) await mkdir(host, { recursive: true, mode: 0o755 });
        else {
          const dir = await ensureSecretDir(host);
          if (!dir.tmpfs && dir.created)
            this.hooks.log.warn(
              { pod: podKey(pod), volume: vol.name, reason: dir.reason },
              `secret volume ${vol.name} of pod ${podKey(pod)} is written to disk, not to a tmpfs (${dir.reason}); its directory is 0700`,
            );
        }
        await writeVolumeFiles(host, vol, obj);
      } else {
        throw new Error(
          `volume "${vol.name}": only emptyDir, hostPath, configMap, secret and projected volumes are supported`,
        );
      }
      if (vm.subPath) {
        host = `${host}/${vm.subPath}`;
      }
      mounts.push({
        containerPath: vm.mountPath,
        hostPath: host,
        readonly: vm.readOnly ?? false,
        propagation:
          vm.mountPropagation === 'HostToContainer' ? 1 : vm.mountPropagation === 'Bidirectional' ? 2 : 0,
      });
    }
    // /etc/hosts for pod-network pods (kubelet writes <pod dir>/etc-hosts)
    if (!pod.spec.hostNetwork && !(c.volumeMounts ?? []).some((m) => m.mountPath === '/etc/hosts')) {
      const hostsFile = `${podDir(pod, this.paths.rootDirectory)}/etc-hosts`;
      const hostname = pod.spec.hostname || pod.metadata.name || '';
      await writeFile(
        hostsFile,
        `# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${hostname}\n`,
      );
      mounts.push({ containerPath: '/etc/hosts', hostPath: hostsFile, readonly: false, propagation: 0 });
    }
    return mounts;
  }

  /** KillPod: stop containers in parallel, stop sandboxes; with `remove`, remove them too. */
  private async killPod(pod: Pod, obs: Observed, graceSeconds: number, remove: boolean): Promise<void> {
    await Promise.all(
      obs.containers
        .filter((c) => c.state === CONTAINER_RUNNING)
        .map((c) => this.ignoreNotFound(() => this.cri.stopContainer(c.id, graceSeconds))),
    );
    for (const sb of obs.sandboxes) await this.ignoreNotFound(() => this.cri.stopPodSandbox(sb.id));
    if (remove) {
      for (const c of obs.containers) await this.cri.removeContainer(c.id).catch(() => undefined);
      for (const sb of obs.sandboxes) await this.cri.removePodSandbox(sb.id).catch(() => undefined);
    }
    this.hooks.log.debug({ pod: podKey(pod) }, 'pod killed');
  }

  private async ignoreNotFound(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** PLEG: one ListPodSandbox + ListContainers; sync pods whose containers changed; clean orphans. */
  async relist(): Promise<void> {
    if (this.relisting) return;
    this.relisting = true;
    try {
      const [sbs, cs] = await Promise.all([this.cri.listPodSandbox(), this.cri.listContainers()]);
      const sig = new Map<string, string[]>();
      for (const sb of sbs) {
        const uid = sb.labels[LABEL_POD_UID];
        if (uid) sig.set(uid, [...(sig.get(uid) ?? []), `s${sb.id}:${sb.state}`]);
      }
      for (const c of cs) {
        const uid = c.labels[LABEL_POD_UID];
        if (uid) sig.set(uid, [...(sig.get(uid) ?? []), `c${c.id}:${c.state}`]);
      }
      for (const e of this.pods.values()) {
        const s = (sig.get(e.uid) ?? []).sort().join(',');
        if (s !== e.signature && !e.running) {
          e.signature = s;
          this.schedule(e);
        }
      }
      if (this.sourcesReady) {
        for (const uid of sig.keys()) {
          if (this.pods.has(uid) || this.cleaning.has(uid)) continue;
          const hasName = sbs.some((s) => s.labels[LABEL_POD_UID] === uid && s.labels[LABEL_POD_NAME]);
          if (!hasName) continue;
          this.cleaning.add(uid);
          void this.removeOrphan(uid).finally(() => this.cleaning.delete(uid));
        }
      }
    } catch (err) {
      this.hooks.log.debug({ err: errText(err) }, 'relist failed');
    } finally {
      this.relisting = false;
    }
  }

  private async removeOrphan(uid: string): Promise<void> {
    const obs = await this.observe(uid);
    this.hooks.log.info(
      { uid, containers: obs.containers.length, sandboxes: obs.sandboxes.length },
      'removing orphaned pod',
    );
    const fake: Pod = { metadata: { uid }, spec: { containers: [] } };
    await this.killPod(fake, obs, 2, true).then(
      () => this.removeDir(fake),
      (err: unknown) => this.hooks.log.warn({ uid, err: errText(err) }, 'orphan cleanup failed'),
    );
  }

  /** The pod's directory (volumes, secret tmpfs, etc-hosts) goes with the pod. */
  private async removeDir(pod: Pod): Promise<void> {
    await removePodDir(podDir(pod, this.paths.rootDirectory)).catch((err: unknown) =>
      this.hooks.log.warn({ pod: podKey(pod), err: errText(err) }, 'pod directory not removed'),
    );
  }

  /** On shutdown: remove non-running containers of pods (edged's cleanupContainers). */
  async cleanupExited(): Promise<void> {
    const cs = await this.cri.listContainers();
    for (const c of cs) {
      if (
        c.labels[LABEL_POD_NAME] &&
        c.state !== CONTAINER_RUNNING &&
        !this.pods.has(c.labels[LABEL_POD_UID] ?? '')
      )
        await this.cri.removeContainer(c.id).catch(() => undefined);
    }
  }
}

function signatureOf(obs: Observed): string {
  return [
    ...obs.sandboxes.map((s) => `s${s.id}:${s.state}`),
    ...obs.containers.map((c) => `c${c.id}:${c.state}`),
  ]
    .sort()
    .join(',');
}

/**
 * Whether the API's status of a pod (as pushed by the cloud) disagrees with the conditions edged
 * reported last. Only condition statuses are compared: the rest of the status is edged's alone,
 * and an echo of an older report that crosses a newer one only costs one more (no-op) patch.
 */
function conditionsDiffer(api: PodStatus | undefined, mine: PodStatus): boolean {
  const have = new Map((api?.conditions ?? []).map((c) => [c.type, c.status]));
  return (mine.conditions ?? []).some((c) => have.get(c.type) !== c.status);
}

function stripTimes(s: PodStatus): unknown {
  return { ...s, conditions: (s.conditions ?? []).map((c) => ({ ...c, lastTransitionTime: undefined })) };
}

export function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A file of a configMap, secret or projected volume. */
interface VolumeFile {
  path: string;
  content: Buffer;
  mode: number;
}

/** The files of a configMap or secret (items, modes, optional keys as kubelet). */
function keyFiles(
  volName: string,
  isCm: boolean,
  src: { items?: KeyToPath[]; optional?: boolean },
  obj: Record<string, unknown> | undefined,
  mode: number,
): VolumeFile[] {
  const files: Record<string, Buffer> = {};
  const data = (obj?.data as Record<string, string> | undefined) ?? {};
  for (const [k, v] of Object.entries(data)) files[k] = isCm ? Buffer.from(v) : Buffer.from(v, 'base64');
  if (isCm)
    for (const [k, v] of Object.entries((obj?.binaryData as Record<string, string> | undefined) ?? {}))
      files[k] = Buffer.from(v, 'base64');
  if (!src.items || src.items.length === 0)
    return Object.entries(files).map(([path, content]) => ({ path, content, mode }));
  const out: VolumeFile[] = [];
  for (const it of src.items) {
    const content = files[it.key];
    if (content === undefined) {
      if (src.optional) continue;
      throw new Error(`MountVolume.SetUp failed for volume "${volName}": key ${it.key} not found`);
    }
    out.push({ path: it.path, content, mode: it.mode ?? mode });
  }
  return out;
}

/** Writes the files in place, each with exactly its mode (whatever the umask or an older file). */
async function writeFiles(host: string, files: VolumeFile[]): Promise<void> {
  for (const f of files) {
    const p = `${host}/${f.path}`;
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, f.content);
    await chmod(p, f.mode);
  }
}

/** The files of a configMap or secret volume from the object's data. */
function writeVolumeFiles(
  host: string,
  vol: Volume,
  obj: Record<string, unknown> | undefined,
): Promise<void> {
  const isCm = !!vol.configMap;
  const src = isCm ? vol.configMap! : vol.secret!;
  const mode = src.defaultMode ?? 0o644;
  return writeFiles(host, keyFiles(vol.name, isCm, src, obj, mode));
}
