/**
 * edged: the edge pod manager (KubeEdge's trimmed kubelet). Receives pods from metaManager (and
 * static pods from staticPodPath), runs them on a CRI runtime (containerd) and reports pod status,
 * node registration, node status and the node lease back through metaManager in the shapes a real
 * edgecore uses. See README.md. Heavy modules (nice-grpc, generated CRI code) load in start().
 */
import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import {
  KernelError,
  definePlugin,
  localIP,
  newMessage,
  parseDuration,
  parseResource,
  type Message,
  type PluginContext,
  type ModuleConfig,
} from '../../kernel/index.js';
import {
  EdgedGroup,
  EdgedModuleName,
  MessageSuccessfulContent,
  MetaGroup,
  MetaManagerModuleName,
} from '../../protocol/index.js';
import type { EdgedConfig } from './config.js';

type Ctx = PluginContext<EdgedConfig & ModuleConfig>;

const REQUEST_TIMEOUT_MS = 60_000;
/** At stop, how long the removal of exited containers may take (the kernel's stop timeout is 10 s). */
const STOP_CLEANUP_MS = 3000;

/** A Go duration of the config (validated at load) in ms; `fallback` when unset. */
const durationMs = (text: string | undefined, fallback: number): number =>
  text ? parseDuration(text) : fallback;

/** The pod list in a metaManager response: an array of JSON strings (or objects, legacy). */
function podsOf(content: unknown): unknown[] {
  const arr = typeof content === 'string' ? (JSON.parse(content) as unknown) : content;
  if (!Array.isArray(arr)) return [];
  return arr.map((x) => (typeof x === 'string' ? (JSON.parse(x) as unknown) : x));
}

/** `{"Object":..,"Err":..}` replies, a `["<json>"]` query answer, or an error message. */
function replyObject(reply: Message): { object?: Record<string, unknown>; err?: string; notFound?: boolean } {
  if (reply.route.operation === 'error')
    return { err: typeof reply.content === 'string' ? reply.content : JSON.stringify(reply.content) };
  let c = reply.content;
  if (typeof c === 'string') {
    if (c === MessageSuccessfulContent) return {};
    try {
      c = JSON.parse(c);
    } catch {
      return { err: c as string };
    }
  }
  if (Array.isArray(c)) {
    if (c.length === 0) return { notFound: true };
    const first = typeof c[0] === 'string' ? (JSON.parse(c[0]) as unknown) : c[0];
    return { object: first as Record<string, unknown> };
  }
  if (c && typeof c === 'object' && 'Err' in c) {
    const r = c as { Object?: Record<string, unknown> | null; Err?: unknown };
    if (r.Err) {
      const es = (r.Err as { ErrStatus?: { reason?: string; message?: string } }).ErrStatus;
      return { err: es?.message ?? JSON.stringify(r.Err), notFound: es?.reason === 'NotFound' };
    }
    return { object: r.Object ?? undefined, notFound: !r.Object };
  }
  if (c && typeof c === 'object') return { object: c as Record<string, unknown> };
  return { notFound: true };
}

function hostDns(resolvConf: string): { servers: string[]; searches: string[]; options: string[] } {
  const out = { servers: [] as string[], searches: [] as string[], options: [] as string[] };
  let text = '';
  try {
    text = readFileSync(resolvConf, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === 'nameserver' && f[1]) out.servers.push(f[1]);
    else if (f[0] === 'search') out.searches = f.slice(1);
    else if (f[0] === 'options') out.options.push(...f.slice(1));
  }
  return out;
}

export default definePlugin<EdgedConfig & ModuleConfig>({
  name: EdgedModuleName,
  group: EdgedGroup,
  configKey: 'edged',
  concurrency: 1,
  async start(ctx: Ctx) {
    const cfg = ctx.config;
    const tkc = cfg.tailoredKubeletConfig;
    const { CriClient } = await import('./cri.js');
    const { PodManager, errText } = await import('./podmanager.js');
    const { StaticPodSource, isMirrorPod, isStaticPod, ANN_CONFIG_MIRROR, ANN_CONFIG_HASH } =
      await import('./static.js');
    const node = await import('./node.js');
    const rt = await import('./runtime.js');
    const { diffObject, sortKeys } = await import('./patch.js');

    const nodeName = cfg.hostnameOverride;
    const nodeIP = cfg.nodeIP || localIP();
    const runtimeEndpoint = tkc.containerRuntimeEndpoint;
    const timeoutMs = durationMs(tkc.runtimeRequestTimeout, 120_000);
    const problems = new Map<string, KernelError>();
    const report = (p: KernelError | undefined, key: string): void => {
      if (!p) {
        if (problems.delete(key)) ctx.log.info({ check: key }, 'runtime problem resolved');
        return;
      }
      const old = problems.get(key);
      if (!old || old.message !== p.message) ctx.log.error({ code: p.code, err: p.message }, p.message);
      problems.set(key, p);
    };

    const docker = rt.dockerProblem(cfg.runtimeType);
    if (docker) report(docker, 'docker');

    const cri = new CriClient({ runtimeEndpoint, imageEndpoint: tkc.imageServiceEndpoint, timeoutMs });
    // the kubelet API edgeStream forwards to (logs, exec, attach); readOnlyPort 0 turns it off
    const { KubeletServer } = await import('./server.js');
    const kubeletServer =
      tkc.readOnlyPort > 0 ? new KubeletServer({ cri, log: ctx.log, port: tkc.readOnlyPort }) : undefined;
    let runtimeName = 'containerd';
    let runtimeVersion = '';
    let networkReady = false;
    let runtimeReady = false;
    let stopped = false;
    const timers = new Set<NodeJS.Timeout>();
    const later = (fn: () => void, ms: number): void => {
      if (stopped) return;
      const t = setTimeout(() => {
        timers.delete(t);
        if (!stopped) fn();
      }, ms);
      timers.add(t);
    };

    const mirrorUids = new Map<string, string>(); // static pod uid -> mirror pod uid

    const requestMeta = async (operation: string, resource: string, content: unknown): Promise<Message> => {
      return ctx.request(
        MetaManagerModuleName,
        newMessage({ source: EdgedModuleName, group: MetaGroup, operation, resource }, content),
        REQUEST_TIMEOUT_MS,
      );
    };

    const ensureMirror = async (pod: import('./types.js').Pod): Promise<string | undefined> => {
      const known = mirrorUids.get(pod.metadata.uid ?? '');
      if (known) return known;
      const mirror = structuredClone(pod);
      mirror.metadata = {
        ...mirror.metadata,
        uid: undefined,
        annotations: {
          ...(mirror.metadata.annotations ?? {}),
          [ANN_CONFIG_MIRROR]: pod.metadata.annotations?.[ANN_CONFIG_HASH] ?? '',
        },
      };
      delete mirror.metadata.uid;
      mirror.status = {};
      const ns = pod.metadata.namespace ?? 'default';
      const reply = await requestMeta('insert', `${ns}/pod/${pod.metadata.name ?? ''}`, mirror);
      const r = replyObject(reply);
      const uid = (r.object?.metadata as { uid?: string } | undefined)?.uid;
      if (uid) mirrorUids.set(pod.metadata.uid ?? '', uid);
      else ctx.log.debug({ pod: pod.metadata.name, err: r.err }, 'mirror pod not created yet');
      return uid;
    };

    const pods = new PodManager(
      cri,
      {
        podLogsDir: tkc.podLogsDir,
        rootDirectory: cfg.rootDirectory,
        cgroupDriver: tkc.cgroupDriver,
        cgroupsPerQOS: tkc.cgroupsPerQOS,
        dns: hostDns(tkc.resolvConf),
        clusterDNS: tkc.clusterDNS ?? [],
        clusterDomain: tkc.clusterDomain,
      },
      {
        log: ctx.log,
        nodeIP: () => nodeIP,
        runtimeName: () => runtimeName,
        networkReady: () => networkReady,
        async reportStatus(pod, status, previous) {
          let uid = pod.metadata.uid;
          if (isStaticPod(pod)) {
            uid = await ensureMirror(pod);
            if (!uid) return;
          }
          const base = (previous ?? pod.status ?? {}) as Record<string, unknown>;
          const diff = diffObject(base, status as Record<string, unknown>) ?? {};
          const patch = sortKeys({ metadata: { uid }, status: diff });
          const ns = pod.metadata.namespace ?? 'default';
          const reply = await requestMeta(
            'patch',
            `${ns}/podpatch/${pod.metadata.name ?? ''}`,
            JSON.stringify(patch),
          );
          const r = replyObject(reply);
          if (r.err) throw new Error(`pod status patch refused: ${r.err}`);
        },
        async podTerminated(pod, requestedByUpdate) {
          const ns = pod.metadata.namespace ?? 'default';
          const resource = `${ns}/pod/${pod.metadata.name ?? ''}`;
          if (isStaticPod(pod)) {
            const mirror = mirrorUids.get(pod.metadata.uid ?? '');
            mirrorUids.delete(pod.metadata.uid ?? '');
            if (!mirror) return;
            // a replaced static pod keeps its name: only delete the mirror if no successor runs
            if (pods.findByKey(`${ns}/${pod.metadata.name ?? ''}`)) return;
            await requestMeta('delete', resource, {
              gracePeriodSeconds: 0,
              preconditions: { uid: mirror },
            }).catch((err: unknown) =>
              ctx.log.warn({ pod: resource, err: errText(err) }, 'mirror pod delete failed'),
            );
            return;
          }
          if (!requestedByUpdate) return;
          await requestMeta('delete', resource, {
            gracePeriodSeconds: 0,
            preconditions: { uid: pod.metadata.uid },
          }).catch((err: unknown) =>
            ctx.log.warn({ pod: resource, err: errText(err) }, 'pod delete not sent'),
          );
        },
        async requestToken(ns, serviceAccount, request) {
          const reply = await requestMeta('query', `${ns}/serviceaccounttoken/${serviceAccount}`, request);
          const r = replyObject(reply);
          const token = (r.object?.status as { token?: string } | undefined)?.token;
          if (!token)
            throw new Error(
              `service account token ${ns}/${serviceAccount}: ${r.err ?? 'no token in the answer'}`,
            );
          return token;
        },
        async getObject(ns, type, name) {
          const reply = await requestMeta('query', `${ns}/${type}/${name}`, null);
          const r = replyObject(reply);
          if (r.err && !r.notFound) throw new Error(`${type} ${ns}/${name}: ${r.err}`);
          return r.object;
        },
      },
    );

    // ---- runtime connection and checks ----
    const connect = async (): Promise<void> => {
      try {
        const v = await cri.version(Math.min(timeoutMs, 10_000));
        runtimeName = v.runtimeName || 'containerd';
        runtimeVersion = `${runtimeName}://${v.runtimeVersion}`;
        report(undefined, 'unreachable');
      } catch (err) {
        report(rt.unreachableProblem(runtimeEndpoint, err), 'unreachable');
        later(() => void connect(), 2000);
        return;
      }
      try {
        const rc = await rt.runtimeConfig(cri);
        report(rt.cgroupProblem(rc, tkc.cgroupDriver), 'cgroup');
        report(await rt.sandboxImageProblem(cri, rc, cfg.podSandboxImage), 'sandbox');
      } catch (err) {
        ctx.log.warn({ err: errText(err) }, 'runtime configuration could not be checked');
      }
      await pollStatus();
      pods.start();
      later(() => void recheck(), 5000);
    };
    const pollStatus = async (): Promise<void> => {
      try {
        const st = await cri.status(false, 10_000);
        const conds = st.status?.conditions ?? [];
        runtimeReady = conds.some((c) => c.type === 'RuntimeReady' && c.status);
        const net = conds.find((c) => c.type === 'NetworkReady');
        networkReady = net?.status === true;
        report(
          networkReady
            ? undefined
            : new KernelError(
                'EEDGED_NETWORK_NOT_READY',
                `container runtime network not ready: NetworkReady=false reason:${net?.reason ?? ''} message:${net?.message ?? ''}`,
              ),
          'network',
        );
        report(undefined, 'unreachable');
      } catch (err) {
        runtimeReady = false;
        report(rt.unreachableProblem(runtimeEndpoint, err), 'unreachable');
      }
    };
    const recheck = async (): Promise<void> => {
      await pollStatus();
      if (problems.has('sandbox')) {
        const rc = await rt.runtimeConfig(cri).catch(() => undefined);
        report(await rt.sandboxImageProblem(cri, rc, cfg.podSandboxImage).catch(() => undefined), 'sandbox');
      }
      later(() => void recheck(), 5000);
    };

    const notReady = (): string | undefined => {
      if (docker) return docker.message;
      const p = problems.get('unreachable');
      if (p) return `container runtime is down: ${p.message}`;
      if (!runtimeReady) return 'container runtime not ready';
      const order = ['cgroup', 'sandbox', 'network'];
      for (const k of order) {
        const q = problems.get(k);
        if (q) return q.message;
      }
      return undefined;
    };

    // ---- node registration, status, lease ----
    const nodeResource = `null/node/${nodeName}`;
    let registered = false;
    let nodeUid: string | undefined;
    let lastStatus: import('./node.js').NodeStatus | undefined;
    let lastReport = 0;
    const nodeInputs = (): import('./node.js').NodeInputs => ({
      nodeName,
      nodeIP,
      labels: cfg.nodeLabels ?? {},
      maxPods: tkc.maxPods,
      readOnlyPort: tkc.readOnlyPort,
      rootDirectory: cfg.rootDirectory,
      evictionHard: tkc.evictionHard,
      runtimeVersion,
      notReady: notReady(),
      registerSchedulable: cfg.registerSchedulable,
      taints: tkc.registerWithTaints,
    });
    /**
     * Registration (kubelet's registerWithAPIServer): retried with kubelet's back-off, 100 ms
     * doubling to 7 s, so the node registers as soon as the cloud link is up (the first attempt
     * usually meets "not connected"). Then the first status and lease follow at once.
     */
    const register = async (): Promise<void> => {
      if (!tkc.registerNode) {
        registered = true;
        return;
      }
      for (let step = 100; !stopped && !registered; step = Math.min(step * 2, 7000)) {
        const nodeObj = node.initialNode(nodeInputs());
        const r = await requestMeta('insert', nodeResource, nodeObj).then(replyObject, (err: unknown) => ({
          err: errText(err),
          object: undefined,
        }));
        if (!r.err || /already exists/i.test(r.err)) {
          registered = true;
          nodeUid = (r.object?.metadata as { uid?: string } | undefined)?.uid;
          lastStatus = nodeObj.status as import('./node.js').NodeStatus;
          lastReport = 0; // kubelet posts a (whole) status right after registration
          ctx.log.info({ node: nodeName }, 'node registered');
          return;
        }
        // the first attempts usually meet "not connected" while edgeHub connects: not worth a warning
        const level = step >= 7000 ? 'warn' : 'debug';
        ctx.log[level]({ err: r.err, retryMs: step }, 'node registration failed; retrying');
        await new Promise<void>((resolve) => later(resolve, step));
      }
    };
    /**
     * The Node is gone from the API (kubectl delete node): register again (once, whichever loop
     * noticed), then send every pod status again.
     */
    let registering: Promise<void> | undefined;
    const reregister = (why: string): Promise<void> =>
      (registering ??= (async () => {
        ctx.log.warn({ node: nodeName, why }, 'node not found in the cloud; registering again');
        registered = false;
        nodeUid = undefined;
        leaseObj = undefined;
        await register();
        if (registered) pods.resendStatuses();
      })().finally(() => (registering = undefined)));
    const nodeTick = async (): Promise<void> => {
      if (!ctx.hasModule(MetaManagerModuleName)) return;
      if (!registered) return;
      let base = lastStatus;
      try {
        const q = replyObject(await requestMeta('query', nodeResource, null));
        if (q.object?.status) base = q.object.status as import('./node.js').NodeStatus;
        const uid = (q.object?.metadata as { uid?: string } | undefined)?.uid;
        if (uid) nodeUid = uid;
      } catch {
        // answer from what was sent last
      }
      const status = node.nodeStatus(nodeInputs(), base);
      const strip = (s: import('./node.js').NodeStatus | undefined) =>
        s ? { ...s, conditions: s.conditions.map((c) => ({ ...c, lastHeartbeatTime: '' })) } : undefined;
      const changed = JSON.stringify(sortKeys(strip(base))) !== JSON.stringify(sortKeys(strip(status)));
      const reportEvery = durationMs(tkc.nodeStatusReportFrequency, 300_000);
      if (!changed && Date.now() - lastReport < reportEvery) return;
      // The first report after (re)registration is the whole status: the stored Node may be older
      // than the API's (the node lifecycle controller sets Ready=Unknown while the edge is away).
      const diff =
        lastReport === 0
          ? status
          : (diffObject(
              (base ?? {}) as unknown as Record<string, unknown>,
              status as unknown as Record<string, unknown>,
            ) ?? {});
      const r = replyObject(
        await requestMeta('patch', `null/nodepatch/${nodeName}`, JSON.stringify({ status: diff })),
      );
      if (r.notFound) await reregister(r.err ?? 'node status patch: NotFound');
      else if (r.err) throw new Error(`node status patch refused: ${r.err}`);
      else {
        lastStatus = status;
        lastReport = Date.now();
      }
    };
    let leaseObj: Record<string, unknown> | undefined;
    const leaseResource = `kube-node-lease/lease/${nodeName}`;
    /**
     * A missing lease may mean the Node itself was deleted (the garbage collector removes the lease
     * it owns): an empty status patch tells (NotFound), and the node is registered again.
     */
    const nodeGone = async (): Promise<boolean> => {
      const r = replyObject(await requestMeta('patch', `null/nodepatch/${nodeName}`, '{}'));
      if (r.notFound) {
        await reregister(r.err ?? 'node status patch: NotFound');
        return true;
      }
      if (r.err) throw new Error(`node status patch refused: ${r.err}`);
      return false;
    };
    const leaseTick = async (): Promise<void> => {
      if (!ctx.hasModule(MetaManagerModuleName) || !registered) return;
      const duration = tkc.nodeLeaseDurationSeconds;
      if (!leaseObj) {
        const q = replyObject(await requestMeta('query', leaseResource, null));
        if (q.object) leaseObj = q.object;
        else {
          if (await nodeGone()) return;
          const fresh = node.lease(nodeName, duration, nodeUid);
          const r = replyObject(await requestMeta('insert', leaseResource, fresh));
          if (r.err) throw new Error(`lease creation refused: ${r.err}`);
          leaseObj = r.object ?? fresh;
          return;
        }
      }
      const renewed = node.lease(nodeName, duration, nodeUid, leaseObj);
      const r = replyObject(await requestMeta('update', leaseResource, renewed));
      if (r.err) {
        leaseObj = undefined; // re-read next time
        if (r.notFound && (await nodeGone())) return;
        throw new Error(`lease renewal refused: ${r.err}`);
      }
      leaseObj = r.object ?? renewed;
    };
    // Node status and lease failures are warnings; the same failure again is logged at debug until
    // the task succeeds or fails differently.
    const lastFailure = new Map<string, string>();
    const loop = (fn: () => Promise<void>, everyMs: number, name: string): void => {
      void fn()
        .then(
          () => {
            if (lastFailure.delete(name)) ctx.log.info({ loop: name }, `${name} update works again`);
          },
          (err: unknown) => {
            const text = errText(err);
            const repeated = lastFailure.get(name) === text;
            lastFailure.set(name, text);
            if (repeated) ctx.log.debug({ loop: name, err: text }, `${name} update failed again`);
            else ctx.log.warn({ loop: name, err: text }, `${name} update failed`);
          },
        )
        .finally(() => later(() => loop(fn, everyMs, name), everyMs));
    };

    // ---- pods from the cloud (through metaManager) ----
    const ingestPod = (raw: unknown): import('./types.js').Pod | undefined => {
      const pod = raw as import('./types.js').Pod;
      if (
        !pod ||
        typeof pod !== 'object' ||
        !pod.metadata ||
        !pod.spec ||
        !Array.isArray(pod.spec.containers)
      ) {
        ctx.log.error({ pod: raw }, 'pod rejected: expected a Pod with metadata and spec.containers');
        return undefined;
      }
      if (pod.spec.nodeName && pod.spec.nodeName !== nodeName) return undefined;
      if (isMirrorPod(pod)) return undefined; // our own mirror pods coming back
      if (!pod.metadata.uid) {
        ctx.log.error(
          { pod: `${pod.metadata.namespace}/${pod.metadata.name}` },
          'pod rejected: metadata.uid is missing',
        );
        return undefined;
      }
      return pod;
    };

    const onMessage = (msg: Message): void => {
      const op = msg.route.operation ?? '';
      const resource = msg.route.resource ?? '';
      let res;
      try {
        res = parseResource(resource);
      } catch {
        ctx.log.warn({ resource, op }, 'message with an unparsable resource ignored');
        return;
      }
      try {
        if ((res.type === 'configmap' || res.type === 'secret') && (op === 'insert' || op === 'update')) {
          const obj = (typeof msg.content === 'string' ? JSON.parse(msg.content) : msg.content) as unknown;
          if (obj && typeof obj === 'object' && res.name)
            void pods.refreshVolumes(res.namespace, res.type, res.name, obj as Record<string, unknown>);
          return;
        }
        if (res.type !== 'pod') {
          ctx.log.debug({ resource, op }, 'unexpected message type');
          return;
        }
        if (op === 'response' && !res.name) {
          const list = podsOf(msg.content)
            .map(ingestPod)
            .filter((p): p is import('./types.js').Pod => p !== undefined);
          pods.setAll(list, (p) => isStaticPod(p));
          pods.sourcesReady = true; // orphans (containers of pods in no source) may now be removed
          ctx.log.info({ pods: list.length }, 'pod set received');
          return;
        }
        if (op === 'insert' || op === 'update') {
          const pod = ingestPod(typeof msg.content === 'string' ? JSON.parse(msg.content) : msg.content);
          if (pod) pods.upsert(pod);
          return;
        }
        if (op === 'delete') {
          const pod = typeof msg.content === 'string' ? JSON.parse(msg.content) : msg.content;
          const p = pod as import('./types.js').Pod | null;
          if (!p?.spec || !Array.isArray(p.spec.containers) || p.spec.containers.length === 0) {
            void requestPodList();
            return;
          }
          if (isMirrorPod(p)) return;
          pods.remove(p);
          return;
        }
        ctx.log.debug({ resource, op }, 'unexpected pod operation');
      } catch (err) {
        ctx.log.error({ resource, op, err: errText(err) }, 'pod message rejected');
      }
    };

    const requestPodList = async (): Promise<void> => {
      if (!ctx.hasModule(MetaManagerModuleName)) return;
      await ctx
        .send(
          MetaManagerModuleName,
          newMessage(
            {
              source: EdgedModuleName,
              group: EdgedGroup,
              operation: 'query',
              resource: `${cfg.registerNodeNamespace}/pod`,
            },
            null,
          ),
        )
        .catch((err: unknown) => ctx.log.warn({ err: errText(err) }, 'pod list query not sent'));
    };

    // ---- start everything ----
    const statics = tkc.staticPodPath
      ? new StaticPodSource(
          tkc.staticPodPath,
          nodeName,
          durationMs(tkc.fileCheckFrequency, 20_000),
          ctx.log,
          (list) => pods.setAll(list, (p) => !isStaticPod(p)),
        )
      : undefined;
    // The first answer (or failure) of the runtime comes before the node registration, so the
    // registered Node carries containerRuntimeVersion whenever a runtime is there.
    const firstContact = docker ? Promise.resolve() : connect();
    if (!docker) {
      await statics
        ?.start()
        .catch((err: unknown) =>
          ctx.log.error({ dir: tkc.staticPodPath, err: errText(err) }, 'static pod path unreadable'),
        );
    }
    if (!ctx.hasModule(MetaManagerModuleName)) pods.sourcesReady = true; // static pods are the only source
    await requestPodList();
    void firstContact.then(async () => {
      if (ctx.hasModule(MetaManagerModuleName)) await register();
      loop(nodeTick, durationMs(tkc.nodeStatusUpdateFrequency, 10_000), 'nodeStatus');
      loop(leaseTick, Math.max(1000, tkc.nodeLeaseDurationSeconds * 250), 'lease');
    });

    kubeletServer?.listen();

    return {
      onMessage,
      async stop() {
        stopped = true;
        for (const t of timers) clearTimeout(t);
        statics?.stop();
        try {
          await kubeletServer?.close();
          await pods.stop();
          // best effort: each CRI call may take runtimeRequestTimeout (2 min); the channel closes
          // whatever happens, which ends a call still running
          await Promise.race([
            pods.cleanupExited().catch(() => undefined),
            delay(STOP_CLEANUP_MS, undefined, { ref: false }),
          ]);
        } finally {
          cri.close();
        }
      },
    };
  },
});

/** Internals for tests and benchmarks. */
export { replyObject, podsOf };
