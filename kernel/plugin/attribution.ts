import { AsyncLocalStorage } from 'node:async_hooks';

/** Who an asynchronous callback belongs to: the plugin instance that created it. */
export interface Owner {
  /** The instance threw from a callback of its own (a timer, a socket event, a rejected promise). */
  fail(err: unknown): void;
}

const owners = new AsyncLocalStorage<Owner>();
let installed = false;

/**
 * Run `fn` as `owner`: timers, sockets and promises it creates carry the owner along (Node's
 * async context), so an error they throw later is handed to the owner's restart policy instead of
 * the process-wide handler.
 */
export function runAs<T>(owner: Owner, fn: () => T): T {
  install();
  return owners.run(owner, fn);
}

/**
 * One capture for the whole process: an uncaught exception or unhandled rejection raised in a
 * plugin's async context is that plugin's failure; any other goes on to the process's
 * 'uncaughtException' listeners as before (the CLI logs it).
 */
function install(): void {
  if (installed) return;
  installed = true;
  process.setUncaughtExceptionCaptureCallback((err) => {
    const owner = owners.getStore();
    if (owner) owner.fail(err);
    else if (process.listenerCount('uncaughtException') > 0)
      process.emit('uncaughtException', err instanceof Error ? err : new Error(String(err)));
    else process.stderr.write(`uncaught exception: ${(err as Error)?.stack ?? String(err)}\n`);
  });
  process.on('unhandledRejection', (reason) => {
    const owner = owners.getStore();
    if (owner) owner.fail(reason);
    else if (process.listenerCount('unhandledRejection') === 1)
      process.stderr.write(`unhandled rejection: ${(reason as Error)?.stack ?? String(reason)}\n`);
  });
}
