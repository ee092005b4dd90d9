/**
 * `npm run bench`: every benchmark suite, one table. Figures, not pass/fail: compare the BENCH
 * lines between runs.
 */
import { edgedBench } from "./edged.js";
import { kernelBench } from "./kernel.js";
import { metamanagerBench } from "./metamanager.js";
import { printReport, type Figure } from "./report.js";

const suites: [string, () => Promise<Figure[]>][] = [
  ["kernel", kernelBench],
  ["edged", edgedBench],
  ["metamanager", metamanagerBench],
];

const only = process.argv[2];
const figures: Figure[] = [];
for (const [name, run] of suites) {
  if (only && only !== name) continue;
  process.stderr.write(`bench: ${name}...\n`);
  figures.push(...(await run()));
}
printReport(figures);
