/** One figure of a benchmark run. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** The goal, e.g. ">= 2000000" or "<= 0.02". */
  goal?: string;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

/** Latencies (ns) -> p50/p99 figures in the given unit. */
export function latencyFigures(
  name: string,
  samplesNs: number[],
  unit: 'us' | 'ms',
  goalP99?: string,
): Figure[] {
  const div = unit === 'us' ? 1e3 : 1e6;
  const sorted = [...samplesNs].sort((a, b) => a - b);
  return [
    { name: `${name}_p50`, value: round(percentile(sorted, 50) / div), unit },
    {
      name: `${name}_p99`,
      value: round(percentile(sorted, 99) / div),
      unit,
      ...(goalP99 ? { goal: goalP99 } : {}),
    },
  ];
}

export function round(v: number): number {
  if (!Number.isFinite(v)) return v;
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 1 ? 2 : 4;
  return Number(v.toFixed(digits));
}

function meets(f: Figure): string {
  if (!f.goal) return '';
  const m = /^(>=|<=)\s*([\d.]+)/.exec(f.goal);
  if (!m) return '';
  const target = Number(m[2]);
  return (m[1] === '>=' ? f.value >= target : f.value <= target) ? 'yes' : 'NO';
}

/** A readable table, then one `BENCH <name> <value> <unit>` line per figure. */
export function printReport(figures: Figure[]): void {
  const rows = figures.map((f) => [f.name, String(f.value), f.unit, f.goal ?? '', meets(f)]);
  const head = ['figure', 'value', 'unit', 'goal', 'met'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (r: string[]): string =>
    r.map((c, i) => (i === 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log('');
  for (const f of figures) console.log(`BENCH ${f.name} ${f.value} ${f.unit}`);
}
