/**
 * Leader election over a coordination.k8s.io/v1 Lease, as client-go's `leaderelection` does it: the
 * holder renews `renewTime`; another candidate takes the Lease only once it has seen the same
 * record unchanged for `leaseDurationSeconds` by its own clock (no clock comparison between hosts),
 * or when the holder released it; every write carries the read `resourceVersion`, so of two
 * candidates writing at once one gets 409 and stays a follower.
 */
import { errorText, isKernelError, type KubeApi, type Logger } from '../../kernel/index.js';

interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export interface LeaderElectionOptions {
  kube: KubeApi;
  log: Logger;
  namespace: string;
  name: string;
  identity: string;
  /** client-go's defaults: 15 s, 10 s, 2 s. */
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Leadership gained / lost (also at stop). */
  onStartedLeading(): void;
  onStoppedLeading(): void;
}

/** A Lease's MicroTime: RFC 3339 with microseconds. */
const microTime = (ms: number): string => new Date(ms).toISOString().replace(/Z$/, '000Z');

/**
 * Lease requests go before the queued ones (their own token bucket, not counted in the bound on
 * requests open at once): a burst of writes (cloudHub's ObjectSyncs) neither delays a renewal past
 * the deadline nor holds a stopping leader's release.
 */
const LEASE = { priority: true } as const;

const statusCode = (err: unknown): number | undefined =>
  isKernelError(err, 'EKUBE_API') ? (err as { statusCode?: number }).statusCode : undefined;

export class LeaderElector {
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private lastRenew = 0;
  /** The other holder's record as last seen, and when (our clock). */
  private observed: { key: string; at: number } | undefined;
  private stopped = false;
  private running: Promise<void> = Promise.resolve();
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.leaseMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  private get path(): string {
    const { namespace, name } = this.opts;
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases/${encodeURIComponent(name)}`;
  }

  start(): void {
    this.tick();
  }

  private tick(): void {
    this.running = this.attempt()
      .catch((err: unknown) =>
        this.opts.log.warn(
          { lease: this.opts.name, error: errorText(err) },
          'leader election: the Lease cannot be read or written',
        ),
      )
      .finally(() => {
        if (this.leading && Date.now() - this.lastRenew > this.renewDeadlineMs)
          this.lose('renew deadline passed');
        if (!this.stopped) {
          this.timer = setTimeout(() => this.tick(), this.retryMs);
          this.timer.unref();
        }
      });
  }

  private async attempt(): Promise<void> {
    const now = Date.now();
    let lease: Lease | undefined;
    try {
      lease = await this.opts.kube.request<Lease>('GET', this.path, undefined, LEASE);
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
    const seconds = Math.round(this.leaseMs / 1000);
    if (lease === undefined) {
      const { namespace, name, identity } = this.opts;
      await this.write(
        'POST',
        `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`,
        {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: seconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        },
      );
      return;
    }
    const holder = lease.spec.holderIdentity ?? '';
    if (holder === this.opts.identity) {
      await this.write('PUT', this.path, { ...lease, spec: { ...lease.spec, renewTime: microTime(now) } });
      return;
    }
    if (this.leading) this.lose(`the Lease is held by ${holder || 'nobody'}`);
    if (holder !== '') {
      const key = `${holder}/${lease.spec.renewTime ?? ''}`;
      if (this.observed?.key !== key) this.observed = { key, at: now };
      const duration = (lease.spec.leaseDurationSeconds ?? seconds) * 1000;
      if (now - this.observed.at < duration) return;
    }
    await this.write('PUT', this.path, {
      ...lease,
      spec: {
        holderIdentity: this.opts.identity,
        leaseDurationSeconds: seconds,
        acquireTime: microTime(now),
        renewTime: microTime(now),
        leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1,
      },
    });
  }

  /** Write the Lease naming us; a conflict (another candidate was faster) leaves us a follower. */
  private async write(
    method: 'POST' | 'PUT',
    path: string,
    body: Lease & { apiVersion?: string; kind?: string },
  ): Promise<void> {
    try {
      await this.opts.kube.request(method, path, body, LEASE);
    } catch (err) {
      const code = statusCode(err);
      if (code === 409) {
        if (this.leading) this.lose('another candidate wrote the Lease');
        return;
      }
      throw err;
    }
    this.lastRenew = Date.now();
    if (!this.leading && !this.stopped) {
      this.leading = true;
      this.opts.log.info(
        { lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.opts.identity },
        'leader election: this cloudcore leads',
      );
      this.opts.onStartedLeading();
    }
  }

  private lose(reason: string): void {
    this.leading = false;
    this.opts.log.warn(
      { lease: `${this.opts.namespace}/${this.opts.name}`, reason },
      'leader election: leadership lost',
    );
    this.opts.onStoppedLeading();
  }

  /** Stop; a leader releases the Lease (holder emptied) so another candidate takes it at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    if (!this.leading) return;
    this.leading = false;
    this.opts.onStoppedLeading();
    try {
      const lease = await this.opts.kube.request<Lease>('GET', this.path, undefined, LEASE);
      if (lease.spec.holderIdentity !== this.opts.identity) return;
      const now = microTime(Date.now());
      await this.opts.kube.request(
        'PUT',
        this.path,
        {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            acquireTime: now,
            renewTime: now,
          },
        },
        LEASE,
      );
    } catch (err) {
      this.opts.log.warn(
        { lease: this.opts.name, error: errorText(err) },
        'leader election: the Lease cannot be released',
      );
    }
  }
}
