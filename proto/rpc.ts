/**
 * Small gRPC server helpers shared by the programs that serve our protos (dmiserver, the mapper
 * SDK): a typed error carrying a gRPC status code, and the adapter from an async function to a
 * grpc-js unary handler.
 */

/** An error answered to the caller with this gRPC status code (e.g. 3 INVALID_ARGUMENT). */
export class RpcError extends Error {
  constructor(
    readonly grpcCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** grpc-js's INTERNAL status, for errors that are not RpcErrors. */
const INTERNAL = 13;

const text = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Wrap `fn` as a grpc-js unary handler: its result is the reply; a thrown RpcError is answered
 * with its code, anything else with INTERNAL. `onError` sees every refusal (for logging).
 */
export function unaryHandler<Req, Res>(
  fn: (req: Req) => Res | Promise<Res>,
  onError: (message: string) => void,
): (call: { request: Req }, cb: (err: unknown, res?: Res) => void) => void {
  return (call, cb) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (res) => cb(null, res),
        (err: unknown) => {
          onError(text(err));
          cb({
            code: err instanceof RpcError ? err.grpcCode : INTERNAL,
            details: text(err),
            message: text(err),
          });
        },
      );
  };
}
