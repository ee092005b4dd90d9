/**
 * What the programs that use our protos (edged's CRI client, dmiserver, the mapper SDK) share on
 * top of nice-grpc: two middlewares and a bounded shutdown.
 * - clients: a per-call `deadlineMs` option; a call still running at its deadline is cancelled and
 *   fails with `DEADLINE_EXCEEDED` (a ClientError, as a grpc-js deadline would);
 * - servers: every refusal is reported to `onError` (for logging), a `ServerError` keeps its status
 *   and anything else is answered `INTERNAL` with its message (nice-grpc alone answers `UNKNOWN`);
 * - `shutdown`: graceful, forced after a grace period.
 * Load it from a plugin's `start()`: it loads nice-grpc.
 */
import { createRequire } from 'node:module';
import { setTimeout as delay } from 'node:timers/promises';
import type * as NiceGrpc from 'nice-grpc';
import type { ClientMiddleware, Server, ServerMiddleware } from 'nice-grpc';

/**
 * nice-grpc, loaded with require: it and @grpc/grpc-js are CommonJS, and an ESM `import` would
 * wrap each of their files in a module of its own (with ws and yaml loaded the same way, edgecore
 * idles 1-2 MB lower).
 */
export const grpc = createRequire(import.meta.url)('nice-grpc') as typeof NiceGrpc;
export const { ClientError, ServerError, Status } = grpc;
export type ClientError = NiceGrpc.ClientError;
export type ServerError = NiceGrpc.ServerError;
export type Status = NiceGrpc.Status;

/** The call option the deadline middleware adds: the call's deadline, ms from now. */
export interface DeadlineOptions {
  deadlineMs: number;
}

export const deadlineMiddleware: ClientMiddleware<DeadlineOptions> = async function* deadline(call, options) {
  const { deadlineMs, signal, ...rest } = options;
  if (deadlineMs === undefined) return yield* call.next(call.request, options);
  const ac = new AbortController();
  const cancel = (): void => ac.abort(signal?.reason);
  signal?.addEventListener('abort', cancel, { once: true });
  if (signal?.aborted) cancel();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    ac.abort();
  }, deadlineMs);
  try {
    return yield* call.next(call.request, { ...rest, signal: ac.signal });
  } catch (err) {
    if (expired)
      throw new ClientError(
        call.method.path,
        Status.DEADLINE_EXCEEDED,
        `deadline of ${deadlineMs} ms exceeded`,
      );
    throw err;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', cancel);
  }
};

const text = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Server middleware: report each refusal, answer non-ServerErrors with INTERNAL. */
export function refusals(onError: (method: string, message: string) => void): ServerMiddleware {
  return async function* refusal(call, context) {
    try {
      return yield* call.next(call.request, context);
    } catch (err) {
      if (err instanceof Error && err.name === 'AbortError') throw err; // the client went away
      const message = err instanceof ServerError ? err.details : text(err);
      onError(call.method.path, message);
      if (err instanceof ServerError) throw err;
      throw new ServerError(Status.INTERNAL, message);
    }
  };
}

/** Graceful shutdown of a server, forced after `graceMs` (calls still running are cancelled). */
export async function shutdown(server: Server, graceMs: number): Promise<void> {
  const ac = new AbortController();
  const forced = delay(graceMs, undefined, { signal: ac.signal }).then(
    () => server.forceShutdown(),
    () => undefined, // the graceful shutdown finished first
  );
  await Promise.race([server.shutdown().catch(() => server.forceShutdown()), forced]);
  ac.abort();
}
