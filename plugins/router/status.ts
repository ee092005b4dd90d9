/**
 * Rule status counters (spec devices-dmi-router §5.9, with the intended semantics): each handled
 * message counts in its Rule's `status.successMessages` or `status.failMessages` (the latest
 * failure reason in `status.errors`), patched as `{"status": {...}}` (KubeEdge forgets the
 * wrapper, so its counters never change), at most once per interval per rule. What this cloudcore
 * counted is added to the rule's current counters (another cloudcore counts too).
 */
import { KubeApiError, errorText, type KubeApi, type Logger } from '../../kernel/index.js';
import type { RuleObject } from './rules.js';

const RULES = '/apis/rules.kubeedge.io/v1';
const CRD = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rules.rules.kubeedge.io';

const statusOf = (err: unknown): number | undefined =>
  err instanceof KubeApiError ? err.statusCode : undefined;

interface Counters {
  namespace: string;
  name: string;
  /** Messages counted here and not written yet (added to what the rule's status holds). */
  successMessages: number;
  failMessages: number;
  errors: string[];
  /** the configuration problem shown in `errors`, if any */
  problem?: string;
  dirty: boolean;
}

interface RuleRead {
  metadata?: { uid?: string; resourceVersion?: string };
  status?: { successMessages?: number; failMessages?: number };
}

/** A rule status patch attempts at most this often in one flush (then: the next flush). */
const ATTEMPTS = 3;

export class RuleStatuses {
  /** by rule UID: a rule deleted and created again starts from its new object's status */
  private readonly rules = new Map<string, Counters>();
  private readonly timer: NodeJS.Timeout;
  private statusPath: Promise<string> | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly kube: KubeApi,
    private readonly log: Logger,
    intervalMs: number,
  ) {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /** A rule seen (added or changed). */
  track(rule: RuleObject): void {
    const uid = rule.metadata?.uid ?? '';
    if (this.rules.has(uid)) return;
    this.rules.set(uid, {
      namespace: rule.metadata?.namespace ?? 'default',
      name: rule.metadata?.name ?? '',
      successMessages: 0,
      failMessages: 0,
      errors: [...(rule.status?.errors ?? [])],
      dirty: false,
    });
  }

  forget(uid: string): void {
    this.rules.delete(uid);
  }

  success(uid: string): void {
    const c = this.rules.get(uid);
    if (!c) return;
    c.successMessages++;
    c.dirty = true;
  }

  fail(uid: string, reason: string): void {
    const c = this.rules.get(uid);
    if (!c) return;
    c.failMessages++;
    c.errors = [reason];
    c.problem = undefined;
    c.dirty = true;
  }

  /** The rule's configuration problem (undefined: none); shown in `errors` while it lasts. */
  problem(uid: string, problem: string | undefined): void {
    const c = this.rules.get(uid);
    if (!c || c.problem === problem) return;
    if (problem !== undefined) c.errors = [problem];
    else if (c.problem !== undefined && c.errors[0] === c.problem) c.errors = [];
    c.problem = problem;
    c.dirty = true;
  }

  /** Patch every rule whose counters changed since the last flush. */
  flush(): Promise<void> {
    this.inFlight ??= this.patchDirty().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async patchDirty(): Promise<void> {
    const dirty = [...this.rules.entries()].filter(([, c]) => c.dirty);
    if (dirty.length === 0) return;
    const suffix = await this.statusSuffix();
    await Promise.all(
      dirty.map(async ([uid, c]) => {
        c.dirty = false;
        try {
          if (!(await this.add(uid, c, suffix))) this.rules.delete(uid); // the rule is gone
        } catch (err) {
          if (this.rules.get(uid) === c) c.dirty = true; // next time
          this.log.warn(
            { rule: `${c.namespace}/${c.name}`, err: errorText(err) },
            'router: rule status not patched; tried again',
          );
        }
      }),
    );
  }

  /**
   * Add what was counted here to the counters the rule's status holds, read first and written with
   * its resourceVersion as a precondition: several cloudcores count into one rule without losing
   * each other's counts (a conflict reads again). False: the rule is gone (or another rule has its
   * name now).
   */
  private async add(uid: string, c: Counters, suffix: string): Promise<boolean> {
    const path = `${RULES}/namespaces/${encodeURIComponent(c.namespace)}/rules/${encodeURIComponent(c.name)}`;
    for (let attempt = 1; ; attempt++) {
      let now: RuleRead;
      try {
        now = await this.kube.request<RuleRead>('GET', path);
      } catch (err) {
        if (statusOf(err) === 404) return false;
        throw err;
      }
      if (now.metadata?.uid !== uid) return false;
      const [success, fail] = [c.successMessages, c.failMessages];
      const body = {
        metadata: { uid, resourceVersion: now.metadata.resourceVersion },
        status: {
          successMessages: Number(now.status?.successMessages ?? 0) + success,
          failMessages: Number(now.status?.failMessages ?? 0) + fail,
          errors: c.errors,
        },
      };
      try {
        await this.kube.request('PATCH', `${path}${suffix}`, body, {
          contentType: 'application/merge-patch+json',
        });
        c.successMessages -= success;
        c.failMessages -= fail;
        return true;
      } catch (err) {
        const code = statusOf(err);
        if (code === 404) return false;
        if (code !== 409 || attempt >= ATTEMPTS) throw err;
      }
    }
  }

  /** `/status` when the installed Rule CRD has the status subresource (KubeEdge's has not). */
  private statusSuffix(): Promise<string> {
    this.statusPath ??= this.kube
      .request<{ spec?: { versions?: { name?: string; subresources?: { status?: unknown } }[] } }>('GET', CRD)
      .then(
        (crd) => (crd.spec?.versions?.find((v) => v.name === 'v1')?.subresources?.status ? '/status' : ''),
        (err: unknown) => {
          this.statusPath = undefined; // ask again next time
          this.log.warn(
            { err: errorText(err) },
            'router: cannot read the Rule CRD; status patched on the rule',
          );
          return '';
        },
      );
    return this.statusPath;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.inFlight;
    await this.flush();
  }
}
