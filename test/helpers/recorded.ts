/**
 * The recorded session of a real KubeEdge v1.23.1 cloudcore and edgecore
 * (`test/fixtures/kubeedge/kubeedge-v1.23-cloud-edge-session.jsonl`, both directions authoritative).
 */
import { readFileSync } from 'node:fs';
import type { Message } from '../../kernel/index.js';

const recorded = readFileSync(
  new URL('../fixtures/kubeedge/kubeedge-v1.23-cloud-edge-session.jsonl', import.meta.url),
  'utf8',
)
  .split('\n')
  .filter((l) => l !== '')
  .map((l) => JSON.parse(l) as { dir?: string; msg?: Message })
  .filter((o) => o.msg !== undefined);

/** A copy of the first recorded message of direction `dir` ('edge->cloud', 'cloud->edge') that matches. */
export function findRecorded(dir: string, pred: (m: Message) => boolean): Message {
  const hit = recorded.find((o) => o.dir === dir && pred(o.msg!));
  if (hit === undefined) throw new Error(`no ${dir} message in the recorded session`);
  return structuredClone(hit.msg!);
}
