/** `dig` (Debian's dnsutils) against a DNS server: the status and the answer records. */
import { requirePeer, run } from '../peers/util.js';

export interface DigResult {
  /** NOERROR, NXDOMAIN, SERVFAIL, ... */
  status: string;
  /** Answer records as `type data`, e.g. `A 10.0.0.1`, `CNAME example.com.`. */
  answers: string[];
}

export async function dig(
  server: string,
  port: number,
  name: string,
  opts: { type?: string; tcp?: boolean } = {},
): Promise<DigResult> {
  const args = [`@${server}`, '-p', String(port), name, opts.type ?? 'A', '+noall', '+comments', '+answer'];
  args.push('+tries=1', '+time=3', opts.tcp ? '+tcp' : '+notcp');
  const { stdout } = await run(requirePeer('dig', 'dig (dnsutils)'), args, { timeoutMs: 15_000 });
  const status = /status: (\w+)/.exec(stdout)?.[1];
  if (status === undefined)
    throw new Error(`dig ${args.join(' ')}: no answer header in ${JSON.stringify(stdout)}`);
  const answers = stdout
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith(';'))
    .map((l) => l.trim().split(/\s+/))
    .map((f) => `${f[3]} ${f.slice(4).join(' ')}`);
  return { status, answers };
}
