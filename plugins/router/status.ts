/**
 * Rule status counters (spec devices-dmi-router §5.9, with the intended semantics): each handled
 * message counts in its Rule's `status.successMessages` or `status.failMessages` (the latest
 * failure reason in `status.errors`), patched as `{"status": {...}}` (KubeEdge forgets the
 * wrapper, so its counters never change), at most once per interval per rule.
 */
import { errorText, isKernelError, type KubeApi, type Logger } from '../../kernel/index.js';
import type { RuleObject } from './rules.js';

const RULES = '/apis/rules.kubeedge.io/v1';
const CRD = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rules.rules.kubeedge.io';

interface Counters {
  namespace: string;
  name: string;
  successMessages: number;
  failMessages: number;
  errors: string[];
  /** the configuration problem shown in `errors`, if any */
  problem?: string;
  dirty: boolean;
}

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

  /** A rule seen (added or changed): counting goes on from the status it carries when first seen. */
  track(rule: RuleObject): void {
    const uid = rule.metadata?.uid ?? '';
    if (this.rules.has(uid)) return;
    const s = rule.status ?? {};
    this.rules.set(uid, {
      namespace: rule.metadata?.namespace ?? 'default',
      name: rule.metadata?.name ?? '',
      successMessages: Number(s.successMessages ?? 0),
      failMessages: Number(s.failMessages ?? 0),
      errors: [...(s.errors ?? [])],
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

  counts(uid: string): { successMessages: number; failMessages: number } | undefined {
    return this.rules.get(uid);
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
        const body = {
          // the UID is a precondition: a rule deleted and created again under the name is not patched
          metadata: { uid },
          status: { successMessages: c.successMessages, failMessages: c.failMessages, errors: c.errors },
        };
        const path = `${RULES}/namespaces/${encodeURIComponent(c.namespace)}/rules/${encodeURIComponent(c.name)}${suffix}`;
        try {
          await this.kube.request('PATCH', path, body, { contentType: 'application/merge-patch+json' });
        } catch (err) {
          const code = isKernelError(err, 'EKUBE_API') ? (err as { statusCode?: unknown }).statusCode : 0;
          if (code === 404 || code === 409) {
            this.rules.delete(uid); // the rule is gone (or another rule has its name now)
            return;
          }
          if (this.rules.get(uid) === c) c.dirty = true; // next time
          this.log.warn(
            { rule: `${c.namespace}/${c.name}`, err: errorText(err) },
            'router: rule status not patched; tried again',
          );
        }
      }),
    );
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
