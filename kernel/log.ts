import { pino, type Logger as PinoLogger, type LevelWithSilent } from 'pino';

/** Structured, levelled logger; every line of a plugin carries `module`. */
export type Logger = PinoLogger;
export type LogLevel = LevelWithSilent;

export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/** The process's root logger: JSON lines on stderr (stdout stays free for --minconfig etc.). */
export function createLogger(level: LogLevel = 'info', base: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { pid: process.pid, ...base } }, pino.destination({ fd: 2, sync: false }));
}
