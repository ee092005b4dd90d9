/**
 * Typed, coded errors of the kernel. Every error a plugin or the kernel raises across a module
 * boundary is a KernelError with a stable `code`, so callers branch on codes, never on text.
 */
export type KernelErrorCode =
  // plugins add codes of their own, prefixed by their area (EMETA_..., ECRI_..., ETWIN_...)
  | `E${string}`
  // configuration
  | 'ECONFIG_MISSING'
  | 'ECONFIG_EMPTY'
  | 'ECONFIG_SYNTAX'
  | 'ECONFIG_KIND'
  | 'ECONFIG_INVALID'
  // messaging
  | 'EMSG_DECODE'
  | 'EBUS_NO_MODULE'
  | 'EBUS_NO_GROUP'
  | 'EBUS_QUEUE_FULL'
  | 'EBUS_TIMEOUT'
  | 'EBUS_CLOSED'
  | 'EBUS_NO_WAITER'
  // plugins
  | 'EPLUGIN_LOAD'
  | 'EPLUGIN_INVALID'
  | 'EPLUGIN_DUPLICATE'
  | 'EPLUGIN_START'
  | 'EPLUGIN_START_TIMEOUT'
  | 'EPLUGIN_STOP_TIMEOUT'
  | 'EPLUGIN_CYCLE'
  | 'EPLUGIN_HANDLER'
  | 'EPLUGIN_GAVE_UP'
  | 'EPLUGIN_UNAVAILABLE'
  // services
  | 'ESERVICE_MISSING'
  | 'ESERVICE_DUPLICATE'
  // out of process
  | 'EREMOTE_PROTOCOL'
  | 'EREMOTE_DISCONNECTED'
  | 'EREMOTE_SPAWN';

export class KernelError extends Error {
  readonly code: KernelErrorCode;

  constructor(code: KernelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KernelError';
    this.code = code;
  }
}

export function isKernelError(err: unknown, code?: KernelErrorCode): err is KernelError {
  return err instanceof KernelError && (code === undefined || err.code === code);
}

/** Text of any thrown value, for logs and error replies. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return typeof err === 'string' ? err : JSON.stringify(err);
}
