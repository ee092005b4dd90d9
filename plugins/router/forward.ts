/**
 * Several cloudcores: a REST call for a node connected to another cloudcore is forwarded to that
 * cloudcore's router (spec devices-dmi-router §5.4 step 4), found from the node's annotation
 * `router.kubeedge-ts.io/address` (written by the holder's cloudHub at each connection, see
 * `protocol/cloudcore.ts`), and its answer (status, headers, body) returned as it is.
 */
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { KubeApiError, errorText, type KubeApi, type Logger } from '../../kernel/index.js';
import { HopByHopHeaders, RouterAddressAnnotation } from '../../protocol/index.js';

/**
 * Ours: set on a call one router forwards to another (its value: the sender's address), so a call
 * is forwarded at most once.
 */
export const RouterForwardedHeader = 'x-kubeedge-forwarded-by';

function endToEnd(headers: IncomingMessage['headersDistinct'], keep = ''): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(headers))
    if (v !== undefined && (k === keep || !HopByHopHeaders.has(k))) out[k] = v;
  return out;
}

export interface ForwarderOptions {
  kube: KubeApi;
  log: Logger;
  /** This router's own address as the holder annotation names it (null: no address to compare). */
  self: string | null;
  /** How long the holder may take to answer (its restTimeout, plus its own delivery). */
  timeoutMs: number;
}

export class Forwarder {
  constructor(private readonly o: ForwarderOptions) {}

  /**
   * The router address of the cloudcore holding `node`'s connection when it is another cloudcore
   * (undefined: this one, none known, or `req` was already forwarded once).
   */
  async holder(node: string, req: IncomingMessage): Promise<string | undefined> {
    if (req.headers[RouterForwardedHeader] !== undefined) return undefined;
    let annotations: Record<string, string> | undefined;
    try {
      const n = await this.o.kube.request<{ metadata?: { annotations?: Record<string, string> } }>(
        'GET',
        `/api/v1/nodes/${encodeURIComponent(node)}`,
      );
      annotations = n.metadata?.annotations;
    } catch (err) {
      if (err instanceof KubeApiError && err.statusCode === 404) return undefined;
      this.o.log.warn({ node, err: errorText(err) }, 'router: cannot read the node to find its cloudcore');
      return undefined;
    }
    const address = annotations?.[RouterAddressAnnotation];
    return address === undefined || address === '' || address === this.o.self ? undefined : address;
  }

  /** Send the call to `address` as it came (method, URI, headers, body); copy the answer to `res`. */
  forward(address: string, req: IncomingMessage, body: Buffer, res: ServerResponse): Promise<void> {
    return new Promise((resolve, reject) => {
      const out = httpRequest(
        `http://${address}${req.url ?? '/'}`,
        {
          method: req.method ?? 'GET',
          headers: {
            ...endToEnd(req.headersDistinct),
            [RouterForwardedHeader]: this.o.self ?? 'unknown',
            'content-length': String(body.length),
          },
          timeout: this.o.timeoutMs,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headersDistinct, 'content-length'));
          answer.pipe(res);
          answer.once('end', resolve);
          answer.once('error', reject);
        },
      );
      out.once('timeout', () =>
        out.destroy(new Error(`no answer within ${Math.round(this.o.timeoutMs / 1000)} s`)),
      );
      out.once('error', (err) =>
        reject(new Error(`its cloudcore's router at ${address} did not answer: ${errorText(err)}`)),
      );
      out.end(body);
    });
  }
}
