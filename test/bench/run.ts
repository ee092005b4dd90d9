/**
 * `npm run bench`: every benchmark suite, one table. Figures, not pass/fail: compare the BENCH
 * lines between runs.
 */
import { cloudBench } from './cloud.js';
import { cloudhubBench } from './cloudhub.js';
import { conversionBench } from './conversion.js';
import { devicesBench } from './devices.js';
import { edgecontrollerBench } from './edgecontroller.js';
import { edgemeshBench } from './edgemesh.js';
import { eventbusBench } from './eventbus.js';
import { edgeIdleBench } from './edge-idle.js';
import { edgedBench } from './edged.js';
import { kernelBench } from './kernel.js';
import { metamanagerBench } from './metamanager.js';
import { mapperBench } from './mapper.js';
import { printReport, type Figure } from './report.js';
import { routerBench } from './router.js';
import { scaleBench } from './scale.js';
import { startupBench } from './startup.js';
import { streamBench } from './stream.js';

const suites: [string, () => Promise<Figure[]>][] = [
  ['kernel', kernelBench],
  ['edged', edgedBench],
  ['eventbus', eventbusBench],
  ['metamanager', metamanagerBench],
  ['mapper', mapperBench],
  ['startup', () => startupBench()],
  ['cloudhub', cloudhubBench],
  ['cloud', cloudBench],
  ['edgecontroller', edgecontrollerBench],
  ['router', routerBench],
  ['conversion', conversionBench],
  ['stream', streamBench],
  ['edgemesh', edgemeshBench],
  ['devices', devicesBench],
  ['scale', scaleBench],
  ['edge-idle', edgeIdleBench],
];

const only = process.argv[2];
const figures: Figure[] = [];
for (const [name, run] of suites) {
  if (only && only !== name) continue;
  process.stderr.write(`bench: ${name}...\n`);
  figures.push(...(await run()));
}
printReport(figures);
