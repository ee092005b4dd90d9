/** One running device: connection with reconnect, collect/report cycles, desired writes, state. */
import {
  DeviceOfflineError,
  type DeviceHandle,
  type DeviceSpec,
  type DeviceState,
  type MapperLogger,
  type PropertySpec,
} from './types.js';

export interface TwinReport {
  propertyName: string;
  value: string;
  type: string;
  timestamp: number;
  /** The desired value the mapper applies (observedDesired), if the property has one. */
  desired?: string;
}

/** Where a device's readings and state go (the Mapper sends them to edgecore over DMI). */
export interface DeviceSink {
  twins(device: DeviceSpec, twins: TwinReport[]): void;
  state(device: DeviceSpec, state: DeviceState): void;
}

export interface PropertyValue {
  value?: string;
  timestamp?: number;
  error?: string;
}

export interface ReconnectPolicy {
  initialMs: number;
  maxMs: number;
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class DeviceRunner {
  state: DeviceState = 'unknown';
  lastError: string | undefined;
  readonly values = new Map<string, PropertyValue>();
  private connected = false;
  private stopped = false;
  private cycleTimers: NodeJS.Timeout[] = [];
  private stateTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private readonly lastReport = new Map<string, number>();
  private readonly busy = new Set<number>();
  /** Desired values written successfully, so an update writes only what changed. */
  private readonly written = new Map<string, string>();

  constructor(
    public spec: DeviceSpec,
    private handle: DeviceHandle,
    private readonly sink: DeviceSink,
    private readonly log: MapperLogger,
    private readonly reconnect: ReconnectPolicy,
  ) {
    this.backoffMs = reconnect.initialMs;
  }

  start(): void {
    this.startStateTimer();
    void this.connectOnce();
  }

  private startStateTimer(): void {
    if (this.stateTimer) clearInterval(this.stateTimer);
    this.stateTimer = undefined;
    if (this.spec.stateReport.reportToCloud)
      this.stateTimer = setInterval(
        () => this.sink.state(this.spec, this.state),
        this.spec.stateReport.cycleMs,
      );
  }

  private setState(state: DeviceState, error?: string): void {
    this.lastError = error;
    if (state === this.state) return;
    this.state = state;
    this.log.info(
      { device: this.spec.id, state, ...(error ? { error } : {}) },
      `device ${this.spec.id} is ${state}`,
    );
    this.sink.state(this.spec, state);
  }

  private async connectOnce(): Promise<void> {
    this.reconnectTimer = undefined;
    if (this.stopped) return;
    try {
      await this.handle.connect();
    } catch (err) {
      if (this.stopped) return;
      this.setState('offline', `connect: ${errText(err)}`);
      this.reconnectTimer = setTimeout(() => void this.connectOnce(), this.backoffMs);
      this.backoffMs = Math.min(this.reconnect.maxMs, this.backoffMs * 2);
      return;
    }
    if (this.stopped) return;
    this.connected = true;
    this.backoffMs = this.reconnect.initialMs;
    this.setState('online');
    this.written.clear();
    await this.writeDesired(this.spec.properties);
    this.startCycles();
  }

  private async lost(err: unknown): Promise<void> {
    if (!this.connected) return;
    this.connected = false;
    this.stopCycles();
    if (this.stopped) return;
    this.setState('offline', errText(err));
    this.reconnectTimer = setTimeout(() => void this.connectOnce(), this.backoffMs);
  }

  private startCycles(): void {
    this.stopCycles();
    const groups = new Map<number, PropertySpec[]>();
    for (const p of this.spec.properties) {
      if (Object.keys(p.visitor).length === 0) continue; // a twin without a visitor: nothing to read
      const list = groups.get(p.collectCycleMs) ?? [];
      list.push(p);
      groups.set(p.collectCycleMs, list);
    }
    for (const [cycle, props] of groups) {
      void this.tick(cycle, props);
      this.cycleTimers.push(setInterval(() => void this.tick(cycle, props), cycle));
    }
  }

  private stopCycles(): void {
    for (const t of this.cycleTimers) clearInterval(t);
    this.cycleTimers = [];
  }

  /** Reads one group of properties (same collectCycle) and reports them in one request. */
  private async tick(cycle: number, props: PropertySpec[]): Promise<void> {
    if (!this.connected || this.busy.has(cycle)) return;
    this.busy.add(cycle);
    const twins: TwinReport[] = [];
    try {
      for (const p of props) {
        if (!this.connected) return;
        let value: string;
        try {
          value = await this.handle.readProperty(p);
        } catch (err) {
          if (err instanceof DeviceOfflineError) {
            await this.lost(err);
            return;
          }
          const text = `read ${p.name}: ${errText(err)}`;
          if (this.values.get(p.name)?.error !== text)
            this.log.warn(
              { device: this.spec.id, property: p.name, error: errText(err) },
              `device ${this.spec.id}: ${text}`,
            );
          this.values.set(p.name, { ...this.values.get(p.name), error: text });
          continue;
        }
        const now = Date.now();
        this.values.set(p.name, { value, timestamp: now });
        if (!p.reportToCloud) continue;
        const last = this.lastReport.get(p.name) ?? 0;
        if (p.reportCycleMs > 0 && now - last < p.reportCycleMs) continue;
        this.lastReport.set(p.name, now);
        twins.push({
          propertyName: p.name,
          value,
          type: p.type,
          timestamp: now,
          ...(p.desired ? { desired: p.desired.value } : {}),
        });
      }
    } finally {
      this.busy.delete(cycle);
      if (twins.length) this.sink.twins(this.spec, twins);
    }
  }

  /** Writes the desired values of writable properties that differ from what was last written. */
  private async writeDesired(props: PropertySpec[]): Promise<void> {
    for (const p of props) {
      const value = p.desired?.value;
      if (value === undefined || value === '' || p.accessMode !== 'ReadWrite') continue;
      if (Object.keys(p.visitor).length === 0 || this.written.get(p.name) === value) continue;
      if (!this.connected) return;
      try {
        await this.handle.writeProperty(p, value);
        this.written.set(p.name, value);
        this.log.info(
          { device: this.spec.id, property: p.name, value },
          `device ${this.spec.id}: wrote ${p.name}=${value}`,
        );
      } catch (err) {
        if (err instanceof DeviceOfflineError) {
          await this.lost(err);
          return;
        }
        this.log.error(
          { device: this.spec.id, property: p.name, value, error: errText(err) },
          `device ${this.spec.id}: write of desired ${p.name}=${JSON.stringify(value)} failed: ${errText(err)}`,
        );
      }
    }
  }

  /**
   * A new definition with the same connection and the driver's handle for it: the old handle is
   * closed (after the new one took over, so a shared connection stays open), new cycles start and
   * desired values that changed are written.
   */
  async update(spec: DeviceSpec, handle: DeviceHandle): Promise<void> {
    const old = this.handle;
    this.spec = spec;
    this.handle = handle;
    this.startStateTimer();
    if (this.connected) {
      this.stopCycles();
      try {
        await handle.connect();
      } catch (err) {
        await old.close?.().catch(() => undefined);
        await this.lost(err);
        return;
      }
    }
    await old.close?.().catch(() => undefined);
    if (!this.connected || this.stopped) return;
    await this.writeDesired(spec.properties);
    this.startCycles();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopCycles();
    if (this.stateTimer) clearInterval(this.stateTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.connected = false;
    await this.handle.close?.().catch(() => undefined);
  }
}
